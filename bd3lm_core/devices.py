"""Choosing where the model runs, in which precision, and with how many CPU threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .budgets import capped
from .errors import BD3LMError
from .formatting import size
from .memory import free_bytes

DEVICES = ("auto", "cuda", "mps", "cpu")
# The precisions a user can name. int8 keeps the linear layers' weights in int8 (torch's dynamic
# quantization: activations stay float32, so the rest of the model runs in float32; on a CPU with
# AMX the KV cache is bfloat16, kernels.int8_cache_dtype); CPU only.
DTYPES = {
    "auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.qint8,
}
PRECISION_NAMES = {dtype: name for name, dtype in DTYPES.items() if dtype is not None}

# Below this many parameters one CPU thread is fastest: a sampling step of a small model is too
# short to share, and a second thread that waits for a busy core stalls every step
# (benchmarks/threads.py measures it, idle and beside a busy process).
ONE_THREAD_BELOW = 50_000_000
MAX_THREADS = 1024  # a thread count above this is a typo, not a machine
TORCH_DEFAULT_THREADS = torch.get_num_threads()  # what torch chose at start-up (physical cores, or OMP_NUM_THREADS)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name not in DEVICES:
        raise BD3LMError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise BD3LMError("CUDA is not available on this machine; use device auto or cpu.")
    if name == "mps" and not _mps_available():
        raise BD3LMError("Apple MPS is not available on this machine; use device auto or cpu.")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on CUDA cards that support it, float16 on MPS, float32 elsewhere."""
    if name not in DTYPES:
        raise BD3LMError(f"unknown precision {name!r}; choose one of {', '.join(DTYPES)}.")
    if name == "int8" and device.type != "cpu":
        raise BD3LMError(f"int8 runs on the CPU only; on {device.type} use bfloat16 or float16 (or --dtype auto).")
    if DTYPES[name] is not None:
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def choose_threads(parameters: int) -> int:
    """CPU threads for sampling a model of this size: one for small models, torch's default for large ones."""
    return 1 if parameters < ONE_THREAD_BELOW else TORCH_DEFAULT_THREADS


# Chat models are large enough that the precision decides whether they fit: `auto` takes the first of these
# whose weights fit in free memory (int8 keeps linear weights in one byte, the rest in float32).
AUTO_ORDER = {"cpu": ("float32", "bfloat16", "int8"), "cuda": ("bfloat16", "float16"), "mps": ("float16",)}
WORKING_SHARE = 0.1  # beyond the weights: the KV cache, activations and the logits of a step, as a share of them


class WeightCount(NamedTuple):
    """A chat model's parameters by how each precision stores them, counted from its files' headers."""

    linear: int  # in linear layers: one byte each in int8
    other: int  # the embedding and the norms: float32 in int8
    tied_output: int = 0  # an output layer that is the embedding: int8 adds a one-byte copy of it (kernels.int8_head)


def weight_bytes(count: WeightCount, dtype: torch.dtype) -> int:
    """Bytes of a model's weights once loaded at `dtype`."""
    if dtype == torch.qint8:
        return count.linear + 4 * count.other + count.tied_output
    return (count.linear + count.other) * dtype.itemsize


def memory_needed(count: WeightCount, dtype: torch.dtype) -> int:
    """Bytes a model needs loaded at `dtype`: its weights and a working share."""
    return int(weight_bytes(count, dtype) * (1 + WORKING_SHARE))


@dataclass(frozen=True)
class MemoryFit:
    """What loading a model at a precision needs against what the device has.

    One account for the loader's refusal and for the app, which shows the same
    numbers before a download or a load starts and asks when they do not fit.
    """

    precision: str  # what a load would use: the precision named, or for auto the first that fits (else the smallest)
    needed: int
    available: int
    source: str  # where `available` comes from: "free on cpu", or BD3LM_MEMORY_LIMIT
    fitting: str | None  # the first precision of AUTO_ORDER that fits on the device, None when none does
    options: dict[str, int]  # bytes needed at each precision of AUTO_ORDER on the device

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    @property
    def missing(self) -> int:
        """Bytes short of fitting (0 when it fits)."""
        return max(0, self.needed - self.available)


def memory_fit(name: str, device: torch.device, count: WeightCount) -> MemoryFit:
    """How a model of `count` parameters fits on `device` at the precision `name` (or `auto`)."""
    available, source = capped(free_bytes(device), device)
    need = {n: memory_needed(count, DTYPES[n]) for n in AUTO_ORDER.get(device.type, ())}
    fitting = next((n for n, b in need.items() if b <= available), None)
    if name != "auto":
        precision = PRECISION_NAMES[resolve_dtype(name, device)]
    elif need:
        precision = fitting or min(need, key=need.get)
    else:  # a device with no list of its own: what auto means there
        precision = PRECISION_NAMES[resolve_dtype(name, device)]
    needed = memory_needed(count, DTYPES[precision])
    return MemoryFit(precision, needed, available, source, fitting, need)


def choose_precision(name: str, device: torch.device, count: WeightCount) -> torch.dtype:
    """The precision to load a model of `count` parameters in: `name`, or for `auto` the best that fits.

    A precision whose weights do not fit in the free memory of `device` is refused before anything is
    loaded, with the numbers and the precision that would fit.
    """
    fit = memory_fit(name, device, count)
    if fit.fits:
        return DTYPES[fit.precision]
    if name == "auto":
        raise BD3LMError(
            f"the model needs {size(fit.needed)} even in {fit.precision} but {size(fit.available)} is {fit.source}; "
            "close other programs or pick a smaller model."
        )
    hint = f"use --dtype {fit.fitting}" if fit.fitting else "close other programs or pick a smaller model"
    raise BD3LMError(f"the model needs {size(fit.needed)} in {name} but {size(fit.available)} is {fit.source}; {hint}.")
