"""What a user can choose about a generation, checked once before any work starts."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .. import checks
from ..errors import BD3LMError
from .strategies import LIMITS, STRATEGIES

SEED_LIMIT = 2**63  # seeds are 0 .. 2**63 - 1 everywhere: CLI, API, app and traces
MIN_TEMPERATURE = 1e-3  # far below any useful value, and high enough that logits / temperature stay finite


def random_seed() -> int:
    """A fresh seed for a run whose seed the user left open."""
    return random.randrange(SEED_LIMIT)


@dataclass(frozen=True)
class SamplerSettings:
    tokens: int = 128  # new tokens to generate
    block_size: int | None = None  # None: the checkpoint's own (the best choice)
    steps: int | None = None  # denoising steps per block (DDPM); None: the block size
    # The defaults are the measured best on the shipped model (benchmarks/samplers.py, benchmarks/README.md):
    # the lowest Gen PPL among settings whose samples' entropy is within 5% of held-out text's.
    sampler: str = "threshold"  # a name in strategies.STRATEGIES
    top_p: float = 0.8
    threshold: float = 0.9  # the "threshold" sampler: reveal drawn tokens at least this probable (model's p)
    entropy_bound: float = 1.0  # the "entropy-bounded" sampler: entropy budget per step, in nats
    temperature: float = 1.0
    seed: int | None = None  # None: a random seed, reported in `Finished`
    stop_at_eos: bool = True
    stop_on_repetition: bool = True

    def check(self) -> None:
        """Check every value that is set (None means "the default" where allowed), before any work starts.

        The settings may come from flags, the app's saved settings or a trace
        file, so types are checked too (JSON `true` is not a number).
        """
        checks.whole(self.tokens, "the number of new tokens", 1)
        if self.block_size is not None:
            checks.whole(self.block_size, "the block size", 1)
        if self.steps is not None:
            checks.whole(self.steps, "the number of steps per block", *LIMITS["steps"][:2])
        if type(self.sampler) is not str or self.sampler not in STRATEGIES:
            raise BD3LMError(f"unknown sampler {checks.shown(self.sampler)}; choose {' or '.join(STRATEGIES)}.")
        checks.number(self.top_p, "top-p", 0.0, 1.0, open_low=True)
        low, high, open_low = LIMITS["threshold"]
        checks.number(self.threshold, "the confidence threshold", low, high, open_low=open_low)
        low, high, open_low = LIMITS["entropy_bound"]
        checks.number(self.entropy_bound, "the entropy bound (nats)", low, high, open_low=open_low)
        checks.number(self.temperature, "the temperature", MIN_TEMPERATURE)
        if self.seed is not None:
            checks.whole(self.seed, "the seed", 0, SEED_LIMIT - 1)
        checks.boolean(self.stop_at_eos, "stop at end-of-text")
        checks.boolean(self.stop_on_repetition, "stop on repetition")

    def resolved(self, checkpoint_block_size: int, model_length: int | None = None) -> SamplerSettings:
        """The same settings with every None filled in, after checking the values.

        `model_length` (the checkpoint's context) bounds the block size: a
        block must fit the context the model attends over.
        """
        self.check()
        block = self.block_size if self.block_size is not None else checkpoint_block_size
        if model_length is not None and block > model_length:
            raise BD3LMError(
                f"the block size {block} is larger than the model's context of {model_length} tokens; "
                f"use at most {model_length} (the checkpoint's own is {checkpoint_block_size})."
            )
        return replace(
            self,
            block_size=block,
            steps=self.steps if self.steps is not None else block,
            seed=self.seed if self.seed is not None else random_seed(),
        )
