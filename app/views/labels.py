"""Label text: a label that may be narrower than its text (rows that must fit a small screen), counts."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel


class ElidedLabel(QLabel):
    """A one-line label that may be narrower than its text: it then ends in "…".

    `text()` is the whole text; the label shows it cut to its width, cut
    again on each resize (in Python only then: painting stays Qt's own).
    """

    def __init__(self, min_chars: int = 6, steady: str = "") -> None:
        """At least `min_chars` wide; `steady`: a text whose width it asks for whatever it shows, so that
        its neighbours do not move as its text changes."""
        super().__init__()
        self._full = ""
        self._steady = steady
        self._least = self.fontMetrics().horizontalAdvance("x" * min_chars)
        self.setMinimumWidth(self._least)

    def text(self) -> str:  # noqa: D102 - the whole text, not the part shown
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        if text != self._full:
            self._full = text
            if not self._steady:
                self.updateGeometry()  # the size it asks for is the whole text's
            self._elide()

    def shown_text(self) -> str:
        """The text as drawn at the label's present width."""
        return super().text()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.fontMetrics().horizontalAdvance(self._steady or self._full) + 8, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self._least, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        QLabel.setText(self, self.fontMetrics().elidedText(self._full, Qt.ElideRight, self.contentsRect().width()))

