"""The model's hyper-parameters, read from and written to `config.json`.

The file is the one the authors publish next to each checkpoint. We read the
keys the network needs, give the documented defaults to the ones the
published files leave out (`adaln`, `causal`, `dropout`) and ignore the rest
(`auto_map`, `transformers_version`, ...), so that a published folder loads
unchanged.

The authors call a transformer layer a "block" (`n_blocks`); here a block is
always a block of tokens, and layers are layers. This file is the one place
that translates: `n_blocks` in the file is `n_layers` in the code.

MDLM checkpoints (`model_type: "mdlm"`, Sahoo et al. 2024, the BD3-LM paper's
baseline) are the same network: one block over the whole context, adaLN on.
Their config.json has the BD3-LM keys but no `block_size`, which is then
`model_length`. Only the sampler treats them differently (`sampling/context.py`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import BD3LMError

PUBLISHED_NAMES = {"n_blocks": "n_layers"}  # key in config.json -> field here
REQUIRED_KEYS = ("block_size", "cond_dim", "hidden_dim", "model_length", "n_blocks", "n_heads", "vocab_size")
MODEL_TYPES = ("bd3lm", "mdlm")  # `model_type` in config.json; absent means bd3lm


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
        if self.model_type not in MODEL_TYPES:
            raise BD3LMError(
                f"config.json: model_type {self.model_type!r} is neither a BD3-LM nor an MDLM; "
                "use a BD3-LM or MDLM checkpoint."
            )
        if self.is_mdlm and self.block_size != self.model_length:
            raise BD3LMError(
                f"config.json: an MDLM is one block over its whole context, so block_size {self.block_size} "
                f"must equal model_length {self.model_length} (or be left out)."
            )
        if self.hidden_dim % self.n_heads or (self.hidden_dim // self.n_heads) % 2:
            raise BD3LMError(
                f"config.json: hidden_dim {self.hidden_dim} must split into {self.n_heads} heads of even size; "
                "check that the file belongs to a BD3-LM checkpoint."
            )
        if self.block_size < 1 or self.model_length < 1 or self.model_length % self.block_size:
            raise BD3LMError(
                f"config.json: model_length {self.model_length} must be a positive multiple of "
                f"block_size {self.block_size}."
            )
        if self.causal:
            raise BD3LMError("config.json: causal=true (a plain autoregressive backbone) is not a BD3-LM; use block_size 1 instead.")

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
        except TypeError as err:  # a value of the wrong kind, e.g. a string for an int
            raise BD3LMError(f"{where} has a value of the wrong type ({err}); use the checkpoint's own config.json.") from None

    @classmethod
    def load(cls, path: Path) -> BD3LMConfig:
        return cls.from_dict(read_config_json(path), where=str(path))

    def to_dict(self) -> dict:
        """The published key set, so our own checkpoints look like the authors' (an MDLM's keeps its own layout)."""
        published = {here: there for there, here in PUBLISHED_NAMES.items()}
        out = {published.get(k, k): v for k, v in asdict(self).items()}
        if self.is_mdlm:
            del out["block_size"]  # MDLM configs have none: it is the whole context
            out.update(architectures=["MDLM"])
        else:
            out.update(architectures=["BD3LM"], attn_backend="sdpa")
        return out

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def missing_keys(raw: dict) -> list[str]:
    """The required keys a config.json dict lacks (an MDLM's needs no `block_size`); empty for a model we load."""
    needed = REQUIRED_KEYS if raw.get("model_type") != "mdlm" else tuple(k for k in REQUIRED_KEYS if k != "block_size")
    return [k for k in needed if k not in raw]


def read_config_json(path: Path) -> dict:
    """A model folder's config.json as a dict, with one clear error if it is missing or not a JSON object."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BD3LMError(f"{path} is missing; a model folder needs config.json and model.safetensors.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BD3LMError(f"{path} is not valid JSON ({err}); download the model again.") from None
    if not isinstance(raw, dict):
        raise BD3LMError(f"{path} is not a JSON object; download the model again.")
    return raw
