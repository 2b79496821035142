"""Which masked positions a denoising step reveals: one small class per sampler.

The loop in `loop.py` asks its strategy twice per step and block row:
`pick` (before the forward: which masked positions need a drawn token) and
`keep` (after the draw: which of those drawn tokens to reveal). A strategy
that picks by chance alone (DDPM, first-hitting) picks its positions in
`pick` and keeps every token drawn for them; one that judges the model's
confidence picks every masked position and keeps some of them in `keep`,
from the `Draft` (the token, the model's probability of it, its entropy).

A class also says how the sampler is presented (`title`, `description`) and
which of `SamplerSettings`' sampler-specific values it reads (`reads`); the
CLI's help and the app's forms are built from that. A new sampler is one more
class here and one more name in `STRATEGIES`.
"""

from __future__ import annotations

import math
from abc import ABC
from typing import Protocol

import torch

from .draws import Draft, RandomStream

class StrategySettings(Protocol):
    """What a strategy reads of the resolved `SamplerSettings` (named here, not imported: settings.py imports
    this module to check the sampler's name and its values)."""

    block_size: int
    steps: int
    threshold: float
    entropy_bound: float


# The sampler-specific values of `SamplerSettings` a strategy may read, with their allowed range
# (low, high) and whether the low end is excluded. `settings.py` checks them with these.
MAX_STEPS = 10_000  # denoising steps per block; more only adds steps that reveal nothing
LIMITS: dict[str, tuple[float, float, bool]] = {
    "steps": (1, MAX_STEPS, False),
    "threshold": (0.0, 1.0, True),
    "entropy_bound": (0.0, math.inf, False),
}


class Strategy(ABC):
    title: str  # the sampler's name for people
    description: str  # what a step reveals, one lower-case clause
    reads: tuple[str, ...] = ()  # the keys of LIMITS it reads

    def __init__(self, settings: StrategySettings) -> None:
        self.settings = settings  # resolved: block size and steps are numbers

    def pick(self, masked: torch.Tensor, t: float, step: int, rng: RandomStream) -> tuple[torch.Tensor, float]:
        """Before the forward: the offsets that need a drawn token at `step` (1-based), a subset of `masked`
        in order, and the time after that choice. `t` is the time before the step (1 at a block's start).
        This default picks every masked position, for a strategy that chooses among drawn tokens in `keep`."""
        return masked, t

    def keep(
        self, masked: torch.Tensor, t: float, step: int, rng: RandomStream, draft: Draft
    ) -> tuple[torch.Tensor, float]:
        """After the draw: the offsets to reveal, a subset of `draft.positions` in order, and the time after
        the step. This default keeps every drawn token, for a strategy that chose its positions in `pick`."""
        return draft.positions, t


class DDPM(Strategy):
    """T steps at times 1, (T-1)/T, ..., 0: from t to s a masked position is revealed with probability 1 - s/t."""

    title = "DDPM"
    description = "each step, every masked position is revealed with the same probability (the paper's sampler)"
    reads = ("steps",)

    def pick(self, masked, t, step, rng):
        s = max(0.0, 1.0 - step / self.settings.steps)
        return masked[rng.uniform(len(masked)) >= s / t], s


class FirstHitting(Strategy):
    """One uniformly chosen position per step, at the time the next of m masked positions would be hit."""

    title = "First-hitting"
    description = "each step reveals exactly one position, chosen at random"

    def pick(self, masked, t, step, rng):
        t = t * float(rng.uniform(1)) ** (1.0 / len(masked))
        return masked[rng.integer(len(masked))], t


class LowConfidence(Strategy):
    """LLaDA's low-confidence remasking, inside a block: with T steps, each step keeps the k drawn tokens
    the model is surest of, k spread evenly so the block is done within T steps."""

    title = "Low-confidence (LLaDA)"
    description = "each step keeps the drawn tokens the model is surest of, the same number every step"
    reads = ("steps",)

    def keep(self, masked, t, step, rng, draft):
        steps_left = max(1, self.settings.steps - step + 1)
        k = -(-len(masked) // steps_left)  # ceil: the remainder goes to the early steps
        order = torch.tensor(draft.confidence).argsort(descending=True, stable=True)
        return masked[order[:k].sort().values], (len(masked) - k) / self.settings.block_size


class Threshold(Strategy):
    """Fast-dLLM's threshold parallel decoding (SDAR's dynamic decoding): every drawn token whose
    confidence reaches the threshold, and at least the single most confident one."""

    title = "Confidence threshold"
    description = "each step keeps every drawn token the model gives at least the threshold probability"
    reads = ("threshold",)

    def keep(self, masked, t, step, rng, draft):
        confidence = torch.tensor(draft.confidence)
        keep = confidence >= self.settings.threshold
        keep[confidence.argmax()] = True
        return masked[keep], (len(masked) - int(keep.sum())) / self.settings.block_size


class EntropyBounded(Strategy):
    """The EB-sampler (Ben-Hamu et al., 2025): reveal the positions the model is least uncertain about,
    as many as fit an entropy budget: the largest k with H_1 + ... + H_k - H_k <= bound, entropies ascending."""

    title = "Entropy-bounded (EB)"
    description = "each step keeps the surest positions while their summed entropy stays within the bound"
    reads = ("entropy_bound",)

    def keep(self, masked, t, step, rng, draft):
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
