"""What a user can choose about a generation, checked once before any work starts."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from ..errors import BD3LMError
from .strategies import STRATEGIES

SEED_LIMIT = 2**63  # seeds are 0 .. 2**63 - 1 everywhere: CLI, API, app and traces


def random_seed() -> int:
    """A fresh seed for a run whose seed the user left open."""
    return random.randrange(SEED_LIMIT)


@dataclass(frozen=True)
class SamplerSettings:
    tokens: int = 128  # new tokens to generate
    block_size: int | None = None  # None: the checkpoint's own (the best choice)
    steps: int | None = None  # denoising steps per block (DDPM); None: the block size
    sampler: str = "ddpm"  # a name in strategies.STRATEGIES
    top_p: float = 0.9
    threshold: float = 0.9  # the "threshold" sampler: reveal drawn tokens at least this probable (model's p)
    entropy_bound: float = 1.0  # the "entropy-bounded" sampler: entropy budget per step, in nats
    temperature: float = 1.0
    seed: int | None = None  # None: a random seed, reported in `Finished`
    stop_at_eos: bool = True
    stop_on_repetition: bool = True

    def resolved(self, checkpoint_block_size: int) -> SamplerSettings:
        """The same settings with every None filled in, after checking the values."""
        block = self.block_size or checkpoint_block_size
        s = replace(
            self,
            block_size=block,
            steps=self.steps or block,
            seed=self.seed if self.seed is not None else random_seed(),
        )
        if s.tokens < 1:
            raise BD3LMError("the number of new tokens must be at least 1.")
        if s.block_size < 1 or s.steps < 1:
            raise BD3LMError("block size and steps must be at least 1.")
        if s.sampler not in STRATEGIES:
            raise BD3LMError(f"unknown sampler {s.sampler!r}; choose {' or '.join(STRATEGIES)}.")
        if not 0.0 < s.top_p <= 1.0:
            raise BD3LMError("top-p must be in (0, 1].")
        if not 0.0 < s.threshold <= 1.0:
            raise BD3LMError("the confidence threshold must be in (0, 1].")
        if not 0.0 <= s.entropy_bound < float("inf"):
            raise BD3LMError("the entropy bound must be a number of nats, 0 or more.")
        if s.temperature <= 0:
            raise BD3LMError("temperature must be above 0.")
        return s
