"""The Qt binding itself: what the app cannot work around, checked where it runs."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QLabel


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: its count cannot run out")
def test_calling_qt_keeps_the_reference_count_of_none(qtbot):
    """PySide6 6.12.0 drops one reference to None per call of a method that returns nothing (pyproject.toml
    keeps it out on Python < 3.12). A run makes hundreds of such calls, and the process aborts once the count
    reaches zero. A count within a few of where it was is fine; thousands fewer is that bug."""
    label = QLabel()
    qtbot.addWidget(label)
    label.setText("warm-up")
    before = sys.getrefcount(None)
    for _ in range(5_000):
        label.setText("x")
    assert sys.getrefcount(None) > before - 100
