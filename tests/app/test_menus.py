"""Every menu item and every context menu item, triggered as a click would, without a list of them:
a new item is covered by being there. A dialog that opens is closed; an exception that reaches Qt's
event loop fails the test."""

from __future__ import annotations

import sys

import pytest
import shiboken6
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QContextMenuEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QDialog, QMenu, QWidget

from app_helpers import configure, install_fake_judge, run
from bd3lm_studio.views.download_dialog import DownloadDialog


class Closer:
    """Closes whatever opens on top of the main window: modal dialogs (file dialogs, message boxes) while
    their own event loop runs, popup menus, and other windows; it remembers what it saw."""

    def __init__(self, main: QWidget) -> None:
        self.main = main
        self.seen: list[str] = []
        self.popup_actions: list[QAction] = []
        self.timer = QTimer()
        self.timer.timeout.connect(self.close_modal)
        self.timer.start(30)

    def close_modal(self) -> None:
        popup = QApplication.activePopupWidget()
        if isinstance(popup, QMenu):
            self.popup_actions += popup.actions()  # now: a menu run by exec() is deleted when it ends
            popup.hide()
        modal = QApplication.activeModalWidget()
        if modal is not None:
            self.seen.append(type(modal).__name__)
            modal.reject() if isinstance(modal, QDialog) else modal.close()

    def close_others(self) -> None:
        for w in QApplication.topLevelWidgets():
            if w is not self.main and w.isVisible() and not isinstance(w, QMenu):
                self.seen.append(type(w).__name__)
                w.reject() if isinstance(w, QDialog) else w.close()


def menu_bar_actions(window) -> list[tuple[str, ...]]:
    """The path of every item of the menu bar (menu titles, then the item's text), submenus filled as when
    they open."""
    paths = []

    def walk(menu: QMenu, path: tuple[str, ...]) -> None:
        menu.aboutToShow.emit()  # menus that fill themselves when opened (Model → Installed models)
        for a in menu.actions():
            if a.menu() is not None:
                walk(a.menu(), (*path, a.text()))
            elif not a.isSeparator() and a.isVisible():
                paths.append((*path, a.text()))

    for top in window.menuBar().actions():
        walk(top.menu(), (top.text(),))
    return paths


def find_action(window, path: tuple[str, ...]) -> QAction | None:
    """The action at `path`, as the menus show it now; None where a menu rebuilt since lists it no more
    (Runs this session names each run by its time, and a new window after File → Quit has other runs)."""
    menu = window.menuBar()
    for title in path[:-1]:
        menu = next(a.menu() for a in menu.actions() if a.text() == title)
        menu.aboutToShow.emit()
    return next((a for a in menu.actions() if a.text() == path[-1]), None)


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Exceptions that reach Qt's event loop (PySide6 hands them to sys.excepthook)."""
    caught: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: caught.append(f"{kind.__name__}: {value}"))
    return caught


@pytest.fixture
def ready_window(open_window, tiny_model, settings, qtbot, monkeypatch, bd3lm_home):
    """A window with a finished run on screen, so that Export, Copy and Continue are enabled."""
    install_fake_judge(monkeypatch)

    def open_() -> QWidget:
        w = open_window(str(tiny_model), settings)
        configure(w, tokens=8)
        run(w, qtbot)
        return w

    return open_


def settle(window, qtbot) -> None:
    qtbot.wait(60)
    qtbot.waitUntil(lambda: not window.loading and not window.running, timeout=60_000)


def test_every_menu_item_works_when_clicked(ready_window, qtbot, errors):
    window = ready_window()
    paths = menu_bar_actions(window)
    assert ("&Model", "Download models…") in paths and len(paths) >= 12
    triggered, opened, hidden = [], [], []
    for path in paths:
        action = find_action(window, path)
        if action is None or not action.isVisible():  # gone or hidden since (a run's entry, the loaded folder)
            hidden.append(path)
            continue
        if not action.isEnabled():
            continue
        closer = Closer(window)
        action.trigger()
        settle(window, qtbot)
        closer.close_others()
        closer.timer.stop()
        opened += closer.seen
        triggered.append(path)
        assert errors == [], f"{' → '.join(path)}: {errors}"
        if not window.isVisible():  # File → Quit: go on in a new window
            window = ready_window()
    assert ("&Model", "Download models…") in triggered and "DownloadDialog" in opened
    skipped = set(paths) - set(triggered) - set(hidden)  # disabled on purpose: Stop with nothing running, an empty list's note
    assert skipped == {("&Run", "Stop"), ("&Model", "Installed models", "(none yet: Download models…)")}


def test_download_models_menu_item_opens_the_dialog(ready_window, qtbot, errors):
    window = ready_window()
    find_action(window, ("&Model", "Download models…")).trigger()
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(DownloadDialog)), timeout=5000)
    assert errors == []


def test_every_context_menu_item_works_when_clicked(ready_window, qtbot, errors):
    """Right-click every widget that has a context menu of its own or from its actions, and click each item."""
    window = ready_window()
    targets = [
        w for w in window.findChildren(QWidget)
        if w.isVisible() and (
            w.contextMenuPolicy() in (Qt.ActionsContextMenu, Qt.CustomContextMenu)
            or hasattr(w, "createStandardContextMenu")
        )
    ]
    assert targets, "no widget with a context menu"
    clicked = []
    for widget in targets:
        closer = Closer(window)
        area = widget.viewport() if isinstance(widget, QAbstractScrollArea) else widget  # where clicks land
        centre = area.rect().center()
        QApplication.sendEvent(area, QContextMenuEvent(QContextMenuEvent.Mouse, centre, area.mapToGlobal(centre)))
        qtbot.wait(60)  # a blocking menu (from actions) is caught by the closer; a popup() one is open now
        closer.close_modal()
        actions = closer.popup_actions
        for a in actions:
            if shiboken6.isValid(a) and a.isEnabled() and not a.isSeparator() and a.menu() is None:
                a.trigger()
                clicked.append((type(widget).__name__, a.text()))
        settle(window, qtbot)
        closer.close_others()
        closer.timer.stop()
        assert errors == [], f"{type(widget).__name__}: {errors}"
    assert ("QLabel", "Copy seed") in clicked  # the seed in the status bar
    assert any(name == "QPlainTextEdit" for name, _ in clicked)  # the prompt's own menu
