"""The model's confidence: every token coloured by it, the top 5 alternatives on hover, each number labelled."""

from __future__ import annotations

import json

from app_helpers import configure, fragments, run
from bd3lm_studio.rendering.palette import CONFIDENCE_MARKS, LIGHT
from bd3lm_studio.records.trace_reader import load_trace
from bd3lm_studio.rendering.frames import tooltip_text
from bd3lm_studio.engine.worker import ALTERNATIVES


def generated(trace):
    return [t for t in trace.tokens.values() if t.frame >= 0 and t.position < trace.end and t.id != trace.eos_id]


def choose(combo, key) -> None:
    combo.setCurrentIndex(combo.findData(key))


def test_every_revealed_token_keeps_the_models_confidence_and_its_top_5(window, qtbot):
    configure(window, tokens=24)
    run(window, qtbot)
    for token in generated(window.trace):
        assert 0.0 < token.confidence <= 1.0
        assert len(token.alternatives) == ALTERNATIVES == 5
        probabilities = [p for _, _, p in token.alternatives]
        assert probabilities == sorted(probabilities, reverse=True)  # surest first
        assert probabilities[0] >= token.confidence - 1e-6  # no token is surer than the model's first choice
        assert all(isinstance(text, str) for _, text, _ in token.alternatives)


def test_confidence_colouring_tints_each_token_by_the_models_probability(window, qtbot):
    configure(window, tokens=24)
    run(window, qtbot)
    choose(window.view.colouring, "confidence")
    trace = window.trace
    colours = {tip: bg for _, tip, bg in fragments(window.view)}
    for token in generated(trace):
        assert colours[tooltip_text(token, trace)] == LIGHT.confidence(token.confidence)
    assert LIGHT.confidence(0.1) != LIGHT.confidence(0.9)  # the ramp tells them apart
    legend = window.view.legend.text()
    assert "model's probability" in legend
    assert all(LIGHT.confidence(p) in legend for p in CONFIDENCE_MARKS)
    assert LIGHT.latest not in legend  # the green "revealed this step" is not used here, so not explained


def test_the_tooltip_labels_each_probability_and_lists_the_alternatives(window, qtbot):
    """At top-p 0.5 the drawn probability is often 1.0 while the model was far less sure: both are shown, named."""
    configure(window, tokens=32)
    window.controls.top_p.set_value(0.5)
    run(window, qtbot)
    trace = window.trace
    tokens = generated(trace)
    assert any(t.probability > t.confidence + 0.05 for t in tokens)  # the two numbers differ in earnest
    token = tokens[0]
    tip = tooltip_text(token, trace)
    assert f"model's probability: {token.confidence:.3f} (its confidence: temperature 1, before top-p)" in tip
    assert f"drawn with probability: {token.probability:.3f} (after temperature 1 and top-p 0.5)" in tip
    assert "the model's top 5 here:" in tip
    for _, text, p in token.alternatives:
        assert f"  {p:.3f}  {text!r}" in tip


def test_confidence_and_alternatives_survive_export_and_open(window, qtbot, tmp_path):
    configure(window, tokens=16)
    run(window, qtbot)
    path = tmp_path / "run.json"
    assert window.export_to(path)
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 3
    back = load_trace(path)
    assert back.tokens == window.trace.tokens  # confidence and alternatives included


def test_a_version_1_trace_still_opens_and_says_the_confidence_was_not_recorded(window, qtbot, tmp_path):
    configure(window, tokens=16)
    run(window, qtbot)
    path = tmp_path / "run.json"
    window.export_to(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["version"] = 1  # as version 1 wrote it: [position, id, text, probability], and the stop as "reason"
    data["reason"] = data.pop("stop_reason")
    for frame in data["frames"]:
        frame["revealed"] = [r[:4] for r in frame["revealed"]]
    data.pop("judgement")
    path.write_text(json.dumps(data), encoding="utf-8")
    assert window.open_trace(path)
    token = generated(window.trace)[0]
    assert token.confidence is None and token.alternatives == ()
    assert "model's probability: not recorded" in tooltip_text(token, window.trace)
    choose(window.view.colouring, "confidence")  # nothing to colour by: the tokens stay plain
    assert {bg for _, tip, bg in fragments(window.view) if "not recorded" in tip} == {"#000000"}
