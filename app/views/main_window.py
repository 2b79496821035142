"""The main window: prompt, live view, controls, menus and status bar, wired to the engine thread.

The window never touches the model: it sends requests to `Engine` and reacts
to the worker's signals, each tagged with the run it belongs to, so answers
from a stopped run cannot leak into the next one. The parts live in their
own modules: the controls (`controls.py`), the view and its player
(`live_view.py`, `trace_view.py`, `pace.py`), the status bar (`status.py`),
the Model menu (`model_menu.py`), the comparison window (`compare.py`),
Help → About (`about.py`), save dialogs (`file_dialogs.py`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPlainTextEdit, QScrollArea, QSplitter,
    QTabWidget, QToolButton, QVBoxLayout, QWidget,
)

from bd3lm_core import (
    DEFAULT_MODEL, BD3LMError, DownloadProgress, MemoryFit, SamplerSettings, memory_fit_for, random_seed,
)
from bd3lm_core.formatting import counted

from ..engine.requests import ModelInfo, NoJudgement
from ..engine.worker import Engine
from ..records.conversations import ConversationStore, chats_dir
from ..records.trace import Judgement, Trace, text_matches_tokens
from ..records.trace_reader import load_trace
from ..rendering import exports
from ..settings import Choices, Settings, model_key
from .about import AboutDialog
from .chat_view import ChatView
from .compare import CompareWindow
from .controls import ControlsPanel
from .download_dialog import DownloadDialog, memory_shortfall, show_download_dialog
from .file_dialogs import chosen_path, save_dialog
from .labels import ElidedLabel
from .live_view import FollowedRun, LiveView
from .model_menu import ModelMenu
from .pace import WIDGET_UPDATES, Throttle
from .serve_dialog import ServeDialog
from .session_runs import SessionRun, SessionRunsMenu
from .status import StatusArea

HOW_TO_READ = """
<p><b>What you are watching.</b> A block diffusion model writes a <i>block</i> of tokens at a time,
left to right. The block being written is the box of cells under the text: each cell starts masked
(&#9617;&#9617;&#9617;) and is filled in over a few <i>denoising steps</i>, several cells per step and in
any order. Green: the tokens revealed by the latest step. Finished blocks join the text above and never
change.</p>
<p>The pace under the text slows the display, not the model; Play, &#9664; and &#9654; replay a run step by
step (with the text clicked: Space, the arrow keys, Page Up/Down for blocks). <i>Colour</i> tints tokens by step or by the model's confidence; hover a token for its numbers.
<b>Continue</b> writes on from the end of the text; <b>Run &rarr; Compare</b> runs the prompt under
several settings side by side.</p>
"""
STOP_WORDS = {"length": "done", "eos": "stopped at end-of-text", "repetition": "stopped: the text repeats itself",
              "cancelled": "stopped"}


CONTINUE_TIP = ("Write on from the end of the text: the text so far becomes the prompt (Ctrl+Shift+Enter; "
                "Ctrl+Z in the prompt brings the old one back)")
CONTINUE_ENDED = ("The story has ended: the model wrote end-of-text. Untick 'Stop at end-of-text' and generate "
                  "again to write past it.")

class MainWindow(QMainWindow):
    def __init__(self, model_source: str | None = None, settings: Settings | None = None) -> None:
        """`model_source`: the folder or repo id to load first; None for the shipped model."""
        super().__init__()  # no title of its own until a model is in: Qt shows the app's name
        self.settings = settings if settings is not None else Settings()
        self.engine = Engine(self)
        self.model: ModelInfo | None = None
        self.trace: Trace | None = None
        self._trace_run: int | None = None  # the run whose trace is on screen (its judgement may still come)
        self._run_choices: Choices | None = None  # the controls as they were for the running run
        self._loads_pending = 0
        self._loading_source: str | None = None
        self._applying_choices = False  # the controls are being set to a model's choices: not a choice of the user's
        self._startup_source = model_source
        self.compare_window: CompareWindow | None = None
        self.serve_dialog: ServeDialog | None = None
        self._hinted = False  # whether the status bar has said how to get a judge
        self._shown_frame = -1  # the frame on screen, whose numbers the status bar shows
        self._status_later = Throttle(self._show_run_status, self, WIDGET_UPDATES)

        self.prompt = QPlainTextEdit(self.settings.prompt())
        self.prompt.setPlaceholderText("Type a prompt (or leave it empty) and press Ctrl+Enter to generate.")
        self.prompt.setFixedHeight(self.prompt.fontMetrics().lineSpacing() * 3 + 12)
        choices = self.settings.choices()
        self.view = LiveView(self.settings.colouring(), self.settings.pace())
        self.run = FollowedRun(self.engine.worker, self.view, self)  # the Write tab's run in progress
        self.controls = ControlsPanel(choices)
        self.chat = ChatView(self.engine, ConversationStore(chats_dir()), self._next_sampling,
                             self.settings.colouring(), self.settings.pace(), self.settings.export_folder)
        self.status = StatusArea()
        self.setStatusBar(self.status)
        self.status_labels = self.status.labels
        self._build_actions()
        self._build_layout()
        self._connect()
        self._show_model_status()
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1200, 760)
        self._settings_note = (  # said once the first model is in, so that "Loaded" does not hide it
            "Saved settings reset to defaults: " + "; ".join(self.settings.notes) + "." if self.settings.notes else ""
        )
        self.load_model_source(model_source)

    # --- construction --------------------------------------------------------
    def _action(self, text: str, slot, shortcut: QKeySequence | str | list | None = None, tip: str = "") -> QAction:
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

    def _build_actions(self) -> None:
        action = self._action
        self.generate_action = action(
            "Generate", self.generate, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")],
            "Generate text after the prompt (Ctrl+Enter)",
        )
        self.continue_action = action(
            "Continue", self.continue_text, [QKeySequence("Ctrl+Shift+Return"), QKeySequence("Ctrl+Shift+Enter")],
            CONTINUE_TIP,
        )
        self.stop_action = action("Stop", self.stop, QKeySequence(Qt.Key_Escape), "Stop generating or downloading (Esc)")
        self.compare_action = action("Compare settings…", self.show_compare, QKeySequence("Ctrl+K"),
                                     "Run the prompt under 2-4 settings or models side by side")
        self.export_action = action("Export…", self._ask_export, QKeySequence.Save)
        self.copy_action = action("Copy text", self.copy_text, QKeySequence("Ctrl+Shift+C"))
        self.copy_seed_action = action("Copy seed", self.copy_seed, tip="Copy the seed of the run on screen")
        open_trace = action("Open trace…", self._ask_open_trace, QKeySequence.Open)
        quit_app = action("Quit", self.close, QKeySequence.Quit)
        about = action("About BD3-LM Studio", self.show_about)

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.export_action, self.copy_action, open_trace):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(quit_app)
        run_menu = menus.addMenu("&Run")
        for a in (self.generate_action, self.continue_action, self.stop_action, self.compare_action,
                  self.copy_seed_action):
            run_menu.addAction(a)
        run_menu.addSeparator()
        self.session_runs = SessionRunsMenu(self)
        self.session_runs.restore_requested.connect(self.restore_run)
        run_menu.addMenu(self.session_runs)
        self.model_menu = ModelMenu(self)
        self.model_menu.load_requested.connect(self.load_model_source)
        self.model_menu.downloads_requested.connect(self.show_downloads)
        self.model_menu.serve_requested.connect(self.show_serve)
        menus.addMenu(self.model_menu)
        menus.addMenu("&Help").addAction(about)
        self.status_labels["seed"].setContextMenuPolicy(Qt.ActionsContextMenu)
        self.status_labels["seed"].addAction(self.copy_seed_action)

    def _build_layout(self) -> None:
        def button(a: QAction) -> QToolButton:
            b = QToolButton()
            b.setDefaultAction(a)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            b.setMinimumWidth(b.fontMetrics().horizontalAdvance("Continue") + 16)
            return b

        self.generate_button = button(self.generate_action)
        self.continue_button = button(self.continue_action)
        self.stop_button = button(self.stop_action)
        run_row = QHBoxLayout()
        for b in (self.generate_button, self.continue_button, self.stop_button):
            run_row.addWidget(b)
        keys = ElidedLabel(min_chars=0)  # cut short rather than widen the window
        keys.setText("Ctrl+Enter generates, Esc stops.")
        run_row.addWidget(keys, 1)
        left = QWidget()
        column = QVBoxLayout(left)
        column.addWidget(QLabel("Prompt"))
        column.addWidget(self.prompt)
        column.addLayout(run_row)
        column.addWidget(self.view, 1)
        self.model_label = QLabel()  # which model is loaded, where it runs
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(Qt.PlainText)
        sampler = QGroupBox("Sampler")
        QVBoxLayout(sampler).addWidget(self.controls)
        guide = QLabel(HOW_TO_READ)
        guide.setWordWrap(True)
        guide.setTextFormat(Qt.RichText)
        guide.setContentsMargins(8, 4, 8, 4)
        right = QWidget()
        side = QVBoxLayout(right)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.model_label)
        side.addWidget(sampler)
        side.addWidget(guide)
        side.addStretch(1)
        scroll = QScrollArea()  # the panel scrolls rather than make the window taller than a small screen
        scroll.setWidget(right)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(right.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.tabs = QTabWidget()  # Write: continue a text; Chat: talk to a chat model
        self.tabs.addTab(left, "Write")
        self.tabs.addTab(self.chat, "Chat")
        splitter = QSplitter()
        splitter.addWidget(self.tabs)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 1)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([850, 350])
        self.setCentralWidget(splitter)

    def _connect(self) -> None:
        worker = self.engine.worker
        worker.loaded.connect(self._on_loaded)
        self.chat.message.connect(lambda text: self.status.show_message(text, 10000))
        worker.load_failed.connect(self._on_load_failed)
        worker.load_cancelled.connect(self._on_load_cancelled)
        worker.load_progressed.connect(self._on_load_progress)
        self.run.started.connect(self._on_run_started)
        self.run.finished.connect(self._on_run_finished)
        self.run.failed.connect(self._on_run_failed)
        worker.run_judged.connect(self._on_run_judged)
        worker.judge_progressed.connect(lambda p: self.status.show_download("the judge", p))
        self.view.rendered.connect(self._on_rendered)
        self.view.colouring_changed.connect(self.settings.save_colouring)
        self.view.player.pace_changed.connect(self.settings.save_pace)
        self.controls.changed.connect(self._on_choices_changed)
        self.controls.placement_changed.connect(self._on_placement)
        self.status.cancel_download.clicked.connect(self._cancel_download)

    # --- models ----------------------------------------------------------------
    def load_model_source(self, source: str | None) -> QMessageBox | None:
        """Load a model folder or repo id (None: the shipped model), stopping any run first. A chat model that will
        not fit in memory at the chosen precision asks first, and is loaded in one that fits if the user says so."""
        choices = self.controls.choices()
        try:
            fit = memory_fit_for(source, choices.device, choices.dtype)
        except BD3LMError:  # no such device, a damaged folder: the load itself says so
            fit = None
        if fit is not None and not fit.fits:
            return self._ask_smaller_precision(source, fit, choices.device)
        self._load(source, choices.device, choices.dtype)
        return None

    def _load(self, source: str | None, device: str, dtype: str) -> None:
        self._loads_pending += 1
        self._loading_source = source
        self.status.show_message(f"Loading {source or DEFAULT_MODEL}…")
        self._update_actions()
        self.engine.load(source, device, dtype)

    def _ask_smaller_precision(self, source: str | None, fit: MemoryFit, device: str) -> QMessageBox:
        """A load that will not fit: offer the precision that fits (Yes loads in it), or say that none does."""
        if self.model is not None:  # the panel shows what is in use until the user says otherwise
            self.controls.set_placement(self.model.device_choice, self.model.dtype_choice)
        text = memory_shortfall(source or DEFAULT_MODEL, fit)
        if fit.fitting is None:
            return self.show_error("Not enough memory", text)
        box = QMessageBox(
            QMessageBox.Question, "Not enough memory", f"{text}\n\nLoad it in {fit.fitting} instead?",
            QMessageBox.Yes | QMessageBox.No, self,
        )
        box.setDefaultButton(QMessageBox.No)
        box.setAttribute(Qt.WA_DeleteOnClose)

        def answered(button) -> None:
            if box.standardButton(button) == QMessageBox.Yes:
                self.controls.set_placement(device, fit.fitting)
                self._load(source, device, fit.fitting)

        box.buttonClicked.connect(answered)
        box.open()
        return box

    def _on_placement(self) -> None:
        source = self.model.source if self.model is not None else self._startup_source
        self.load_model_source(source)

    @Slot(object)
    def _on_load_progress(self, p: DownloadProgress) -> None:
        if self.loading:
            self.status.show_download(self._loading_source or DEFAULT_MODEL, p)

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        self.model = info
        self._load_ended()
        self._settings_note = " ".join(filter(None, (self._settings_note, self._apply_model_choices(info))))
        note, self._settings_note = self._settings_note, ""
        self.status.show_message(f"Loaded {info.name}. {note}".strip(), 30000 if note else 5000)
        self._show_model_status()
        self.chat.set_model(info)
        self.tabs.setCurrentWidget(self.chat if info.chat else self.tabs.widget(0))  # a chat model opens in Chat

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self._load_ended()
        self.status.clear_message()
        kept = f"\n\nStill using {self.model.name}." if self.model is not None else ""
        self.show_error("Could not load the model", message + kept)

    @Slot(str)
    def _on_load_cancelled(self, message: str) -> None:
        self._load_ended()
        kept = f" Still using {self.model.name}." if self.model is not None else ""
        self.status.show_message(message[:1].upper() + message[1:] + kept, 15000)

    def _load_ended(self) -> None:
        self._loads_pending -= 1
        if self.model is not None:  # show what is really in use (after a failed reload, the old choice)
            self.controls.set_placement(self.model.device_choice, self.model.dtype_choice)
        if not self.loading:
            self.status.hide_download()
        self._update_actions()

    def _apply_model_choices(self, info: ModelInfo) -> str:
        """Put the loaded model's block sizes and sampler settings in the controls: the user's last for it; else a
        chat model's own defaults (the seed stays); else, for the shipped model and BD3-LMs, the shared choices
        as ever. Returns a note when saved values had to be replaced."""
        key = model_key(info.source, info.path)
        sampling, notes = self.settings.model_sampling(key) if key is not None else (None, [])
        current = self.controls.choices()
        if sampling is None and info.defaults:
            sampling = SamplerSettings(**{**dict(info.defaults), "seed": current.sampling.seed})
        if sampling is None:  # their notes were said at start-up
            sampling = self.settings.choices().sampling
        self._applying_choices = True  # what the controls show now is the model's, not a new choice of the user's
        try:
            self.controls.set_model(info.block_size, info.model_length)
            self.controls.set_choices(replace(current, sampling=sampling))
            self.controls.set_placement(info.device_choice, info.dtype_choice)
        finally:
            self._applying_choices = False
        return f"Saved settings of {info.name} reset to defaults: " + "; ".join(notes) + "." if notes else ""

    def _on_choices_changed(self) -> None:
        """Remember a choice of the user's, for the model in use; tell an open download dialog the placement."""
        if self._applying_choices:
            return
        choices = self.controls.choices()
        self.settings.save_choices(choices, self._model_key)
        for dialog in self.findChildren(DownloadDialog):
            dialog.set_placement(choices.device, choices.dtype)

    @property
    def _model_key(self) -> str | None:
        return model_key(self.model.source, self.model.path) if self.model is not None else None

    def show_downloads(self) -> DownloadDialog:
        choices = self.controls.choices()
        return show_download_dialog(
            self, self.model.source if self.model else None, self.load_model_source, (choices.device, choices.dtype),
        )

    def show_serve(self) -> ServeDialog:
        """The serve dialog (one, kept while the window lives: its server outlives the dialog's closing)."""
        if self.serve_dialog is None or self.serve_dialog.model != self.model:
            if self.serve_dialog is not None and self.serve_dialog.serving:
                self.serve_dialog.show()  # a server of the model loaded before: stop it there first
                return self.serve_dialog
            self.serve_dialog = ServeDialog(self, self.model)
        self.serve_dialog.show()
        return self.serve_dialog

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self, self.model.name if self.model else None, self.model.path if self.model else None)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_compare(self) -> CompareWindow:
        """The comparison window (one, kept): the prompt and settings of this window to start from."""
        if self.compare_window is None:
            self.compare_window = CompareWindow(self.engine, self.settings, self)
        self.compare_window.start_from(self.prompt.toPlainText(), self.controls.choices(), self.model)
        self.compare_window.show()
        self.compare_window.raise_()
        return self.compare_window

    # --- runs --------------------------------------------------------------------
    def generate(self) -> None:
        """Generate after the prompt (with a fresh seed first, when "New seed each run" is ticked)."""
        if self.model is None or self.loading or self.running:
            return
        self.settings.save_prompt(self.prompt.toPlainText())
        self._trace_run = self.engine.generate(self.prompt.toPlainText(), self._next_sampling())
        self.run.follow(self._trace_run)
        self._run_choices = self.controls.choices()
        self.status.show_message("Generating…")
        self.status.set_stat("judgement", "")
        self._update_actions()

    def _next_sampling(self) -> SamplerSettings:
        """The settings of the next run, Write's or Chat's: a fresh seed first when "New seed each run" is ticked;
        the choices are remembered for the model."""
        if self.controls.new_seed.isChecked():
            self.controls.seed.setValue(random_seed())
        choices = self.controls.choices()
        self.settings.save_choices(choices, self._model_key)
        return choices.sampling

    def continue_text(self) -> None:
        """Write on: the text so far (prompt and what was generated) becomes the prompt.

        Put in as one edit, so Ctrl+Z in the prompt box brings the previous prompt back.
        """
        if self.trace is None or self.trace.outcome is None or self.running or self._story_ended:
            return
        self._replace_prompt(self.trace.full_text)
        self.generate()

    def _replace_prompt(self, text: str) -> None:
        """Put `text` in the prompt box as one edit: Ctrl+Z there brings the previous prompt back."""
        cursor = self.prompt.textCursor()
        cursor.beginEditBlock()
        cursor.select(QTextCursor.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.prompt.setTextCursor(cursor)

    @property
    def _story_ended(self) -> bool:
        """The run on screen stopped at end-of-text: continuing would start a new story, not this one."""
        return self.trace is not None and self.trace.outcome is not None and self.trace.outcome.stop_reason == "eos"

    def stop(self) -> None:
        if self.running:
            self.engine.stop()
            self.status.show_message("Stopping…")
        elif self.loading:
            self.engine.cancel_load()

    @property
    def running(self) -> bool:
        return self.run.running

    @property
    def loading(self) -> bool:
        return self._loads_pending > 0

    def _on_run_started(self, trace: Trace) -> None:
        self.trace = trace

    def _on_run_finished(self, trace: Trace) -> None:
        outcome = trace.outcome
        self.view.finish(skip=outcome.stop_reason == "cancelled")  # after Stop, the end state at once
        self.session_runs.add(self.trace, self._run_choices)
        self.status.show_message(
            f"Generated {counted(len(outcome.token_ids), 'token')} ({STOP_WORDS.get(outcome.stop_reason, outcome.stop_reason)}).",
            10000,
        )
        self.status.set_stat("judgement", "Gen PPL: judging…", "The judge model is reading the text")
        self._update_actions()

    def _on_run_failed(self, message: str) -> None:
        self.status.clear_message()
        self._update_actions()
        self.show_error("Generation failed", message)

    def _cancel_download(self) -> None:
        """The status bar's Cancel: a model being loaded, or the judge after a run."""
        self.engine.cancel_load()
        self.engine.stop()

    @Slot(int, object)
    def _on_run_judged(self, run_id: int, judgement: Judgement | NoJudgement) -> None:
        if not self.loading:
            self.status.hide_download()
        if run_id != self._trace_run or self.trace is None:
            return
        if isinstance(judgement, Judgement):
            self.trace.judgement = judgement
            self.status.show_judgement(judgement)
            return
        self.status.show_judgement(None, judgement)
        if judgement.hint and not self._hinted:  # say once, after the run's own message, what to do about it
            self._hinted = True
            hint = judgement.hint[:1].upper() + judgement.hint[1:]
            self.status.show_message(f"{self.status.current_message()} Gen PPL: {judgement.reason}. {hint}", 20000)

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
        self.settings.save_export_folder(written.parent)
        self.status.show_message(f"Saved {written}.", 8000)
        return True

    def export_dialog(self) -> QFileDialog:
        """File → Export's dialog: in the last folder used (else Documents), an .html name under the HTML filter."""
        return save_dialog(self, "Export the run", self.settings.export_folder(), exports.labels(exports.RUN_FORMATS), "bd3lm-run.html")

    def _ask_export(self) -> None:
        if self.trace is not None and self.trace.outcome is not None:
            path = chosen_path(self.export_dialog(), exports.labels(exports.RUN_FORMATS))
            if path is not None:
                self.export_to(path)

    def copy_text(self) -> None:
        if self.trace is not None and self.trace.outcome is not None:
            QGuiApplication.clipboard().setText(self.trace.full_text)
            self.status.show_message("Copied the text to the clipboard.", 4000)

    def copy_seed(self) -> None:
        seed = self.trace.settings["seed"] if self.trace is not None else self.controls.seed.value()
        QGuiApplication.clipboard().setText(str(seed))
        self.status.show_message(f"Copied the seed {seed} to the clipboard.", 4000)

    def open_trace(self, path: str | Path) -> bool:
        """Show a saved JSON trace (replayable) and put its prompt and settings in the controls.

        The whole file is checked first; a bad one gets a dialog and changes nothing.
        """
        try:
            trace = load_trace(Path(path))
        except BD3LMError as err:
            self.show_error("Cannot open the trace", str(err))
            return False
        self.stop()
        self.run.forget()
        self._trace_run = None
        self.trace = trace
        self.view.open(trace)
        self.status.show_judgement(trace.judgement)
        self.status.show_message(f"Opened a run of {trace.model}.", 10000)
        self._update_actions()
        self._offer_trace_settings(trace)
        return True

    def restore_run(self, run: SessionRun) -> None:
        """Put a run of this session back: its text and replay, its prompt (one undo away) and its settings."""
        if self.running:
            return
        self._trace_run = None
        self.trace = run.trace
        self.view.open(run.trace)
        self.controls.set_choices(replace(run.choices, new_seed_each_run=False))  # Generate reproduces it
        self._replace_prompt(run.trace.prompt)
        self.status.show_judgement(run.trace.judgement)
        self.status.show_message(f"Back to the run of {run.title().split(' · ')[0]}.", 10000)
        self._update_actions()

    def _offer_trace_settings(self, trace: Trace) -> QMessageBox | None:
        """Ask before putting an opened run's prompt and settings in the panel (so that Generate reproduces
        it); say so when its text is not what its tokens read (an edited file: the view shows the tokens)."""
        current = self.controls.choices()
        theirs = Choices(  # the trace's settings, on the device already chosen
            Choices.from_dict(trace.settings).sampling, current.device, current.dtype, new_seed_each_run=False,
        )
        edited = "" if text_matches_tokens(trace) else (
            "Its saved text does not match its tokens (the file was edited?); the view shows the tokens.\n\n"
        )
        if theirs == current and trace.prompt == self.prompt.toPlainText():
            return self.show_error("The trace's text was changed", edited.strip()) if edited else None
        box = QMessageBox(
            QMessageBox.Question, "Use the run's settings?",
            f"{edited}Put this run's prompt and settings (seed {trace.settings['seed']}, {trace.settings['sampler']}, "
            f"{trace.settings['tokens']} tokens) in the panel, so that Generate reproduces it?",
            QMessageBox.NoButton, self,
        )
        use = box.addButton("Use its settings", QMessageBox.AcceptRole)
        box.addButton("Keep mine", QMessageBox.RejectRole)
        box.setAttribute(Qt.WA_DeleteOnClose)

        def answered(button) -> None:
            if button is use:
                self.controls.set_choices(theirs)
                self._replace_prompt(trace.prompt)
                self.status.show_message(f"With {trace.model} loaded, Generate reproduces the run.", 10000)

        box.buttonClicked.connect(answered)
        box.open()
        return box

    def _ask_open_trace(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a saved trace", str(self.settings.export_folder()), exports.labels(exports.RUN_FORMATS)[".json"]
        )
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
        if self.model is None:
            self.model_label.setText("Model: none loaded")
        else:
            m = self.model
            self.model_label.setText(f"Model: {m.name} (block size {m.block_size}) on {m.device}, {m.dtype}")
            self.model_label.setToolTip(m.path)
            self.setWindowTitle(m.name)  # Qt adds " — BD3-LM Studio", the application's display name
        self.model_menu.mark(self.model)

    def _on_rendered(self, index: int) -> None:
        """The status bar shows the numbers of the frame on screen; while the view plays, a few times a second
        (faster, nobody could read them, and each update costs the UI thread)."""
        self._shown_frame = index
        if self.view.player.playing:
            self._status_later.poke()
        else:
            self._status_later.cancel()
            self._show_run_status()

    def _show_run_status(self) -> None:
        self.status.show_frame(self.trace, self._shown_frame)

    def _update_actions(self) -> None:
        ready = self.model is not None and not self.loading
        running = self.running
        finished = self.trace is not None and self.trace.outcome is not None and not running
        self.generate_action.setEnabled(ready and not running)
        self.continue_action.setEnabled(ready and finished and not self._story_ended)
        self.continue_action.setToolTip(CONTINUE_ENDED if finished and self._story_ended else CONTINUE_TIP)
        self.stop_action.setEnabled(running or self.loading)
        self.compare_action.setEnabled(ready)
        self.export_action.setEnabled(finished)
        self.copy_action.setEnabled(finished)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Remember the settings, close the other windows, stop the worker and wait (briefly) for its thread."""
        self.settings.save_choices(self.controls.choices(), self._model_key)
        self.settings.save_prompt(self.prompt.toPlainText())
        self.settings.save_geometry(self.saveGeometry())
        self.settings.sync()
        for dialog in self.findChildren(DownloadDialog):
            dialog.reject()
        if self.compare_window is not None:
            self.compare_window.close()
        if self.serve_dialog is not None:
            self.serve_dialog.stop()
        self.engine.shutdown()
        super().closeEvent(event)

