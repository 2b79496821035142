"""The model's hyper-parameters, read from and written to `config.json`.

The file is the one the authors publish next to each checkpoint. We read the
keys the network needs, give the documented defaults to the ones the
published files leave out (`adaln`, `causal`, `dropout`) and ignore the rest
(`auto_map`, `transformers_version`, ...), so that a published folder loads
unchanged.

The authors call a transformer layer a "block" (`n_blocks`); here a block is
always a block of tokens, and layers are layers. This file is the one place
that translates between their names and ours: `n_blocks` in config.json is
`n_layers` in the code (`published_key`), and the tensor `backbone.blocks.3.*`
in model.safetensors is our `layers.3.*` (`published_tensor_name`).

MDLM checkpoints (`model_type: "mdlm"`, Sahoo et al. 2024, the BD3-LM paper's
baseline) are the same network: one block over the whole context, adaLN on.
Their config.json has the BD3-LM keys but no `block_size`, which is then
`model_length`. Only the sampler treats them differently (`sampling/context.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .. import checks
from ..errors import BD3LMError, one_line
from ..files import read_limited, write_atomically

PUBLISHED_NAMES = {"n_blocks": "n_layers"}  # key in config.json -> field here
TENSOR_PREFIX = "backbone."  # every published tensor name starts so: their model class keeps the network there
PUBLISHED_MODULES = {"layers": "blocks"}  # our module -> theirs, as the first part of a parameter name
REQUIRED_KEYS = ("block_size", "cond_dim", "hidden_dim", "model_length", "n_blocks", "n_heads", "vocab_size")
MODEL_TYPES = ("bd3lm", "mdlm")  # `model_type` in config.json; absent means bd3lm
MAX_CONFIG_BYTES = 1_000_000  # published files are ~1 kB; anything near this is not a config

# Ranges of the whole-number fields. The published models are at 1024 positions,
# 12 layers, hidden 768 and 50258 ids; the limits leave wide room above them and
# stop a few bytes of JSON from asking for memory no machine has (the KV cache
# and the attention masks grow with model_length, which no tensor shape checks).
MAX_CONTEXT = 16384
WHOLE_RANGES = {
    "block_size": (1, MAX_CONTEXT), "cond_dim": (1, 65536), "hidden_dim": (2, 65536), "model_length": (1, MAX_CONTEXT),
    "n_layers": (1, 1024), "n_heads": (1, 4096), "vocab_size": (2, 2**22),
}
SWITCHES = ("adaln", "causal", "time_conditioning", "cross_attn")
FRACTIONS = ("dropout", "sampling_eps_min", "sampling_eps_max")  # in [0, 1]; dropout below 1


def check_model_values(values: Mapping[str, object], label: Callable[[str], str]) -> None:
    """Check the model hyper-parameters present in `values`, one by one and then together.

    `label` names a field the way the user wrote it (a key of config.json, or a flag of `bd3lm train`).
    """
    if "model_type" in values and values["model_type"] not in MODEL_TYPES:
        raise BD3LMError(
            f"{label('model_type')} {values['model_type']!r} is neither a BD3-LM nor an MDLM; use a BD3-LM or MDLM checkpoint."
        )
    for name, (low, high) in WHOLE_RANGES.items():
        if name in values:
            checks.whole(values[name], label(name), low, high)
    for name in SWITCHES:
        if name in values:
            checks.boolean(values[name], label(name))
    for name in FRACTIONS:
        if name in values:
            checks.number(values[name], label(name), 0.0, 1.0, open_high=name == "dropout")
    if "hidden_dim" in values and "n_heads" in values:
        d, h = values["hidden_dim"], values["n_heads"]
        if d % h or (d // h) % 2:
            raise BD3LMError(
                f"{label('hidden_dim')} {d} must split into {label('n_heads')} {h} heads of even size "
                "(hidden_dim / n_heads even)."
            )
    if "model_length" in values and "block_size" in values:
        n, block = values["model_length"], values["block_size"]
        if values.get("model_type") == "mdlm" and block != n:
            raise BD3LMError(
                f"an MDLM is one block over its whole context, so {label('block_size')} {block} must equal "
                f"{label('model_length')} {n} (or be left out)."
            )
        if n % block:
            raise BD3LMError(f"{label('model_length')} {n} must be a multiple of {label('block_size')} {block}.")
    if values.get("sampling_eps_min", 0.0) >= values.get("sampling_eps_max", 1.0):
        raise BD3LMError(f"{label('sampling_eps_min')} must be below {label('sampling_eps_max')}.")
    if values.get("causal"):
        raise BD3LMError("causal=true (a plain autoregressive backbone) is not a BD3-LM; use block_size 1 instead.")


def published_key(name: str) -> str:
    """A field's key in config.json: `n_layers` -> `n_blocks`."""
    return {here: there for there, here in PUBLISHED_NAMES.items()}.get(name, name)


def published_tensor_name(name: str) -> str:
    """Our parameter name -> the authors' tensor name: `layers.3.norm1.weight` -> `backbone.blocks.3.norm1.weight`."""
    module, dot, rest = name.partition(".")
    return TENSOR_PREFIX + PUBLISHED_MODULES.get(module, module) + dot + rest


@dataclass(frozen=True)
class BD3LMConfig:
    block_size: int  # tokens per block (L'); 1 is autoregression, model_length is one block (MDLM)
    cond_dim: int
    hidden_dim: int
    model_length: int  # the context the model was trained on
    n_layers: int
    n_heads: int
    vocab_size: int  # includes the mask token, which is the last id
    adaln: bool = True
    causal: bool = False
    dropout: float = 0.1
    time_conditioning: bool = False
    cross_attn: bool = True
    sampling_eps_min: float = 1e-3
    sampling_eps_max: float = 0.999
    model_type: str = "bd3lm"  # "mdlm": one block over the whole context, sampled in overlapping windows

    def __post_init__(self) -> None:
        check_model_values(asdict(self), published_key)

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.n_heads

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 1

    @property
    def is_mdlm(self) -> bool:
        return self.model_type == "mdlm"

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config.json") -> BD3LMConfig:
        """The config in `raw` (config.json's keys), every value checked before anything is built from it."""
        missing = missing_keys(raw)
        if missing:
            raise BD3LMError(
                f"{where} lacks the key(s) {', '.join(missing)}; it is not a BD3-LM config. "
                "Use the config.json that came with the checkpoint."
            )
        known = {f.name for f in fields(cls)}
        values = {PUBLISHED_NAMES.get(k, k): v for k, v in raw.items()}
        if raw.get("model_type") == "mdlm":
            values.setdefault("block_size", raw["model_length"])
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except BD3LMError as err:
            raise BD3LMError(f"{where}: {err}") from None

    @classmethod
    def load(cls, path: Path) -> BD3LMConfig:
        return cls.from_dict(read_config_json(path), where=str(path))

    def to_dict(self) -> dict:
        """The published key set, so our own checkpoints look like the authors' (an MDLM's keeps its own layout)."""
        out = {published_key(k): v for k, v in asdict(self).items()}
        if self.is_mdlm:
            del out["block_size"]  # MDLM configs have none: it is the whole context
            out.update(architectures=["MDLM"])
        else:
            out.update(architectures=["BD3LM"], attn_backend="sdpa")
        return out

    def save(self, path: Path) -> None:
        write_atomically(Path(path), (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8"))


def missing_keys(raw: dict) -> list[str]:
    """The required keys a config.json dict lacks (an MDLM's needs no `block_size`); empty for a model we load."""
    needed = REQUIRED_KEYS if raw.get("model_type") != "mdlm" else tuple(k for k in REQUIRED_KEYS if k != "block_size")
    return [k for k in needed if k not in raw]


def read_config_json(path: Path) -> dict:
    """A model folder's config.json as a dict, with one clear error if it is missing, too large or not a JSON object."""
    try:
        raw = json.loads(read_limited(path, MAX_CONFIG_BYTES, "config.json").decode("utf-8"))
    except FileNotFoundError:
        raise BD3LMError(f"{path} is missing; a model folder needs config.json and model.safetensors.") from None
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, a 5000-digit number, nesting too deep
        raise BD3LMError(f"{path} is not valid JSON ({one_line(err)}); download the model again.") from None
    if not isinstance(raw, dict):
        raise BD3LMError(f"{path} is not a JSON object; download the model again.")
    return raw
