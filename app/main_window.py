"""The main window: prompt, live view, controls, menus and status bar, wired to the engine thread.

The window never touches the model: it sends requests to `Engine` and reacts
to the worker's signals, each tagged with the run it belongs to, so answers
from a stopped run cannot leak into the next one.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPlainTextEdit, QSplitter, QToolButton,
    QVBoxLayout, QWidget,
)

from bd3lm_core import DEFAULT_MODEL, BD3LMError, installed_models

from . import exports
from .controls import ControlsPanel
from .download_dialog import DownloadDialog, show_download_dialog
from .live_view import LiveView
from .settings import Choices, Settings
from .trace import Outcome, Trace
from .worker import Engine, ModelInfo


HOW_TO_READ = """
<p><b>What you are watching.</b> A block diffusion model writes a <i>block</i> of tokens at a time,
left to right. Each new block starts fully masked (&#9617;&#9617;&#9617;) and is filled in over a few
<i>denoising steps</i>, several tokens per step and in any order. Green: the tokens revealed by the
latest step. Yellow: the block being denoised. Blocks before it are final and never change.</p>
<p>After a run, drag the timeline to replay it; File &rarr; Export saves it (the .html file replays in a browser).</p>
"""


class MainWindow(QMainWindow):
    def __init__(self, model_source: str | None = None, settings: Settings | None = None) -> None:
        """`model_source`: the folder or repo id to load first; None for the shipped model."""
        super().__init__()
        self.setWindowTitle("BD3-LM Studio")
        self.settings = settings if settings is not None else Settings()
        self.engine = Engine(self)
        self.model: ModelInfo | None = None
        self.trace: Trace | None = None
        self._run_id: int | None = None
        self._loads_pending = 0
        self._startup_source = model_source

        self.prompt = QPlainTextEdit(self.settings.prompt())
        self.prompt.setPlaceholderText("Type a prompt (or leave it empty) and press Ctrl+Enter to generate.")
        self.prompt.setFixedHeight(self.prompt.fontMetrics().lineSpacing() * 4 + 12)
        self.view = LiveView(self.settings.tint_by_step())
        self.controls = ControlsPanel(self.settings.choices())
        self._build_actions()
        self._build_layout()
        self._build_status_bar()
        self._connect()
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1200, 760)
        self.load_model_source(model_source)

    # --- construction --------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut: QKeySequence | str | list | None = None, tip: str = "") -> QAction:
            a = QAction(text, self)
            if isinstance(shortcut, list):
                a.setShortcuts(shortcut)
            elif shortcut:
                a.setShortcut(shortcut)
            a.setShortcutContext(Qt.WindowShortcut)
            a.setToolTip(tip or text)
            a.triggered.connect(slot)
            self.addAction(a)  # shortcuts work wherever the focus is
            return a

        self.generate_action = action(
            "Generate", self.generate, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")],
            "Generate text after the prompt (Ctrl+Enter)",
        )
        self.stop_action = action("Stop", self.stop, QKeySequence(Qt.Key_Escape), "Stop generating (Esc)")
        self.export_action = action("Export…", self._ask_export, QKeySequence.Save)
        self.copy_action = action("Copy text", self.copy_text, QKeySequence("Ctrl+Shift+C"))
        open_trace = action("Open trace…", self._ask_open_trace, QKeySequence.Open)
        quit_app = action("Quit", self.close, QKeySequence.Quit)
        shipped = action(f"Shipped model ({DEFAULT_MODEL})", lambda: self.load_model_source(None))
        open_folder = action("Open model folder…", self._ask_model_folder)
        downloads = action("Download models…", self.show_downloads)

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.export_action, self.copy_action, open_trace):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(quit_app)
        run_menu = menus.addMenu("&Run")
        run_menu.addAction(self.generate_action)
        run_menu.addAction(self.stop_action)
        model_menu = menus.addMenu("&Model")
        model_menu.addAction(shipped)
        self.installed_menu = model_menu.addMenu("Installed models")
        self.installed_menu.aboutToShow.connect(self._fill_installed_menu)
        model_menu.addAction(open_folder)
        model_menu.addSeparator()
        model_menu.addAction(downloads)

    def _build_layout(self) -> None:
        def button(a: QAction) -> QToolButton:
            b = QToolButton()
            b.setDefaultAction(a)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            b.setMinimumWidth(110)
            return b

        self.generate_button = button(self.generate_action)
        self.stop_button = button(self.stop_action)
        run_row = QHBoxLayout()
        run_row.addWidget(self.generate_button)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(QLabel("Ctrl+Enter generates, Esc stops."))
        run_row.addStretch(1)
        left = QWidget()
        column = QVBoxLayout(left)
        column.addWidget(QLabel("Prompt"))
        column.addWidget(self.prompt)
        column.addLayout(run_row)
        column.addWidget(self.view, 1)
        sampler = QGroupBox("Sampler")
        QVBoxLayout(sampler).addWidget(self.controls)
        guide = QLabel(HOW_TO_READ)
        guide.setWordWrap(True)
        guide.setTextFormat(Qt.RichText)
        guide.setContentsMargins(8, 4, 8, 4)
        right = QWidget()
        side = QVBoxLayout(right)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(sampler)
        side.addWidget(guide)
        side.addStretch(1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([820, 380])
        self.setCentralWidget(splitter)

    def _build_status_bar(self) -> None:
        self.status_labels = {name: QLabel() for name in ("progress", "model", "device", "speed", "nfe", "elapsed")}
        tips = {
            "progress": "Tokens generated so far, and where the sampler is",
            "speed": "Generated tokens per second",
            "nfe": "Forward passes of the network so far (NFE); a step that reveals nothing needs none",
            "elapsed": "Time since the run began",
        }
        for name, label in self.status_labels.items():
            label.setToolTip(tips.get(name, ""))
            self.statusBar().addPermanentWidget(label)
        self._show_model_status()

    def _connect(self) -> None:
        worker = self.engine.worker
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.run_started.connect(self._on_run_started)
        worker.run_progressed.connect(self._on_run_progressed)
        worker.run_finished.connect(self._on_run_finished)
        worker.run_failed.connect(self._on_run_failed)
        self.view.rendered.connect(self._show_run_status)
        self.view.tint_changed.connect(self.settings.save_tint_by_step)
        self.controls.changed.connect(lambda: self.settings.save_choices(self.controls.choices()))
        self.controls.placement_changed.connect(self._on_placement)

    # --- models ----------------------------------------------------------------
    def load_model_source(self, source: str | None) -> None:
        """Load a model folder or repo id (None: the shipped model), stopping any run first."""
        choices = self.controls.choices()
        self._loads_pending += 1
        self.statusBar().showMessage(f"Loading {source or DEFAULT_MODEL}…")
        self._update_actions()
        self.engine.load(source, choices.device, choices.dtype)

    def _on_placement(self) -> None:
        source = self.model.source if self.model is not None else self._startup_source
        self.load_model_source(source)

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        self.model = info
        self._loads_pending -= 1
        self.controls.set_model(info.block_size, info.model_length)
        self.controls.set_placement(info.device_choice, info.dtype_choice)
        self.statusBar().showMessage(f"Loaded {info.name}.", 5000)
        self._show_model_status()
        self._update_actions()

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self._loads_pending -= 1
        if self.model is not None:  # the previous model is still the one loaded
            self.controls.set_placement(self.model.device_choice, self.model.dtype_choice)
        self.statusBar().clearMessage()
        self._update_actions()
        kept = f"\n\nStill using {self.model.name}." if self.model is not None else ""
        self.show_error("Could not load the model", message + kept)

    def _ask_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a model folder (config.json, model.safetensors, tokenizer.json)"
        )
        if folder:
            self.load_model_source(folder)

    def _fill_installed_menu(self) -> None:
        self.installed_menu.clear()
        models = installed_models()
        for m in models:
            self.installed_menu.addAction(m.repo_id, lambda repo_id=m.repo_id: self.load_model_source(repo_id))
        if not models:
            self.installed_menu.addAction("(none yet: Download models…)").setEnabled(False)

    def show_downloads(self) -> DownloadDialog:
        return show_download_dialog(self, self.model.source if self.model else None, self.load_model_source)

    # --- runs --------------------------------------------------------------------
    def generate(self) -> None:
        if self.model is None or self.loading or self._run_id is not None:
            return
        choices = self.controls.choices()
        self.settings.save_choices(choices)
        self.settings.save_prompt(self.prompt.toPlainText())
        self._run_id = self.engine.generate(self.prompt.toPlainText(), choices.sampling)
        self.statusBar().showMessage("Generating…")
        self._update_actions()

    def stop(self) -> None:
        if self._run_id is not None:
            self.engine.stop()
            self.statusBar().showMessage("Stopping…")

    @property
    def running(self) -> bool:
        return self._run_id is not None

    @property
    def loading(self) -> bool:
        return self._loads_pending > 0

    @Slot(int, object)
    def _on_run_started(self, run_id: int, trace: Trace) -> None:
        if run_id == self._run_id:
            self.trace = trace
            self.view.begin(trace)

    @Slot(int, object)
    def _on_run_progressed(self, run_id: int, frames: list) -> None:
        if run_id == self._run_id and self.trace is not None:
            self.trace.add(frames)
            self.view.refresh()

    @Slot(int, object)
    def _on_run_finished(self, run_id: int, outcome: Outcome) -> None:
        if run_id != self._run_id:
            return
        self._run_id = None
        self.trace.outcome = outcome
        self.view.finish()
        words = {"length": "done", "eos": "stopped at end-of-text", "repetition": "stopped: the text repeats itself",
                 "cancelled": "stopped"}
        self.statusBar().showMessage(
            f"Generated {len(outcome.token_ids)} tokens ({words.get(outcome.reason, outcome.reason)}). "
            "Drag the timeline to replay.", 10000,
        )
        self._update_actions()

    @Slot(int, str)
    def _on_run_failed(self, run_id: int, message: str) -> None:
        if run_id != self._run_id:
            return
        self._run_id = None
        self.statusBar().clearMessage()
        self._update_actions()
        self.show_error("Generation failed", message)

    # --- export ----------------------------------------------------------------
    def export_to(self, path: str | Path) -> bool:
        """Save the last run; on failure say why and keep everything as it is."""
        if self.trace is None or self.trace.outcome is None:
            return False
        try:
            written = exports.export(self.trace, Path(path))
        except BD3LMError as err:
            self.show_error("Export failed", f"{err}\n\nThe text is still here; try another folder or name.")
            return False
        self.statusBar().showMessage(f"Saved {written}.", 8000)
        return True

    def _ask_export(self) -> None:
        if self.trace is None or self.trace.outcome is None:
            return
        filters = ";;".join(exports.FORMATS.values())
        path, chosen = QFileDialog.getSaveFileName(self, "Export the run", "bd3lm-run.html", filters)
        if path:
            if not Path(path).suffix:  # take the suffix from the chosen filter
                path += next(s for s, f in exports.FORMATS.items() if f == chosen)
            self.export_to(path)

    def copy_text(self) -> None:
        if self.trace is not None and self.trace.outcome is not None:
            QGuiApplication.clipboard().setText(self.trace.full_text)
            self.statusBar().showMessage("Copied the text to the clipboard.", 4000)

    def open_trace(self, path: str | Path) -> bool:
        """Show a saved JSON trace (replayable) and put its prompt and settings in the controls."""
        try:
            trace = exports.load_trace(Path(path))
        except BD3LMError as err:
            self.show_error("Cannot open the trace", str(err))
            return False
        self.stop()
        self._run_id = None
        self.trace = trace
        self.view.begin(trace)
        self.view.finish()
        current = self.controls.choices()  # the trace's settings, on the device already chosen
        self.controls.set_choices(
            Choices.from_dict({**trace.settings, "device": current.device, "dtype": current.dtype})
        )
        self.prompt.setPlainText(trace.prompt)
        self.statusBar().showMessage(
            f"Opened a run of {trace.model}. With that model loaded, Generate reproduces it.", 10000,
        )
        self._update_actions()
        return True

    def _ask_open_trace(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a saved trace", "", exports.FORMATS[".json"])
        if path:
            self.open_trace(path)

    # --- status and state --------------------------------------------------------
    def show_error(self, title: str, message: str) -> QMessageBox:
        """A warning that does not block the event loop (the worker keeps talking to us)."""
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        return box

    def _show_model_status(self) -> None:
        labels = self.status_labels
        if self.model is None:
            labels["model"].setText("Model: none loaded")
            labels["device"].setText("")
        else:
            labels["model"].setText(f"Model: {self.model.name} (block size {self.model.block_size})")
            labels["model"].setToolTip(self.model.path)
            labels["device"].setText(f"Device: {self.model.device}, {self.model.dtype}")

    def _show_run_status(self, index: int) -> None:
        """Speed, forwards and time as of the frame on screen (live, or in a replay)."""
        trace, labels = self.trace, self.status_labels
        if trace is None or index < 0:
            for name in ("progress", "speed", "nfe", "elapsed"):
                labels[name].setText("")
            return
        frame = trace.frames[index]
        tokens = trace.generated_count(index)
        speed = tokens / frame.elapsed if frame.elapsed > 0 else 0.0
        labels["progress"].setText(
            f"{tokens} of {trace.settings['tokens']} tokens, block {frame.block} step {frame.step}"
        )
        labels["speed"].setText(f"{speed:,.1f} tokens/s")
        labels["nfe"].setText(f"forwards (NFE): {frame.nfe}")
        labels["elapsed"].setText(f"{frame.elapsed:.2f} s")

    def _update_actions(self) -> None:
        ready = self.model is not None and not self.loading
        running = self._run_id is not None
        finished = self.trace is not None and self.trace.outcome is not None and not running
        self.generate_action.setEnabled(ready and not running)
        self.stop_action.setEnabled(running)
        self.export_action.setEnabled(finished)
        self.copy_action.setEnabled(finished)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Remember the settings, close download dialogs, stop the worker and wait for its thread."""
        self.settings.save_choices(self.controls.choices())
        self.settings.save_prompt(self.prompt.toPlainText())
        self.settings.save_geometry(self.saveGeometry())
        self.settings.sync()
        for dialog in self.findChildren(DownloadDialog):
            dialog.reject()
        self.engine.shutdown()
        super().closeEvent(event)
