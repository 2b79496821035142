"""What the app remembers between runs: the sampler choices, the prompt, the window's shape.

Everything goes through one `QSettings` store, which tests replace with a
file of their own so they never touch the user's real settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_type_hints

from PySide6.QtCore import QByteArray, QSettings

from bd3lm_core import SamplerSettings, random_seed

ORGANIZATION = "BD3-LM Studio"
APPLICATION = "bd3lm-studio"


@dataclass
class Choices:
    """What the controls show: the sampler's settings (with a concrete seed) and where the model runs."""

    sampling: SamplerSettings = field(default_factory=lambda: SamplerSettings(seed=random_seed()))
    device: str = "auto"
    dtype: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """One flat dict: the sampler's fields next to device and dtype."""
        return {**asdict(self.sampling), "device": self.device, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Choices:
        """Choices from a flat dict (saved settings, a trace); a missing or ill-typed value keeps its default."""
        hints = get_type_hints(SamplerSettings)
        sampling = {
            f.name: saved[f.name] for f in fields(SamplerSettings)
            if f.name in saved and _fits(saved[f.name], hints[f.name])
        }
        if sampling.get("seed") is None:  # the seed box always shows a number
            sampling["seed"] = random_seed()
        placement = {name: saved[name] for name in ("device", "dtype") if isinstance(saved.get(name), str)}
        return cls(SamplerSettings(**sampling), **placement)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can stand for a field of this type (an integer can stand for a float)."""
    if hint is float:
        hint = (int, float)
    if isinstance(value, bool) and hint is not bool:
        return False  # JSON true is no number
    return isinstance(value, hint)


class Settings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    def choices(self) -> Choices:
        """The saved choices; anything unreadable falls back to its default."""
        try:
            saved = json.loads(str(self.store.value("choices", "{}")))
        except json.JSONDecodeError:
            saved = {}
        return Choices.from_dict(saved if isinstance(saved, dict) else {})

    def save_choices(self, choices: Choices) -> None:
        self.store.setValue("choices", json.dumps(choices.to_dict()))

    def tint_by_step(self) -> bool:
        return str(self.store.value("tint_by_step", "false")).lower() == "true"

    def save_tint_by_step(self, on: bool) -> None:
        self.store.setValue("tint_by_step", "true" if on else "false")

    def prompt(self) -> str:
        return str(self.store.value("prompt", "Once upon a time"))

    def save_prompt(self, prompt: str) -> None:
        self.store.setValue("prompt", prompt)

    def geometry(self) -> QByteArray | None:
        value = self.store.value("geometry")
        return value if isinstance(value, QByteArray) else None

    def save_geometry(self, geometry: QByteArray) -> None:
        self.store.setValue("geometry", geometry)

    def sync(self) -> None:
        self.store.sync()
