"""Light or dark: the app follows the system palette, which Qt updates when the system switches."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QWidget

from ..rendering.palette import Colours, colours


def is_dark(palette: QPalette) -> bool:
    """Whether windows are drawn light-on-dark: the window colour is darker than its text."""
    return palette.color(QPalette.Window).lightness() < palette.color(QPalette.WindowText).lightness()


def current_colours(widget: QWidget) -> Colours:
    """The run's colours that suit `widget`'s palette."""
    return colours(is_dark(widget.palette()))
