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
import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

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
    "an unknown stop reason": lambda p: edit(p, lambda d: d.__setitem__("stop_reason", "bored")),
    "true as a token id": lambda p: edit(p, lambda d: d["token_ids"].__setitem__(0, True)),
    "a newer version": lambda p: edit(p, lambda d: d.__setitem__("version", 99)),
    # issue 21: values Python's own readers choke on, and sizes that would allocate without end
    "a 5000-digit seed": lambda p: p.write_text(
        re.sub(r'"seed": \d+', '"seed": ' + "9" * 5000, p.read_text(encoding="utf-8")), encoding="utf-8"),
    "a 5000-digit token id": lambda p: p.write_text(
        re.sub(r'"token_ids": \[\s*\d+', '"token_ids": [' + "7" * 5000, p.read_text(encoding="utf-8")),
        encoding="utf-8"),
    "a list as the sampler": lambda p: edit(p, lambda d: d["settings"].__setitem__("sampler", ["threshold"])),
    "an object as the sampler": lambda p: edit(p, lambda d: d["settings"].__setitem__("sampler", {"a": 1})),
    "a 5000-digit temperature": lambda p: edit(p, lambda d: d["settings"].__setitem__("temperature", 10**4000)),
    "a frame at block 10**12": lambda p: edit(p, lambda d: (
        d["frames"][-1].__setitem__("block", 10**12),
        d["frames"][-1].__setitem__("start", 10**12 * d["settings"]["block_size"]))),
    "seconds 1e999": lambda p: p.write_text(
        re.sub(r'"seconds": [0-9.e-]+', '"seconds": 1e999', p.read_text(encoding="utf-8")), encoding="utf-8"),
    "a 5000-digit elapsed": lambda p: edit(p, lambda d: d["frames"][0].__setitem__("elapsed", 10**4000)),
    "nested 10**6 deep, 2 MB": lambda p: p.write_text('{"format": ' + "[" * 1_000_000 + "]" * 1_000_000 + "}"),
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


def test_a_trace_saved_before_the_stop_was_called_stop_reason_still_opens(window, saved_trace):
    """Version 2 traces name the stop "reason"; version 3 says "stop_reason", as the CLI and the API do."""
    data = json.loads(saved_trace.read_text(encoding="utf-8"))
    assert data["version"] == 3 and data["stop_reason"] == "length" and "reason" not in data
    data["version"] = 2
    data["reason"] = data.pop("stop_reason")
    saved_trace.write_text(json.dumps(data), encoding="utf-8")
    assert window.open_trace(saved_trace)
    assert window.trace.outcome.stop_reason == "length"


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


@pytest.mark.parametrize("saved", [
    '{"tokens": ' + "9" * 5000 + "}",  # Python's JSON reader refuses it with a ValueError
    '{"seed": ' + "9" * 4000 + "}",
    '{"temperature": ' + "9" * 4000 + "}",
    '{"sampler": ["threshold"], "tokens": 12}',
    '{"sampler": {"name": "threshold"}, "tokens": 12}',
    '{"device": ["cpu"], "dtype": {"f": 1}, "tokens": 12}',
    '{"top_p": 1e999, "tokens": 12}',
])
def test_saved_settings_python_chokes_on_still_start_the_app(open_window, tiny_model, settings, saved):
    settings.store.setValue("choices", saved)
    window = open_window(str(tiny_model), settings)
    assert window.model is not None
    s = window.controls.choices().sampling
    assert s.sampler == SamplerSettings().sampler and math.isfinite(s.temperature) and 0 <= s.seed < 2**63
    note = window.status.current_message()
    assert note and "\n" not in note and len(note) < 400


@pytest.mark.parametrize("value", [10**5000, -(10**5000), ["threshold"], {"a": 1}, float("inf")],
                         ids=["5000 digits", "-5000 digits", "a list", "an object", "inf"])
@pytest.mark.parametrize("name", ["tokens", "block_size", "steps", "sampler", "top_p", "temperature", "seed"])
def test_the_engines_check_refuses_any_value_it_is_given(name, value):
    from dataclasses import replace as with_value

    from bd3lm_core import BD3LMError

    with pytest.raises(BD3LMError) as err:
        with_value(SamplerSettings(), **{name: value}).check()
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_unreadable_saved_settings_start_on_the_defaults(open_window, tiny_model, settings):
    settings.store.setValue("choices", "[" * 50_000)
    window = open_window(str(tiny_model), settings)
    assert window.model is not None
    assert "unreadable" in window.status.current_message()


# --- an error nothing below caught (issue 21): a dialog with one line, a report, and the app goes on -------------
def crash_dialogs() -> list[str]:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from bd3lm_studio.views.error_dialog import TITLE

    return [w.text() for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.windowTitle() == TITLE and w.isVisible()]


@pytest.fixture
def error_hooks(qapp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import sys
    import threading

    from bd3lm_studio.views.error_dialog import install_error_hooks

    monkeypatch.setenv("BD3LM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    install_error_hooks(qapp)
    yield tmp_path / "home" / "logs"
    for text in crash_dialogs():
        assert False, f"a dialog was left open: {text}"


def close_crash_dialogs() -> None:
    from PySide6.QtWidgets import QApplication, QMessageBox

    for w in QApplication.topLevelWidgets():
        if isinstance(w, QMessageBox) and w.isVisible():
            w.close()


def test_an_error_in_a_menu_action_opens_a_dialog_and_the_window_goes_on(window, qtbot, error_hooks: Path,
                                                                         capsys) -> None:
    from PySide6.QtGui import QAction

    def broken() -> None:
        raise ZeroDivisionError("a bug behind a menu")

    action = QAction("Broken", window)
    action.triggered.connect(broken)
    window.menuBar().actions()[0].menu().addAction(action)
    action.trigger()
    qtbot.waitUntil(lambda: crash_dialogs() != [], timeout=5000)
    [text] = crash_dialogs()
    [report] = error_hooks.iterdir()
    assert text.startswith("unexpected error while running BD3-LM Studio (ZeroDivisionError: a bug behind a menu)")
    assert "\n" not in text and str(report) in text and "Traceback" in report.read_text()
    assert capsys.readouterr().err == f"bd3lm-studio: {text}\n"  # the same line, for a crash before the window is up
    close_crash_dialogs()
    assert window.isVisible()
    run(window, qtbot)  # and it still generates


def test_an_error_that_ends_a_thread_opens_a_dialog_on_the_gui_thread(window, qtbot, error_hooks: Path) -> None:
    import threading

    def broken() -> None:
        raise MemoryError()

    thread = threading.Thread(target=broken, name="a test thread")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: crash_dialogs() != [], timeout=5000)
    [text] = crash_dialogs()
    assert text.startswith("not enough memory while running a test thread; ask for less")
    close_crash_dialogs()


def test_a_bug_in_the_engine_thread_fails_the_run_with_one_line_and_a_report(window, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path / "home"))

    def broken(*args, **kwargs):
        raise KeyError("a bug in the sampler")

    monkeypatch.setattr("bd3lm_studio.engine.worker.generate", broken)
    window.generate()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    [message] = error_boxes(window)
    [report] = (tmp_path / "home" / "logs").iterdir()
    assert message.startswith("unexpected error while running the engine (KeyError: 'a bug in the sampler')")
    assert "\n" not in message and str(report) in message and "a bug in the sampler" in report.read_text()


def test_a_run_too_large_for_memory_is_refused_in_one_line_and_the_app_goes_on(window, qtbot, monkeypatch):
    """The engine checks a run's cache against the memory budget before allocating it, for the app as for the CLI."""
    configure(window, tokens=64)
    monkeypatch.setenv("BD3LM_MEMORY_LIMIT", "1K")
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier)  # Generate
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    [message] = error_boxes(window)
    assert message.startswith("sampling ") and "needs at least" in message and "1.0 kB is BD3LM_MEMORY_LIMIT" in message
    assert "\n" not in message
    for box in window.findChildren(QMessageBox):
        box.close()
    assert window.trace.outcome is None  # nothing ran
    monkeypatch.delenv("BD3LM_MEMORY_LIMIT")
    window.activateWindow()  # as a click on it does once the message is closed
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier)
    qtbot.waitUntil(lambda: window.trace.outcome is not None, timeout=30_000)
    assert error_boxes(window) == [] and len(window.trace.outcome.token_ids) == 64
