"""The window: opening on the default model, the controls and their memory, bad models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app_helpers import error_boxes
from bd3lm_core import DEFAULT_MODEL, SamplerSettings, default_model_dir


def test_window_opens_on_the_default_model(open_window, settings):
    """No model named: the shipped one loads, from disk (tests run with the hub offline)."""
    window = open_window(None, settings)
    assert window.model is not None and window.model.name == DEFAULT_MODEL
    # the shipped model itself, not a stand-in: its folder, block 2, context 256
    assert Path(window.model.path).resolve() == default_model_dir().resolve()
    assert (window.model.block_size, window.model.model_length) == (2, 256)
    assert DEFAULT_MODEL in window.model_label.text()
    assert window.generate_action.isEnabled() and not window.stop_action.isEnabled()
    assert error_boxes(window) == []


def test_controls_are_bound_to_the_sampler_and_show_their_values(window):
    c = window.controls
    assert c.block_size.value() == 4 and c.block_size.label.text() == "4 (native)"
    assert "native" in c.block_size.toolTip()
    assert (c.top_p.values[0], c.top_p.values[-1]) == (0.05, 1.0)

    c.block_size.set_value(8)
    c.steps.set_value(6)
    c.top_p.set_value(0.42)
    c.tokens.set_value(77)
    c.seed.setValue(1234)
    c.sampler.setCurrentIndex(c.sampler.findData("first-hitting"))
    c.stop_at_eos.setChecked(False)

    assert c.block_size.label.text() == "8 (native: 4)"
    assert (c.steps.label.text(), c.top_p.label.text(), c.tokens.label.text()) == ("6", "0.42", "77 tokens")
    assert not c.form.isRowVisible(c.steps)  # first-hitting reveals one token per step: no step count
    assert c.choices().sampling == SamplerSettings(
        tokens=77, block_size=8, steps=6, sampler="first-hitting", top_p=0.42, seed=1234, stop_at_eos=False,
    )
    before = c.seed.value()
    c.randomize.click()
    assert c.seed.value() != before

    c.block_size.set_value(4)  # back to native: "the checkpoint's own", whatever the model
    c.steps.set_value(0)
    assert c.choices().sampling.block_size is None and c.choices().sampling.steps is None
    assert c.steps.label.text() == "auto (= block)"


def test_a_run_uses_the_controls(window, qtbot):
    c = window.controls
    c.block_size.set_value(8)
    c.sampler.setCurrentIndex(c.sampler.findData("ddpm"))  # a sampler that takes the steps
    c.steps.set_value(3)
    c.tokens.set_value(16)
    c.seed.setValue(99)
    c.top_p.set_value(0.5)
    c.stop_at_eos.setChecked(False)
    window.generate()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    s = window.trace.settings
    assert (s["block_size"], s["steps"], s["seed"], s["top_p"], s["tokens"]) == (8, 3, 99, 0.5, 16)
    assert {f.step for f in window.trace.frames} <= {1, 2, 3}
    assert len(window.trace.outcome.token_ids) == 16


def test_settings_are_remembered_between_runs_of_the_app(open_window, tiny_model, settings):
    first = open_window(str(tiny_model), settings)
    c = first.controls
    c.tokens.set_value(33)
    c.top_p.set_value(0.7)
    c.seed.setValue(4242)
    c.block_size.set_value(2)
    c.sampler.setCurrentIndex(c.sampler.findData("first-hitting"))
    first.view.colouring.setCurrentIndex(first.view.colouring.findData("confidence"))
    first.prompt.setPlainText("A dog")
    first.close()

    second = open_window(str(tiny_model), settings)
    c = second.controls
    assert (c.tokens.value(), c.top_p.value(), c.seed.value(), c.block_size.value()) == (33, 0.7, 4242, 2)
    assert c.sampler.currentData() == "first-hitting"
    assert second.view.colouring.currentData() == "confidence"
    assert second.prompt.toPlainText() == "A dog"


def test_changing_the_device_reloads_and_a_failed_reload_keeps_the_model(window, qtbot):
    c = window.controls
    assert window.model.device_choice == "cpu"  # the test settings pin the CPU
    c.device.setCurrentIndex(c.device.findData("auto"))
    qtbot.waitUntil(lambda: not window.loading and window.model.device_choice == "auto", timeout=30_000)
    c.device.setCurrentIndex(c.device.findData("cpu"))
    qtbot.waitUntil(lambda: not window.loading and window.model.device_choice == "cpu", timeout=30_000)
    assert "on cpu" in window.model_label.text()

    c.device.setCurrentIndex(c.device.findData("mps"))  # no Apple GPU on a test machine
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    qtbot.waitUntil(lambda: bool(error_boxes(window)), timeout=5_000)
    assert any("MPS" in text for text in error_boxes(window))
    assert window.model.device == "cpu"
    assert c.device.currentData() == "cpu"  # the control shows what is really in use


def broken_folder(tiny_model: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / f"broken-{how}"
    shutil.copytree(tiny_model, folder)
    if how == "corrupt-weights":
        (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    elif how == "wrong-config":
        config = json.loads((folder / "config.json").read_text())
        del config["hidden_dim"]
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "missing-tokenizer":
        (folder / "tokenizer.json").unlink()
    elif how == "not-a-model":
        for f in folder.iterdir():
            f.unlink()
    return folder


@pytest.mark.parametrize("how, says", [
    ("corrupt-weights", "safetensors"),
    ("wrong-config", "hidden_dim"),
    ("missing-tokenizer", "no tokenizer.json"),
    ("not-a-model", "config.json"),
])
def test_a_bad_model_folder_says_what_is_wrong_and_keeps_the_old_model(
    window, qtbot, tmp_path, tiny_model, bd3lm_home, how, says
):
    before = window.model
    window.load_model_source(str(broken_folder(tiny_model, tmp_path, how)))
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    [message] = error_boxes(window)
    assert says in message and "Still using tiny-model" in message
    assert "Traceback" not in message
    assert window.model == before
    assert window.generate_action.isEnabled()
    window.controls.tokens.set_value(4)
    window.generate()  # the old model still works
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert len(window.trace.outcome.token_ids) == 4


def test_saved_choices_keep_what_is_valid_and_default_the_rest(settings):
    """A stored value of the wrong type (a hand edit, an older version) falls back to its default alone."""
    settings.store.setValue("choices", json.dumps({
        "tokens": "many", "top_p": 1, "seed": None, "block_size": 8, "stop_at_eos": 0,
        "temperature": 0.7, "device": 3, "dtype": "float32", "unknown": True,
    }))
    c = settings.choices()
    assert (c.sampling.tokens, c.sampling.top_p, c.sampling.block_size) == (SamplerSettings().tokens, 1, 8)
    assert c.sampling.stop_at_eos is True and c.sampling.temperature == 0.7
    assert isinstance(c.sampling.seed, int)  # the seed box needs a number: a fresh random one
    assert (c.device, c.dtype) == ("auto", "float32")
    settings.save_choices(c)
    assert settings.choices() == c

    settings.store.setValue("choices", "{not json")
    assert settings.choices().sampling.tokens == SamplerSettings().tokens


def test_a_moved_slider_reports_one_change(window):
    seen: list[int] = []
    window.controls.tokens.changed.connect(lambda: seen.append(window.controls.tokens.value()))
    window.controls.tokens.set_value(40)
    assert seen == [40]


def test_setting_a_slider_to_where_it_is_still_reports_once(window):
    """Callers may have changed the slider's values (a new model's block sizes): the label must follow."""
    window.controls.tokens.set_value(40)
    seen: list[int] = []
    window.controls.tokens.changed.connect(lambda: seen.append(window.controls.tokens.value()))
    window.controls.tokens.set_value(40)
    assert seen == [40]
