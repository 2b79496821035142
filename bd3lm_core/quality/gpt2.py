"""GPT-2, the paper's judge, in one readable file: config, network and loading of Hugging Face checkpoints.

A GPT-2 folder on the hub holds `config.json` (`model_type: gpt2`),
`model.safetensors` and `tokenizer.json`. The modules below carry the
Hugging Face names (`wte`, `h.0.attn.c_attn`, `ln_f`, ...), so a tensor's
name in the file is its parameter's name here. Two things differ between
files: `save_pretrained` prefixes every name with `transformer.` (the hub's
own files do not), and older files carry each layer's causal-mask buffers
(`h.N.attn.bias`, `h.N.attn.masked_bias`), which we ignore. The output layer
is the token embedding (`lm_head` tied to `wte`), unless the config says
`tie_word_embeddings: false`, and then `lm_head.weight` must be in the file.

Hugging Face stores linear layers as "Conv1D": the weight is [in, out] and
the layer computes x @ W + b. `Conv1D` below keeps that layout, so weights
load without transposing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..errors import BD3LMError
from ..model.checkpoints import WEIGHT_DTYPES, check_tensors, read_header, read_state_dict
from ..model.config import read_config_json

PREFIX = "transformer."  # on every name in files written by `save_pretrained`
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both are GELU with the tanh approximation
REQUIRED_KEYS = ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size")
# what a judge may be: GPT-2 XL is 1600 wide, 48 layers, 1024 positions; a judge needs 2 positions to predict one token
SIZE_RANGES = {"vocab_size": (2, 2**22), "n_positions": (2, 2**20), "n_embd": (1, 65536), "n_layer": (1, 1024),
               "n_head": (1, 4096)}
# config flags that would change the math below, with the only value it supports
SUPPORTED_FLAGS = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
}


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    n_positions: int  # the context: the most tokens one forward can see
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int  # the MLP's hidden width (4 * n_embd unless the config says otherwise)
    layer_norm_epsilon: float = 1e-5
    tie_word_embeddings: bool = True

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config.json") -> GPT2Config:
        """Read and check a Hugging Face GPT-2 config; every problem is one line naming the key."""
        if raw.get("model_type") != "gpt2":
            raise BD3LMError(f"{where} has model_type {checks.shown(raw.get('model_type'))}, not 'gpt2'; use a GPT-2 checkpoint.")
        missing = [key for key in REQUIRED_KEYS if key not in raw]
        if missing:
            raise BD3LMError(f"{where} lacks the key(s) {', '.join(missing)}; use the config.json of the checkpoint.")
        sizes = {key: checks.whole(raw[key], f"{where}: {key}", low, high) for key, (low, high) in SIZE_RANGES.items()}
        n_inner = raw.get("n_inner")
        if n_inner is not None:
            checks.whole(n_inner, f"{where}: n_inner", 1, 4 * SIZE_RANGES["n_embd"][1])
        if sizes["n_embd"] % sizes["n_head"]:
            raise BD3LMError(f"{where}: n_embd {sizes['n_embd']} does not split into {sizes['n_head']} heads.")
        activation = raw.get("activation_function", "gelu_new")
        if activation not in ACTIVATIONS:
            raise BD3LMError(f"{where}: activation_function {checks.shown(activation)} is not supported; GPT-2 uses gelu_new.")
        for key, value in SUPPORTED_FLAGS.items():
            if raw.get(key, value) is not value:
                raise BD3LMError(f"{where}: {key} = {checks.shown(raw[key])} is not supported (only {value!r}, as in GPT-2).")
        return cls(
            **sizes, n_inner=n_inner or 4 * sizes["n_embd"],
            layer_norm_epsilon=checks.number(raw.get("layer_norm_epsilon", 1e-5), f"{where}: layer_norm_epsilon",
                                             0.0, 1.0, open_low=True, open_high=True),
            tie_word_embeddings=checks.boolean(raw.get("tie_word_embeddings", True), f"{where}: tie_word_embeddings"),
        )


class Conv1D(nn.Module):
    """Hugging Face's name for a linear layer whose weight is stored [in, out]: y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.c_attn(x).split(dim, dim=-1)  # [B, S, d] each
        q, k, v = (t.view(batch, seq, self.n_head, dim // self.n_head).transpose(1, 2) for t in (q, k, v))  # [B, H, S, hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(dim // self.n_head))
        return self.c_proj(y.transpose(1, 2).reshape(batch, seq, dim))  # [B, S, d]


class MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, config.n_inner)
        self.c_proj = Conv1D(config.n_inner, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Layer(nn.Module):
    """Pre-norm transformer layer: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(Layer(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits `[B, S, V]` (float32) of `ids [B, S]`: row i is the distribution of the token after ids[:, i]."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(positions)  # [B, S, d]
        for layer in self.h:
            x = layer(x)
        x = self.ln_f(x)
        head = self.wte.weight if self.config.tie_word_embeddings else self.lm_head.weight  # [V, d]
        return F.linear(x, head).float()


def load_gpt2(folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> GPT2:
    """The GPT-2 of a Hugging Face folder, its sizes, names, shapes and dtypes checked against the file's header
    before anything is built, its values finite, in eval mode."""
    folder = Path(folder)
    config = GPT2Config.from_dict(read_config_json(folder / "config.json"), where=str(folder / "config.json"))
    path = folder / "model.safetensors"
    header = {name.removeprefix(PREFIX): kind for name, kind in read_header(path).items()}
    _check_sizes(config, header, path)
    with torch.device("meta"):  # shapes only, now that the layer count is the file's
        expected = {name: tuple(p.shape) for name, p in GPT2(config).state_dict().items()}
    optional = {f"h.{i}.attn.{buffer}" for i in range(config.n_layer) for buffer in ("bias", "masked_bias")}
    if config.tie_word_embeddings:
        optional.add("lm_head.weight")  # a copy of wte.weight when a file has it at all
    check_tensors(path, {name: shape for name, (_, shape) in header.items()}, expected, optional)
    wrong_type = sorted(name for name in expected if header[name][0] not in WEIGHT_DTYPES)
    if wrong_type:
        raise BD3LMError(f"{path} stores {wrong_type[0]} as {header[wrong_type[0]][0]}, not a float; "
                         "a judge's weights are float32, float16 or bfloat16.")
    tensors = {name.removeprefix(PREFIX): t for name, t in read_state_dict(path).items()}
    for name in expected:
        if not bool(torch.isfinite(tensors[name]).all()):
            raise BD3LMError(f"{path}: {name} holds NaN or infinite values; the judge's file is damaged.")
    model = GPT2(config)
    model.load_state_dict({name: tensors[name] for name in expected})
    return model.to(device=device, dtype=dtype).eval()


def _check_sizes(config: GPT2Config, header: dict, path: Path) -> None:
    """The sizes that decide how large the network is, against the file, before it is built at all."""
    layers = {int(name.split(".")[1]) for name in header if name.startswith("h.") and name.split(".")[1].isdigit()}
    problems = []
    if not set(range(config.n_layer)) <= layers:  # more layers than the file holds (extra ones are named below)
        problems.append(f"n_layer {config.n_layer} but the file has {len(layers)} layers")
    for name, shape in (("wte.weight", (config.vocab_size, config.n_embd)), ("wpe.weight", (config.n_positions, config.n_embd))):
        found = header.get(name, ("", None))[1]
        if found != shape:
            problems.append(f"{name} should be {shape} by config.json but the file has {found}")
    if problems:
        raise BD3LMError(f"{path} does not match its config.json ({'; '.join(problems)}); "
                         "use the config.json and weights of one checkpoint.")
