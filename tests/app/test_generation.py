"""Runs in the window: the live view fills in, Stop is prompt, the UI thread never stalls."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

import bd3lm_studio.engine.worker as worker_module
from app_helpers import configure, fragments, run, view_parts
from bd3lm_core import Step
from bd3lm_studio.views.pace import MAX_FPS
from bd3lm_studio.rendering.palette import LIGHT, MASK_GLYPH
from bd3lm_studio.rendering.frames import tooltip_text

LATEST, MASK_BG = LIGHT.latest, LIGHT.mask_bg


def shown_text(window) -> str:
    """What the view should read once a run is over: every token's own text, in order."""
    trace = window.trace
    return "".join(trace.tokens[p].text for p in range(1, trace.end))


def test_full_generation_fills_the_view_and_ends_with_the_requested_length(window, qtbot):
    configure(window, tokens=30)
    renders = []
    window.view.rendered.connect(renders.append)
    run(window, qtbot)

    trace = window.trace
    assert trace.outcome.stop_reason == "length"
    assert len(trace.outcome.token_ids) == 30 == trace.generated_count()
    assert len(renders) >= 2  # the prompt, then the run as it went
    text = window.view.text.toPlainText()
    assert MASK_GLYPH not in text
    assert text == shown_text(window)
    assert text.startswith("Once upon a time")
    status = {name: label.text() for name, label in window.status_labels.items()}
    assert "tiny-model" in window.model_label.text() and "on cpu" in window.model_label.text()
    assert status["nfe"] == f"NFE {trace.outcome.nfe} · {30 / trace.outcome.nfe:.2f} tokens/forward"
    assert "tokens/s" in status["speed"] and status["elapsed"].endswith(" s")
    assert status["progress"].startswith("30 of 30 tokens")
    assert window.export_action.isEnabled() and window.generate_action.isEnabled()


def test_mid_run_the_current_block_shows_masks_and_the_latest_tokens(window, qtbot):
    configure(window, tokens=40)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    view, trace = window.view, window.trace
    assert view.timeline.isEnabled() and view.timeline.maximum() == len(trace.frames) - 1

    first = next(i for i, f in enumerate(trace.frames) if f.revealed)
    view.timeline.setValue(first)
    text = view.text.toPlainText()
    assert text.count(MASK_GLYPH) == sum(trace.frames[first].masked)  # one placeholder per masked position
    assert text.startswith("Once upon a time")
    runs = fragments(view)
    for token in trace.frames[first].revealed:  # the latest step's tokens are highlighted
        assert (tooltip_text(token, trace), LATEST) in {(tip, bg) for _, tip, bg in runs}
    assert sum(bg == MASK_BG for _, _, bg in runs) == sum(trace.frames[first].masked)
    assert f"step {first + 1} of" in view.timeline_label.text()

    view.timeline.setValue(view.timeline.maximum())  # back to the end: the final text, no masks
    assert view.text.toPlainText() == shown_text(window)
    assert LATEST not in {bg for _, _, bg in fragments(view)}


def test_tint_colours_tokens_by_the_step_that_revealed_them(window, qtbot):
    configure(window, tokens=24)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    trace = window.trace
    colouring = window.view.colouring
    colouring.setCurrentIndex(colouring.findData("step"))
    colours = {tip: bg for _, tip, bg in fragments(window.view)}
    for token in (t for t in trace.tokens.values() if t.frame >= 0 and t.id != trace.eos_id):
        assert colours[tooltip_text(token, trace)] == LIGHT.step(token.step, 4)
    assert len({LIGHT.step(s, 4) for s in range(1, 5)}) == 4
    assert "revealed at step" in window.view.legend.text()
    colouring.setCurrentIndex(colouring.findData("plain"))
    assert {bg for _, tip, bg in fragments(window.view) if "step" in tip} == {"#000000"}  # no background


def test_hovering_a_token_tells_its_block_step_and_probability(window, qtbot):
    configure(window, tokens=12)
    run(window, qtbot)
    view, trace = window.view.text, window.trace
    cursor = view.textCursor()
    checked = 0
    for index in range(view.document().characterCount() - 1):
        cursor.setPosition(index)
        cursor.movePosition(cursor.MoveOperation.NextCharacter, cursor.MoveMode.KeepAnchor)
        expected = cursor.charFormat().toolTip()
        if not expected.strip() or not cursor.selectedText().strip():
            continue
        cursor.setPosition(index)
        left = view.cursorRect(cursor)
        cursor.setPosition(index + 1)
        right = view.cursorRect(cursor)
        if right.top() != left.top():
            continue  # the character ends a line
        for x in (left.left() + 1, right.left() - 1):  # both halves of the character
            assert view.tooltip_at(QPoint(x, left.center().y())) == expected
        checked += 1
    assert checked > 20

    token = next(t for t in trace.tokens.values() if t.frame >= 0 and t.text.strip())
    expected = tooltip_text(token, trace)
    for index in range(view.document().characterCount() - 1):  # find where the token is drawn
        cursor.setPosition(index + 1)
        if cursor.charFormat().toolTip() == expected:
            cursor.setPosition(index)
            break
    rect = view.cursorRect(cursor)
    point = QPoint(rect.left() + 1, rect.center().y())
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.ToolTip, point, view.viewport().mapToGlobal(point)))
    tip = QToolTip.text()
    assert tip == expected
    assert f"block {token.block}, step {token.step}" in tip
    assert f"drawn with probability: {token.probability:.3f}" in tip


def test_stop_cancels_within_one_step(window, qtbot, monkeypatch):
    """After Stop, the sampler finishes at most the step it was in."""
    real_generate = worker_module.generate
    after_stop: list[Step] = []

    def watched(loaded, prompt, settings, cancel=None, **kw):
        for event in real_generate(loaded, prompt, settings, cancel=cancel, **kw):
            if isinstance(event, Step) and cancel.is_set():
                after_stop.append(event)
            yield event

    monkeypatch.setattr(worker_module, "generate", watched)
    configure(window, tokens=1000)
    window.generate()
    qtbot.waitUntil(lambda: window.trace is not None and len(window.trace.frames) > 3, timeout=30_000)
    qtbot.keyClick(window.prompt, Qt.Key_Escape)  # Esc is Stop
    qtbot.waitUntil(lambda: not window.running, timeout=10_000)
    assert window.trace.outcome.stop_reason == "cancelled"
    assert len(after_stop) <= 1
    assert len(window.trace.outcome.token_ids) < 1000


def test_ctrl_enter_generates(window, qtbot):
    configure(window, tokens=8)
    window.activateWindow()
    window.prompt.setFocus()
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ControlModifier)
    assert window.running
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    assert len(window.trace.outcome.token_ids) == 8
    assert window.prompt.toPlainText() == "Once upon a time"  # the shortcut did not type a newline


def heartbeat_gaps(window, qtbot) -> list[float]:
    """Seconds between the beats of a 10 ms timer on the UI thread while a 230-token run goes on."""
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.PreciseTimer)
    heartbeat.setInterval(10)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start()
    qtbot.wait(50)
    run(window, qtbot)
    heartbeat.stop()
    assert len(window.trace.frames) > 200
    return [b - a for a, b in zip(beats, beats[1:])]


def test_the_ui_thread_never_stalls_while_generating(window, qtbot):
    """A 10 ms heartbeat on the UI thread: no gap of 50 ms or more during a run.

    Tolerance, for shared machines only: the test machine also runs a
    training job on both of its cores, and about one run in ten the OS
    leaves the whole process unscheduled for a moment (seen: 55 ms once,
    20-30 ms typically). A stall of the app's own making (model or tensor
    work on the UI thread, repaints not coalesced) shows in every run, so
    one second run is allowed; both must keep the median beat regular.
    """
    # below 256 tokens, where the repetition stop may end a run early; first-hitting: a frame per token
    configure(window, tokens=230, sampler="first-hitting")
    runs = []
    for _ in range(2):
        gaps = sorted(heartbeat_gaps(window, qtbot))
        assert gaps[len(gaps) // 2] < 0.015
        runs.append(gaps[-1])
        if gaps[-1] < 0.050:
            break
    assert min(runs) < 0.050, f"the event loop stalled for {[round(g * 1000) for g in runs]} ms"


def test_view_updates_are_coalesced_to_60_per_second(window, qtbot):
    configure(window, tokens=24)
    run(window, qtbot)
    view, trace = window.view, window.trace
    frames = list(trace.frames)
    trace.frames.clear()
    view.begin(trace)
    renders: list[int] = []
    view.rendered.connect(renders.append)
    began = time.perf_counter()
    for frame in frames * 20:  # hundreds of steps arriving as fast as possible
        trace.frames.append(frame)
        view.refresh()
        QApplication.processEvents()
    qtbot.wait(100)
    seconds = time.perf_counter() - began
    assert len(renders) <= seconds * MAX_FPS + 2
    assert len(renders) < len(frames) * 20 / 4
    assert renders[-1] == len(trace.frames) - 1  # the last state is always drawn


def test_switching_models_mid_run_stops_the_run_and_loads_the_new_one(window, qtbot, other_model):
    configure(window, tokens=1000)
    window.generate()
    qtbot.waitUntil(lambda: window.trace is not None and len(window.trace.frames) > 2, timeout=30_000)
    window.load_model_source(str(other_model))
    qtbot.waitUntil(lambda: not window.running and not window.loading, timeout=30_000)
    assert window.trace.outcome.stop_reason == "cancelled"
    assert window.model.name.startswith("other-model")  # the folder pytest made, "other-model0"
    assert window.model.block_size == 8
    assert window.controls.block_size.value() == 8
    assert "native" in window.controls.block_size.label.text()


def test_closing_mid_run_stops_the_worker_thread(window, qtbot, qtlog):
    configure(window, tokens=1000)
    window.generate()
    qtbot.waitUntil(lambda: window.trace is not None and len(window.trace.frames) > 2, timeout=30_000)
    began = time.perf_counter()
    window.close()
    assert not window.engine._thread.isRunning()
    assert time.perf_counter() - began < 5
    assert not [r.message for r in qtlog.records if "QThread" in r.message]


def test_no_op_steps_are_left_out_of_the_timeline(window, qtbot):
    """DDPM at 256 steps on 4-token blocks: most steps draw nothing. The timeline holds only the steps
    that revealed something (at most one per token), each keeping its real step number."""
    configure(window, tokens=16, sampler="ddpm")
    window.controls.steps.set_value(256)
    run(window, qtbot)
    trace = window.trace
    assert trace.settings["steps"] == 256 and len(trace.outcome.token_ids) == 16
    assert all(frame.revealed for frame in trace.frames)
    assert len(trace.frames) <= 16 and window.view.player.count == len(trace.frames)
    assert max(frame.step for frame in trace.frames) > 16  # real step numbers, out of 256
    assert view_parts(window.view)["text"] == trace.full_text
