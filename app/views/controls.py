"""The sampler's knobs: one widget per setting, each showing its value, each explained in a tooltip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QSlider, QToolButton, QVBoxLayout, QWidget,
)

from bd3lm_core import DEVICES, DTYPES, SAMPLERS, SEED_LIMIT, random_seed

from ..records import samplers
from ..settings import Choices

BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# steps per block: every small count, then coarser, so that the mouse reaches each small value (0: auto)
STEPS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64, 128, 256)
MAX_TOKENS = 1024
TOP_P = tuple(round(0.05 + 0.01 * i, 2) for i in range(96))  # 0.05 ... 1.00
TEMPERATURES = tuple(round(0.1 + 0.05 * i, 2) for i in range(39))  # 0.10 ... 2.00
THRESHOLDS = tuple(round(0.3 + 0.01 * i, 2) for i in range(71))  # 0.30 ... 1.00
ENTROPY_BOUNDS = tuple(round(0.1 * i, 1) for i in range(51))  # 0.0 ... 5.0 nats
DEVICE_NAMES = {"auto": "Auto (best available)", "cuda": "CUDA (NVIDIA GPU)", "mps": "MPS (Apple GPU)", "cpu": "CPU"}
DTYPE_NAMES = {
    "auto": "Auto (fastest safe)", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16",
    "int8": "int8 (CPU only)",
}


class ValueSlider(QWidget):
    """A slider over a list of values, with the current one written next to it.

    With `exact`, a value set from outside that is not on the list (a saved
    trace's temperature 0.73) is added to it, so that what is shown is what
    a run will use.
    """

    changed = Signal()

    def __init__(self, values: Sequence[Any], describe: Callable[[Any], str] = str, exact: bool = False) -> None:
        super().__init__()
        self.values: list[Any] = list(values)
        self.describe = describe
        self.exact = exact
        self.slider = QSlider(Qt.Horizontal)
        self.label = QLabel()
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("8 (native: 16)") + 4)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.setRange(0, len(self.values) - 1)
        self.slider.valueChanged.connect(self._on_move)
        self._on_move()

    def value(self) -> Any:
        return self.values[self.slider.value()]

    def set_value(self, value: Any) -> None:
        """Move to `value`, or to the nearest value the slider offers; `changed` fires once either way."""
        if self.exact and value not in self.values and self.values[0] < value < self.values[-1]:
            self.set_values(sorted([*self.values, value]), value)
            return
        nearest = min(range(len(self.values)), key=lambda i: abs(self.values[i] - value))
        if nearest == self.slider.value():
            self._on_move()  # same position, but the values (and so the text) may have changed
        else:
            self.slider.setValue(nearest)  # valueChanged calls _on_move

    def set_values(self, values: Sequence[Any], value: Any) -> None:
        self.slider.blockSignals(True)
        self.values = list(values)
        self.slider.setRange(0, len(self.values) - 1)
        self.slider.blockSignals(False)
        self.set_value(value)

    def _on_move(self) -> None:
        self.label.setText(self.describe(self.value()))
        self.changed.emit()


class SeedEdit(QLineEdit):
    """A seed, 0 .. 2**63 - 1: too wide for a spin box (Qt's are 32-bit), so digits in a line edit."""

    valueChanged = Signal(object)  # noqa: N815 - the name QSpinBox uses; object: Signal(int) is 32-bit

    def __init__(self) -> None:
        super().__init__()
        self.setValidator(QRegularExpressionValidator(QRegularExpression(r"[0-9]{1,19}"), self))
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("0" * 19) + 16)  # every digit of a seed shows
        self._value = 0
        self.setText("0")
        self.editingFinished.connect(self._on_edited)

    def value(self) -> int:
        return self._value

    def setValue(self, value: int) -> None:  # noqa: N802 - the name QSpinBox uses
        value = min(max(0, int(value)), SEED_LIMIT - 1)
        self.setText(str(value))
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    def _on_edited(self) -> None:
        self.setValue(int(self.text() or 0))  # out of range: the nearest seed there is


class ControlsPanel(QWidget):
    """Every sampler setting, each shown only when the chosen sampler reads it."""

    changed = Signal()  # any choice moved
    placement_changed = Signal()  # device or precision: the model must be loaded again

    def __init__(self, choices: Choices) -> None:
        super().__init__()
        self._native: int | None = None  # the loaded checkpoint's block size
        self._block_choice = choices.sampling.block_size
        self._sampling = choices.sampling  # keeps any setting no control shows

        self.block_size = ValueSlider(BLOCK_SIZES, self._describe_block)
        self.sampler = QComboBox()
        for key in SAMPLERS:
            self.sampler.addItem(samplers.NAMES.get(key, key), key)
        self.steps = ValueSlider(STEPS, self._describe_steps, exact=True)
        self.threshold = ValueSlider(THRESHOLDS, lambda p: f"p \u2265 {p:.2f}", exact=True)
        self.entropy_bound = ValueSlider(ENTROPY_BOUNDS, lambda h: f"{h:.1f} nats", exact=True)
        self.top_p = ValueSlider(TOP_P, lambda p: f"{p:.2f}", exact=True)
        self.temperature = ValueSlider(TEMPERATURES, lambda t: f"{t:.2f}", exact=True)
        self.tokens = ValueSlider(range(1, MAX_TOKENS + 1), lambda n: f"{n} tokens")
        self.tokens.slider.setPageStep(32)
        self.seed = SeedEdit()
        self.randomize = QToolButton()
        self.randomize.setText("\u27f3")  # a short button, so that the seed box keeps room for 19 digits
        self.new_seed = QCheckBox("New seed each run")
        self.stop_at_eos = QCheckBox("Stop at end-of-text")
        self.stop_on_repetition = QCheckBox("Stop on repetition")
        self.device = QComboBox()
        for key in DEVICES:
            self.device.addItem(DEVICE_NAMES.get(key, key), key)
        self.dtype = QComboBox()
        for key in DTYPES:
            self.dtype.addItem(DTYPE_NAMES.get(key, key), key)
        self._explain()

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.randomize)
        seed_box = QVBoxLayout()
        seed_box.addLayout(seed_row)
        seed_box.addWidget(self.new_seed)
        stops = QVBoxLayout()
        stops.addWidget(self.stop_at_eos)
        stops.addWidget(self.stop_on_repetition)
        self.form = form = QFormLayout(self)
        form.addRow("Block size", self.block_size)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps per block", self.steps)
        form.addRow("Threshold", self.threshold)
        form.addRow("Entropy bound", self.entropy_bound)
        form.addRow("Top-p", self.top_p)
        form.addRow("Temperature", self.temperature)
        form.addRow("New tokens", self.tokens)
        form.addRow("Seed", seed_box)
        form.addRow("Stop", stops)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.dtype)

        self.set_choices(choices)
        self.block_size.changed.connect(self._on_block)
        for widget in (self.steps, self.threshold, self.entropy_bound, self.top_p, self.temperature, self.tokens):
            widget.changed.connect(self.changed)
        self.seed.valueChanged.connect(self.changed)
        self.randomize.clicked.connect(lambda: self.seed.setValue(random_seed()))
        self.sampler.currentIndexChanged.connect(self._on_sampler)
        for box in (self.new_seed, self.stop_at_eos, self.stop_on_repetition):
            box.toggled.connect(self.changed)
        for combo in (self.device, self.dtype):
            combo.currentIndexChanged.connect(self.placement_changed)
            combo.currentIndexChanged.connect(self.changed)

    def _explain(self) -> None:
        self.block_size.setToolTip(
            "How many tokens are generated together, as one block.\n"
            "The native value (the block size the model was trained with) gives the best text;\n"
            "other sizes run, but the model never learned them."
        )
        self.sampler.setToolTip("\n".join(
            f"{samplers.NAMES.get(key, key)}: {samplers.DESCRIPTIONS.get(key, '')}." for key in SAMPLERS
        ))
        self.steps.setToolTip(
            "Denoising steps per block (DDPM and low-confidence). Fewer steps reveal more tokens at once:\n"
            "faster, but rougher text. Auto uses one step per token of the block."
        )
        self.threshold.setToolTip(
            "Confidence threshold: each step keeps every drawn token the model gives at least this probability\n"
            "(and always the surest one). Lower reveals more tokens per step: faster, rougher."
        )
        self.entropy_bound.setToolTip(
            "Entropy bound, in nats: each step reveals the positions the model is surest of, as many as\n"
            "keep their summed uncertainty within the bound. Higher reveals more per step: faster, rougher."
        )
        self.top_p.setToolTip(
            "Nucleus sampling: draw only from the most probable tokens whose probabilities add up to p.\n"
            "Lower is safer and more repetitive; 1.00 samples the model's full distribution."
        )
        self.temperature.setToolTip(
            "Below 1 sharpens the model's distribution (safer, duller); above 1 flattens it (bolder, wilder)."
        )
        self.tokens.setToolTip("How many new tokens to generate after the prompt.")
        self.seed.setToolTip("The random seed: the same seed, settings and prompt give the same text.")
        self.randomize.setToolTip("Pick a new random seed.")
        self.new_seed.setToolTip(
            "Draw a fresh seed for every run, so that Generate writes a new text each time;\n"
            "the seed used stays in the box and in the status bar, to reproduce or copy."
        )
        self.stop_at_eos.setToolTip("End the text at the model's end-of-text token.")
        self.stop_on_repetition.setToolTip(
            "End the text when its last 256 tokens keep repeating a few tokens (their entropy falls below 4 nats)."
        )
        self.device.setToolTip("Where the model runs. Changing it reloads the model.")
        self.dtype.setToolTip(
            "Number format of the weights. Auto: bfloat16/float16 on GPUs, float32 on CPU. Reloads the model."
        )

    def _describe_block(self, size: int) -> str:
        if self._native is None:
            return f"{size}"
        return f"{size} (native)" if size == self._native else f"{size} (native: {self._native})"

    def _describe_steps(self, steps: int) -> str:
        return "auto (= block)" if steps == 0 else f"{steps}"

    def _on_block(self) -> None:
        value = self.block_size.value()
        self._block_choice = None if value == self._native else value
        self.changed.emit()

    def _on_sampler(self) -> None:
        self._show_parameters()
        self.changed.emit()

    def _show_parameters(self) -> None:
        """Show the settings the chosen sampler reads, hide the others."""
        sampler = self.sampler.currentData()
        for name in ("steps", "threshold", "entropy_bound"):
            self.form.setRowVisible(getattr(self, name), samplers.uses(sampler, name))

    def set_model(self, block_size: int, model_length: int) -> None:
        """Offer the block sizes that fit this model, the native one marked (and chosen unless the user chose)."""
        self._native = block_size
        sizes = sorted({s for s in BLOCK_SIZES if s <= model_length} | {block_size})
        self.block_size.set_values(sizes, self._block_choice or block_size)

    def set_choices(self, choices: Choices) -> None:
        s = choices.sampling
        self._sampling = s
        self._block_choice = s.block_size
        self.block_size.set_value(s.block_size or self._native or 4)
        self.steps.set_value(s.steps or 0)
        self.threshold.set_value(s.threshold)
        self.entropy_bound.set_value(s.entropy_bound)
        self.top_p.set_value(s.top_p)
        self.temperature.set_value(s.temperature)
        self.tokens.set_value(s.tokens)
        self.seed.setValue(s.seed)
        self.sampler.setCurrentIndex(max(0, self.sampler.findData(s.sampler)))
        self._show_parameters()
        self.new_seed.setChecked(choices.new_seed_each_run)
        self.stop_at_eos.setChecked(s.stop_at_eos)
        self.stop_on_repetition.setChecked(s.stop_on_repetition)
        self.set_placement(choices.device, choices.dtype)

    def set_placement(self, device: str, dtype: str) -> None:
        """Show this device and precision without asking for a reload (e.g. after a failed one)."""
        for combo, key in ((self.device, device), (self.dtype, dtype)):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(key)))
            combo.blockSignals(False)

    def choices(self) -> Choices:
        sampling = replace(
            self._sampling,
            tokens=self.tokens.value(),
            block_size=self._block_choice,
            steps=self.steps.value() or None,
            sampler=self.sampler.currentData(),
            top_p=self.top_p.value(),
            threshold=self.threshold.value(),
            entropy_bound=self.entropy_bound.value(),
            temperature=self.temperature.value(),
            seed=self.seed.value(),
            stop_at_eos=self.stop_at_eos.isChecked(),
            stop_on_repetition=self.stop_on_repetition.isChecked(),
        )
        return Choices(sampling, self.device.currentData(), self.dtype.currentData(), self.new_seed.isChecked())
