"""Model → Download models…: the catalog, what is installed, and downloads with progress and Cancel.

Downloads run in their own thread through `bd3lm_core.download_model`, which
keeps a cancelled or cut transfer's partial file, so downloading again
continues where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QProgressBar, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from bd3lm_core import (
    CATALOG, BD3LMError, CatalogEntry, DownloadProgress, download_model, installed_models,
    models_dir, remove_model,
)
from bd3lm_core import formatting

from .threads import end_thread, start_in_thread

COLUMNS = ("Model", "Block size", "Size", "Status")


def describe_progress(p: DownloadProgress) -> str:
    """One line: bytes so far (of how many), speed, time left."""
    done = formatting.size(p.downloaded) + (f" of {formatting.size(p.total)}" if p.total else "")
    left = f", {formatting.duration(p.eta_seconds)} left" if p.eta_seconds is not None else ""
    return f"{p.filename}: {done} at {formatting.size(p.bytes_per_second)}/s{left}"


class DownloadWorker(QObject):
    """Runs one download at a time in the dialog's thread."""

    progressed = Signal(object)  # DownloadProgress
    done = Signal(str, str)  # repo id, folder
    failed = Signal(str, str)  # repo id, message (a cancel is a failure that says so)

    @Slot(str, object, object)
    def download(self, repo_id: str, endpoint: str | None, cancel: threading.Event) -> None:
        try:
            folder = download_model(repo_id, progress=self.progressed.emit, cancel=cancel, endpoint=endpoint)
        except BD3LMError as err:
            self.failed.emit(repo_id, str(err))
        else:
            self.done.emit(repo_id, str(folder))


class DownloadDialog(QDialog):
    model_chosen = Signal(str)  # the repo id of an installed model to load
    _download_requested = Signal(str, object, object)

    def __init__(
        self, parent: QWidget | None = None, catalog: Sequence[CatalogEntry] = CATALOG, endpoint: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download models")
        self.resize(760, 420)
        self.catalog = list(catalog)
        self.endpoint = endpoint  # None: HF_ENDPOINT or huggingface.co
        self._cancel: threading.Event | None = None
        self._downloading: str | None = None
        self._installed: set[str] = set()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.progress_label = QLabel()
        self.message = QLabel(f"Models are stored in {models_dir()}.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel download")
        self.remove_button = QPushButton("Remove")
        self.load_button = QPushButton("Load")
        close_button = QPushButton("Close")
        self.download_button.clicked.connect(lambda: self.download(self.selected()))
        self.cancel_button.clicked.connect(self.cancel)
        self.remove_button.clicked.connect(self._confirm_remove)
        self.load_button.clicked.connect(self._load_selected)
        close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        for button in (self.download_button, self.cancel_button, self.remove_button, self.load_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

        self.worker = DownloadWorker()
        self._download_requested.connect(self.worker.download)
        self.worker.progressed.connect(self._on_progress)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self._thread = start_in_thread(self.worker, "bd3lm-download")
        self.refresh()

    # --- the table -----------------------------------------------------------
    def refresh(self) -> None:
        """List the catalog plus any other installed model, each marked installed or not."""
        installed = {m.repo_id: m for m in installed_models()}
        rows = [(e.repo_id, str(e.block_size), formatting.size(e.size_bytes), e.description) for e in self.catalog]
        known = {e.repo_id for e in self.catalog}
        rows += [
            (m.repo_id, "\u2013", formatting.size(m.size_bytes), str(m.path))
            for m in installed.values() if m.repo_id not in known
        ]
        selected = self.selected()
        self.table.setRowCount(len(rows))
        for r, (repo_id, block, size, about) in enumerate(rows):
            status = "installed" if repo_id in installed else "not installed"
            if repo_id == self._downloading:
                status = "downloading…"
            for c, text in enumerate((repo_id, block, size, status)):
                item = QTableWidgetItem(text)
                item.setToolTip(about)
                self.table.setItem(r, c, item)
            if repo_id == selected:
                self.table.selectRow(r)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self._installed = set(installed)
        self._update_buttons()

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _update_buttons(self) -> None:
        repo_id = self.selected()
        busy = self._downloading is not None
        installed = repo_id in self._installed
        self.download_button.setEnabled(repo_id is not None and not busy and not installed)
        self.cancel_button.setEnabled(busy)
        self.remove_button.setEnabled(installed and not busy)
        self.load_button.setEnabled(installed)

    # --- actions -------------------------------------------------------------
    def download(self, repo_id: str | None) -> None:
        """Start downloading `repo_id` (continuing a partial download); one at a time."""
        if repo_id is None or self._downloading is not None:
            return
        self._downloading = repo_id
        self._cancel = threading.Event()
        self.progress.setValue(0)
        self.progress.show()
        self.progress_label.setText(f"Connecting to download {repo_id}…")
        self.message.setText("")
        self.refresh()
        self._download_requested.emit(repo_id, self.endpoint, self._cancel)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.progress_label.setText("Cancelling…")

    def remove(self, repo_id: str) -> None:
        try:
            remove_model(repo_id)
        except BD3LMError as err:
            self.message.setText(str(err))
        else:
            self.message.setText(f"Removed {repo_id}.")
        self.refresh()

    def _confirm_remove(self) -> None:
        repo_id = self.selected()
        answer = QMessageBox.question(self, "Remove model", f"Delete the downloaded files of {repo_id}?")
        if answer == QMessageBox.Yes:
            self.remove(repo_id)

    def _load_selected(self) -> None:
        if self.selected() in self._installed:
            self.model_chosen.emit(self.selected())

    # --- answers from the worker ---------------------------------------------
    def _on_progress(self, p: DownloadProgress) -> None:
        if p.total:
            self.progress.setValue(int(1000 * p.downloaded / p.total))
        self.progress_label.setText(describe_progress(p))

    def _on_done(self, repo_id: str, folder: str) -> None:
        self._finish()
        self.progress.setValue(1000)
        self.message.setText(f"{repo_id} is installed in {folder}. Select it and press Load to use it.")

    def _on_failed(self, repo_id: str, message: str) -> None:
        self._finish()
        self.progress.hide()
        self.progress_label.setText("")
        self.message.setText(message[:1].upper() + message[1:])

    def _finish(self) -> None:
        self._downloading, self._cancel = None, None
        self.refresh()

    def done(self, result: int) -> None:
        """However the dialog closes, cancel a running download (its partial file stays) and end the thread."""
        self.cancel()
        end_thread(self._thread)
        super().done(result)
