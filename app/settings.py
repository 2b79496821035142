"""What the app remembers between runs: the sampler choices, the prompt, the window's shape.

Everything goes through one `QSettings` store, which tests replace with a
file of their own so they never touch the user's real settings.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

from PySide6.QtCore import QByteArray, QSettings

from bd3lm_core import SamplerSettings

ORGANIZATION = "BD3-LM Studio"
APPLICATION = "bd3lm-studio"


def random_seed() -> int:
    return random.randrange(2**31)


@dataclass
class Choices:
    """The user's sampler and placement choices, as the controls show them."""

    tokens: int = 128
    block_size: int | None = None  # None: the checkpoint's own, which works best
    steps: int | None = None  # None: as many as the block size
    top_p: float = 0.9
    seed: int = field(default_factory=random_seed)
    sampler: str = "ddpm"
    stop_at_eos: bool = True
    device: str = "auto"
    dtype: str = "auto"

    def sampler_settings(self) -> SamplerSettings:
        return SamplerSettings(
            tokens=self.tokens, block_size=self.block_size, steps=self.steps, sampler=self.sampler,
            top_p=self.top_p, seed=self.seed, stop_at_eos=self.stop_at_eos,
        )


_NUMBER = (int, float)
_ACCEPTED: dict[str, type | tuple[type, ...]] = {
    "tokens": int, "block_size": (int, type(None)), "steps": (int, type(None)), "top_p": _NUMBER,
    "seed": int, "sampler": str, "stop_at_eos": bool, "device": str, "dtype": str,
}


class Settings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    def choices(self) -> Choices:
        """The saved choices; anything unreadable falls back to its default."""
        try:
            saved = json.loads(str(self.store.value("choices", "{}")))
        except json.JSONDecodeError:
            saved = {}
        if not isinstance(saved, dict):
            saved = {}
        kept = {k: v for k, v in saved.items() if k in _ACCEPTED and isinstance(v, _ACCEPTED[k])}
        return Choices(**kept)

    def save_choices(self, choices: Choices) -> None:
        self.store.setValue("choices", json.dumps(asdict(choices)))

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
