"""The sampler panel: every sampler with the settings it reads, temperature, the repetition stop, the steps control."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QStyle, QStyleOptionSlider

from app_helpers import configure, run
from bd3lm_core import SAMPLERS
from bd3lm_studio.rendering.frames import tooltip_text

SHOWN = {  # the settings each sampler reads, beyond those all read
    "ddpm": {"steps"}, "first-hitting": set(), "low-confidence": {"steps"},
    "threshold": {"threshold"}, "entropy-bounded": {"entropy_bound"},
}


def test_every_sampler_is_offered(window):
    c = window.controls
    assert [c.sampler.itemData(i) for i in range(c.sampler.count())] == list(SAMPLERS)
    for key in SAMPLERS:
        assert c.sampler.itemText(c.sampler.findData(key)).split()[0].lower() in c.sampler.toolTip().lower()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_sampler_shows_only_the_settings_it_reads_and_they_reach_the_run(window, qtbot, sampler):
    c = window.controls
    c.sampler.setCurrentIndex(c.sampler.findData(sampler))
    visible = {name for name in ("steps", "threshold", "entropy_bound") if c.form.isRowVisible(getattr(c, name))}
    assert visible == SHOWN[sampler]
    assert all(c.form.isRowVisible(w) for w in (c.top_p, c.temperature, c.tokens))
    c.steps.set_value(3)
    c.threshold.set_value(0.75)
    c.entropy_bound.set_value(2.5)
    c.temperature.set_value(0.7)
    configure(window, tokens=8)
    run(window, qtbot)
    s = window.trace.settings
    assert (s["sampler"], s["steps"], s["threshold"], s["entropy_bound"], s["temperature"]) == (
        sampler, 3, 0.75, 2.5, 0.7,
    )


def test_temperature_and_the_repetition_stop_have_controls_that_reach_the_sampler(window, qtbot):
    c = window.controls
    assert c.temperature.value() == 1.0 and c.stop_on_repetition.isChecked()  # the CLI's defaults
    c.temperature.set_value(1.5)
    c.stop_on_repetition.setChecked(False)
    assert c.temperature.label.text() == "1.50"
    configure(window, tokens=8)
    run(window, qtbot)
    assert (window.trace.settings["temperature"], window.trace.settings["stop_on_repetition"]) == (1.5, False)
    token = next(t for t in window.trace.tokens.values() if t.frame >= 0)
    assert "after temperature 1.5 and top-p" in tooltip_text(token, window.trace)


def test_a_value_from_a_trace_is_shown_exactly_not_rounded_to_the_slider(window):
    c = window.controls
    c.temperature.set_value(0.73)
    c.top_p.set_value(0.875)
    assert (c.temperature.value(), c.top_p.value()) == (0.73, 0.875)
    assert c.choices().sampling.temperature == 0.73


def handle_centre(slider) -> QPoint:
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    return slider.style().subControlRect(QStyle.CC_Slider, option, QStyle.SC_SliderHandle, slider).center()


def test_the_steps_control_reaches_small_values_with_the_mouse(window, qtbot):
    """Defect: 0-256 over ~115 px, so a 5 px drag jumped from auto to 12."""
    window.resize(1024, 640)
    qtbot.wait(50)
    steps = window.controls.steps
    steps.set_value(0)
    slider = steps.slider
    start = handle_centre(slider)
    qtbot.mousePress(slider, Qt.LeftButton, pos=start)
    qtbot.mouseMove(slider, start + QPoint(5, 0))
    qtbot.mouseRelease(slider, Qt.LeftButton, pos=start + QPoint(5, 0))
    assert steps.value() in (0, 1)
    assert steps.values[:9] == list(range(9))  # auto, then every count up to 8
    pixels_per_value = slider.width() / (len(steps.values) - 1)
    assert pixels_per_value >= 6


def test_a_sixth_strategy_appears_in_the_panel_and_in_every_compare_column_with_its_settings(window, qtbot, monkeypatch):
    """The panel and the compare columns build their sampler rows from the engine's STRATEGIES with one piece of code."""
    import importlib

    from bd3lm_core.sampling import strategies
    from bd3lm_studio.records import samplers
    from bd3lm_studio.views.controls import ControlsPanel
    from test_strategies import _EveryOther

    monkeypatch.setitem(strategies.STRATEGIES, "every-other", _EveryOther)
    try:
        importlib.reload(samplers)  # the app's table of who reads what is built from STRATEGIES when imported
        panel = ControlsPanel(window.settings.choices())
        qtbot.addWidget(panel)  # closed and deleted by pytest-qt, on this thread
        compare = window.show_compare()
        compare.add_column(compare.base)
        for form, rows in [(panel.form, panel.rows), *((c.form, c.rows) for c in compare.columns)]:
            assert rows.sampler.itemText(rows.sampler.findData("every-other")) == "Every other"
            rows.sampler.setCurrentIndex(rows.sampler.findData("every-other"))
            assert form.isRowVisible(rows.knobs["threshold"]) and not form.isRowVisible(rows.knobs["steps"])
            low, high, _ = strategies.LIMITS["threshold"]
            assert low < rows.knobs["threshold"].values[0] and rows.knobs["threshold"].values[-1] <= high
            assert "Every other: each step reveals the first masked position" in rows.sampler.toolTip()
        model, settings = compare.columns[0].choice(compare.base)
        assert settings.sampler == "every-other"
    finally:
        monkeypatch.undo()
        importlib.reload(samplers)
