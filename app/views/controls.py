"""The main window's settings panel: the sampler's rows (`sampler_form.py`), then length, seed, stops and where
the model runs; each widget shows its value and explains itself in a tooltip."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QToolButton, QVBoxLayout, QWidget

from bd3lm_core import DEVICES, DTYPES, random_seed

from ..settings import Choices
from .sampler_form import SamplerRows, SeedEdit, ValueSlider

MAX_TOKENS = 1024
DEVICE_NAMES = {"auto": "Auto (best available)", "cuda": "CUDA (NVIDIA GPU)", "mps": "MPS (Apple GPU)", "cpu": "CPU"}
DTYPE_NAMES = {
    "auto": "Auto (fastest safe)", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16",
    "int8": "int8 (CPU only)",
}


class ControlsPanel(QWidget):
    """Every sampler setting, each shown only when the chosen sampler reads it."""

    changed = Signal()  # any choice moved
    placement_changed = Signal()  # device or precision: the model must be loaded again

    def __init__(self, choices: Choices) -> None:
        super().__init__()
        self._sampling = choices.sampling  # keeps any setting no control shows
        self.form = form = QFormLayout(self)
        self.rows = SamplerRows(form, self)  # block size, sampler and its settings, top-p, temperature
        self.block_size, self.sampler, self.top_p, self.temperature = (
            self.rows.block_size, self.rows.sampler, self.rows.top_p, self.rows.temperature)
        self.steps, self.threshold, self.entropy_bound = (
            self.rows.knobs.get(name) for name in ("steps", "threshold", "entropy_bound"))
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
        form.addRow("New tokens", self.tokens)
        form.addRow("Seed", seed_box)
        form.addRow("Stop", stops)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.dtype)

        self.set_choices(choices)
        self.rows.changed.connect(self.changed)
        self.tokens.changed.connect(self.changed)
        self.seed.valueChanged.connect(self.changed)
        self.randomize.clicked.connect(lambda: self.seed.setValue(random_seed()))
        for box in (self.new_seed, self.stop_at_eos, self.stop_on_repetition):
            box.toggled.connect(self.changed)
        for combo in (self.device, self.dtype):
            combo.currentIndexChanged.connect(self.placement_changed)
            combo.currentIndexChanged.connect(self.changed)

    def _explain(self) -> None:
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

    def set_model(self, block_size: int, model_length: int) -> None:
        """Offer the block sizes that fit this model, the native one marked (and chosen unless the user chose)."""
        self.rows.set_model(block_size, model_length)

    def set_choices(self, choices: Choices) -> None:
        s = choices.sampling
        self._sampling = s
        self.rows.set_settings(s)
        self.tokens.set_value(s.tokens)
        self.seed.setValue(s.seed)
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
            self.rows.settings(self._sampling),
            tokens=self.tokens.value(),
            seed=self.seed.value(),
            stop_at_eos=self.stop_at_eos.isChecked(),
            stop_on_repetition=self.stop_on_repetition.isChecked(),
        )
        return Choices(sampling, self.device.currentData(), self.dtype.currentData(), self.new_seed.isChecked())
