"""Drawing a run as of one denoising step: final text above, the current block as a row of cells.

`TraceView` shows a `Trace` at one frame: the text committed before the
current block flows as plain text, and the block being denoised sits below
it as a box with one fixed-width cell per position, a mask glyph in each
masked cell and the tokens of the latest step highlighted. Cells keep their
place as masks turn into tokens, so nothing jumps while a block fills in;
when the block is done its text joins the flowing text.

Tokens can be coloured by the step that revealed them or by the model's
confidence in them; hovering a token tells its block, step, both of its
probabilities (each labelled) and the model's top alternatives. What each
frame shows, its colours and tooltips included, is `rendering/frames.py`'s
rule, which the exported page follows too; this module only paints it.

A repaint within a block rewrites only the cells that changed, in place;
a new block appends its predecessor's text and a new box in one HTML
insertion. Laying out the long flowing text again, or many calls into Qt
(each may have to win the interpreter lock back from the worker thread),
would make the UI thread stutter.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette, QTextCursor, QTextTable
from PySide6.QtWidgets import QTextEdit, QToolTip

from ..records.trace import Trace
from ..rendering import frames
from ..rendering.frames import Piece
from ..rendering.palette import CELLS_PER_ROW, Colours
from .theme import current_colours

EMPTY_HINT = "Press Generate (Ctrl+Enter) and watch the model write here, one block at a time."


def stylesheet(c: Colours) -> str:
    return "span { white-space: pre-wrap; }\n" + frames.class_rules(lambda name: getattr(c, name))


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
        table = cursor.currentTable()
        if table is not None:  # inside a cell, its blank part included, the tip is that cell's token's
            cell = table.cellAt(cursor)
            first, last = cell.firstCursorPosition().position(), cell.lastCursorPosition().position()
            if last == first:
                return ""
            index = min(max(index, first), last - 1)
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

    def __init__(self, colouring: str = "plain", scale: float = 1.3, cells_per_row: int = CELLS_PER_ROW) -> None:
        super().__init__()
        self.trace: Trace | None = None
        self.cells_per_row = cells_per_row
        self.colouring = colouring  # "plain", "step" or "confidence"
        self.shown = -1  # frame on screen
        self.final = False  # whether the run's end state is on screen (no current block)
        self._committed_upto = 0  # positions before this are in the document for good
        self._tail_at = 0  # document position where the current block's box begins
        self._table: QTextTable | None = None  # the current block's box, while one is drawn
        self._drawn_cells: list[tuple[str, str]] = []  # (fill, HTML) of each of its cells
        self.colours = current_colours(self)
        self.document().setDefaultStyleSheet(stylesheet(self.colours))
        self.setPlaceholderText(EMPTY_HINT)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the text wraps: nothing to scroll sideways
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.0) * scale)
        self.setFont(font)

    def setPlaceholderText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Kept here and drawn by `paintEvent`, wrapped: Qt draws a placeholder on one line, cut at the edge."""
        self.hint = text
        super().setPlaceholderText("")

    def placeholderText(self) -> str:  # noqa: N802 - Qt's name
        return self.hint

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if self.hint and self.document().isEmpty():
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.PlaceholderText))
            margin = round(self.document().documentMargin())
            painter.drawText(self.viewport().rect().adjusted(margin, margin, -margin, -margin),
                             Qt.AlignTop | Qt.AlignLeft | Qt.TextWordWrap, self.hint)

    def set_trace(self, trace: Trace | None) -> None:
        self.trace = trace
        self.shown, self.final = -1, False
        self.clear()
        self._committed_upto = self._tail_at = 0
        self._table = None

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

    # --- drawing: what to draw is `frames`'s; here it becomes Qt rich text -----
    def _span(self, piece: Piece) -> str:
        look = frames.look(piece, self.colouring, self.colours)
        style = f' style="background:{look.background}"' if look.background else ""
        title = html.escape(piece.tooltip)
        return f'<span class="{look.css_class}"{style} title="{title}">{html.escape(piece.text)}</span>'

    def _cells(self, frame_index: int) -> list[tuple[str, str]]:
        """The current block's cells: each one's fill, and its span."""
        return [
            (frames.look(piece, self.colouring, self.colours).fill, self._span(piece))
            for piece in frames.cells(self.trace, frame_index)
        ]

    def _block_box(self, cells: list[tuple[str, str]]) -> str:
        columns = frames.columns(self.trace, self.cells_per_row)
        share = f"{100 / columns:.4g}%"  # every column the same width, whatever its token: cells never move
        tds = [f'<td width="{share}" bgcolor="{fill}">{inner}</td>' for fill, inner in cells]
        rows = "".join("<tr>" + "".join(tds[i : i + columns]) + "</tr>" for i in range(0, len(tds), columns))
        width = min(98, round(100 * columns / self.cells_per_row))  # a full row and its borders within the view
        c = self.colours
        return (
            f'<table width="{width}%" border="1" cellspacing="0" cellpadding="4" bgcolor="{c.block}" '
            f'style="border-color:{c.block_edge}; border-style:solid; margin-top:6px">{rows}</table>'
        )

    def _update_cells(self, cells: list[tuple[str, str]]) -> None:
        """Rewrite only the cells that changed, in place: the long text above is not laid out again."""
        columns = frames.columns(self.trace, self.cells_per_row)
        for i, (old, new) in enumerate(zip(self._drawn_cells, cells)):
            if old == new:
                continue
            cell = self._table.cellAt(i // columns, i % columns)
            cursor = cell.firstCursorPosition()
            cursor.setPosition(cell.lastCursorPosition().position(), QTextCursor.KeepAnchor)
            cursor.insertHtml(new[1])
            if old[0] != new[0]:
                cell_format = cell.format()
                cell_format.setBackground(QColor(new[0]))
                cell.setFormat(cell_format)
        self._drawn_cells = cells

    def show_frame(self, index: int, final: bool = False, redraw: bool = False) -> None:
        """Show the trace as of frame `index` (-1: before the first step).

        `final`: the run is over and this is its last frame, so show its end
        state: the text the run returned, no block in progress.
        """
        trace = self.trace
        live = frames.current_block(trace, index, final)
        final = final and trace.outcome is not None  # a run still going has no end state yet
        cut = frames.text_end(trace, index, final)
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        if redraw or index < self.shown or cut < self._committed_upto or index == -1 or (self.final and not final):
            self.clear()
            self._committed_upto = self._tail_at = 0
            self._table = None

        committed = "".join(self._span(piece) for piece in frames.text_pieces(trace, self._committed_upto, cut))
        self._committed_upto = max(cut, self._committed_upto)
        cells = self._cells(index) if live else []
        if not committed and self._table is not None and live and len(cells) == len(self._drawn_cells):
            self._update_cells(cells)  # the same block, a step further
        else:
            cursor = QTextCursor(self.document())
            cursor.setPosition(self._tail_at)
            cursor.movePosition(QTextCursor.End, QTextCursor.KeepAnchor)
            if committed:
                cursor.insertHtml(committed)
                self._tail_at = cursor.position()
            else:
                cursor.removeSelectedText()
            self._table = None
            if live:
                cursor.insertHtml(self._block_box(cells))
                cursor.setPosition(self._tail_at)
                cursor.movePosition(QTextCursor.NextBlock)
                self._table, self._drawn_cells = cursor.currentTable(), cells
        self.shown, self.final = index, final
        if at_bottom:
            bar.setValue(bar.maximum())
