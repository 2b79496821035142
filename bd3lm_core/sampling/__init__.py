"""Sampling: the loop (`loop.py`), the per-step strategies, the contexts and KV cache that give logits."""

from .events import BlockDone, Event, Finished, Reveal, Step
from .loop import encode_prompt, generate, sample
from .settings import SEED_LIMIT, SamplerSettings, random_seed
from .strategies import STRATEGIES

SAMPLERS = tuple(STRATEGIES)

__all__ = [
    "BlockDone", "Event", "Finished", "Reveal", "Step", "encode_prompt", "generate", "sample", "SEED_LIMIT",
    "SamplerSettings", "random_seed", "STRATEGIES", "SAMPLERS",
]
