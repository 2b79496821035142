"""Choosing where the model runs and in which precision."""

from __future__ import annotations

import torch

from .errors import BD3LMError

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    if DTYPES[name] is not None:
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
