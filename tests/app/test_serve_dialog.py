"""Model → Serve on localhost…: taken as a user does, from the menu, and asked over HTTP."""

from __future__ import annotations

import httpx
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from bd3lm_studio.views.serve_dialog import ServeDialog


def menu_action(window, title: str):
    """The Model menu's action with this title, as the menu bar shows it."""
    model_menus = [a.menu() for a in window.menuBar().actions() if a.menu() is window.model_menu]
    assert model_menus, "the Model menu is not in the menu bar"
    for action in model_menus[0].actions():
        if action.text() == title:
            return action
    raise AssertionError(f"no {title!r} in the Model menu")


def test_serve_from_the_model_menu_answers_openai_requests_until_stopped(window, qtbot, free_port) -> None:
    menu_action(window, "Serve on localhost…").trigger()
    dialog = window.findChild(ServeDialog)
    assert dialog is not None and dialog.isVisible() and window.model.name in dialog.what.text()
    dialog.port.setValue(free_port)
    qtbot.mouseClick(dialog.start_stop, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.address.text() != "", timeout=60_000)
    assert dialog.address.text() == f"http://127.0.0.1:{free_port}/v1"
    models = httpx.get(dialog.address.text() + "/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [window.model.name]
    answer = httpx.post(dialog.address.text() + "/completions", timeout=60,
                        json={"model": window.model.name, "prompt": "A cat", "max_tokens": 4, "seed": 1,
                              "bd3lm": {"ignore_eos": True}}).json()
    assert answer["usage"]["completion_tokens"] == 4
    qtbot.mouseClick(dialog.copy, Qt.LeftButton)
    assert QApplication.clipboard().text() == dialog.address.text()
    qtbot.mouseClick(dialog.start_stop, Qt.LeftButton)  # Stop
    qtbot.waitUntil(lambda: not dialog.serving and dialog.address.text() == "", timeout=10_000)
    assert dialog.start_stop.text() == "Start"
    try:
        httpx.get(f"http://127.0.0.1:{free_port}/v1/models", timeout=2)
        raise AssertionError("the server still answers after Stop")
    except httpx.ConnectError:
        pass


def shown_in_full(dialog) -> bool:
    """Each wrapped label as tall as its text needs at its width (a tryout saw both clipped once serving)."""
    dialog.layout().activate()
    return all(label.height() >= label.heightForWidth(label.width()) for label in (dialog.what, dialog.message))


def test_a_taken_port_shows_the_servers_one_line_error(window, qtbot) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        menu_action(window, "Serve on localhost…").trigger()
        dialog = window.findChild(ServeDialog)
        # wide enough for its title: the layout's minimum once overrode the dialog's, leaving 255 px
        assert dialog.width() >= dialog.fontMetrics().averageCharWidth() * 64 and shown_in_full(dialog)
        dialog.port.setValue(taken.getsockname()[1])
        qtbot.mouseClick(dialog.start_stop, Qt.LeftButton)
        qtbot.waitUntil(lambda: not dialog.serving, timeout=60_000)
        assert dialog.message.text().startswith("bd3lm: cannot listen on 127.0.0.1")
        assert dialog.message.heightForWidth(dialog.message.width()) > dialog.fontMetrics().height() * 1.5  # wraps
        assert shown_in_full(dialog)
        assert dialog.address.text() == "" and dialog.start_stop.text() == "Start"
    finally:
        taken.close()


def test_a_model_loaded_by_repo_id_is_served_under_that_id(window, qtbot, free_port, tiny_model, bd3lm_home) -> None:
    """Clients ask for the model by the name the app shows, not by its folder's name (seen in a tryout)."""
    import shutil

    from bd3lm_core import models_dir

    shutil.copytree(tiny_model, models_dir() / "test-org--served")  # as a download installs it
    window.load_model_source("test-org/served")
    qtbot.waitUntil(lambda: window.model is not None and window.model.name == "test-org/served", timeout=30_000)
    menu_action(window, "Serve on localhost…").trigger()
    dialog = window.findChild(ServeDialog)
    dialog.port.setValue(free_port)
    qtbot.mouseClick(dialog.start_stop, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.address.text() != "", timeout=60_000)
    models = httpx.get(dialog.address.text() + "/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == ["test-org/served"]
    assert '"test-org/served"' in dialog.message.text()
    qtbot.mouseClick(dialog.start_stop, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.serving, timeout=10_000)
