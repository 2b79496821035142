"""Which masked positions a denoising step reveals: one small class per sampler.

The loop in `loop.py` asks its strategy once per step and block row. A
strategy that picks positions by chance alone (DDPM, first-hitting) is asked
first, and only the positions it picks are run through the network and drawn.
A strategy that `needs_confidence` is shown a drawn token for every masked
position (a `Draft`: the token, the model's probability of it, the model's
entropy there) and picks among those. A new sampler is one more class here
and one more name in `STRATEGIES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch

from .draws import Draft, RandomStream

if TYPE_CHECKING:
    from .settings import SamplerSettings


class Strategy(ABC):
    needs_confidence = False

    def __init__(self, settings: SamplerSettings) -> None:
        self.settings = settings  # resolved: block size and steps are numbers

    @abstractmethod
    def choose(
        self, masked: torch.Tensor, t: float, step: int, rng: RandomStream, draft: Draft | None = None
    ) -> tuple[torch.Tensor, float]:
        """The offsets to reveal at `step` (1-based), a subset of `masked` in order, and the time after the step.

        `t` is the time before the step (1 at the start of a block); `draft`,
        given only when `needs_confidence`, holds a token drawn for every
        masked position.
        """


class DDPM(Strategy):
    """T steps at times 1, (T-1)/T, ..., 0: from t to s a masked position is revealed with probability 1 - s/t."""

    def choose(self, masked, t, step, rng, draft=None):
        s = max(0.0, 1.0 - step / self.settings.steps)
        return masked[rng.uniform(len(masked)) >= s / t], s


class FirstHitting(Strategy):
    """One uniformly chosen position per step, at the time the next of m masked positions would be hit."""

    def choose(self, masked, t, step, rng, draft=None):
        t = t * float(rng.uniform(1)) ** (1.0 / len(masked))
        return masked[rng.integer(len(masked))], t


class LowConfidence(Strategy):
    """LLaDA's low-confidence remasking, inside a block: with T steps, each step keeps the k drawn tokens
    the model is surest of, k spread evenly so the block is done within T steps."""

    needs_confidence = True

    def choose(self, masked, t, step, rng, draft=None):
        steps_left = max(1, self.settings.steps - step + 1)
        k = -(-len(masked) // steps_left)  # ceil: the remainder goes to the early steps
        order = torch.tensor(draft.confidence).argsort(descending=True, stable=True)
        return masked[order[:k].sort().values], (len(masked) - k) / self.settings.block_size


class Threshold(Strategy):
    """Fast-dLLM's threshold parallel decoding (SDAR's dynamic decoding): every drawn token whose
    confidence reaches the threshold, and at least the single most confident one."""

    needs_confidence = True

    def choose(self, masked, t, step, rng, draft=None):
        confidence = torch.tensor(draft.confidence)
        keep = confidence >= self.settings.threshold
        keep[confidence.argmax()] = True
        return masked[keep], (len(masked) - int(keep.sum())) / self.settings.block_size


class EntropyBounded(Strategy):
    """The EB-sampler (Ben-Hamu et al., 2025): reveal the positions the model is least uncertain about,
    as many as fit an entropy budget: the largest k with H_1 + ... + H_k - H_k <= bound, entropies ascending."""

    needs_confidence = True

    def choose(self, masked, t, step, rng, draft=None):
        entropy = torch.tensor(draft.entropy, dtype=torch.float64)
        order = entropy.argsort(stable=True)
        spent = entropy[order].cumsum(0) - entropy[order]  # budget used by all before each, in order
        k = int((spent <= self.settings.entropy_bound).sum())  # at least 1: the first spends nothing
        return masked[order[:k].sort().values], (len(masked) - k) / self.settings.block_size


STRATEGIES: dict[str, type[Strategy]] = {
    "ddpm": DDPM,
    "first-hitting": FirstHitting,
    "low-confidence": LowConfidence,
    "threshold": Threshold,
    "entropy-bounded": EntropyBounded,
}
