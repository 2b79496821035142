"""The live view: a legend, the run as it unmasks (`trace_view.py`) and the player under it (`pace.py`).

The window hands it a run's trace as frames arrive; the player decides
which frame is on screen (the newest, or one at the chosen pace, or one the
user stepped or dragged to) and the view draws it. `rendered` says which
frame is on screen, so the status bar can show that frame's numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..records.trace import Finished, Trace
from ..rendering import frames
from ..rendering.palette import COLOURINGS, CONFIDENCE_MARKS, MASK_GLYPH, Colours
from .pace import Player
from .theme import current_colours
from .trace_view import TraceView

if TYPE_CHECKING:
    from ..engine.worker import EngineWorker

MAX_RAMP = 8  # step swatches in the legend; more steps are sampled evenly


def ramp_steps(steps: int) -> list[int]:
    """The steps the legend shows a swatch for: all of them, or MAX_RAMP spread from first to last."""
    if steps <= MAX_RAMP:
        return list(range(1, steps + 1))
    return sorted({1 + round(i * (steps - 1) / (MAX_RAMP - 1)) for i in range(MAX_RAMP)})


def legend_html(colouring: str, steps: int, c: Colours) -> str:
    """What the colours mean, only for what is on screen in this colouring: one short line."""
    def swatch(text: str, bg: str, fg: str = "", extra: str = "") -> str:
        return f'<span style="background:{bg};{f" color:{fg};" if fg else ""}{extra}">&nbsp;{text}&nbsp;</span>'

    parts = [
        f'<b style="color:{c.prompt}">prompt</b>',
        swatch(MASK_GLYPH, c.mask_bg, c.mask_fg) + " masked",
        swatch("cells", c.block, extra=f" border:1px solid {c.block_edge};") + " block",
    ]
    if colouring == "plain":
        parts.append(swatch("new", c.latest) + " this step")
    else:
        parts.append("<b><u>underlined</u></b>: this step")
    if colouring == "step":
        ramp = "".join(swatch(str(s), c.step(s, steps)) for s in ramp_steps(steps))
        parts.append(f"revealed at step {ramp} of {steps}")
    elif colouring == "confidence":
        ramp = "".join(swatch(f"{p:g}", c.confidence(p)) for p in CONFIDENCE_MARKS)
        parts.append(f"model's probability {ramp}")
    return "&nbsp;&nbsp; ".join(parts)


class LiveView(QWidget):
    rendered = Signal(int)  # the frame index now on screen (-1: none yet)
    colouring_changed = Signal(str)

    def __init__(self, colouring: str = "plain", pace: int = 0) -> None:
        super().__init__()
        self.trace: Trace | None = None

        self.legend = QLabel()
        self.legend.setTextFormat(Qt.RichText)
        self.legend.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens the window
        self.legend.setToolTip("Hover a token for its block, step, probabilities and the model's top 5 there.")
        self.colouring = QComboBox()
        for key, name in COLOURINGS.items():
            self.colouring.addItem(name, key)
        self.colouring.setCurrentIndex(max(0, self.colouring.findData(colouring)))
        self.colouring.setToolTip(
            "Plain: the newest tokens in green.\n"
            "Tint by step: every token coloured by the denoising step that revealed it (blue early, orange late).\n"
            "Model's confidence: every token coloured by the model's own probability of it when it was\n"
            "revealed (temperature 1, before top-p): red where the model was unsure."
        )
        self.colouring.currentIndexChanged.connect(self._on_colouring)
        header = QHBoxLayout()
        header.addWidget(self.legend, 1)
        header.addWidget(QLabel("Colour:"))
        header.addWidget(self.colouring)

        self.text = TraceView(colouring)
        self.player = Player(pace, times=self._elapsed, describe=self._describe)
        self.timeline, self.timeline_label = self.player.timeline, self.player.label
        self.player.shown.connect(self._show)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.player)
        self._update_legend()
        self._add_keys()

    # --- what the window calls ---------------------------------------------
    def begin(self, trace: Trace) -> None:
        """A new run: show its prompt, and the steps as they come (at the chosen pace)."""
        self.trace = trace
        self.text.set_trace(trace)
        self._update_legend()
        self.player.reset()
        self._show(-1, False)

    def refresh(self) -> None:
        """New frames are in the trace: the player shows them at its pace."""
        if self.trace is not None:
            self.player.grow(len(self.trace.frames))

    def finish(self, skip: bool = False) -> None:
        """The run ended: play on to its end state (at once if `skip`), then replay at will."""
        self.player.finish(len(self.trace.frames), skip)

    def open(self, trace: Trace) -> None:
        """A finished run from a file: show its end state, ready to replay."""
        self.trace = trace
        self.text.set_trace(trace)
        self._update_legend()
        self.player.load(len(trace.frames))

    @property
    def shown(self) -> int:
        return self.text.shown

    # --- the player on the keyboard ------------------------------------------
    def _add_keys(self) -> None:
        """Space, the arrows and Page Up/Down drive the player while the text or the player has the focus
        (elsewhere, in the prompt or the settings, those keys keep their usual meaning)."""
        keys = {
            Qt.Key_Space: self.player.toggle,
            Qt.Key_Left: lambda: self.player.step(-1),
            Qt.Key_Right: lambda: self.player.step(1),
            Qt.Key_PageUp: lambda: self.player.seek(self.block_start(-1)),
            Qt.Key_PageDown: lambda: self.player.seek(self.block_start(1)),
        }
        for key, slot in keys.items():
            QShortcut(QKeySequence(key), self, slot, context=Qt.WidgetWithChildrenShortcut)
        self.text.setFocusPolicy(Qt.StrongFocus)

    def block_start(self, direction: int) -> int:
        """The first frame of the next block (`direction` 1; the last frame when there is none), or of the
        current block, else the previous one (-1): like a player's previous and next track."""
        frames = self.trace.frames if self.trace is not None else []
        here = self.player.index
        if not frames:
            return here
        starts = [i for i, f in enumerate(frames) if i == 0 or f.block != frames[i - 1].block]
        if direction > 0:
            return next((i for i in starts if i > here), len(frames) - 1)
        return next((i for i in reversed(starts) if i < here), 0)

    # --- drawing -------------------------------------------------------------
    def _elapsed(self, index: int) -> float:
        return self.trace.frames[index].elapsed if self.trace is not None and self.trace.frames else 0.0

    def _show(self, index: int, final: bool) -> None:
        if self.trace is None:
            return
        self.text.show_frame(index, final)
        self.rendered.emit(index)

    def _describe(self, index: int) -> str:
        """The timeline's label: where the frame on screen is."""
        return "Replay: after a run" if self.trace is None else frames.where(self.trace, index)

    def _on_colouring(self) -> None:
        key = self.colouring.currentData()
        self.text.set_colouring(key)
        self._update_legend()
        self.colouring_changed.emit(key)

    def _update_legend(self) -> None:
        steps = self.trace.steps_per_block if self.trace is not None else 4
        self.legend.setText(legend_html(self.colouring.currentData(), steps, current_colours(self)))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.PaletteChange:
            self._update_legend()


class FollowedRun(QObject):
    """The run a view started, followed on the engine thread's signals into its LiveView.

    The Write and Chat views each follow their own run: its trace starts in
    the view, grows with each batch of frames and gets its outcome; the
    signals of other runs (another view's, or one forgotten) are ignored. How
    the view ends (at once, or playing to the end) is the owner's choice.
    """

    started = Signal(object)  # the Trace, no frames yet
    finished = Signal(object)  # the Trace, its outcome set
    failed = Signal(str)

    def __init__(self, worker: EngineWorker, view: LiveView, parent: QObject) -> None:
        super().__init__(parent)
        self.view = view
        self.run_id: int | None = None
        self.trace: Trace | None = None
        worker.run_started.connect(self._on_started)
        worker.run_progressed.connect(self._on_progressed)
        worker.run_finished.connect(self._on_finished)
        worker.run_failed.connect(self._on_failed)

    @property
    def running(self) -> bool:
        return self.run_id is not None

    def follow(self, run_id: int) -> None:
        self.run_id, self.trace = run_id, None

    def forget(self) -> None:
        """Stop following: the run's later signals change nothing here."""
        self.run_id = None

    @Slot(int, object)
    def _on_started(self, run_id: int, trace: Trace) -> None:
        if run_id == self.run_id:
            self.trace = trace
            self.view.begin(trace)
            self.started.emit(trace)

    @Slot(int, object)
    def _on_progressed(self, run_id: int, frames: list) -> None:
        if run_id == self.run_id and self.trace is not None:
            self.trace.add(frames)
            self.view.refresh()

    @Slot(int, object)
    def _on_finished(self, run_id: int, outcome: Finished) -> None:
        if run_id == self.run_id:
            self.run_id = None
            self.trace.outcome = outcome
            self.finished.emit(self.trace)

    @Slot(int, str)
    def _on_failed(self, run_id: int, message: str) -> None:
        if run_id == self.run_id:
            self.run_id = None
            self.failed.emit(message)
