"""Drawing a run as of one denoising step: final text above, the current block as a row of cells.

`TraceView` shows a `Trace` at one frame: the text committed before the
current block flows as plain text, and the block being denoised sits below
it as a box with one fixed-width cell per position, a mask glyph in each
masked cell and the tokens of the latest step highlighted. Cells keep their
place as masks turn into tokens, so nothing jumps while a block fills in;
when the block is done its text joins the flowing text.

Tokens can be coloured by the step that revealed them or by the model's
confidence in them; hovering a token tells its block, step, both of its
probabilities (each labelled) and the model's top alternatives.

A repaint rewrites only what follows the committed text, in one HTML
insertion: each call into Qt may have to win the interpreter lock back from
the worker thread, so the fewer calls, the steadier the UI.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import QTextEdit, QToolTip

from .palette import CELLS_PER_ROW, EOS_TEXT, MASK_GLYPH, Colours
from .theme import current_colours
from .trace import Token, Trace

EMPTY_HINT = "Press Generate (Ctrl+Enter) and watch the model write here, one block at a time."


def tooltip_text(token: Token | None, trace: Trace, position: int) -> str:
    """What hovering a position tells: every number says what it is."""
    if token is None:
        return f"masked: position {position}, block {position // trace.block_size}, not revealed yet"
    if token.frame < 0:
        return f"prompt token {token.id} {token.text!r}"
    s = trace.settings
    lines = [
        f"{token.text!r}  (token {token.id}, position {position})",
        f"revealed at block {token.block}, step {token.step} of at most {trace.steps_per_block}",
        "model's probability: "
        + ("not recorded (a trace from an older version)" if token.confidence is None else f"{token.confidence:.3f}")
        + " (its confidence: temperature 1, before top-p)",
        f"drawn with probability: {token.probability:.3f} (after temperature {s['temperature']:g} and top-p {s['top_p']:g})",
    ]
    if token.alternatives:
        lines.append(f"the model's top {len(token.alternatives)} here:")
        lines += [f"  {p:.3f}  {text!r}" for _, text, p in token.alternatives]
    return "\n".join(lines)


def stylesheet(c: Colours) -> str:
    return f"""
span {{ white-space: pre-wrap; }}
.prompt {{ font-weight: bold; color: {c.prompt}; }}
.latest {{ background: {c.latest}; font-weight: bold; }}
.latest-tinted {{ font-weight: bold; text-decoration: underline; }}
.mask {{ background: {c.mask_bg}; color: {c.mask_fg}; }}
.eos {{ color: {c.mask_fg}; font-style: italic; }}
"""


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


class TraceView(TokenText):
    """One trace, drawn as of any of its frames; the caller says which (`show_frame`)."""

    def __init__(self, colouring: str = "plain", scale: float = 1.3) -> None:
        super().__init__()
        self.trace: Trace | None = None
        self.colouring = colouring  # "plain", "step" or "confidence"
        self.shown = -1  # frame on screen
        self.final = False  # whether the run's end state is on screen (no current block)
        self._committed_upto = 0  # positions before this are in the document for good
        self._tail_at = 0  # document position where the current block's box begins
        self.colours = current_colours(self)
        self.document().setDefaultStyleSheet(stylesheet(self.colours))
        self.setPlaceholderText(EMPTY_HINT)
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.0) * scale)
        self.setFont(font)

    def set_trace(self, trace: Trace | None) -> None:
        self.trace = trace
        self.shown, self.final = -1, False
        self.clear()
        self._committed_upto = self._tail_at = 0

    def set_colouring(self, colouring: str) -> None:
        self.colouring = colouring
        self.redraw()

    def redraw(self) -> None:
        if self.trace is not None:
            self.show_frame(self.shown, self.final, redraw=True)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        """The system switched between light and dark: take the matching colours."""
        super().changeEvent(event)
        if event.type() == QEvent.PaletteChange:
            colours = current_colours(self)
            if colours != self.colours:
                self.colours = colours
                self.document().setDefaultStyleSheet(stylesheet(colours))
                self.redraw()

    # --- drawing -------------------------------------------------------------
    def _tint(self, token: Token) -> str:
        if self.colouring == "step":
            return self.colours.step(token.step, self.trace.steps_per_block)
        if self.colouring == "confidence" and token.confidence is not None:
            return self.colours.confidence(token.confidence)
        return ""

    def _span(self, token: Token, latest: bool = False) -> str:
        """One token as HTML."""
        trace = self.trace
        kind, style, text = "", "", token.text
        if token.frame < 0:
            kind = "prompt"
        elif token.id == trace.eos_id:
            kind, text = "eos", EOS_TEXT
        elif self.colouring != "plain":
            tint = self._tint(token)
            style = f' style="background:{tint}"' if tint else ""
            kind = "latest-tinted" if latest else ""
        elif latest:
            kind = "latest"
        title = html.escape(tooltip_text(token, trace, token.position))
        return f'<span class="{kind}"{style} title="{title}">{html.escape(text)}</span>'

    def _cell(self, position: int, token: Token | None, index: int) -> str:
        """One position of the current block: a fixed-width cell with its mask or its token."""
        c = self.colours
        if token is None or token.frame > index:
            title = html.escape(tooltip_text(None, self.trace, position))
            return f'<td bgcolor="{c.mask_bg}"><span class="mask" title="{title}">{MASK_GLYPH}</span></td>'
        latest = token.frame == index
        fill = c.latest if latest and self.colouring == "plain" else (self._tint(token) or c.block)
        return f'<td bgcolor="{fill}">{self._span(token, latest)}</td>'

    def _block_box(self, frame_index: int) -> str:
        trace = self.trace
        frame = trace.frames[frame_index]
        cells = []
        for offset, masked in enumerate(frame.masked):
            position = frame.start + offset
            if position >= trace.end:
                break
            cells.append(self._cell(position, None if masked else trace.tokens.get(position), frame_index))
        columns = min(CELLS_PER_ROW, trace.block_size)
        rows = "".join(
            "<tr>" + "".join(cells[i : i + columns]) + "</tr>" for i in range(0, len(cells), columns)
        )
        width = round(100 * columns / CELLS_PER_ROW)
        c = self.colours
        return (
            f'<table width="{width}%" border="1" cellspacing="0" cellpadding="4" bgcolor="{c.block}" '
            f'style="border-color:{c.block_edge}; border-style:solid; margin-top:6px">{rows}</table>'
        )

    def show_frame(self, index: int, final: bool = False, redraw: bool = False) -> None:
        """Show the trace as of frame `index` (-1: before the first step).

        `final`: the run is over and this is its last frame, so show its end
        state: the text the run returned, no block in progress.
        """
        trace = self.trace
        frame = trace.frames[index] if index >= 0 else None
        live = frame is not None and not final
        cut = min(frame.start if live else (trace.end if frame is not None else trace.n_prompt), trace.end)
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        if redraw or index < self.shown or cut < self._committed_upto or index == -1 or (self.final and not final):
            self.clear()
            self._committed_upto = self._tail_at = 0

        committed = "".join(
            self._span(token)
            for token in (trace.tokens.get(p) for p in range(self._committed_upto, cut))
            if token is not None and token.frame <= index and token.text
        )
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.End, QTextCursor.KeepAnchor)
        if committed:
            cursor.insertHtml(committed)
            self._tail_at = cursor.position()
        else:
            cursor.removeSelectedText()
        self._committed_upto = max(cut, self._committed_upto)
        if live and frame.start < trace.end:
            cursor.insertHtml(self._block_box(index))
        self.shown, self.final = index, final
        if at_bottom:
            bar.setValue(bar.maximum())
