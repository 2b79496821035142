"""Per-model sampler settings: a model loaded through the Model menu shows its own defaults (its catalog
family's, its block size), a change the user makes is remembered for that model alone, and settings saved
before choices were kept per model still load. Also: a chat model that will not fit in memory asks before loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from backbone_factory import SHARED_BACKBONES, make_backbone_folder
from bd3lm_core import SamplerSettings
from bd3lm_core.hub.catalog import CHAT_DEFAULTS

QWEN3_BS4 = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"  # dLLM's family: low-confidence; block 32 (its config
QWEN3_BLOCK = 32  # names none, so dLLM's default; the 4 in its name is the block its parity logits were made with)


@pytest.fixture(scope="module")
def sdar_bs8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDAR checkpoint (threshold 0.9, temperature 1.0) whose config says block 8."""
    return make_backbone_folder(tmp_path_factory.mktemp("sdar") / "sdar-bs8", model_type="sdar", hidden=32, heads=2,
                                kv_heads=1, intermediate=64, extra={"block_size": 8})


def folder_action(window, monkeypatch, folder: Path):
    """Model → Open model folder…, with `folder` what its dialog will answer."""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    [action] = [a for a in window.model_menu.actions() if a.text() == "Open model folder…"]
    return action


def open_folder(window, qtbot, monkeypatch, folder: Path) -> None:
    """Open `folder` through the Model menu and wait for the load."""
    folder_action(window, monkeypatch, folder).trigger()
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    assert window.model.path == str(folder)


def shown(controls) -> dict:
    return {
        "block": controls.block_size.value(), "sampler": controls.sampler.currentData(), "steps": controls.steps.value(),
        "threshold": controls.threshold.value(), "temperature": controls.temperature.value(),
        "top_p": controls.top_p.value(), "tokens": controls.tokens.value(),
    }


def test_each_model_shows_its_defaults_and_a_change_comes_back_with_its_model(window, qtbot, monkeypatch, sdar_bs8):
    controls = window.controls
    bd3lm_defaults = SamplerSettings()
    controls.tokens.set_value(40)  # the user's own choice for the first model (a BD3-LM, block 4)

    open_folder(window, qtbot, monkeypatch, QWEN3_BS4)
    assert CHAT_DEFAULTS["a2d"].settings == {"sampler": "low-confidence", "top_p": 1.0}
    assert shown(controls) == {
        "block": QWEN3_BLOCK, "sampler": "low-confidence", "steps": 0, "threshold": bd3lm_defaults.threshold,
        "temperature": bd3lm_defaults.temperature, "top_p": 1.0, "tokens": bd3lm_defaults.tokens,
    }
    assert controls.block_size.label.text() == "32 (native)"

    open_folder(window, qtbot, monkeypatch, sdar_bs8)
    assert shown(controls) == {
        "block": 8, "sampler": "threshold", "steps": 0, "threshold": 0.9, "temperature": 1.0, "top_p": 1.0,
        "tokens": bd3lm_defaults.tokens,
    }
    controls.threshold.set_value(0.75)  # as a slider move does: remembered for SDAR
    controls.block_size.set_value(4)

    open_folder(window, qtbot, monkeypatch, QWEN3_BS4)
    shown_now = (controls.sampler.currentData(), controls.block_size.value(), controls.top_p.value())
    assert shown_now == ("low-confidence", QWEN3_BLOCK, 1.0)
    assert controls.threshold.value() == bd3lm_defaults.threshold  # SDAR's change stayed with SDAR

    open_folder(window, qtbot, monkeypatch, sdar_bs8)
    shown_now = (controls.threshold.value(), controls.block_size.value(), controls.sampler.currentData())
    assert shown_now == (0.75, 4, "threshold")
    assert controls.block_size.label.text() == "4 (native: 8)"

    window.load_model_source(str(window._startup_source))  # back to the first model: its 40 tokens
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    assert controls.tokens.value() == 40 and controls.sampler.currentData() == bd3lm_defaults.sampler


def test_the_choices_of_each_model_outlive_the_window(window, qtbot, monkeypatch, sdar_bs8, open_window, settings):
    open_folder(window, qtbot, monkeypatch, sdar_bs8)
    window.controls.temperature.set_value(0.5)
    window.close()
    again = open_window(str(sdar_bs8), settings)
    assert again.controls.temperature.value() == 0.5 and again.controls.threshold.value() == 0.9
    saved = json.loads(settings.store.value("model_choices"))
    assert saved[str(sdar_bs8.resolve())]["temperature"] == 0.5


def test_settings_saved_in_the_old_global_format_still_load_for_the_shipped_model(open_window, settings):
    old = json.loads(settings.store.value("choices"))  # one flat set of choices, as every earlier version saved
    old.update(tokens=77, top_p=0.9, sampler="ddpm", steps=12, temperature=0.7)
    settings.store.setValue("choices", json.dumps(old))
    settings.store.remove("model_choices")
    window = open_window(None, settings)
    c = window.controls
    assert (c.tokens.value(), c.top_p.value(), c.sampler.currentData(), c.steps.value(), c.temperature.value()) == (
        77, 0.9, "ddpm", 12, 0.7,
    )
    assert window.controls.device.currentData() == "cpu" and not c.new_seed.isChecked()
    assert window.status.current_message().startswith("Loaded")  # nothing was reset


def test_loading_a_chat_model_that_will_not_fit_asks_and_yes_loads_it_in_the_precision_that_fits(
    window, qtbot, monkeypatch
):
    monkeypatch.setenv("BD3LM_MEMORY_LIMIT", "10M")  # its float32 (14.5 MB) does not fit; bfloat16 (7.2 MB) does
    window.controls.set_placement("cpu", "float32")
    first = window.model
    action = folder_action(window, monkeypatch, QWEN3_BS4)

    action.trigger()
    [box] = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert "needs about 14.5 MB of memory in float32, but 10.5 MB is BD3LM_MEMORY_LIMIT: 4.0 MB is missing" in box.text()
    assert "In bfloat16 it needs 7.2 MB, which fits" in box.text() and "Load it in bfloat16 instead?" in box.text()
    box.button(QMessageBox.No).click()
    assert not window.loading and window.model == first  # nothing was loaded
    assert window.controls.dtype.currentData() == first.dtype_choice  # the panel shows what is in use

    window.controls.set_placement("cpu", "float32")
    action.trigger()
    [box] = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    box.button(QMessageBox.Yes).click()
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    assert window.model.path == str(QWEN3_BS4) and window.model.dtype == "bfloat16"
    assert window.controls.dtype.currentData() == "bfloat16"

    dtype = window.controls.dtype  # choosing a precision that does not fit, in the panel: asked too, and No keeps all
    dtype.setCurrentIndex(dtype.findData("float32"))
    [box] = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert "4.0 MB is missing" in box.text()
    box.button(QMessageBox.No).click()
    assert not window.loading and window.model.dtype == "bfloat16" and dtype.currentData() == "bfloat16"


def test_open_model_folder_starts_beside_the_loaded_folder_else_in_the_models_folder(
        window, qtbot, monkeypatch, sdar_bs8, bd3lm_home):
    """It opened in the app's working folder, which means nothing to a user."""
    from dataclasses import replace

    from bd3lm_core import models_dir

    asked = []

    def answer(parent, title, folder=""):
        asked.append(folder)
        return str(sdar_bs8) if len(asked) == 1 else ""  # the second time: Cancel

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", answer)
    [action] = [a for a in window.model_menu.actions() if a.text() == "Open model folder…"]
    action.trigger()
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    assert window.model.path == str(sdar_bs8)
    action.trigger()  # cancelled: the model stays
    assert asked[1] == str(sdar_bs8.parent) and window.model.path == str(sdar_bs8)

    by_repo_id = replace(window.model, source="test-org/tiny-bd3lm")  # as Installed models loads one
    window.model_menu.mark(by_repo_id)
    assert window.model_menu.start_folder() == str(Path.home())  # no models folder yet
    models_dir().mkdir(parents=True)
    assert window.model_menu.start_folder() == str(models_dir())
