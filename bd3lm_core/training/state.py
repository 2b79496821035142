"""The state a run continues from, stored without pickle.

`--resume` continues exactly, so the state holds everything that moves: the
weights, their EMA, AdamW's moments, both random generators, the step, the
noise window and the best held-out score so far. A pickle would store all of
it in one call, but loading a pickle runs whatever code it names, and run
folders get shared. So the tensors (random states as uint8 tensors) go into
a safetensors file, which holds nothing but numbers, and the rest into JSON
in that file's header (step, window, best, the settings, AdamW's parameter
groups). Nothing in the file is executed when it is read, and every value in
it is checked like a flag before it is used. It is one file, replaced
atomically, so the tensors and the numbers beside them always come from the
same step.

A run trained by a group of processes (torchrun) holds one state, written by
rank 0, with the number of processes: the batch of a step is split across
them, so the run continues exactly only with as many. Rank 0 alone reads the
file and hands the others its bytes (`state_bytes`, `state_from_bytes`), so
only rank 0's machine needs the run folder.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save

from .. import checks
from ..errors import BD3LMError, one_line
from ..files import check_regular, write_atomically
from .settings import TrainSettings

STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"  # a pickle, written by earlier versions: refused, never loaded
_KEY = "bd3lm_train_state"  # the header entry holding the JSON part
_FORMAT = 1


@dataclass(frozen=True)
class RunState:
    settings: TrainSettings
    step: int
    window: tuple[float, float]
    best: float  # math.inf before the first evaluation
    param_groups: list[dict]  # AdamW's, as JSON gave them back
    tensors: dict[str, torch.Tensor]  # model.*, ema.*, optimizer.<param index>.<key>, rng.generator, rng.torch
    path: Path
    processes: int = 1  # how many processes trained it (1 in states written before groups existed)


def save_state(
    path: Path,
    settings: TrainSettings,
    step: int,
    window: tuple[float, float],
    best: float,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    processes: int = 1,
) -> None:
    """Write everything `--resume` needs into one safetensors file, atomically."""
    opt = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors |= {f"optimizer.{i}.{k}": torch.as_tensor(v) for i, values in opt["state"].items() for k, v in values.items()}
    tensors |= {"rng.generator": generator.get_state(), "rng.torch": torch.get_rng_state()}
    write_atomically(path, _encode(settings, step, window, best, opt["param_groups"], tensors, processes))


def state_bytes(state: RunState) -> bytes:
    """`state` as the bytes of a state file: what rank 0 hands the other processes of a group."""
    return _encode(state.settings, state.step, state.window, state.best, state.param_groups, state.tensors, state.processes)


def state_from_bytes(data: bytes, path: Path) -> RunState:
    """The state in `state_bytes`' bytes (read from `path` by rank 0), checked as `read_state` checks a file."""
    try:
        (length,) = struct.unpack("<Q", data[:8])  # a safetensors file opens with its JSON header's length
        meta = json.loads(json.loads(data[8 : 8 + length])["__metadata__"][_KEY])
        tensors = load(data)
    except (SafetensorError, ValueError, KeyError, TypeError, struct.error, RecursionError) as err:
        raise _damaged(path, f"unreadable: {one_line(err)}") from None
    return _checked(meta, tensors, path)


def _encode(
    settings: TrainSettings,
    step: int,
    window: tuple[float, float],
    best: float,
    param_groups: list[dict],
    tensors: dict[str, torch.Tensor],
    processes: int,
) -> bytes:
    meta = {
        "format": _FORMAT, "settings": asdict(settings), "step": step, "window": list(window),
        "best": best if math.isfinite(best) else None, "param_groups": param_groups, "processes": processes,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return save(tensors, metadata={_KEY: json.dumps(meta)})


def read_state(folder: Path) -> RunState:
    """The state saved in a run folder, its JSON part checked; the tensors are checked by `restore`."""
    path = Path(folder) / STATE_FILE
    legacy = Path(folder) / LEGACY_STATE_FILE
    if not path.exists() and legacy.exists():
        raise BD3LMError(
            f"{legacy} was saved by an older bd3lm as a pickle, which bd3lm no longer loads because loading a "
            f"pickle can run any code in it; keep the weights with `bd3lm train --init-from {folder} "
            f"--tokenizer {Path(folder) / 'tokenizer.json'} --out NEW_FOLDER` and the model flags of its config.json "
            "(the optimizer starts afresh), or finish the run with the older version."
        )
    try:
        check_regular(path, what="training state")
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_KEY])
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise BD3LMError(f"nothing to resume: {path} does not exist. Start without --resume.") from None
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, RecursionError) as err:
        raise _damaged(path, f"unreadable: {one_line(err)}") from None
    return _checked(meta, tensors, path)


def _checked(meta: object, tensors: dict[str, torch.Tensor], path: Path) -> RunState:
    """The JSON part of a state, every value checked like a flag."""
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise _damaged(path, "not a state this version writes")
    settings = TrainSettings.from_saved(meta.get("settings"), str(path))
    try:
        step = checks.whole(meta.get("step"), "step", 0)
        window = meta.get("window")
        if not (isinstance(window, list) and len(window) == 2):
            raise BD3LMError("the noise window must be two numbers.")
        low, high = (checks.number(t, "the noise window", 0.0, 1.0) for t in window)
        best = math.inf if meta.get("best") is None else checks.number(meta["best"], "best")
        groups = meta.get("param_groups")
        if not (isinstance(groups, list) and all(isinstance(g, dict) for g in groups)):
            raise BD3LMError("the optimizer's parameter groups are missing.")
        processes = checks.whole(meta.get("processes", 1), "processes", 1)
    except BD3LMError as err:
        raise _damaged(path, str(err).rstrip(".")) from None
    return RunState(settings, step, (low, high), best, groups, tensors, path, processes)


def restore(
    state: RunState,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> None:
    """Put the saved tensors into the freshly built run, after checking that every one fits where it goes."""
    saved = dict(state.tensors)
    for prefix, module in (("model.", model), ("ema.", ema)):
        module.load_state_dict(_take(saved, prefix, module.state_dict(), state.path))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name in [n for n in saved if n.startswith("optimizer.")]:
        index, _, key = name.removeprefix("optimizer.").partition(".")
        if not index.isdigit() or int(index) >= len(params) or not key:
            raise _damaged(state.path, f"unexpected tensor {name}")
        tensor = saved.pop(name)
        if tensor.shape not in (torch.Size([]), params[int(index)].shape):
            raise _damaged(state.path, f"{name} has shape {tuple(tensor.shape)}")
        moments.setdefault(int(index), {})[key] = tensor
    current = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": moments, "param_groups": _groups_like(current, state.param_groups, state.path)})
    rng = {"rng.generator": generator.get_state(), "rng.torch": torch.get_rng_state()}
    for name, now in rng.items():
        value = saved.pop(name, None)
        if value is None or value.dtype != torch.uint8 or value.shape != now.shape:
            raise _damaged(state.path, f"{name} is missing or not a random state")
    if saved:
        raise _damaged(state.path, f"unexpected tensors {', '.join(sorted(saved)[:3])}")
    generator.set_state(state.tensors["rng.generator"])
    torch.set_rng_state(state.tensors["rng.torch"])


def _take(saved: dict[str, torch.Tensor], prefix: str, expected: dict[str, torch.Tensor], path: Path) -> dict:
    """Remove `prefix`'s tensors from `saved`, checked against the names, shapes and dtypes of `expected`."""
    ours = {name.removeprefix(prefix): saved.pop(name) for name in [n for n in saved if n.startswith(prefix)]}
    if set(ours) != set(expected):
        wrong = sorted(set(ours) ^ set(expected))[:3]
        raise _damaged(path, f"its {prefix.rstrip('.')} weights do not match the settings ({', '.join(wrong)})")
    for name, tensor in ours.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise _damaged(path, f"{prefix}{name} is {tensor.dtype} {tuple(tensor.shape)}")
    return ours


def _groups_like(current: list[dict], saved: list[dict], path: Path) -> list[dict]:
    """The saved parameter groups, each value checked against (and typed like) the optimizer's own."""
    if len(saved) != len(current) or any(set(s) != set(c) or s["params"] != c["params"] for s, c in zip(saved, current)):
        raise _damaged(path, "its optimizer does not match the settings")
    return [{key: _like(c[key], s[key], key, path) for key in c} for s, c in zip(saved, current)]


def _like(current: object, saved: object, key: str, path: Path) -> object:
    if isinstance(current, tuple) and isinstance(saved, list) and len(saved) == len(current):
        return tuple(_like(c, s, key, path) for c, s in zip(current, saved))
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        try:
            return checks.number(saved, key)
        except BD3LMError as err:
            raise _damaged(path, f"optimizer {str(err).rstrip('.')}") from None
    if isinstance(current, list) or (type(saved) is type(current) and saved == current):
        return saved  # `params`: compared above; switches and None: the same as the optimizer built from the settings
    raise _damaged(path, f"optimizer setting {key} is {saved!r}")


def _damaged(path: Path, detail: str) -> BD3LMError:
    return BD3LMError(
        f"{path} is damaged or was not written by bd3lm ({detail}); start a new run, "
        f"or keep the weights with --init-from {path.parent} --tokenizer {path.parent / 'tokenizer.json'} and a new --out."
    )
