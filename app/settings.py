"""What the app remembers between runs: the sampler choices, the prompt, the view, the window's shape.

Sampler settings are remembered per model: the shipped model's sit in
`choices` beside the device, precision and seed rule (where every earlier
version kept them all, so old settings load as they are); any other
model's sit in `model_choices` under its key (`model_key`). A chat model
the user has not tuned starts from its own defaults (its catalog entry's), a
BD3-LM from the shipped model's.

Everything goes through one `QSettings` store, which tests replace with a
file of their own so they never touch the user's real settings. Saved
values are read as untrusted: each is checked the way the engine checks it
(`checks.py`), and a bad one is replaced by its default with a note that
the window shows in the status bar.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from bd3lm_core import DEVICES, DTYPES, SamplerSettings, random_seed

from .records.checks import checked_sampling, short
from .rendering.paces import DEFAULT_PACE, PACES
from .rendering.palette import COLOURINGS

ORGANIZATION = "BD3-LM Studio"
APPLICATION = "bd3lm-studio"


@dataclass
class Choices:
    """What the controls show: the sampler's settings (with a concrete seed) and where the model runs."""

    sampling: SamplerSettings = field(default_factory=lambda: SamplerSettings(seed=random_seed()))
    device: str = "auto"
    dtype: str = "auto"
    new_seed_each_run: bool = True  # Generate draws a fresh seed first, so each press gives a new text

    def to_dict(self) -> dict[str, Any]:
        """One flat dict: the sampler's fields next to device, dtype and the seed rule."""
        return {
            **asdict(self.sampling), "device": self.device, "dtype": self.dtype,
            "new_seed_each_run": self.new_seed_each_run,
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Choices:
        """Choices from a flat dict (saved settings, a trace); each bad value keeps its default."""
        return cls.checked(saved)[0]

    @classmethod
    def checked(cls, saved: dict[str, Any]) -> tuple[Choices, list[str]]:
        """Choices from a flat dict, and a note for every value that was replaced by its default."""
        sampling, notes = checked_sampling(saved)
        if sampling.seed is None:  # the seed box always shows a number
            sampling = SamplerSettings(**{**asdict(sampling), "seed": random_seed()})
        extra: dict[str, Any] = {}
        for name, allowed in (("device", tuple(DEVICES)), ("dtype", tuple(DTYPES)), ("new_seed_each_run", (True, False))):
            if name in saved:
                value = saved[name]
                if type(value) is type(allowed[0]) and value in allowed:
                    extra[name] = value
                else:
                    notes.append(f"{name} {short(value)} (choose {', '.join(map(str, allowed))}): using the default")
        return cls(sampling, **extra), notes


def model_key(source: str | None, path: str) -> str | None:
    """What a model's own choices are remembered by: its repo id, its folder (absolute), None for the shipped model."""
    if source is None:
        return None
    folder = Path(source).expanduser()
    return str(Path(path).resolve()) if folder.is_dir() else source


class Settings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)
        self.notes: list[str] = []  # what `choices` had to replace, for the status bar

    def choices(self) -> Choices:
        """The saved choices (the shipped model's sampler settings); anything unreadable falls back to its default
        and is noted in `notes`."""
        saved, notes = self._read("choices", "the saved settings were unreadable: using the defaults")
        choices, replaced = Choices.checked(saved)
        self.notes = notes + replaced
        return choices

    def save_choices(self, choices: Choices, model: str | None = None) -> None:
        """Save the device, precision and seed rule, and the sampler settings as those of `model` (a `model_key`)."""
        if model is None:
            self.store.setValue("choices", json.dumps(choices.to_dict(), allow_nan=False))
            return
        shared = Choices.checked(self._read("choices", "")[0])[0]  # the shipped model's settings stay as they are
        placed = replace(
            shared, device=choices.device, dtype=choices.dtype, new_seed_each_run=choices.new_seed_each_run,
        )
        self.store.setValue("choices", json.dumps(placed.to_dict(), allow_nan=False))
        models = self._read("model_choices", "")[0]
        models[model] = asdict(choices.sampling)
        self.store.setValue("model_choices", json.dumps(models, allow_nan=False))

    def model_sampling(self, model: str) -> tuple[SamplerSettings | None, list[str]]:
        """The sampler settings last chosen for `model` (a `model_key`), or None if never; and a note for each
        value that was unreadable and so replaced by its default."""
        models, notes = self._read("model_choices", "the saved settings of other models were unreadable")
        if not isinstance(models.get(model), dict):
            return None, notes
        choices, replaced = Choices.checked(models[model])
        return choices.sampling, notes + replaced

    def _read(self, key: str, unreadable: str) -> tuple[dict[str, Any], list[str]]:
        """The JSON object saved under `key` ({} if none), and `unreadable` as a note when it was not one."""
        try:
            saved = json.loads(str(self.store.value(key, "{}")))
        except (ValueError, RecursionError, MemoryError):  # ValueError: bad JSON, or a 5000-digit number
            saved = None
        return (saved, []) if isinstance(saved, dict) else ({}, [unreadable])

    def colouring(self) -> str:
        value = str(self.store.value("colouring", ""))
        if value in COLOURINGS:
            return value
        return "step" if str(self.store.value("tint_by_step", "false")).lower() == "true" else "plain"

    def save_colouring(self, colouring: str) -> None:
        self.store.setValue("colouring", colouring)

    def pace(self) -> int:
        try:
            value = int(str(self.store.value("pace", DEFAULT_PACE)))
        except ValueError:
            return DEFAULT_PACE
        return value if value in PACES else DEFAULT_PACE

    def save_pace(self, pace: int) -> None:
        self.store.setValue("pace", pace)

    def prompt(self) -> str:
        return str(self.store.value("prompt", "Once upon a time"))

    def save_prompt(self, prompt: str) -> None:
        self.store.setValue("prompt", prompt)

    def export_folder(self) -> Path:
        """Where the export dialog opens: the last folder exported to, else the user's documents folder."""
        saved = Path(str(self.store.value("export_folder", "")))
        if str(saved) not in ("", ".") and saved.is_dir():
            return saved
        documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
        return Path(documents) if documents and Path(documents).is_dir() else Path.home()

    def save_export_folder(self, folder: Path) -> None:
        self.store.setValue("export_folder", str(folder))

    def geometry(self) -> QByteArray | None:
        value = self.store.value("geometry")
        return value if isinstance(value, QByteArray) else None

    def save_geometry(self, geometry: QByteArray) -> None:
        self.store.setValue("geometry", geometry)

    def sync(self) -> None:
        self.store.sync()
