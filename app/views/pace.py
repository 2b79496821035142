"""Watching at a chosen pace: a play head over a run's frames, with Play/Pause, step buttons and a timeline.

The sampler is never slowed down: its frames queue in the trace, and the
play head walks through them at the chosen number of denoising steps per
second, during the run and in replays alike. "Real time" shows the newest
frame while a run goes on (at most `MAX_FPS` repaints a second) and replays
with the run's own timing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QSlider, QToolButton, QWidget

from ..rendering.paces import PACES, pace_name
from .labels import ElidedLabel

MAX_FPS = 60
WIDGET_UPDATES = 10  # a second, while playing: a timeline moving 60 times a second only costs the UI thread


class Throttle(QObject):
    """Calls `action` soon after `poke`, but never more than `per_second` times a second."""

    def __init__(self, action: Callable[[], None], parent: QObject | None = None, per_second: int = MAX_FPS) -> None:
        super().__init__(parent)
        self._action = action
        self._interval = 1 / per_second
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

    def poke(self) -> None:
        if not self._timer.isActive():
            wait = self._last + self._interval - time.perf_counter()
            self._timer.start(max(0, math.ceil(wait * 1000)))

    def cancel(self) -> None:
        self._timer.stop()

    def _fire(self) -> None:
        self._last = time.perf_counter()
        self._action()


class Player(QWidget):
    """A play head over frames 0 .. count-1, where more frames may still be coming (a live run)."""

    shown = Signal(int, bool)  # frame index to show, and whether it is the run's final state
    pace_changed = Signal(int)

    def __init__(
        self, pace: int = 0, times: Callable[[int], float] | None = None, describe: Callable[[int], str] | None = None,
    ) -> None:
        super().__init__()
        self.times = times or (lambda i: i / MAX_FPS)  # seconds into the run at frame i, for real-time replays
        self.describe = describe or (  # the label beside the timeline
            lambda i: f"step {i + 1} of {self.count}" if i >= 0 else "Replay: after a run")
        self.count = 0  # frames available
        self.finished = False  # no more frames will come
        self.index = -1  # frame on screen
        self.playing = False
        self._drawn: dict[str, object] = {}  # what the widgets show now
        self._origin = 0.0  # real-time replay: perf_counter() at which frame 0 would have been shown
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._live = Throttle(self._catch_up, self)
        self._widgets_later = Throttle(self._update_widgets, self, WIDGET_UPDATES)

        self.play = QToolButton()
        self.play.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.play.setToolTip("Play or pause the unmasking (Space, with the text or the player focused)")
        self.back = QToolButton()
        self.back.setText("\u25c0")
        self.back.setToolTip("One denoising step back (Left arrow; Page Up: the previous block)")
        self.forward = QToolButton()
        self.forward.setText("\u25b6")
        self.forward.setToolTip("One denoising step forward (Right arrow; Page Down: the next block)")
        self.pace = QComboBox()
        for value in PACES:
            self.pace.addItem(pace_name(value), value)
        self.pace.setCurrentIndex(max(0, self.pace.findData(pace)))
        self.pace.setToolTip(
            "How fast the unmasking is shown, in denoising steps per second. The sampler is never slowed:\n"
            "its steps queue up and play at this pace. Real time shows each step as it comes."
        )
        self.timeline = QSlider(Qt.Horizontal)
        self.timeline.setToolTip("Drag to see the run as of any denoising step.")
        self.timeline.setMinimumWidth(self.timeline.fontMetrics().horizontalAdvance("x") * 12)  # still draggable
        self.label = ElidedLabel(min_chars=8, steady="step 9999 of 9999: block 999, step 99")  # never moves

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.play, self.back, self.forward, self.pace):
            layout.addWidget(widget)
        layout.addWidget(self.timeline, 1)
        layout.addWidget(self.label)

        self.play.clicked.connect(self.toggle)
        self.back.clicked.connect(lambda: self.step(-1))
        self.forward.clicked.connect(lambda: self.step(1))
        self.pace.currentIndexChanged.connect(self._on_pace)
        self.timeline.valueChanged.connect(self._on_timeline)
        self._update_widgets()

    @property
    def steps_per_second(self) -> int:
        return self.pace.currentData()

    # --- what the view calls -------------------------------------------------
    def reset(self) -> None:
        """A new run: no frames yet, and play them as they come."""
        self._timer.stop()
        self._live.cancel()
        self.count, self.finished, self.index, self.playing = 0, False, -1, True
        self._update_widgets()

    def grow(self, count: int) -> None:
        """The run has `count` frames now."""
        self.count = count
        if self.playing:
            self._advance_soon()  # the widgets follow when the frame is shown
        else:
            self._update_widgets()

    def finish(self, count: int, skip: bool = False) -> None:
        """No more frames will come; `skip` jumps to the end state at once (after Stop).

        In real time the end state shows at once; at a slower pace the frames
        still queued play on; a paused view stays where the user left it.
        """
        self.count, self.finished = count, True
        if count == 0 or skip or (self.playing and (self.steps_per_second == 0 or self.index >= count - 1)):
            self._stop_playing()
            self._show(count - 1)
        elif self.playing:
            self._advance_soon()
        self._update_widgets()

    def load(self, count: int, play: bool = False) -> None:
        """A finished run to replay: show its end, or play it from the start."""
        self.count, self.finished = count, True
        self._stop_playing()
        self._show(0 if play else count - 1)
        if play and count > 1:
            self.toggle()
        self._update_widgets()

    # --- the buttons -----------------------------------------------------------
    def toggle(self) -> None:
        """Play or pause; Play at the end of a finished run starts it over."""
        if self.playing:
            self._stop_playing()
        elif self.count > 0:
            if self.finished and self.index >= self.count - 1:
                self._show(0)
            self.playing = True
            self._origin = time.perf_counter() - self.times(max(0, self.index))
            self._advance_soon()
        self._update_widgets()

    def step(self, delta: int) -> None:
        """Pause, and move one frame."""
        self.seek(self.index + delta)

    def seek(self, index: int) -> None:
        """Pause, and show frame `index` (clamped to the frames there are)."""
        self._stop_playing()
        if self.count:
            self._show(min(max(0, index), self.count - 1))
        self._update_widgets()

    def _on_timeline(self, value: int) -> None:
        if value != self.index:
            self.seek(value)

    def _on_pace(self) -> None:
        self.pace_changed.emit(self.steps_per_second)
        if self.playing:
            self._origin = time.perf_counter() - self.times(max(0, self.index))
            self._timer.stop()
            self._advance_soon()

    # --- moving the head ---------------------------------------------------------
    def _advance_soon(self) -> None:
        if self.steps_per_second == 0 and not self.finished:
            self._live.poke()  # real time, live: the newest frame, repaints coalesced
        elif not self._timer.isActive():
            pace = self.steps_per_second or MAX_FPS
            self._timer.start(round(1000 / pace))

    def _catch_up(self) -> None:
        if self.playing and self.count:
            self._show(self.count - 1)
            if self.finished:
                self._stop_playing()
            self._widgets_later.poke()

    def _tick(self) -> None:
        last = self.count - 1
        if self.index >= last:
            if self.finished:
                self._stop_playing()
                self._update_widgets()
            else:
                self._timer.stop()  # wait for more frames (grow restarts the timer)
            return
        if self.steps_per_second == 0:  # a real-time replay: as far as the run's own clock has got
            now = time.perf_counter() - self._origin
            target = self.index + 1
            while target < last and self.times(target + 1) <= now:
                target += 1
            self._show(target)
        else:
            self._show(self.index + 1)
        self._widgets_later.poke()

    def _stop_playing(self) -> None:
        self.playing = False
        self._timer.stop()
        self._live.cancel()

    def _show(self, index: int) -> None:
        self.index = index
        self.shown.emit(index, self.finished and index == self.count - 1)

    def _update_widgets(self) -> None:
        """Bring the buttons and the timeline up to date, touching only what changed
        (this runs on every frame shown, and each call into Qt costs the UI thread)."""
        state = {
            "range": max(0, self.count - 1), "value": max(0, self.index), "timeline": self.count > 1,
            "play_text": "Pause" if self.playing else "Play", "play": self.count > 0,
            "back": self.count > 0 and self.index > 0, "forward": 0 <= self.index < self.count - 1,
            "label": self.describe(self.index),
        }
        changed = {key for key, value in state.items() if self._drawn.get(key) != value}
        self._drawn = state
        t = self.timeline
        if changed & {"range", "value"}:
            t.blockSignals(True)
            if "range" in changed:
                t.setRange(0, state["range"])
            t.setValue(state["value"])
            t.blockSignals(False)
        for key, widget in (("timeline", t), ("play", self.play), ("back", self.back), ("forward", self.forward)):
            if key in changed:
                widget.setEnabled(state[key])
        if "play_text" in changed:
            self.play.setText(state["play_text"])
        if "label" in changed:
            self.label.setText(state["label"])
