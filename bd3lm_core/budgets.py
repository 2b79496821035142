"""Memory budgets: what a run will allocate, in bytes, compared with what is free before anything is allocated.

Every shape that comes from a flag or a file (rows to sample, a training
width) becomes a byte count here, so that a request the machine cannot hold
is one line with the numbers instead of minutes of swapping and a kill. The
counts are lower bounds of the largest buffers (weights, optimizer state, the
KV cache, logits and the main activations), not an exact account.
`BD3LM_MEMORY_LIMIT` (bytes, or with a K, M, G or T suffix) caps what we use
below what is free.
"""

from __future__ import annotations

import os
import re

import torch

from .errors import BD3LMError
from .formatting import size
from .memory import free_bytes
from .model.config import BD3LMConfig

LIMIT_ENV = "BD3LM_MEMORY_LIMIT"
_LIMIT = re.compile(r"([0-9]{1,15})([KMGT]?)B?")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_FLOAT32 = 4


def memory_budget(device: torch.device) -> tuple[int, str]:
    """The bytes a run on `device` may use, and where that number comes from (for the message)."""
    return capped(free_bytes(device), device)


def capped(free: int, device: torch.device) -> tuple[int, str]:
    """`free` bytes on `device`, or less where BD3LM_MEMORY_LIMIT says so, and where the number comes from."""
    text = os.environ.get(LIMIT_ENV, "").strip().upper()
    if not text:
        return free, f"free on {device.type}"
    match = _LIMIT.fullmatch(text)
    if match is None:
        raise BD3LMError(f"{LIMIT_ENV} must be a number of bytes such as 8G or 512M, not {text[:40]!r}; fix or unset it.")
    cap = int(match[1]) * _UNITS[match[2]]
    return (cap, LIMIT_ENV) if cap < free else (free, f"free on {device.type}")


def require(nbytes: int, what: str, device: torch.device, fix: str) -> None:
    """Refuse, in one line with the numbers, a run needing more than memory_budget(device)."""
    budget, source = memory_budget(device)
    if nbytes > budget:
        raise BD3LMError(f"{what} needs at least {size(nbytes)} of memory but {size(budget)} is {source}; {fix}.")


def sampling_bytes(loaded, rows: int, positions: int) -> int:
    """Keys and values for `rows` sequences of `positions` tokens (the cache holds at most two context windows),
    and one block's logits per row. `loaded` is a LoadedModel: a BD3-LM or a chat model (its kv_layout says which)."""
    layers, heads, head_dim = loaded.model.kv_layout
    element = torch.empty(0, dtype=loaded.model.cache_dtype).element_size()
    held = min(positions, 2 * loaded.config.model_length)
    kv_cache = 2 * layers * rows * heads * head_dim * held * element
    logits = rows * loaded.config.block_size * loaded.config.vocab_size * _FLOAT32
    return kv_cache + logits


def require_sampling_memory(loaded, rows: int, positions: int) -> None:
    """Refuse `rows` samples at once of a LoadedModel whose cache would not fit (the weights are already in memory)."""
    what = f"sampling {rows} rows at once" if rows > 1 else f"sampling {positions} positions"
    require(sampling_bytes(loaded, rows, positions), what, loaded.device,
            "ask for fewer samples (--num-samples, n) or fewer tokens")


def training_bytes(config: BD3LMConfig, batch_size: int) -> int:
    """Weights, gradients, AdamW's two moments and an EMA copy (float32), and the main activations of one step."""
    h, c = config.hidden_dim, config.cond_dim
    per_layer = 12 * h * h + 6 * c * h  # attention (4h²), MLP (8h²), adaLN modulation
    parameters = 2 * config.vocab_size * h + config.n_layers * per_layer
    state = 5 * parameters * _FLOAT32  # weights, gradients, two moments, EMA
    tokens = batch_size * 2 * config.model_length  # noisy and clean copies, side by side
    activations = tokens * (config.n_layers * 16 * h + config.vocab_size) * _FLOAT32
    return state + activations
