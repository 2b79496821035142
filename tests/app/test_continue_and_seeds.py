"""Keep writing: Continue grows the text from its end; a new seed each run, shown and copyable."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app_helpers import configure, run
from bd3lm_studio.settings import Choices


def test_continue_makes_the_text_so_far_the_prompt(window, qtbot):
    assert not window.continue_action.isEnabled()  # nothing to continue yet
    configure(window, tokens=8)
    run(window, qtbot)
    first = window.trace.full_text
    assert window.continue_action.isEnabled()
    window.continue_action.trigger()
    assert window.running
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.trace.prompt == first == window.prompt.toPlainText()
    assert window.trace.full_text.startswith(first) and len(window.trace.outcome.token_ids) == 8
    window.continue_action.trigger()  # and again: the story grows block by block
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.trace.prompt.startswith(first) and len(window.trace.prompt) > len(first)


def test_new_seed_each_run_is_the_default(tmp_path):
    assert Choices().new_seed_each_run and Choices.from_dict({}).new_seed_each_run


def test_with_new_seed_each_run_every_generate_draws_a_seed_and_shows_it(window, qtbot):
    window.controls.new_seed.setChecked(True)
    configure(window, tokens=8)
    seeds = []
    for _ in range(2):
        run(window, qtbot)
        used = window.trace.settings["seed"]
        seeds.append(used)
        assert window.controls.seed.value() == used  # the seed box shows the seed the run used
        assert window.status_labels["seed"].text() == f"seed {used}"
    assert seeds[0] != seeds[1]
    window.copy_seed_action.trigger()
    assert QGuiApplication.clipboard().text() == str(seeds[1])


def test_without_it_the_same_seed_writes_the_same_text(window, qtbot):
    window.controls.new_seed.setChecked(False)
    configure(window, tokens=8, seed=123)
    run(window, qtbot)
    first = window.trace.outcome.token_ids
    run(window, qtbot)
    assert window.trace.outcome.token_ids == first and window.trace.settings["seed"] == 123


def test_a_saved_seed_beyond_32_bits_opens_and_is_used(open_window, tiny_model, settings, qtbot):
    """Issue 10: a saved seed >= 2**31 aborted every start (OverflowError in a 32-bit spin box)."""
    saved = json.loads(str(settings.store.value("choices")))
    settings.store.setValue("choices", json.dumps({**saved, "seed": 2**62 + 5, "new_seed_each_run": False}))
    window = open_window(str(tiny_model), settings)
    assert window.model is not None and window.controls.seed.value() == 2**62 + 5
    window.controls.tokens.set_value(4)
    run(window, qtbot)
    assert window.trace.settings["seed"] == 2**62 + 5


def test_continue_after_end_of_text_is_disabled_with_the_reason(open_window, settings, qtbot):
    window = open_window(None, settings)  # the shipped model: its stories end with end-of-text
    configure(window, tokens=400, stop_at_eos=True, seed=3)
    window.prompt.setPlainText("Once upon a time")
    run(window, qtbot)
    assert window.trace.outcome.stop_reason == "eos"
    assert not window.continue_action.isEnabled() and "end-of-text" in window.continue_action.toolTip()
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier | Qt.ShiftModifier)  # the shortcut too
    assert not window.running and window.prompt.toPlainText() == "Once upon a time"


def test_continue_keeps_the_old_prompt_one_undo_away(window, qtbot):
    configure(window, tokens=8)
    window.prompt.setPlainText("A cat")
    run(window, qtbot)
    assert window.continue_action.isEnabled() and "Ctrl+Z" in window.continue_action.toolTip()
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.prompt.toPlainText() == window.trace.prompt != "A cat"
    qtbot.keyClick(window.prompt, Qt.Key_Z, Qt.ControlModifier)
    assert window.prompt.toPlainText() == "A cat"


def run_menu_item(window, title: str):
    run_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Run")
    return next(a for a in run_menu.actions() if a.text() == title)


def test_runs_this_session_brings_a_run_back_and_so_undoes_a_continue(window, qtbot):
    configure(window, tokens=8, seed=5)
    window.prompt.setPlainText("A cat")
    run(window, qtbot)
    first = window.trace
    window.continue_action.trigger()
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.trace is not first and window.prompt.toPlainText() == first.full_text
    runs_menu = run_menu_item(window, "Runs this session").menu()
    runs_menu.aboutToShow.emit()  # as when the user opens it
    items = [a for a in runs_menu.actions() if a.isEnabled()]
    assert len(items) == 2 and "seed 5" in items[1].text() and "“A cat”" in items[1].text()  # newest first
    items[1].trigger()  # the run before the Continue
    assert window.trace is first and window.prompt.toPlainText() == "A cat"
    assert window.controls.choices().sampling.seed == 5 and not window.controls.new_seed.isChecked()
    assert window.continue_action.isEnabled()
    window.generate_action.trigger()  # its settings are back: the same text again
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert window.trace.full_text == first.full_text
