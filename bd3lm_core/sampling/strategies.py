"""Which masked positions a denoising step reveals: one small class per sampler.

The loop in `loop.py` asks its strategy once per step and block row. A
strategy that picks positions by chance alone (DDPM, first-hitting) is asked
first, and only the positions it picks are run through the network and drawn.
A strategy that `needs_confidence` is shown a drawn token for every masked
position, with the model's probability of it, and picks among those. A new
sampler is one more class here and one more name in `STRATEGIES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch

from .draws import RandomStream

if TYPE_CHECKING:
    from .settings import SamplerSettings


class Strategy(ABC):
    needs_confidence = False

    def __init__(self, settings: SamplerSettings) -> None:
        self.settings = settings  # resolved: block size and steps are numbers

    @abstractmethod
    def choose(
        self, masked: torch.Tensor, t: float, step: int, rng: RandomStream, confidence: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float]:
        """The offsets to reveal at `step` (1-based), a subset of `masked` in order, and the time after the step.

        `t` is the time before the step (1 at the start of a block);
        `confidence`, given only when `needs_confidence`, holds the model's
        probability of the token drawn for each masked position.
        """


class DDPM(Strategy):
    """T steps at times 1, (T-1)/T, ..., 0: from t to s a masked position is revealed with probability 1 - s/t."""

    def choose(self, masked, t, step, rng, confidence=None):
        s = max(0.0, 1.0 - step / self.settings.steps)
        return masked[rng.uniform(len(masked)) >= s / t], s


class FirstHitting(Strategy):
    """One uniformly chosen position per step, at the time the next of m masked positions would be hit."""

    def choose(self, masked, t, step, rng, confidence=None):
        t = t * float(rng.uniform(1)) ** (1.0 / len(masked))
        return masked[rng.integer(len(masked))], t


STRATEGIES: dict[str, type[Strategy]] = {"ddpm": DDPM, "first-hitting": FirstHitting}
