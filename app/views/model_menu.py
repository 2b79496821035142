"""The Model menu: the shipped model, the installed ones, a folder, downloads; the loaded model ticked."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from bd3lm_core import DEFAULT_MODEL, installed_models, models_dir

from ..engine.requests import ModelInfo

class ModelMenu(QMenu):
    load_requested = Signal(object)  # a folder, a repo id, or None for the shipped model
    downloads_requested = Signal()
    serve_requested = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__("&Model", parent)
        self.loaded: ModelInfo | None = None
        self.shipped = self.addAction(f"Shipped model ({DEFAULT_MODEL})", lambda: self.load_requested.emit(None))
        self.folder = self.addAction("")  # which folder is loaded, when one is
        self.installed = self.addMenu("Installed models")
        self.installed.aboutToShow.connect(self.fill_installed)
        self.addAction("Open model folder…", self._ask_folder)
        self.addSeparator()
        self.addAction("Download models…", self.downloads_requested.emit)
        self.addAction("Serve on localhost…", self.serve_requested.emit)
        marks = QActionGroup(self)  # at most one model is ticked
        for action in (self.shipped, self.folder):
            action.setCheckable(True)
            marks.addAction(action)
        self.folder.setVisible(False)

    def mark(self, model: ModelInfo | None) -> None:
        """Tick the loaded model: the shipped one, or a folder (shown only then); installed ones when listed."""
        self.loaded = model
        self.shipped.setChecked(model is not None and model.source is None)
        is_folder = model is not None and model.source is not None and Path(model.source).expanduser().is_dir()
        self.folder.setVisible(is_folder)
        self.folder.setChecked(is_folder)
        if is_folder:
            self.folder.setText(f"Folder: {model.name}")
            self.folder.setToolTip(model.path)

    def fill_installed(self) -> None:
        """The installed models, the loaded one ticked (run each time the submenu opens)."""
        self.installed.clear()
        models = installed_models()
        for m in models:
            action = self.installed.addAction(m.repo_id, lambda repo_id=m.repo_id: self.load_requested.emit(repo_id))
            action.setCheckable(True)
            action.setChecked(self.loaded is not None and self.loaded.source == m.repo_id)
        if not models:
            self.installed.addAction("(none yet: Download models…)").setEnabled(False)

    def start_folder(self) -> str:
        """Where the folder dialog opens: beside the loaded folder, else our models folder, else home (it opened in
        whatever folder the app was started from, seen in a tryout)."""
        if self.loaded is not None and self.loaded.source is not None and Path(self.loaded.source).expanduser().is_dir():
            return str(Path(self.loaded.source).expanduser().parent)
        return str(models_dir() if models_dir().is_dir() else Path.home())

    def _ask_folder(self) -> None:
        # a short title: the window manager elided the longer one (tokenizer.json is optional anyway)
        folder = QFileDialog.getExistingDirectory(
            self.parentWidget(), "Open a model folder (config.json, model.safetensors)", self.start_folder()
        )
        if folder:
            self.load_requested.emit(folder)
