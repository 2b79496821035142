"""Reading and writing `model.safetensors` in the authors' published layout.

Published files name every tensor `backbone.<module path>`, call the layers
`blocks`, and may carry buffers we do not need (`backbone.rotary_emb.inv_freq`,
`sampling_eps_min`, `sampling_eps_max`). MDLM checkpoints
(`kuleshov-group/mdlm-owt`) name their tensors the same way: their model
class keeps the same network under `backbone` and saves
`backbone.rotary_emb.inv_freq`. `config.published_tensor_name` maps our
module paths to theirs (config.py holds every translation of the authors'
names). Everything else must match the network
exactly: a missing, unexpected or mis-shaped tensor means the file belongs to
another model, and the user is told which tensors are wrong in one message.

Nothing is allocated before the file's header (names, dtypes and shapes, read
without the data) agrees with config.json: a config of a few bytes could
otherwise ask for a network of any size. The header is first checked against
the sizes that decide the network's size (layers, width, vocabulary,
conditioning), then against every shape of the network built on the `meta`
device (which allocates nothing); only then is the network built and filled.
Weights must be floats (float64 is cast), and NaN or infinite ones are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..errors import BD3LMError
from ..files import check_regular, write_atomically
from .config import BD3LMConfig, published_key, published_tensor_name
from .network import BD3LM, SigmaEmbedding

OPTIONAL = {"backbone.rotary_emb.inv_freq", "sampling_eps_min", "sampling_eps_max"}
# safetensors' names of the dtypes a weight may have; float64 is cast when loaded
WEIGHT_DTYPES = ("F32", "F16", "BF16", "F64")

Shape = tuple[int, ...]
Header = dict[str, tuple[str, Shape]]  # tensor name -> (dtype, shape)


LAYER_NAME = re.compile(re.escape(published_tensor_name("layers.")) + r"(\d+)\.")


def read_header(path: Path) -> Header:
    """Names, dtypes and shapes of a safetensors file's tensors, read without the data."""
    path = Path(path)
    try:
        check_regular(path, what="model.safetensors")
        with safe_open(str(path), framework="pt") as f:
            return {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}
    except FileNotFoundError:
        raise BD3LMError(f"{path} is missing; a model folder needs config.json and model.safetensors.") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise BD3LMError(f"{path} is not a readable safetensors file ({err}); download the model again.") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on CPU, with a clear error if it is unreadable."""
    read_header(path)  # a missing file, a pipe or a device is refused before it is opened for reading
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise BD3LMError(f"{path} is not a readable safetensors file ({err}); download the model again.") from None


def build_network(config: BD3LMConfig, path: Path) -> BD3LM:
    """The network of `config` filled from a published-layout file, after checking every name, shape and dtype."""
    header = read_header(path)
    _check_sizes(config, header, path)
    with torch.device("meta"):  # shapes only: nothing is allocated
        _check_header(path, header, BD3LM(config))
    model = BD3LM(config)
    _fill(model, path)
    return model


def load_weights(model: BD3LM, path: Path) -> None:
    """Fill an existing `model` from a published-layout file, after checking every name, shape and dtype."""
    _check_header(path, read_header(path), model)
    _fill(model, path)


def check_tensors(path: Path, shapes: Mapping[str, Shape], expected: Mapping[str, Shape], optional: set[str]) -> None:
    """Raise one BD3LMError naming every missing, unexpected or mis-shaped tensor of the file at `path`.

    `shapes` are the file's, `expected` maps each name the network needs to
    its shape; names in `optional` may be in the file and are then ignored.
    """
    problems = []
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected) - optional)
    misshaped = [
        f"{name} {tuple(shapes[name])} (expected {tuple(shape)})"
        for name, shape in expected.items()
        if name in shapes and tuple(shapes[name]) != tuple(shape)
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


def _check_sizes(config: BD3LMConfig, header: Header, path: Path) -> None:
    """The sizes that decide how large the network is, against the header, before the network is built at all."""
    found = sorted({int(m[1]) for name in header if (m := LAYER_NAME.match(name))})
    problems = []
    if found != list(range(config.n_layers)):
        problems.append(f"{published_key('n_layers')} {config.n_layers} but the file has {len(found)} layers")
    embedding = header.get(published_tensor_name("vocab_embed.embedding"), ("", None))[1]
    if embedding != (config.vocab_size, config.hidden_dim):
        problems.append(
            f"vocab_size x hidden_dim {config.vocab_size} x {config.hidden_dim} but the embedding is {embedding}"
        )
    if config.adaln:
        sigma = header.get(published_tensor_name("sigma_map.mlp.0.weight"), ("", None))[1]
        if sigma != (config.cond_dim, SigmaEmbedding.FREQ_DIM):
            problems.append(f"cond_dim {config.cond_dim} but the conditioning layer is {sigma}")
    if problems:
        raise BD3LMError(
            f"{path} does not match its config.json ({'; '.join(problems)}); "
            "the weights and config.json must come from the same checkpoint."
        )


def _check_header(path: Path, header: Header, model: BD3LM) -> None:
    """Every tensor `model` needs is in the header, with its shape and a float dtype."""
    expected = {published_tensor_name(name): tuple(t.shape) for name, t in model.state_dict().items()}
    check_tensors(path, {name: shape for name, (_, shape) in header.items()}, expected, OPTIONAL)
    wrong_type = [f"{name} {header[name][0]}" for name in expected if header[name][0] not in WEIGHT_DTYPES]
    if wrong_type:
        raise BD3LMError(
            f"{path} stores weights in a type that is not a float ({_short_list(wrong_type)}); "
            "BD3-LM weights are float32, float16 or bfloat16. Use the checkpoint's own file."
        )


def _fill(model: BD3LM, path: Path) -> None:
    """Load the (checked) tensors into `model`, refusing NaN and infinite weights."""
    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        for name in model.state_dict():
            tensors[name] = tensor = f.get_tensor(published_tensor_name(name))
            if not bool(torch.isfinite(tensor).all()):
                raise BD3LMError(
                    f"{path}: {published_tensor_name(name)} holds NaN or infinite values, so the model cannot compute anything; "
                    "the file is damaged or comes from a run that diverged. Download or convert the model again."
                )
    model.load_state_dict(tensors)


def save_weights(model: BD3LM, path: Path, dtype: torch.dtype | None = None) -> None:
    """Write the weights the way the authors publish them (optionally cast, e.g. to float16 to ship), atomically."""
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            cast = t.to(dtype)
            if not bool(torch.isfinite(cast).all()) and bool(torch.isfinite(t).all()):
                raise BD3LMError(
                    f"{published_tensor_name(name)} holds values up to {t.abs().max().item():.3g}, beyond what {dtype} can "
                    "hold; keep float32 or convert to bfloat16."
                )
            t = cast
        tensors[published_tensor_name(name)] = t.contiguous()
    write_atomically(Path(path), save(tensors, metadata={"format": "pt"}))


def _short_list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
