"""The window's shape: it fits 1024x640 whatever it shows, legends say only what is on screen, messages fit."""

from __future__ import annotations

import shutil

import pytest

from app_helpers import configure, run
from bd3lm_core import models_dir
from bd3lm_studio.views.live_view import ramp_steps
from bd3lm_studio.rendering.palette import LIGHT
from bd3lm_studio.views.trace_view import EMPTY_HINT


def choose(combo, key) -> None:
    combo.setCurrentIndex(combo.findData(key))


@pytest.mark.parametrize("colouring", ["plain", "step", "confidence"])
def test_the_window_fits_1024_by_640_in_every_colouring(window, qtbot, colouring):
    """Defect: never narrower than 1096 px, and 1277 px for good once "Tint tokens by step" was ticked."""
    configure(window, tokens=24)
    window.controls.steps.set_value(32)  # the longest step legend
    choose(window.view.colouring, colouring)
    run(window, qtbot)
    window.status.show_message("A long message " * 20)
    window.resize(1024, 640)
    qtbot.wait(50)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640
    assert (window.width(), window.height()) == (1024, 640)


def test_status_messages_never_run_into_the_numbers(window, qtbot):
    """Defect: "Drag the timeline to re128 of 128 tokens"."""
    configure(window, tokens=16)
    run(window, qtbot)
    window.resize(1024, 640)
    long = "Drag the timeline to replay the run step by step, or press Play; " * 3
    window.status.show_message(long)
    qtbot.wait(50)
    message = window.status.message
    numbers = [label for label in window.status_labels.values() if label.text()]
    assert message.geometry().right() < min(label.geometry().left() for label in numbers)
    shown = message.shown_text()
    assert shown.endswith("\u2026") and message.fontMetrics().horizontalAdvance(shown) <= message.contentsRect().width()
    assert message.toolTip() == long  # the whole message is still there to read


@pytest.mark.parametrize("steps", [3, 8, 32])
def test_the_step_legend_follows_the_steps_per_block(window, qtbot, steps):
    """Defect: the legend always showed steps 1-5, whatever the steps per block."""
    configure(window, tokens=8, sampler="ddpm")  # a sampler that takes the steps per block
    window.controls.steps.set_value(steps)
    choose(window.view.colouring, "step")
    run(window, qtbot)
    legend = window.view.legend.text()
    assert f"of {steps}" in legend
    shown = ramp_steps(steps)
    assert shown[0] == 1 and shown[-1] == steps and len(shown) == min(steps, 8)
    for s in shown:
        assert f"background:{LIGHT.step(s, steps)};\">&nbsp;{s}&nbsp;" in legend


def test_highlight_swatches_are_in_the_legend_only_when_they_are_shown(window, qtbot):
    """Defect: with tint on, the green highlight was gone from the text but stayed in the legend."""
    configure(window, tokens=8)
    run(window, qtbot)
    assert LIGHT.latest in window.view.legend.text()
    choose(window.view.colouring, "step")
    assert LIGHT.latest not in window.view.legend.text() and "underlined" in window.view.legend.text()


def test_the_empty_output_area_says_what_to_do_on_first_start(window):
    assert window.view.text.document().isEmpty()
    assert window.view.text.placeholderText() == EMPTY_HINT
    assert "Generate" in EMPTY_HINT and "Ctrl+Enter" in EMPTY_HINT


def test_the_model_menu_marks_the_loaded_model(window, qtbot, tiny_model, bd3lm_home):
    """Defect: the Model menu did not say which model was loaded."""
    menu = window.model_menu
    assert menu.folder.isVisible() and menu.folder.isChecked()
    assert window.model.name in menu.folder.text() and not menu.shipped.isChecked()

    window.load_model_source(None)
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    assert menu.shipped.isChecked() and not menu.folder.isVisible()

    shutil.copytree(tiny_model, models_dir() / "test-org--tiny")  # as a download installs it
    window.load_model_source("test-org/tiny")
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    menu.installed.aboutToShow.emit()  # what opening the submenu does
    marks = {a.text(): a.isChecked() for a in menu.installed.actions()}
    assert marks == {"test-org/tiny": True}
    assert not menu.shipped.isChecked() and not menu.folder.isChecked()


def test_the_window_fits_an_800_px_screen_and_the_empty_page_hint_shows_at_1000(window, qtbot):
    """Defect: never narrower than 1031 px, and at 1000 px the empty page's hint was cut off."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette

    assert window.minimumSizeHint().width() <= 800 - 40  # room for the window's frame and a screen edge
    view = window.view.text
    assert view.document().isEmpty() and view.placeholderText() == EMPTY_HINT
    for width in (1000, 800, window.minimumSizeHint().width()):  # the hint wraps: every word shows
        window.resize(width, 700)
        qtbot.wait(50)
        assert window.width() == width
        shot = view.viewport().grab().toImage()
        blank = view.palette().color(QPalette.Base).rgb()
        rows = {y for y in range(shot.height()) for x in range(0, shot.width(), 2) if shot.pixel(x, y) != blank}
        line = view.fontMetrics().lineSpacing()
        assert max(rows) - min(rows) > line, width  # drawn on more than one line: wrapped, not cut
        room = view.viewport().width() - 2 * view.document().documentMargin()
        assert view.fontMetrics().boundingRect(0, 0, int(room), 10_000, Qt.TextWordWrap, EMPTY_HINT).width() <= room
    configure(window, tokens=16)
    run(window, qtbot)
    window.status.show_message("A long message " * 20)
    qtbot.wait(50)
    assert window.minimumSizeHint().width() <= 800 - 40  # a run's numbers and a long message do not widen it
