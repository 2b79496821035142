"""Issue 10: the app never fails to start and never gets stuck on a bad file.

Each row is a trace file damaged one way; opening it must give one dialog with
a one-line message and change nothing in the window. Saved settings are
checked the same way at start-up, each bad value replaced by its default with
a note in the status bar.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from app_helpers import configure, error_boxes, run
from bd3lm_core import SamplerSettings


def window_state(window) -> tuple:
    return (window.trace, window.view.text.toHtml(), window.prompt.toPlainText(), window.controls.choices(),
            window.view.shown)


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def first_revealed(data) -> list:
    return next(f for f in data["frames"] if f["revealed"])["revealed"][0]


DAMAGE = {
    "not UTF-8": lambda p: p.write_bytes(b'{"format": "bd3lm-studio-trace", "prompt": "\xff\xfe"}'),
    "not JSON": lambda p: p.write_text("{trace", encoding="utf-8"),
    "nested 100000 deep": lambda p: p.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8"),
    "a string probability": lambda p: edit(p, lambda d: first_revealed(d).__setitem__(3, "0.5")),
    "an int text": lambda p: edit(p, lambda d: first_revealed(d).__setitem__(2, 7)),
    "a probability above 1": lambda p: edit(p, lambda d: first_revealed(d).__setitem__(3, 3.5)),
    "a position outside its block": lambda p: edit(p, lambda d: first_revealed(d).__setitem__(0, 10**6)),
    "a negative position": lambda p: edit(p, lambda d: first_revealed(d).__setitem__(0, -1)),
    "block_size 0": lambda p: edit(p, lambda d: d["settings"].__setitem__("block_size", 0)),
    "temperature 0": lambda p: edit(p, lambda d: d["settings"].__setitem__("temperature", 0)),
    "temperature NaN": lambda p: p.write_text(
        p.read_text(encoding="utf-8").replace('"temperature": 1.0', '"temperature": NaN'), encoding="utf-8"),
    "a seed beyond 2**63": lambda p: edit(p, lambda d: d["settings"].__setitem__("seed", 2**64)),
    "frames not a list": lambda p: edit(p, lambda d: d.__setitem__("frames", {"0": 1})),
    "a frame without its step": lambda p: edit(p, lambda d: d["frames"][0].pop("step")),
    "masked longer than the block": lambda p: edit(p, lambda d: d["frames"][0].__setitem__("masked", [True] * 99)),
    "a start that is not its block's": lambda p: edit(p, lambda d: d["frames"][0].__setitem__("start", 3)),
    "an unknown stop reason": lambda p: edit(p, lambda d: d.__setitem__("reason", "bored")),
    "true as a token id": lambda p: edit(p, lambda d: d["token_ids"].__setitem__(0, True)),
    "a newer version": lambda p: edit(p, lambda d: d.__setitem__("version", 99)),
    "a folder": lambda p: (p.unlink(), p.mkdir()),
    "a FIFO": lambda p: (p.unlink(), os.mkfifo(p)),
}


@pytest.fixture
def saved_trace(window, qtbot, tmp_path) -> Path:
    configure(window, tokens=12)
    run(window, qtbot)
    path = tmp_path / "run.json"
    assert window.export_to(path)
    return path


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_trace_gets_one_dialog_and_changes_nothing(window, saved_trace, damage):
    window.prompt.setPlainText("my own prompt")
    before = window_state(window)
    DAMAGE[damage](saved_trace)
    assert not window.open_trace(saved_trace)
    [message] = error_boxes(window)
    assert "\n" not in message and "Traceback" not in message and len(message) < 300
    assert window_state(window) == before


def test_the_good_trace_the_damage_starts_from_opens(window, saved_trace):
    assert window.open_trace(saved_trace)
    [question] = error_boxes(window)  # only whether to use its settings: no warning, no error
    assert question.startswith("Put this run's prompt and settings")


def test_bad_saved_settings_are_replaced_by_defaults_with_a_note(open_window, tiny_model, settings, qtbot):
    """A saved temperature of 0 or NaN made every Generate fail, on every start; now each bad value is reset."""
    settings.store.setValue("choices", json.dumps({
        "temperature": 0, "top_p": 2.0, "seed": 2**64, "sampler": "magic", "tokens": 12, "block_size": 0,
        "threshold": -1, "device": "cpu", "stop_at_eos": False, "new_seed_each_run": False,
    }).replace('"temperature": 0', '"temperature": NaN'))
    window = open_window(str(tiny_model), settings)
    defaults = SamplerSettings()
    s = window.controls.choices().sampling
    assert (s.temperature, s.top_p, s.sampler, s.threshold) == (
        defaults.temperature, defaults.top_p, defaults.sampler, defaults.threshold)
    assert s.tokens == 12 and not s.stop_at_eos and 0 <= s.seed < 2**63  # the good values are kept
    note = window.status.current_message()
    for name in ("temperature", "top_p", "seed", "sampler", "block_size", "threshold"):
        assert name in note
    assert "NaN" in note or "nan" in note
    run(window, qtbot)  # and Generate works
    assert len(window.trace.outcome.token_ids) == 12 and math.isfinite(window.trace.settings["temperature"])


def test_unreadable_saved_settings_start_on_the_defaults(open_window, tiny_model, settings):
    settings.store.setValue("choices", "[" * 50_000)
    window = open_window(str(tiny_model), settings)
    assert window.model is not None
    assert "unreadable" in window.status.current_message()
