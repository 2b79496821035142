"""Reading and writing `model.safetensors` in the authors' published layout.

Published files name every tensor `backbone.<module path>`, call the layers
`blocks`, and may carry buffers we do not need (`backbone.rotary_emb.inv_freq`,
`sampling_eps_min`, `sampling_eps_max`). MDLM checkpoints
(`kuleshov-group/mdlm-owt`) name their tensors the same way: their model
class keeps the same network under `backbone` and saves
`backbone.rotary_emb.inv_freq`. `published_name` is the one place that maps
our module paths to theirs. Everything else must match the network
exactly: a missing, unexpected or mis-shaped tensor means the file belongs to
another model, and the user is told which tensors are wrong in one message.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import BD3LMError
from .network import BD3LM

OPTIONAL = {"backbone.rotary_emb.inv_freq", "sampling_eps_min", "sampling_eps_max"}


def published_name(name: str) -> str:
    """Our parameter name -> the authors' tensor name: `layers.3.norm1.weight` -> `backbone.blocks.3.norm1.weight`."""
    if name.startswith("layers."):
        name = "blocks." + name.removeprefix("layers.")
    return "backbone." + name


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on CPU, with a clear error if it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise BD3LMError(f"{path} is missing; a model folder needs config.json and model.safetensors.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise BD3LMError(f"{path} is not a readable safetensors file ({err}); download the model again.") from None


def load_weights(model: BD3LM, path: Path) -> None:
    """Fill `model` from a published-layout file, after checking every name and shape."""
    tensors = read_state_dict(path)
    ours = {published_name(name): name for name in model.state_dict()}
    expected = {published_name(name): p.shape for name, p in model.state_dict().items()}
    check_tensors(path, tensors, expected, OPTIONAL)
    model.load_state_dict({ours[name]: tensors[name] for name in expected})


def check_tensors(
    path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Size], optional: set[str]
) -> None:
    """Raise one BD3LMError naming every missing, unexpected or mis-shaped tensor of the file at `path`.

    `expected` maps each name the network needs to its shape; names in
    `optional` may be in the file and are then ignored.
    """
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected) - optional)
    misshaped = [
        f"{name} {tuple(tensors[name].shape)} (expected {tuple(shape)})"
        for name, shape in expected.items()
        if name in tensors and tensors[name].shape != shape
    ]
    if missing:
        problems.append("missing: " + _short_list(missing))
    if unexpected:
        problems.append("unexpected: " + _short_list(unexpected))
    if misshaped:
        problems.append("wrong shape: " + _short_list(misshaped))
    if problems:
        raise BD3LMError(
            f"{path} does not match its config.json ({'; '.join(problems)}); "
            "the weights and config.json must come from the same checkpoint."
        )


def save_weights(model: BD3LM, path: Path, dtype: torch.dtype | None = None) -> None:
    """Write the weights the way the authors publish them (optionally cast, e.g. to float16 to ship)."""
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[published_name(name)] = t.contiguous()
    save_file(tensors, str(path), metadata={"format": "pt"})


def _short_list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
