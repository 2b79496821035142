"""Run → Compare settings: one prompt and seed under 2-4 settings or models, in columns, side by side.

Each column says what it runs (model, block size, sampler and the knobs that
sampler reads); the runs go one after another through the engine thread,
each column unmasking live, and then all replay together at the chosen
pace. Under each column: tokens/s, forwards per token, Gen PPL and entropy,
the best of each marked. One click on a preset (block sizes, steps,
samplers, top-p, models) fills the columns and runs them. The comparison
exports as JSON (every run's figures and trace) or as one HTML page.
"""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox, QDialog, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
    QPushButton, QScrollArea, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

from bd3lm_core import DEFAULT_MODEL, BD3LMError, SamplerSettings, installed_models
from bd3lm_core.sampling.strategies import STRATEGIES

from ..engine.requests import ModelInfo, NoJudgement, OtherModel
from ..engine.worker import Engine
from ..records import comparison
from ..records.trace import Judgement, Finished, Trace
from ..rendering import exports
from ..rendering.palette import COLOURINGS, COLUMN_CELLS_PER_ROW
from ..settings import Choices, Settings
from .controls import MAX_TOKENS
from .file_dialogs import chosen_path, save_dialog
from .pace import Player, Throttle
from .sampler_form import BLOCK_SIZES, SamplerRows, SeedEdit
from .trace_view import TraceView

MAX_COLUMNS = 4
MAX_SEEDS = 8  # runs per column: enough for a spread, few enough to wait for
DEFAULT_WIDTH = 1200  # the window's usual width; wider for four wide columns, narrower only on a small screen
PRESETS = ("Block sizes", "Steps", "Samplers", "Top-p", "Models")


class RunColumn(QFrame):
    """One column: what it runs, the run as it unmasks, and its figures."""

    remove_requested = Signal(object)

    def __init__(self, models: list[tuple[str, OtherModel | None]], native: int, model_length: int,
                 colouring: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.StyledPanel)
        self.run_ids: list[int] = []  # one run per seed, drawn in one batch
        self.runs: dict[int, Trace] = {}  # run id: its trace, once started
        self.trace: Trace | None = None  # the run on show (the seed chosen below it)
        self.letter = ""
        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.remove = QToolButton()
        self.remove.setText("\u2715")
        self.remove.setToolTip("Remove this column")
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self))
        self.model = QComboBox()
        for name, model in models:
            self.model.addItem(name, model)
        self.model.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(8)
        self.form = QFormLayout()
        self.form.addRow("Model", self.model)
        self.rows = SamplerRows(self.form, self)  # the main window's rows, built by the same code
        self.rows.set_model(native, model_length)
        self.rows.sampler.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.rows.sampler.setMinimumContentsLength(8)
        self.view = TraceView(colouring, scale=1.0, cells_per_row=COLUMN_CELLS_PER_ROW)
        self.view.setPlaceholderText("Press Run to generate here.")
        self.seed_choice = QComboBox()  # which seed's run the view shows, when the column ran several
        self.seed_choice.setToolTip("Which seed's run this column shows; the figures are over all of them.")
        self.seed_choice.currentIndexChanged.connect(self._show_seed)
        self.seed_choice.hide()
        self.figures = QLabel()
        self.figures.setTextFormat(Qt.RichText)
        self.figures.setWordWrap(True)
        self._live = Throttle(self._show_latest, self)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.remove)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(self.form)
        layout.addWidget(self.seed_choice)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.figures)

    def set_choice(self, settings: SamplerSettings, model: OtherModel | None = None) -> None:
        _select(self.model, model)
        self.rows.set_settings(settings)

    def choice(self, base: SamplerSettings) -> tuple[OtherModel | None, SamplerSettings]:
        """This column's model, and `base` (tokens, seed, stops) with this column's knobs."""
        return self.model.currentData(), self.rows.settings(base)

    # --- the runs: one per seed ---------------------------------------------------
    def begin(self, run_ids: list[int]) -> None:
        self.run_ids, self.runs, self.trace = list(run_ids), {}, None
        self.seed_choice.blockSignals(True)
        self.seed_choice.clear()
        self.seed_choice.blockSignals(False)
        self.seed_choice.hide()
        self.view.set_trace(None)
        self.view.setPlaceholderText("Waiting for its turn…")
        self.figures.setText("")

    def started(self, run_id: int, trace: Trace) -> None:
        self.runs[run_id] = trace
        self.seed_choice.addItem(f"seed {trace.settings['seed']}", run_id)
        self.seed_choice.setVisible(len(self.run_ids) > 1)
        if run_id == self.run_ids[0]:  # the first seed unmasks live; the others fill in beside it
            self.trace = trace
            self.view.set_trace(trace)
            self.view.show_frame(-1)
            self.title.setText(f"<b>{self.letter}:</b> {comparison.label(trace.settings, trace.model)}")

    def progressed(self, run_id: int, frames: list) -> None:
        self.runs[run_id].add(frames)
        if self.runs[run_id] is self.trace:
            self._live.poke()

    def _show_latest(self) -> None:
        if self.trace is not None:
            self.view.show_frame(len(self.trace.frames) - 1)

    def finished(self, run_id: int, outcome: Finished) -> None:
        self.runs[run_id].outcome = outcome
        if self.runs[run_id] is self.trace:
            self._live.cancel()
            self.view.show_frame(len(self.trace.frames) - 1, final=True)

    def failed(self, run_id: int, message: str) -> None:
        self.runs.pop(run_id, None)
        if run_id == self.run_ids[0]:
            self._live.cancel()
            self.trace = None
            self.view.set_trace(None)
            self.view.setPlaceholderText(message[:1].upper() + message[1:])

    def finished_runs(self) -> list[Trace]:
        """This column's finished runs, in seed order."""
        return [t for i in self.run_ids if (t := self.runs.get(i)) is not None and t.outcome is not None]

    def _show_seed(self) -> None:
        trace = self.runs.get(self.seed_choice.currentData())
        if trace is not None and trace.outcome is not None and trace is not self.trace:
            self.trace = trace
            self.view.set_trace(trace)
            self.view.show_frame(len(trace.frames) - 1, final=True)

    def show_at(self, index: int) -> None:
        """The shared timeline moved: show this run as of that step (its end once it has no more)."""
        if self.trace is not None and self.trace.outcome is not None:
            last = len(self.trace.frames) - 1
            self.view.show_frame(min(index, last), final=index >= last)

    def show_figures(self, marks: dict[str, set[int]], column: int, missing: NoJudgement | None) -> None:
        runs = self.finished_runs()
        if not runs:
            return
        values = comparison.summary(runs)
        rows = []
        for f in comparison.FIGURES:
            v = values[f.key]
            if v is None:
                text = "–" if not f.key.startswith(("gen_ppl", "entropy")) or missing is None else missing.reason
            else:
                text = v.shown(f.digits)
            if column in marks[f.key]:
                text = f"<b>\u2605 {text}</b>"
            # a gap after the name: "tokens per forward" ran into its value in a narrow column (seen in a tryout)
            rows.append(f'<tr><td style="padding-right: 12px" title="{html.escape(f.explain)}">{f.name}</td>'
                        f'<td align="right">{text}</td></tr>')
        note = (f"<br>mean \u00b1 standard deviation over {len(runs)} seeds; \u2605 only where the difference "
                "is larger than the spread" if len(runs) > 1 else "")
        self.figures.setText("<table>" + "".join(rows) + "</table>" + note)
        judged = next((t.judgement for t in runs if t.judgement is not None), None)
        if judged is not None:  # different models may have different judges: say whose figures these are
            self.figures.setToolTip(f"Gen PPL and entropy judged by {judged.judge}.")
        elif missing is not None and missing.hint:
            self.figures.setToolTip(missing.hint)


def _select(combo: QComboBox, value: object) -> None:
    """Choose the item whose data equals `value` (compared in Python: findData cannot match None or a dataclass)."""
    combo.setCurrentIndex(next((i for i in range(combo.count()) if combo.itemData(i) == value), 0))


class CompareWindow(QDialog):
    """The comparison: shared prompt, seed and length; one column per setting; one player for all."""

    def __init__(self, engine: Engine, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Compare settings side by side")
        self.setWindowFlag(Qt.Window)
        self.resize(DEFAULT_WIDTH, 720)
        self.engine = engine
        self.model: ModelInfo | None = None
        self.base = SamplerSettings()
        self.columns: list[RunColumn] = []
        self._missing: dict[int, NoJudgement] = {}  # run id: why that run has no Gen PPL
        self._waiting: set[int] = set()  # runs not finished yet

        self.prompt = QLineEdit()
        self.prompt.setMinimumWidth(self.prompt.fontMetrics().averageCharWidth() * 24)  # a few words stay in view
        self.seed = SeedEdit()
        self.tokens = QSpinBox()
        self.tokens.setRange(1, MAX_TOKENS)
        self.seeds = QSpinBox()
        self.seeds.setRange(1, MAX_SEEDS)
        self.seeds.setToolTip("Runs per column, drawn in one batch with seeds S, S+1, …: the figures become mean \u00b1 "
                              "standard deviation, and a star needs a difference larger than that spread.")
        self.colouring = QComboBox()
        for key, name in COLOURINGS.items():
            self.colouring.addItem(name, key)
        self.colouring.currentIndexChanged.connect(self._on_colouring)
        shared = QHBoxLayout()
        for text, widget, stretch in (("Prompt", self.prompt, 3), ("Seed", self.seed, 1), ("New tokens", self.tokens, 0),
                                      ("Colour", self.colouring, 0)):
            shared.addWidget(QLabel(text))
            shared.addWidget(widget, stretch)

        presets = QHBoxLayout()
        presets.addWidget(QLabel("One click compares:"))
        self.preset_buttons = {}
        for name in PRESETS:
            button = self.preset_buttons[name] = QPushButton(name)
            button.clicked.connect(lambda _=False, name=name: self.preset(name, run=True))
            presets.addWidget(button)
        presets.addStretch(1)
        self.add_button = QPushButton("Add column")
        self.add_button.clicked.connect(lambda: self.add_column(self.base))
        presets.addWidget(self.add_button)

        # the columns scroll sideways, so four of them never make the window wider than the screen
        columns = QWidget()
        self.columns_row = QHBoxLayout(columns)
        self.columns_row.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()
        self.scroll.setWidget(columns)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.run_button = QPushButton("Run all")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.engine.stop)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._ask_export)
        self.player = Player(10, times=self._elapsed)
        self.player.shown.connect(self._show_at)
        self.message = QLabel(
            "Press a one-click comparison above, or set each column (a model, a block size, a sampler and its "
            "knobs) and press Run all. Every column uses the same prompt, seed and length."
        )
        self.message.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Seeds per column"))
        bottom.addWidget(self.seeds)
        bottom.addWidget(self.run_button)
        bottom.addWidget(self.stop_button)
        bottom.addWidget(self.player, 1)
        bottom.addWidget(self.export_button)

        layout = QVBoxLayout(self)
        layout.addLayout(shared)
        layout.addLayout(presets)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.message)
        layout.addLayout(bottom)

        worker = engine.worker
        worker.run_started.connect(self._on_started)
        worker.run_progressed.connect(self._on_progressed)
        worker.run_finished.connect(self._on_finished)
        worker.run_failed.connect(self._on_failed)
        worker.run_judged.connect(self._on_judged)
        self._update_buttons()

    # --- columns -----------------------------------------------------------------
    def start_from(self, prompt: str, choices: Choices, model: ModelInfo | None) -> None:
        """Take the main window's prompt, seed, length and model; the first time, its settings in two columns."""
        self.prompt.setText(prompt)
        self.seed.setValue(choices.sampling.seed)
        self.tokens.setValue(choices.sampling.tokens)
        self.base = choices.sampling
        if model != self.model:
            self.model = model
            self.set_columns([(None, self.base), (None, self.base)])

    def model_choices(self) -> list[tuple[str, OtherModel | None]]:
        """The loaded model, and every other one on this computer."""
        loaded = self.model.source if self.model is not None else None
        out: list[tuple[str, OtherModel | None]] = [(f"{self.model.name if self.model else 'loaded'} (loaded)", None)]
        if loaded is not None:
            out.append((f"{DEFAULT_MODEL} (shipped)", OtherModel(None)))
        out += [(m.repo_id, OtherModel(m.repo_id)) for m in installed_models() if m.repo_id != loaded]
        return out

    def add_column(self, settings: SamplerSettings, model: OtherModel | None = None) -> RunColumn | None:
        if len(self.columns) >= MAX_COLUMNS:
            return None
        column = RunColumn(self.model_choices(), self.model.block_size if self.model else 4,
                           self.model.model_length if self.model else 1024, self.colouring.currentData())
        column.set_choice(settings, model)
        column.remove_requested.connect(self.remove_column)
        self.columns.append(column)
        self.columns_row.addWidget(column, 1)
        self._renumber()
        self.fit_screen()
        return column

    def remove_column(self, column: RunColumn) -> None:
        if len(self.columns) > 2:
            self.columns.remove(column)
            self._drop(column)
            self._renumber()
            self.fit_screen()

    def set_columns(self, choices: list[tuple[OtherModel | None, SamplerSettings]]) -> None:
        for column in self.columns:
            self._drop(column)
        self.columns = []
        for model, settings in choices[:MAX_COLUMNS]:
            self.add_column(settings, model)

    def fit_screen(self) -> None:
        """As wide as the columns want (at least the usual width, so the prompt stays readable), but never wider
        than the screen's free area: the rest scrolls."""
        screen = (self.screen() or self.parentWidget().screen()).availableGeometry()
        frame = self.frameGeometry().width() - self.width()  # the window manager's borders
        wanted = self.scroll.widget().sizeHint().width() + 2 * self.layout().contentsMargins().left() + 4
        self.resize(min(max(wanted, DEFAULT_WIDTH), screen.width() - frame), min(self.height(), screen.height()))

    def _drop(self, column: RunColumn) -> None:
        self.columns_row.removeWidget(column)
        column.hide()
        column.deleteLater()

    def _renumber(self) -> None:
        for i, column in enumerate(self.columns):
            column.letter = chr(65 + i)
            column.title.setText(f"<b>{column.letter}</b>")
            column.remove.setEnabled(len(self.columns) > 2)
        self._update_buttons()

    def preset(self, name: str, run: bool = False) -> bool:
        """Fill the columns with one kind of variation around the current settings (and run them)."""
        choices = self._preset_choices(name)
        if len(choices) < 2:
            self.message.setText("There is no other model on this computer to compare with: "
                                 "Model → Download models… installs one.")
            return False
        self.set_columns(choices)
        if run:
            self.run()
        return True

    def _preset_choices(self, name: str) -> list[tuple[OtherModel | None, SamplerSettings]]:
        base = self.base
        native = self.model.block_size if self.model else 4
        context = self.model.model_length if self.model else 1024
        block = base.block_size or native
        if name == "Block sizes":
            sizes = sorted({native, 4, 8, 16} & {s for s in BLOCK_SIZES if s <= context})[:MAX_COLUMNS]
            return [(None, replace(base, block_size=s, steps=None)) for s in sizes]
        if name == "Steps":
            steps = sorted({block, max(1, block // 2), max(1, block // 4), 1}, reverse=True)[:MAX_COLUMNS]
            return [(None, replace(base, sampler="ddpm", steps=s)) for s in steps]
        if name == "Samplers":  # the chosen one, then the others as the engine lists them
            others = [key for key in STRATEGIES if key != base.sampler]
            return [(None, replace(base, sampler=s)) for s in [base.sampler, *others][:MAX_COLUMNS]]
        if name == "Top-p":
            return [(None, replace(base, top_p=p)) for p in (1.0, 0.9, 0.5)]
        if name == "Models":
            return [(model, replace(base, block_size=None, steps=None)) for _, model in self.model_choices()][:MAX_COLUMNS]
        raise ValueError(name)

    # --- running -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._waiting)

    def run(self) -> None:
        """Run every column in turn, with the shared prompt, seed and length."""
        if self.model is None:
            self.message.setText("No model is loaded yet.")
            return
        base = replace(self.base, tokens=self.tokens.value(), seed=self.seed.value())
        seeds = self.seeds.value()
        ids = self.engine.run_all(self.prompt.text(), [c.choice(base) for c in self.columns], samples=seeds)
        self._missing.clear()
        self._waiting = set(ids)
        for i, column in enumerate(self.columns):
            column.begin(ids[i * seeds:(i + 1) * seeds])
        self.player.load(0)  # nothing to replay until every column has run
        self.message.setText("Running the columns one after another…")
        self._update_buttons()

    def _column(self, run_id: int) -> RunColumn | None:
        return next((c for c in self.columns if run_id in c.run_ids), None)

    @Slot(int, object)
    def _on_started(self, run_id: int, trace: Trace) -> None:
        if (column := self._column(run_id)) is not None:
            column.started(run_id, trace)

    @Slot(int, object)
    def _on_progressed(self, run_id: int, frames: list) -> None:
        if (column := self._column(run_id)) is not None and run_id in column.runs:
            column.progressed(run_id, frames)

    @Slot(int, object)
    def _on_finished(self, run_id: int, outcome: Finished) -> None:
        if (column := self._column(run_id)) is not None and run_id in column.runs:
            column.finished(run_id, outcome)
            self._done(run_id)

    @Slot(int, str)
    def _on_failed(self, run_id: int, message: str) -> None:
        if (column := self._column(run_id)) is not None:
            column.failed(run_id, message)
            self._done(run_id)

    @Slot(int, object)
    def _on_judged(self, run_id: int, judgement: Judgement | NoJudgement) -> None:
        if (column := self._column(run_id)) is None or run_id not in column.runs:
            return
        if isinstance(judgement, Judgement):
            column.runs[run_id].judgement = judgement
        else:
            self._missing[run_id] = judgement
        self._show_figures()

    def _done(self, run_id: int) -> None:
        self._waiting.discard(run_id)
        self._show_figures()
        if not self._waiting:
            self.message.setText("Done: the runs replay together below (Play runs them again).")
            self.player.load(max((len(c.trace.frames) for c in self.finished_columns()), default=0), play=True)
        self._update_buttons()

    def finished_columns(self) -> list[RunColumn]:
        return [c for c in self.columns if c.trace is not None and c.trace.outcome is not None]

    def _show_figures(self) -> None:
        marks = comparison.best([c.finished_runs() for c in self.columns])
        for i, column in enumerate(self.columns):
            missing = next((self._missing[r] for r in column.run_ids if r in self._missing), None)
            column.show_figures(marks, i, missing)

    def _show_at(self, index: int, final: bool) -> None:
        for column in self.finished_columns():
            column.show_at(index)

    def _elapsed(self, index: int) -> float:
        longest = max(self.finished_columns(), key=lambda c: len(c.trace.frames), default=None)
        if longest is None or not longest.trace.frames:
            return 0.0
        return longest.trace.frames[min(index, len(longest.trace.frames) - 1)].elapsed

    def _on_colouring(self) -> None:
        for column in self.columns:
            column.view.set_colouring(self.colouring.currentData())

    def _update_buttons(self) -> None:
        busy = self.running
        self.run_button.setEnabled(not busy and len(self.columns) >= 2)
        self.stop_button.setEnabled(busy)
        self.add_button.setEnabled(not busy and len(self.columns) < MAX_COLUMNS)
        for button in self.preset_buttons.values():
            button.setEnabled(not busy)
        self.export_button.setEnabled(not busy and len(self.finished_columns()) >= 1)

    # --- export --------------------------------------------------------------------
    def export_to(self, path: str | Path) -> bool:
        finished = self.finished_columns()
        shown = [c.finished_runs().index(c.trace) for c in finished]
        try:
            written = exports.export_comparison([c.finished_runs() for c in finished], Path(path), shown)
        except BD3LMError as err:
            QMessageBox.warning(self, "Export failed", str(err))
            return False
        self.settings.save_export_folder(written.parent)
        self.message.setText(f"Saved {written}.")
        return True

    def _ask_export(self) -> None:
        dialog = save_dialog(self, "Export the comparison", self.settings.export_folder(),
                             exports.labels(exports.COMPARISON_FORMATS),
                             "bd3lm-comparison.html")
        path = chosen_path(dialog, exports.labels(exports.COMPARISON_FORMATS))
        if path is not None:
            self.export_to(path)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Closed (or Esc): its runs stop, so the main window's next run does not wait behind them."""
        if self._waiting:
            self.engine.stop()
        super().hideEvent(event)
