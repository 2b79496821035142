"""The model's hyper-parameters, read from and written to `config.json`.

The file is the one the authors publish next to each checkpoint. We read the
keys the network needs, give the documented defaults to the ones the
published files leave out (`adaln`, `causal`, `dropout`) and ignore the rest
(`auto_map`, `transformers_version`, ...), so that a published folder loads
unchanged.

The authors call a transformer layer a "block" (`n_blocks`); here a block is
always a block of tokens, and layers are layers. This file is the one place
that translates: `n_blocks` in the file is `n_layers` in the code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import BD3LMError

PUBLISHED_NAMES = {"n_blocks": "n_layers"}  # key in config.json -> field here
REQUIRED_KEYS = ("block_size", "cond_dim", "hidden_dim", "model_length", "n_blocks", "n_heads", "vocab_size")


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

    def __post_init__(self) -> None:
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

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config.json") -> BD3LMConfig:
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise BD3LMError(
                f"{where} lacks the key(s) {', '.join(missing)}; it is not a BD3-LM config. "
                "Use the config.json that came with the checkpoint."
            )
        known = {f.name for f in fields(cls)}
        values = {PUBLISHED_NAMES.get(k, k): v for k, v in raw.items()}
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as err:  # a value of the wrong kind, e.g. a string for an int
            raise BD3LMError(f"{where} has a value of the wrong type ({err}); use the checkpoint's own config.json.") from None

    @classmethod
    def load(cls, path: Path) -> BD3LMConfig:
        return cls.from_dict(read_config_json(path), where=str(path))

    def to_dict(self) -> dict:
        """The published key set, so our own checkpoints look like the authors'."""
        published = {here: there for there, here in PUBLISHED_NAMES.items()}
        out = {published.get(k, k): v for k, v in asdict(self).items()}
        out.update(architectures=["BD3LM"], model_type="bd3lm", attn_backend="sdpa")
        return out

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


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
