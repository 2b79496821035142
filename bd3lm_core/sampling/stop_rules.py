"""When a sample stops early: at its end-of-text token, or when it is stuck repeating itself."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence

from .settings import SamplerSettings

REPETITION_WINDOW = 256  # the authors' degenerate-text rule (bd3lms _check_stop_conds): entropy of the last 256 tokens ...
REPETITION_MIN_ENTROPY = 4.0  # ... below 4 nats means the text is stuck in a loop


def histogram_entropy(tokens: Sequence[int]) -> float:
    """Entropy (nats) of the tokens' own histogram: low for text that keeps repeating a few tokens."""
    counts = Counter(tokens).values()
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts)


def stop_reason(
    sequence: list[int], n_prompt: int, end: int, stop_ids: Collection[int], settings: SamplerSettings
) -> str | None:
    """"eos" (any of the model's stop ids) or "repetition" if the sample should stop after its latest block, else None."""
    if settings.stop_at_eos and any(tok in stop_ids for tok in sequence[n_prompt:end]):
        return "eos"
    tail = sequence[:end][-REPETITION_WINDOW:]  # past `end` a last block holds masks, not tokens
    if settings.stop_on_repetition and len(tail) == REPETITION_WINDOW and histogram_entropy(tail) < REPETITION_MIN_ENTROPY:
        return "repetition"
    return None
