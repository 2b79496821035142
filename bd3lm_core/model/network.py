"""The BD3-LM network: a diffusion transformer (DiT).

A stack of pre-norm transformer layers whose layer norms are modulated by a
conditioning vector (adaLN), with rotary position embeddings in attention.
Module and parameter names follow the authors' checkpoints (`checkpoints.py`
maps the few that differ), so a published `model.safetensors` loads as it is.

One `forward` serves every use; callers differ only in what they pass:
- training: tokens `[x_t ; x_0]`, positions `0..n-1` twice, the training mask;
- full-recompute sampling: the whole prefix and the sampling mask;
- cached sampling: only the new tokens, the `CacheSpan` of a KV cache, and the sampling mask
  over the cached key positions, trimmed to the keys some token may not see (`attend`; no mask
  when every key is visible).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import BD3LMError
from .config import BD3LMConfig
from .denoiser import Denoiser
from .masks import training_mask

if TYPE_CHECKING:  # the cache belongs to sampling; the network only writes to and reads from it
    from ..sampling.kv_cache import CacheSpan

Modulation = tuple[torch.Tensor | None, ...]


class LayerNorm(nn.Module):
    """Layer norm without bias, computed in float32 (as the authors do)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), (x.shape[-1],)) * self.weight.float()
        return y.to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor | None) -> torch.Tensor:
    """adaLN: shift and scale the normalised activations (nothing without adaLN)."""
    return x if shift is None else x * (1 + scale) + shift


def gated(x: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    return x if gate is None else gate * x


class SigmaEmbedding(nn.Module):
    """Noise level -> conditioning vector: sinusoidal features, then a small MLP."""

    FREQ_DIM = 256

    def __init__(self, cond_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.FREQ_DIM, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = self.FREQ_DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half)
        angles = sigma.float()[:, None] * freqs[None, :]  # [B, 128]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # [B, 256]
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class Rotary(nn.Module):
    """Rotary position embedding ("rotate half" convention), angles cached per position.

    The table is computed in float64 and grows on demand, so positions far
    past the training context (long generations) keep exact angles.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        # On the CPU even inside `torch.device("meta")` (the shape check): the angles are computed, never loaded,
        # and a meta arange would pull in torch's symbolic-shape machinery, half a second of import.
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device="cpu") / head_dim))
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self._inv_freq64 = inv_freq
        self._cos = self._sin = torch.empty(0)

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin `[len(positions), head_dim]` for the given absolute positions (see `apply_rotary`)."""
        needed = int(positions.max()) + 1
        if self._cos.shape[0] < needed or self._cos.device != positions.device:
            size = max(needed, 2 * self._cos.shape[0])
            angles = torch.arange(size, dtype=torch.float64)[:, None] * self._inv_freq64[None, :]  # [size, hd/2]
            self._cos = torch.cat([angles.cos(), angles.cos()], dim=-1).float().to(positions.device)  # [size, hd]
            self._sin = torch.cat([-angles.sin(), angles.sin()], dim=-1).float().to(positions.device)
        return self._cos[positions], self._sin[positions]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x [B, H, S, hd]` by the angles of its S positions ("rotate half" convention).

    Element i and element i + hd/2 form a pair turned by angle a_i:
    (x_i cos - x_j sin, x_j cos + x_i sin). That is x * cos + (x with its
    halves swapped) * sin, with the minus folded into the first half of the
    `sin` table: three operations where the textbook form takes five.
    """
    xf = x.float()
    half = x.shape[-1] // 2
    swapped = torch.cat([xf[..., half:], xf[..., :half]], dim=-1)
    return torch.addcmul(xf * cos, swapped, sin).to(x.dtype)


FEW_QUERIES = 256  # query rows per key head up to which explicit products beat SDPA's kernel (benchmarks/README.md)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of queries `[B, H, S, hd]` over keys and values `[B, H, K, hd]`.

    `mask [S, K']` (True: may attend) covers the last K' <= K keys; every
    query sees the keys before them (`masks.trim_visible` makes such a mask).
    A sampling step sees its whole cache, so its mask, when it has one, is
    only as wide as the blocks it writes.

    A denoising step's few query rows take explicit products: on a CPU,
    SDPA's tiled kernel, made for many rows, is slower there. A prompt's or
    a training batch's many rows take SDPA, which never holds every score
    at once. So do queries over a bfloat16 cache, under float32 activations
    (int8 weights on a CPU with AMX): there SDPA's kernel is as fast at a
    step's rows, and the explicit products' speed in bfloat16 depends on the
    CPU.
    """
    if q.shape[-2] <= FEW_QUERIES and k.dtype == q.dtype:
        return attend_explicit(q, k, v, mask)
    if mask is not None and mask.shape[-1] < k.shape[-2]:
        mask = F.pad(mask, (k.shape[-2] - mask.shape[-1], 0), value=True)  # SDPA takes a mask over every key
    # a bfloat16 cache under float32 activations (int8 weights, `Denoiser.cache_dtype`) takes SDPA in bfloat16
    return F.scaled_dot_product_attention(q.to(k.dtype), k, v, attn_mask=mask).to(q.dtype)


def attend_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """scaled_dot_product_attention as three plain steps: scores, softmax, weighted values.

    It scales the queries rather than the keys, so cached keys are only
    read, never copied.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, H, S, K]
    if mask is not None:
        scores[..., scores.shape[-1] - mask.shape[-1]:].masked_fill_(~mask, -math.inf)  # the last K' keys
    return scores.softmax(dim=-1) @ v  # [B, H, S, hd]


class Layer(nn.Module):
    """One transformer layer: adaLN-modulated attention, then an adaLN-modulated MLP, each gated."""

    def __init__(self, config: BD3LMConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.n_heads = config.n_heads
        self.dropout = config.dropout
        self.norm1 = LayerNorm(d)
        self.attn_qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm2 = LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))
        if config.adaln:
            self.adaLN_modulation = nn.Linear(config.cond_dim, 6 * d)

    def modulation(self, c: torch.Tensor | None) -> Modulation:
        """(shift1, scale1, gate1, shift2, scale2, gate2), each `[B, 1, d]`; Nones without adaLN."""
        if c is None:
            return (None,) * 6
        return self.adaLN_modulation(c)[:, None, :].chunk(6, dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        mod: Modulation,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cache: CacheSpan | None,
        layer: int,
    ) -> torch.Tensor:
        B, S, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = mod
        h = modulate(self.norm1(x), shift1, scale1)
        qkv = self.attn_qkv(h).view(B, S, 3, self.n_heads, d // self.n_heads)  # [B, S, 3, H, hd]
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, S, hd]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, K, hd]: every key this forward may see
        a = attend(q, k, v, attn_mask)
        a = self.attn_out(a.transpose(1, 2).reshape(B, S, d))  # heads back together: [B, S, d]
        x = x + gated(F.dropout(a, self.dropout, self.training), gate1)
        m = self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x + gated(F.dropout(m, self.dropout, self.training), gate2)


class EmbeddingTable(nn.Module):
    """Holds the token embedding under the authors' name, `vocab_embed.embedding`."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding[tokens]


class OutputLayer(nn.Module):
    def __init__(self, config: BD3LMConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.norm_final = LayerNorm(d)
        self.linear = nn.Linear(d, config.vocab_size)
        if config.adaln:
            self.adaLN_modulation = nn.Linear(config.cond_dim, 2 * d)

    def modulation(self, c: torch.Tensor | None) -> Modulation:
        if c is None:
            return (None, None)
        return self.adaLN_modulation(c)[:, None, :].chunk(2, dim=-1)

    def forward(self, x: torch.Tensor, mod: Modulation) -> torch.Tensor:
        return self.linear(modulate(self.norm_final(x), *mod))


class BD3LM(Denoiser):
    def __init__(self, config: BD3LMConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_embed = EmbeddingTable(config.vocab_size, config.hidden_dim)
        if config.adaln:  # as in the authors' model: no conditioning at all without adaLN
            self.sigma_map = SigmaEmbedding(config.cond_dim)
        self.rotary_emb = Rotary(config.head_dim)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.n_layers))
        self.output_layer = OutputLayer(config)

    # --- the backbone contract (denoiser.py) ---
    @property
    def kv_layout(self) -> tuple[int, int, int]:
        return self.config.n_layers, self.config.n_heads, self.config.head_dim

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.vocab_embed.embedding

    @torch.no_grad()
    def run_constants(self) -> list[Modulation]:
        """The adaLN values: constant without time conditioning, one row that broadcasts over the batch."""
        if self.config.time_conditioning:
            raise BD3LMError("time-conditioned checkpoints are not supported by the sampler.")
        return self.modulations(None)

    def block_logits(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cache: CacheSpan | None,
        rows: torch.Tensor,
        constants: Any = None,
    ) -> torch.Tensor | None:
        return self.forward(tokens, positions, attn_mask, mods=constants, cache=cache, out_rows=rows)

    def modulations(self, sigma: torch.Tensor | None, batch: int = 1) -> list[Modulation]:
        """Every layer's adaLN shifts, scales and gates for noise level `sigma [B]`, the output layer's last.

        Without time conditioning (every published model) sigma is 0 and the
        result is constant: samplers compute it once per run and pass it in.
        """
        c = None
        if self.config.adaln:
            if sigma is None or not self.config.time_conditioning:
                sigma = torch.zeros(batch, device=self.device)
            c = F.silu(self.sigma_map(sigma.to(self.device)))  # [B, cond_dim]
        return [layer.modulation(c) for layer in self.layers] + [self.output_layer.modulation(c)]

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        *,
        sigma: torch.Tensor | None = None,
        mods: list[Modulation] | None = None,
        cache: CacheSpan | None = None,
        out_rows: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Raw logits `[B, rows, V]` of the tokens `[B, S]` at `positions [S]`.

        `out_rows` picks the rows that need logits (all when None); an empty
        selection skips the output layer and returns None, which is how a
        finished block is committed to the cache without computing logits.
        """
        if mods is None:
            mods = self.modulations(sigma, batch=tokens.shape[0])
        cos, sin = self.rotary_emb.tables(positions)  # [S, hd] each
        x = self.vocab_embed(tokens)  # [B, S, d]
        for i, layer in enumerate(self.layers):
            x = layer(x, mods[i], cos, sin, attn_mask, cache, i)
        if out_rows is not None:
            if out_rows.numel() == 0:
                return None
            x = x[:, out_rows]
        return self.output_layer(x, mods[-1]).float()

    def forward_train(self, xt: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Raw logits `[B, n, V]` for the noisy half of one forward over `[x_t ; x_0]`."""
        n = xt.shape[1]
        positions = torch.arange(n, device=xt.device).repeat(2)  # both halves at positions 0..n-1
        mask = training_mask(n, self.config.block_size, device=xt.device)
        logits_rows = torch.arange(n, device=xt.device)
        return self.forward(torch.cat([xt, x0], dim=1), positions, mask, sigma=sigma, out_rows=logits_rows)
