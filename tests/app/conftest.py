"""Fixtures for the app's tests: the `bd3lm_studio` package, private settings, a tiny model, a window."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings

from model_factory import make_model_folder

APP_DIR = Path(__file__).resolve().parents[2] / "app"

try:  # installed (pip install -e .): the real package
    import bd3lm_studio  # noqa: F401
except ModuleNotFoundError:  # a plain checkout: register app/ under the package's name
    spec = importlib.util.spec_from_file_location(
        "bd3lm_studio", APP_DIR / "__init__.py", submodule_search_locations=[str(APP_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bd3lm_studio"] = module
    spec.loader.exec_module(module)

from bd3lm_studio.views.main_window import MainWindow  # noqa: E402
from bd3lm_studio.settings import Settings  # noqa: E402
from bd3lm_studio.engine.threads import garbage_collected_on_gui_thread  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from several threads, and on a busy machine torch's
    spinning worker threads can make them a hundred times slower. Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def gui_thread_garbage_collection(qapp) -> Iterator[None]:
    """As the app runs (app/main.py): a closed window's garbage is never collected in a worker thread."""
    with garbage_collected_on_gui_thread():
        yield


@pytest.fixture(autouse=True)
def private_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any QSettings made during a test lands under tmp_path, never in the user's real settings; so do models and
    conversations (BD3LM_HOME; a test that asks for `bd3lm_home` gets its own)."""
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path / "home"))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    for scope in (QSettings.UserScope, QSettings.SystemScope):
        QSettings.setPath(QSettings.IniFormat, scope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Throw-away settings, on the CPU (the app's default, auto, would pick a GPU where there is one),
    shown in real time (a test that wants a slower pace sets it) and with a fixed seed."""
    store = Settings(QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat))
    store.save_choices(replace(store.choices(), device="cpu", new_seed_each_run=False))
    store.save_pace(0)
    return store


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("tiny-model"), block_size=4, model_length=64)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second loadable model, with another block size, for switching."""
    return make_model_folder(tmp_path_factory.mktemp("other-model"), block_size=8, model_length=64, seed=1)


@pytest.fixture
def open_window(qtbot) -> Callable[[str | None, Settings], MainWindow]:
    """Open a main window on `source` (None: the shipped model) and wait until it has loaded."""

    def open_(source: str | None, settings: Settings) -> MainWindow:
        window = MainWindow(model_source=source, settings=settings)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
        return window

    return open_


@pytest.fixture
def window(open_window, tiny_model: Path, settings: Settings) -> MainWindow:
    """The main window with the tiny model loaded, on the CPU."""
    w = open_window(str(tiny_model), settings)
    assert w.model is not None, "the tiny model did not load"
    return w


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on now (the OS's pick, released for the test to use)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
