"""The pace control: the display walks through a run's steps at the chosen pace, live and in replays."""

from __future__ import annotations

import time
from dataclasses import replace

from app_helpers import configure, run


def set_pace(window, steps_per_second: int) -> None:
    pace = window.view.player.pace
    pace.setCurrentIndex(pace.findData(steps_per_second))


def shown_log(window) -> list[tuple[float, int]]:
    log: list[tuple[float, int]] = []
    window.view.rendered.connect(lambda index: log.append((time.perf_counter(), index)))
    return log


def test_a_slow_pace_shows_every_step_in_turn_while_the_sampler_runs_ahead(window, qtbot):
    """At 5 steps/s the frames queue: the sampler finishes first, the view shows each step in order."""
    configure(window, tokens=24)
    window.controls.steps.set_value(4)
    set_pace(window, 5)
    log = shown_log(window)
    run(window, qtbot)
    frames = len(window.trace.frames)
    assert window.view.shown < frames - 1  # the run is over, the display is not
    assert window.view.player.playing and window.view.timeline.isEnabled()
    qtbot.waitUntil(lambda: len(log) >= 4, timeout=10_000)
    indices = [index for _, index in log if index >= 0]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # no step skipped, none repeated
    gaps = [b - a for (a, i), (b, j) in zip(log, log[1:]) if i >= 0]
    assert min(gaps) > 0.12  # 5 a second: 0.2 s apart (timers may fire a little early, never much)
    assert window.settings.pace() == 5  # remembered


def test_pause_and_the_step_buttons_move_one_step_at_a_time(window, qtbot):
    configure(window, tokens=24)
    set_pace(window, 2)
    run(window, qtbot)
    player = window.view.player
    qtbot.waitUntil(lambda: window.view.shown >= 2, timeout=10_000)
    player.play.click()  # Pause
    assert not player.playing and player.play.text() == "Play"
    at = window.view.shown
    qtbot.wait(700)
    assert window.view.shown == at  # paused: nothing moves
    player.forward.click()
    assert window.view.shown == at + 1 and player.timeline.value() == at + 1
    player.back.click()
    player.back.click()
    assert window.view.shown == at - 1
    assert window.view.timeline_label.text().startswith(f"step {at} of {len(window.trace.frames)}")


def test_play_at_the_end_replays_from_the_first_step_at_the_pace(window, qtbot):
    configure(window, tokens=16)
    run(window, qtbot)  # real time (the tests' setting): the end is on screen at once
    last = len(window.trace.frames) - 1
    assert window.view.shown == last and window.view.text.final
    set_pace(window, 20)
    log = shown_log(window)
    window.view.player.play.click()
    assert window.view.shown == 0
    qtbot.waitUntil(lambda: window.view.shown == last and not window.view.player.playing, timeout=20_000)
    assert [i for _, i in log] == list(range(0, last + 1))
    seconds = log[-1][0] - log[0][0]
    assert seconds > 0.6 * last / 20  # about 20 steps a second, not all at once
    assert window.view.text.final  # and it ends on the result


def test_real_time_replay_follows_the_runs_own_clock(window, qtbot):
    """Real time replays each step when it happened: a step recorded 0.3 s in shows about 0.3 s in."""
    configure(window, tokens=16)
    run(window, qtbot)
    trace = window.trace
    trace.frames[:] = [replace(f, elapsed=0.02 * i) for i, f in enumerate(trace.frames)]
    window.view.player.step(-10_000)  # to the first step
    log = shown_log(window)
    began = time.perf_counter()
    window.view.player.toggle()
    qtbot.waitUntil(lambda: not window.view.player.playing, timeout=20_000)
    took = time.perf_counter() - began
    expected = 0.02 * (len(trace.frames) - 1)
    assert 0.7 * expected < took < expected + 1.0
    assert [i for _, i in log][-1] == len(trace.frames) - 1


def test_dragging_the_timeline_pauses_and_shows_that_step(window, qtbot):
    configure(window, tokens=24)
    set_pace(window, 2)
    run(window, qtbot)
    window.view.timeline.setValue(3)
    assert not window.view.player.playing and window.view.shown == 3
    assert window.status_labels["progress"].text().startswith(f"{window.trace.generated_count(3)} of ")


def test_the_timeline_follows_the_next_run_instead_of_sitting_greyed_at_the_end(window, qtbot):
    """Defect: during a run the timeline handle stayed disabled at the right end."""
    configure(window, tokens=24)
    run(window, qtbot)
    set_pace(window, 5)
    window.generate()
    seen = []
    qtbot.waitUntil(lambda: window.view.shown >= 1, timeout=10_000)
    timeline = window.view.timeline
    seen.append((timeline.isEnabled(), timeline.value(), window.view.shown))
    qtbot.waitUntil(lambda: not window.running, timeout=30_000)
    enabled, value, shown = seen[0]
    assert enabled and value == shown
    assert timeline.value() < timeline.maximum()  # still walking through the queued steps


def test_the_player_on_the_keyboard(window, qtbot):
    """Space plays and pauses, the arrows move a step, Page Up/Down a block, with the text focused;
    in the prompt the same keys still edit text."""
    from PySide6.QtCore import Qt

    configure(window, tokens=16)
    window.controls.steps.set_value(4)  # several steps per block
    run(window, qtbot)
    view, player = window.view, window.view.player
    frames = window.trace.frames
    starts = [i for i, f in enumerate(frames) if i == 0 or f.block != frames[i - 1].block]
    assert len(starts) >= 3 and window.view.shown == len(frames) - 1

    qtbot.mouseClick(view.text.viewport(), Qt.LeftButton)
    assert window.focusWidget() is view.text

    def press(key) -> None:
        qtbot.keyClick(window.focusWidget(), key)

    press(Qt.Key_PageUp)  # the end is inside the last block: to that block's first step
    assert view.shown == starts[-1]
    press(Qt.Key_PageUp)
    assert view.shown == starts[-2]
    press(Qt.Key_PageDown)
    assert view.shown == starts[-1]
    press(Qt.Key_Left)
    assert view.shown == starts[-1] - 1
    press(Qt.Key_Right)
    press(Qt.Key_Right)
    assert view.shown == starts[-1] + 1
    set_pace(window, 2)
    press(Qt.Key_Space)
    assert player.playing
    press(Qt.Key_Space)
    assert not player.playing

    window.prompt.setFocus()
    window.prompt.setPlainText("Once")
    window.prompt.moveCursor(window.prompt.textCursor().MoveOperation.End)
    at = view.shown
    press(Qt.Key_Space)
    press(Qt.Key_Left)
    assert window.prompt.toPlainText() == "Once " and not player.playing and view.shown == at
