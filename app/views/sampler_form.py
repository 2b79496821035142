"""The sampler's rows of a form: block size, sampler, the settings the chosen sampler reads, top-p, temperature.

One piece of code for the main window's panel (`controls.py`) and every column of the compare window
(`compare.py`). Which samplers exist, what each reads and the limits of those settings come from the engine's
strategies (`bd3lm_core.sampling.strategies`): a new strategy appears here, with its settings, without an edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QSlider, QWidget

from bd3lm_core import SEED_LIMIT, SamplerSettings
from bd3lm_core.sampling.strategies import LIMITS, STRATEGIES

from ..records import samplers

BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# steps per block: every small count, then coarser, so that the mouse reaches each small value (0: auto)
STEPS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64, 128, 256)
TOP_P = tuple(round(0.05 + 0.01 * i, 2) for i in range(96))  # 0.05 ... 1.00
TEMPERATURES = tuple(round(0.1 + 0.05 * i, 2) for i in range(39))  # 0.10 ... 2.00


class Knob:
    """How the app offers one sampler-specific setting: its label, the values on its slider, how a value reads."""

    def __init__(self, label: str, values: Sequence[Any], describe: Callable[[Any], str], tip: str) -> None:
        self.label, self.values, self.describe, self.tip = label, values, describe, tip


KNOBS = {  # the settings today's strategies read, offered on the scales people use
    "steps": Knob("Steps per block", STEPS, lambda n: "auto (= block)" if n == 0 else f"{n}",
                  "Denoising steps per block. Fewer steps reveal more tokens at once: faster, but rougher text.\n"
                  "Auto uses one step per token of the block."),
    "threshold": Knob("Threshold", tuple(round(0.3 + 0.01 * i, 2) for i in range(71)), lambda p: f"p \u2265 {p:.2f}",
                      "Each step keeps every drawn token the model gives at least this probability\n"
                      "(and always the surest one). Lower reveals more tokens per step: faster, rougher."),
    "entropy_bound": Knob("Entropy bound", tuple(round(0.1 * i, 1) for i in range(51)), lambda h: f"{h:.1f} nats",
                          "Each step reveals the positions the model is surest of, as many as keep their summed\n"
                          "uncertainty (in nats) within the bound. Higher reveals more per step: faster, rougher."),
}


def knob(name: str) -> Knob:
    """The app's knob for a setting a strategy reads; one it has never heard of gets 21 steps over its limits."""
    if name in KNOBS:
        return KNOBS[name]
    low, high, open_low = LIMITS[name]
    high = high if math.isfinite(high) else low + 10
    values = tuple(round(low + (high - low) * i / 20, 4) for i in range(1 if open_low else 0, 21))
    return Knob(name.replace("_", " ").capitalize(), values, lambda v: f"{v:g}", f"{name}, from {low:g} to {high:g}")


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


class SamplerRows(QObject):
    """Block size, sampler, the settings samplers read, top-p and temperature, added as rows of `form`.

    Only the settings the chosen sampler reads are shown. The block size is kept as a choice: None while the
    slider sits on the model's native size, so a run (or another model in a compare column) uses its own.
    """

    changed = Signal()  # any of these moved

    def __init__(self, form: QFormLayout, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.form = form
        self._native: int | None = None  # the model's block size, once known
        self._block_choice: int | None = None
        self.block_size = ValueSlider(BLOCK_SIZES, self._describe_block)
        self.sampler = QComboBox()
        for key, strategy in STRATEGIES.items():
            self.sampler.addItem(strategy.title, key)
        self.knobs = {name: ValueSlider(knob(name).values, knob(name).describe, exact=True)
                      for name in sorted(samplers.OPTIONAL, key=_knob_order)}
        self.top_p = ValueSlider(TOP_P, lambda p: f"{p:.2f}", exact=True)
        self.temperature = ValueSlider(TEMPERATURES, lambda t: f"{t:.2f}", exact=True)
        self._explain()
        form.addRow("Block size", self.block_size)
        form.addRow("Sampler", self.sampler)
        for name, slider in self.knobs.items():
            form.addRow(knob(name).label, slider)
        form.addRow("Top-p", self.top_p)
        form.addRow("Temperature", self.temperature)
        self.block_size.changed.connect(self._on_block)
        for slider in (*self.knobs.values(), self.top_p, self.temperature):
            slider.changed.connect(self.changed)
        self.sampler.currentIndexChanged.connect(self._on_sampler)

    def _explain(self) -> None:
        self.block_size.setToolTip(
            "How many tokens are generated together, as one block.\n"
            "The native value (the block size the model was trained with) gives the best text;\n"
            "other sizes run, but the model never learned them."
        )
        self.sampler.setToolTip("\n".join(f"{s.title}: {s.description}." for s in STRATEGIES.values()))
        for name, slider in self.knobs.items():
            readers = [s.title for s in STRATEGIES.values() if name in s.reads]
            slider.setToolTip(f"{knob(name).tip}\n(read by {', '.join(readers)})")
        self.top_p.setToolTip(
            "Nucleus sampling: draw only from the most probable tokens whose probabilities add up to p.\n"
            "Lower is safer and more repetitive; 1.00 samples the model's full distribution."
        )
        self.temperature.setToolTip(
            "Below 1 sharpens the model's distribution (safer, duller); above 1 flattens it (bolder, wilder)."
        )

    def _describe_block(self, size: int) -> str:
        if self._native is None:
            return f"{size}"
        return f"{size} (native)" if size == self._native else f"{size} (native: {self._native})"

    def _on_block(self) -> None:
        value = self.block_size.value()
        self._block_choice = None if value == self._native else value
        self.changed.emit()

    def _on_sampler(self) -> None:
        self.show_parameters()
        self.changed.emit()

    def show_parameters(self) -> None:
        """Show the settings the chosen sampler reads, hide the others."""
        sampler = self.sampler.currentData()
        for name, slider in self.knobs.items():
            self.form.setRowVisible(slider, samplers.uses(sampler, name))

    def set_model(self, block_size: int, model_length: int) -> None:
        """Offer the block sizes that fit this model, the native one marked (and chosen unless the user chose)."""
        self._native = block_size
        sizes = sorted({s for s in BLOCK_SIZES if s <= model_length} | {block_size})
        self.block_size.set_values(sizes, self._block_choice or block_size)

    def set_settings(self, s: SamplerSettings) -> None:
        self._block_choice = s.block_size
        self.block_size.set_value(s.block_size or self._native or 4)
        for name, slider in self.knobs.items():
            slider.set_value(getattr(s, name) or 0)
        self.top_p.set_value(s.top_p)
        self.temperature.set_value(s.temperature)
        self.sampler.setCurrentIndex(max(0, self.sampler.findData(s.sampler)))
        self.show_parameters()

    def settings(self, base: SamplerSettings) -> SamplerSettings:
        """`base` (tokens, seed, stops and whatever these rows do not show) with these rows' values."""
        knobs = {name: slider.value() for name, slider in self.knobs.items()}
        if "steps" in knobs:
            knobs["steps"] = knobs["steps"] or None  # 0: auto
        return replace(base, block_size=self._block_choice, sampler=self.sampler.currentData(),
                       top_p=self.top_p.value(), temperature=self.temperature.value(), **knobs)


def _knob_order(name: str) -> tuple[int, str]:
    return (list(KNOBS).index(name) if name in KNOBS else len(KNOBS), name)
