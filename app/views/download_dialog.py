"""Model → Download models…: the catalog, what is installed, and downloads with progress and Cancel.

Downloads run in the dialog's own thread through `bd3lm_core.download_model`,
which keeps a cancelled or cut transfer's partial file, so downloading again
continues where it stopped. Closing the dialog during a download asks
whether to keep it: kept, the dialog only hides, Model → Download models…
shows the same dialog (and its progress) again, and it comes back by
itself when the download ends. Models in the Hugging Face cache show as
installed, and are never deleted from here.

Chat models show the memory they need at the precision chosen in the
window's panel (the loader's own account, `bd3lm_core.memory_fit_for`);
downloading one that would not fit in free memory asks first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QProgressBar, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from bd3lm_core import (
    CATALOG, BD3LMError, CatalogEntry, DownloadProgress, InstalledModel, MemoryFit, download_model, installed_models,
    memory_fit_for, models_dir, partial_bytes, remove_model,
)
from bd3lm_core import formatting

from ..engine.threads import end_thread, start_in_thread

COLUMNS = ("Model", "Block size", "Size", "Memory", "Status")
Answer = tuple[str, Callable[[], None]]  # a button's label, and what pressing it does
NEVER_DELETED = "BD3-LM Studio never deletes files from the Hugging Face cache (\u201chf cache rm\u201d does)."


def memory_shortfall(name: str, fit: MemoryFit) -> str:
    """What a model that will not fit needs, what is missing, and the precision that would fit (if any)."""
    text = (
        f"{name} needs about {formatting.size(fit.needed)} of memory in {fit.precision}, but "
        f"{formatting.size(fit.available)} is {fit.source}: {formatting.size(fit.missing)} is missing."
    )
    if fit.fitting is not None:
        return text + f" In {fit.fitting} it needs {formatting.size(fit.options[fit.fitting])}, which fits."
    return text + " It does not fit in any precision here; close other programs or choose a smaller model."


def show_download_dialog(
    window: QWidget, loaded_repo: str | None, load: Callable[[str], None], placement: tuple[str, str],
) -> DownloadDialog:
    """Show `window`'s download dialog: the open one (perhaps hidden, downloading), else a new one.

    `loaded_repo` is the repo id of the model in use (None: a folder or the shipped model);
    `load` is called with the repo id the user chooses to load; `placement` is the (device, precision)
    chosen in the window, at which the Memory column counts.
    """
    dialog = next((d for d in window.findChildren(DownloadDialog) if d.is_open), None)
    if dialog is None:
        dialog = DownloadDialog(window)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.model_chosen.connect(load)
    dialog.set_loaded_repo(loaded_repo)
    dialog.set_placement(*placement)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


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
        loaded_repo: str | None = None, placement: tuple[str, str] = ("auto", "auto"),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download models")
        self.resize(760, 420)
        self.catalog = list(catalog)
        self.endpoint = endpoint  # None: HF_ENDPOINT or huggingface.co
        self.loaded_repo = loaded_repo  # the repo id of the model in use, to warn before removing it
        self.placement = placement  # (device, precision) as the window's panel names them
        self._fits: dict[str, MemoryFit | None] = {}  # repo id -> how it fits at `placement` (None: no question)
        self._cancel: threading.Event | None = None
        self._downloading: str | None = None
        self._installed: dict[str, InstalledModel] = {}
        self._partial: dict[str, int] = {}  # repo id -> bytes a stopped download kept
        self._arrived = 0  # bytes of the running download on disk, as last reported

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
        self.message = QLabel(self._where_models_are())
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel download")
        self.remove_button = QPushButton("Remove")
        self.load_button = QPushButton("Load")
        close_button = QPushButton("Close")
        self.download_button.clicked.connect(lambda: self.ask_download(self.selected()))
        self.cancel_button.clicked.connect(self.cancel)
        self.remove_button.clicked.connect(self._confirm_remove)
        self.load_button.clicked.connect(self._load_selected)
        close_button.clicked.connect(self.close)
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
        """List the catalog plus any other installed model, each marked installed (and where), partial or not."""
        installed = {m.repo_id: m for m in installed_models()}
        rows = [(e.repo_id, str(e.block_size), formatting.size(e.size_bytes), e.description) for e in self.catalog]
        known = {e.repo_id for e in self.catalog}
        rows += [
            (m.repo_id, "\u2013", formatting.size(m.size_bytes), f"Installed {m.where}")
            for m in installed.values() if m.repo_id not in known
        ]
        self._installed = installed
        self._partial = {e.repo_id: partial_bytes(e.repo_id) for e in self.catalog if e.repo_id not in installed}
        self._fits = {repo_id: self.memory_fit(repo_id) for repo_id, *_ in rows}
        selected = self.selected()
        self.table.setRowCount(len(rows))
        for r, (repo_id, block, size, about) in enumerate(rows):
            where = f"\n{installed[repo_id].path}" if repo_id in installed else ""
            memory, memory_tip = self._memory_cell(repo_id)
            for c, text in enumerate((repo_id, block, size, memory, self.status_of(repo_id))):
                item = QTableWidgetItem(text)
                item.setToolTip(memory_tip if c == COLUMNS.index("Memory") else about + where)
                self.table.setItem(r, c, item)
            if repo_id == selected:
                self.table.selectRow(r)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self._update_buttons()

    def memory_fit(self, repo_id: str) -> MemoryFit | None:
        """How the model fits at the chosen placement (its installed files', else its catalog entry's count);
        None for models whose size is no question (BD3-LMs) or a placement this machine lacks."""
        source = str(self._installed[repo_id].path) if repo_id in self._installed else repo_id
        try:
            return memory_fit_for(source, *self.placement, catalog=self.catalog)
        except BD3LMError:  # no such device here, or a damaged folder: the load says so, in its own words
            return None

    def _memory_cell(self, repo_id: str) -> tuple[str, str]:
        """The Memory column's text and tooltip: "2.6 GB float32", with what is missing when it does not fit."""
        fit = self._fits.get(repo_id)
        if fit is None:
            return "\u2013", "Counted for chat models, whose size decides the precision they can load in."
        text = f"{formatting.size(fit.needed)} {fit.precision}"
        if fit.fits:
            return text, f"Needs about {text} of memory; {formatting.size(fit.available)} is {fit.source}."
        return f"{text} ({formatting.size(fit.missing)} short)", memory_shortfall(repo_id, fit)

    def set_placement(self, device: str, dtype: str) -> None:
        """The device and precision chosen in the window: the Memory column counts at them."""
        if (device, dtype) != self.placement:
            self.placement = (device, dtype)
            self.refresh()

    def status_of(self, repo_id: str) -> str:
        """What the Status column says: downloading, installed (and where, if not by us), partial or not installed."""
        if repo_id == self._downloading:
            return "downloading…"
        if repo_id in self._installed:
            model = self._installed[repo_id]
            return f"installed, {model.where}" if model.in_hf_cache else "installed"
        if self._partial.get(repo_id):
            return f"partial ({formatting.size(self._partial[repo_id])} kept, resumes)"
        return "not installed"

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    @property
    def is_open(self) -> bool:
        """Shown or downloading in the background: not yet closed for good."""
        return self._thread.isRunning()

    def set_loaded_repo(self, repo_id: str | None) -> None:
        """Tell the dialog which repo id is the model in use (None: a folder or the shipped model)."""
        self.loaded_repo = repo_id

    def _update_buttons(self) -> None:
        repo_id = self.selected()
        busy = self._downloading is not None
        model = self._installed.get(repo_id)
        ours = (model is not None and not model.in_hf_cache) or bool(self._partial.get(repo_id))
        self.download_button.setEnabled(repo_id is not None and not busy and model is None)
        self.cancel_button.setEnabled(busy)
        self.remove_button.setEnabled(ours and not busy)
        self.remove_button.setToolTip(NEVER_DELETED if model is not None and model.in_hf_cache else "")
        self.load_button.setEnabled(model is not None)

    # --- actions -------------------------------------------------------------
    def ask_download(self, repo_id: str | None) -> QMessageBox | None:
        """The Download button: start at once, or first ask when the model will not fit in memory here."""
        fit = self._fits.get(repo_id) if repo_id is not None else None
        if fit is None or fit.fits:
            self.download(repo_id)
            return None
        return self._ask(
            "Not enough memory", f"{memory_shortfall(repo_id, fit)}\n\nDownload it anyway?",
            ("Yes", lambda: self.download(repo_id)), ("No", lambda: None),
        )

    def download(self, repo_id: str | None) -> None:
        """Start downloading `repo_id` (continuing a partial download); one at a time."""
        if repo_id is None or self._downloading is not None:
            return
        self._downloading = repo_id
        self._cancel = threading.Event()
        self._arrived = 0
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
        model = self._installed.get(repo_id)
        what = formatting.size(model.size_bytes if model is not None else self._partial.get(repo_id, 0))
        text = f"Delete the downloaded files of {repo_id} ({what})?"
        if repo_id == self.loaded_repo:
            text += (
                f"\n\n{repo_id} is the model loaded now. It stays in use until you load another one; loading it "
                "again (for example to change the precision) downloads it again, unless the Hugging Face cache has it."
            )
        self._ask("Remove model", text, ("Remove", lambda: self.remove(repo_id)), ("Keep", lambda: None))

    def _load_selected(self) -> None:
        if self.selected() in self._installed:
            self.model_chosen.emit(self.selected())

    def _ask(self, title: str, text: str, yes: Answer, no: Answer) -> QMessageBox:
        """A question that does not block the event loop (the download keeps reporting).

        Each answer is a button's label and what it does; `no`, the safe one, is the default and Esc.
        """
        box = QMessageBox(QMessageBox.Question, title, text, QMessageBox.NoButton, self)
        actions = {box.addButton(yes[0], QMessageBox.AcceptRole): yes[1]}
        no_button = box.addButton(no[0], QMessageBox.RejectRole)
        actions[no_button] = no[1]
        box.setEscapeButton(no_button)
        box.setDefaultButton(no_button)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: actions[button]())
        box.open()
        return box

    def _where_models_are(self) -> str:
        return (
            f"Models are stored in {models_dir()}. Models already in the Hugging Face cache are used where "
            f"they are, and show as installed there; {NEVER_DELETED}"
        )

    # --- answers from the worker ---------------------------------------------
    def _on_progress(self, p: DownloadProgress) -> None:
        self._arrived = p.downloaded
        if p.total:
            self.progress.setValue(int(1000 * p.downloaded / p.total))
        self.progress_label.setText(formatting.download(p))

    def _on_done(self, repo_id: str, folder: str) -> None:
        self._finish()
        self.progress.setValue(1000)
        self.progress_label.setText(f"Downloaded {formatting.size(self._arrived)}")  # the model's total, all files
        self.message.setText(f"{repo_id} is installed in {folder}. Select it and press Load to use it.")

    def _on_failed(self, repo_id: str, message: str) -> None:
        self._finish()
        self.progress.hide()
        self.progress_label.setText("")
        self.message.setText(message[:1].upper() + message[1:])

    def _finish(self) -> None:
        """The download ended: update the table, and come back if the user kept it going in the background."""
        self._downloading, self._cancel = None, None
        self.refresh()
        if self.is_open and self.isHidden():
            self.show()
            self.raise_()

    # --- closing ----------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """The Close button, Esc and the title bar's X: during a download, ask whether to keep it."""
        if self._downloading is None or not self.isVisible():
            return super().closeEvent(event)  # reject(), then done()
        event.ignore()
        repo_id = self._downloading
        self._ask(
            "Download in progress",
            f"{repo_id} is still downloading.\n\n"
            "Keep downloading: this window hides and the download goes on; Model \u2192 Download models\u2026 "
            "shows its progress again, and this window comes back when it ends.\n\n"
            "Cancel download: it stops now; what has arrived is kept, and downloading again resumes from there.",
            ("Cancel download", self._cancel_and_close), ("Keep downloading", self._hide_while_downloading),
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        """Esc closes the way the X does (QDialog would reject at once, cancelling a download unasked)."""
        if event.key() == Qt.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    def _cancel_and_close(self) -> None:
        self.cancel()
        self.reject()

    def _hide_while_downloading(self) -> None:
        if self._downloading is not None:  # it may have ended while the question was open
            self.hide()

    def done(self, result: int) -> None:
        """However the dialog closes for good, cancel a running download (its partial file stays) and end the
        thread; the main window closes it this way when it closes, without asking."""
        self.cancel()
        end_thread(self._thread)
        super().done(result)
