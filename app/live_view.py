"""The live view: text growing block by block, masks turning into tokens step by step.

It draws a `Trace` as of one frame (a denoising step): the text committed
before the current block as plain text, the current block with a placeholder
for each still-masked position and the tokens of the latest step
highlighted. Optionally every token is tinted by the step that revealed it,
and hovering a token tells its block, step and probability.

Frames may arrive faster than anyone can see, so the view repaints from a
timer, at most `MAX_FPS` times a second, from the latest state. A repaint
only rewrites the current block (the text above it is final) and does so
with one HTML insertion: each call into Qt may have to win the interpreter
lock back from the worker thread, so the fewer calls, the steadier the UI.
"""

from __future__ import annotations

import html
import math
import time

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QTextEdit, QToolTip, QVBoxLayout, QWidget

from .palette import BLOCK, LATEST, MASK_BG, MASK_FG, MASK_GLYPH, PROMPT, TEXT, step_colour
from .trace import Token, Trace

MAX_FPS = 60
STYLE = f"""
span {{ white-space: pre-wrap; }}
.prompt {{ font-weight: bold; color: {PROMPT}; }}
.block {{ background: {BLOCK}; }}
.latest {{ background: {LATEST}; font-weight: bold; }}
.latest-tinted {{ font-weight: bold; text-decoration: underline; }}
.mask {{ background: {MASK_BG}; color: {MASK_FG}; }}
.eos {{ color: {MASK_FG}; font-style: italic; }}
"""


def tooltip_text(token: Token | None, trace: Trace, position: int) -> str:
    if token is None:
        return f"masked: position {position}, block {position // trace.block_size}, not revealed yet"
    if token.frame < 0:
        return f"prompt token {token.id} {token.text!r}"
    return (
        f"{token.text!r}  (token {token.id})\n"
        f"block {token.block}, step {token.step} of {trace.steps_per_block}\n"
        f"probability {token.probability:.3f}"
    )


class TokenText(QTextEdit):
    """Read-only text whose tooltips belong to the character under the mouse.

    (QTextEdit's own tooltip takes the character before the nearest cursor
    position, which over the left half of a character is its neighbour.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)

    def tooltip_at(self, point: QPoint) -> str:
        """The tooltip of the character under `point` (viewport coordinates)."""
        cursor = self.cursorForPosition(point)
        index = cursor.position() - (1 if point.x() < self.cursorRect(cursor).left() else 0)
        if index < 0:
            return ""
        cursor.setPosition(index)
        cursor.movePosition(QTextCursor.NextCharacter, QTextCursor.KeepAnchor)
        return cursor.charFormat().toolTip()

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.ToolTip:
            tip = self.tooltip_at(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)


class LiveView(QWidget):
    rendered = Signal(int)  # the frame index now on screen (-1: none yet)
    tint_changed = Signal(bool)

    def __init__(self, tint_by_step: bool = False) -> None:
        super().__init__()
        self.trace: Trace | None = None
        self._finished = False
        self._last_render = 0.0
        self._shown = -1  # frame on screen
        self._committed_upto = 0  # positions before this are in the document for good
        self._tail_at = 0  # document position where the current block's text begins

        self.legend = QLabel()
        self.legend.setTextFormat(Qt.RichText)
        self.tint = QCheckBox("Tint tokens by step")
        self.tint.setToolTip("Colour every token by the denoising step that revealed it (blue: early, orange: late).")
        self.tint.setChecked(tint_by_step)
        self.tint.toggled.connect(self._on_tint)
        header = QHBoxLayout()
        header.addWidget(self.legend, 1)
        header.addWidget(self.tint)

        self.text = TokenText()  # each token's tooltip is the `title` of its span
        self.text.document().setDefaultStyleSheet(STYLE)
        font = QFont(self.text.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.0) * 1.3)
        self.text.setFont(font)

        self.timeline = QSlider(Qt.Horizontal)
        self.timeline.setEnabled(False)
        self.timeline.setToolTip("After a run, drag to replay the unmasking step by step.")
        self.timeline.valueChanged.connect(self._on_timeline)
        self.timeline_label = QLabel("Replay: available after a run")
        replay = QHBoxLayout()
        replay.addWidget(QLabel("Timeline"))
        replay.addWidget(self.timeline, 1)
        replay.addWidget(self.timeline_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.text, 1)
        layout.addLayout(replay)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(lambda: self._render(len(self.trace.frames) - 1))
        self._update_legend()

    # --- what the window calls ---------------------------------------------
    def begin(self, trace: Trace) -> None:
        """A new run: show its prompt, and the steps as they come."""
        self.trace, self._finished = trace, False
        self._timer.stop()
        self.timeline.setEnabled(False)
        self.timeline_label.setText("Replay: available after the run")
        self._render(-1)

    def refresh(self) -> None:
        """New frames are in the trace: repaint soon, but never more than MAX_FPS times a second."""
        if self.trace is None or self._timer.isActive():
            return
        wait = self._last_render + 1 / MAX_FPS - time.perf_counter()
        self._timer.start(max(0, math.ceil(wait * 1000)))

    def finish(self) -> None:
        """The run ended: draw the result and open the timeline for replay."""
        self._finished = True
        self._timer.stop()
        last = len(self.trace.frames) - 1
        self._render(last)
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, max(0, last))
        self.timeline.setValue(max(0, last))
        self.timeline.blockSignals(False)
        self.timeline.setEnabled(last > 0)
        self._update_timeline_label(last)

    # --- drawing -------------------------------------------------------------
    def _span(self, token: Token, kind: str) -> str:
        """One token as HTML; `kind` is "text", "block" or "latest"."""
        trace = self.trace
        style = ""
        if token.frame < 0:
            kind = "prompt"
        elif token.id == trace.eos_id:
            kind = "eos"
        elif self.tint.isChecked():
            style = f' style="background:{step_colour(token.step, trace.steps_per_block)}"'
            kind = "latest-tinted" if kind == "latest" else ""
        text = " \u27e8end of text\u27e9 " if kind == "eos" else token.text
        title = html.escape(tooltip_text(token, trace, token.position))
        return f'<span class="{kind}"{style} title="{title}">{html.escape(text)}</span>'

    def _mask(self, position: int) -> str:
        title = html.escape(tooltip_text(None, self.trace, position))
        return f'<span class="mask" title="{title}">{MASK_GLYPH}</span><span class="block"> </span>'

    def _render(self, index: int, redraw: bool = False) -> None:
        """Show the trace as of frame `index` (-1: before the first step); `redraw` starts from a blank page."""
        trace = self.trace
        frame = trace.frames[index] if index >= 0 else None
        last = index == len(trace.frames) - 1
        live = frame is not None and not (self._finished and last and trace.outcome.reason != "cancelled")
        cut = min(frame.start if live else (trace.end if frame is not None else trace.n_prompt), trace.end)
        bar = self.text.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        if redraw or index < self._shown or cut < self._committed_upto or index == -1:
            self.text.clear()
            self._committed_upto = self._tail_at = 0

        committed = "".join(
            self._span(token, "text")
            for token in (trace.tokens.get(p) for p in range(self._committed_upto, cut))
            if token is not None and token.frame <= index and token.text
        )
        tail = []
        if live:
            for offset, masked in enumerate(frame.masked):
                position = frame.start + offset
                token = trace.tokens.get(position)
                if position < cut or position >= trace.end:
                    continue
                if masked or token is None or token.frame > index:
                    tail.append(self._mask(position))
                else:
                    tail.append(self._span(token, "latest" if token.frame == index else "block"))
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.End, QTextCursor.KeepAnchor)
        if committed:
            cursor.insertHtml(committed)
            self._tail_at = cursor.position()
        else:
            cursor.removeSelectedText()
        self._committed_upto = max(cut, self._committed_upto)
        if tail:
            cursor.insertHtml("".join(tail))
        self._shown = index
        self._last_render = time.perf_counter()
        if at_bottom:
            bar.setValue(bar.maximum())
        self.rendered.emit(index)

    # --- replay and colours -----------------------------------------------------
    def _on_timeline(self, index: int) -> None:
        if self.trace is not None and self._finished:
            self._render(index)
            self._update_timeline_label(index)

    def _update_timeline_label(self, index: int) -> None:
        if index < 0:
            self.timeline_label.setText("no steps")
            return
        frame = self.trace.frames[index]
        self.timeline_label.setText(
            f"step {index + 1} of {len(self.trace.frames)}: block {frame.block}, step {frame.step}"
        )

    def _on_tint(self, on: bool) -> None:
        self._update_legend()
        self.tint_changed.emit(on)
        if self.trace is not None:
            self._render(self._shown, redraw=True)

    def _update_legend(self) -> None:
        def swatch(text: str, bg: str, fg: str = TEXT) -> str:
            return f'<span style="background:{bg}; color:{fg}">&nbsp;{text}&nbsp;</span>'

        parts = [
            f'<b style="color:{PROMPT}">prompt</b>',
            swatch(MASK_GLYPH, MASK_BG, MASK_FG) + " masked",
            swatch("new", LATEST) + " revealed this step",
            swatch("token", BLOCK) + " current block",
        ]
        if self.tint.isChecked():
            ramp = "".join(swatch(str(s), step_colour(s, 5)) for s in range(1, 6))
            parts.append(f"step: early {ramp} late")
        parts.append("<i>hover a token for details</i>")
        self.legend.setText("&nbsp;&nbsp; ".join(parts))
