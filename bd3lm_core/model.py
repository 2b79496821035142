"""The BD3-LM network: a diffusion transformer (DiT).

A stack of pre-norm transformer blocks whose layer norms are modulated by a
conditioning vector (adaLN), with rotary position embeddings in attention.
Module and parameter names match the authors' checkpoints (`backbone.` is
stripped by the loader), so `load_state_dict` takes a published
`model.safetensors` as it is.

One `forward` serves every use; callers differ only in what they pass:
- training: tokens `[x_t ; x_0]`, positions `0..n-1` twice, `training_mask`;
- naive sampling: the whole prefix, `window_mask`;
- cached sampling: only the new tokens, a `KVCache`, and `window_mask` over
  the cached key positions (or no mask when every key is visible).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import BD3LMConfig
from .kv_cache import KVCache
from .masks import training_mask

Modulation = tuple[torch.Tensor, ...]


class LayerNorm(nn.Module):
    """Layer norm without bias, computed in float32 (as the authors do)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), (x.shape[-1],)) * self.weight.float()
        return y.to(x.dtype)


class Linear(nn.Linear):
    """nn.Linear, with a faster kernel choice for the few rows of a sampling step.

    At batch 1 a sampling forward multiplies a handful of rows by each weight
    matrix. CPU BLAS libraries handle `x @ W.T` with a tiny `x` poorly (on
    this project's 2-core AMD test machine up to 4x slower than the weight
    read that bounds it); `(W @ x.T).T` is the same product and runs at
    memory speed. Training, and forwards of many rows, keep the default path.
    """

    SMALL = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > self.SMALL or torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        flat = x.reshape(rows, -1)
        if self.weight.stride(0) == 1:  # column-major, see `store_column_major`
            y = torch.cat([F.linear(row, self.weight, self.bias) for row in flat.split(1)])
        else:
            # both copies are a few rows; the kernel is only fast when x is row-major
            y = (self.weight @ flat.contiguous().T).T.contiguous()
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*x.shape[:-1], -1)

    def store_column_major(self) -> None:
        """Keep the same weight (same values, same shape) in column-major memory.

        For one row at a time, MKL reads a column-major matrix at about 1.7x
        the speed of a row-major one on the test machine (16 vs 10 GB/s), but
        is slower for several rows; so this suits only a layer that sampling
        mostly runs on one row: the output layer, under first-hitting and
        few-step DDPM. Column-major weights are then used a row at a time.
        """
        self.weight.data = self.weight.data.T.contiguous().T


def modulate(x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor | None) -> torch.Tensor:
    return x if shift is None else x * (1 + scale) + shift


class SigmaEmbedding(nn.Module):
    """Noise level -> conditioning vector: sinusoidal features, then a small MLP."""

    FREQ_DIM = 256

    def __init__(self, cond_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(Linear(self.FREQ_DIM, cond_dim), nn.SiLU(), Linear(cond_dim, cond_dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = self.FREQ_DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half)
        angles = sigma.float()[:, None] * freqs[None, :]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class Rotary(nn.Module):
    """Rotary position embedding ("rotate half" convention), angles cached per position.

    The table is computed in float64 and grows on demand, so positions far
    past the training context (long generations) keep exact angles.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self._inv_freq64 = inv_freq
        self._cos = self._sin = torch.empty(0)

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin `[len(positions), head_dim]` for the given absolute positions."""
        needed = int(positions.max()) + 1
        if self._cos.shape[0] < needed or self._cos.device != positions.device:
            size = max(needed, 2 * self._cos.shape[0])
            angles = torch.arange(size, dtype=torch.float64)[:, None] * self._inv_freq64[None, :]
            angles = torch.cat([angles, angles], dim=-1)
            self._cos = angles.cos().float().to(positions.device)
            self._sin = angles.sin().float().to(positions.device)
        return self._cos[positions], self._sin[positions]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x [B, H, S, hd]` by the angles of its S positions."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class Block(nn.Module):
    def __init__(self, config: BD3LMConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.n_heads = config.n_heads
        self.dropout = config.dropout
        self.norm1 = LayerNorm(d)
        self.attn_qkv = Linear(d, 3 * d, bias=False)
        self.attn_out = Linear(d, d, bias=False)
        self.norm2 = LayerNorm(d)
        self.mlp = nn.Sequential(Linear(d, 4 * d), nn.GELU(approximate="tanh"), Linear(4 * d, d))
        if config.adaln:
            self.adaLN_modulation = Linear(config.cond_dim, 6 * d)

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
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, S, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = mod
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.attn_qkv(h).view(B, S, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)
            a = _attend_few(q, k, v, attn_mask)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        a = self.attn_out(a.transpose(1, 2).reshape(B, S, d))
        x = x + _gated(F.dropout(a, self.dropout, self.training), gate1)
        m = self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x + _gated(F.dropout(m, self.dropout, self.training), gate2)


def _attend_few(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of a few queries over a long cached span.

    The same as scaled_dot_product_attention, but it scales the queries
    rather than the keys, so the cached keys are only read, never copied.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1) @ v


def _gated(x: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    return x if gate is None else gate * x


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
        self.linear = Linear(d, config.vocab_size)
        if config.adaln:
            self.adaLN_modulation = Linear(config.cond_dim, 2 * d)

    def modulation(self, c: torch.Tensor | None) -> Modulation:
        if c is None:
            return (None, None)
        return self.adaLN_modulation(c)[:, None, :].chunk(2, dim=-1)

    def forward(self, x: torch.Tensor, mod: Modulation) -> torch.Tensor:
        return self.linear(modulate(self.norm_final(x), *mod))


class BD3LM(nn.Module):
    def __init__(self, config: BD3LMConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_embed = EmbeddingTable(config.vocab_size, config.hidden_dim)
        self.sigma_map = SigmaEmbedding(config.cond_dim)
        self.rotary_emb = Rotary(config.head_dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_blocks))
        self.output_layer = OutputLayer(config)

    def modulations(self, sigma: torch.Tensor | None, batch: int = 1) -> list[Modulation]:
        """Every layer's adaLN shifts, scales and gates for noise level `sigma [B]`.

        Without time conditioning (every published model) sigma is 0 and the
        result is constant: samplers compute it once per run and pass it in.
        """
        if not self.config.adaln:
            return [b.modulation(None) for b in self.blocks] + [self.output_layer.modulation(None)]
        device = self.vocab_embed.embedding.device
        if sigma is None or not self.config.time_conditioning:
            sigma = torch.zeros(batch, device=device)
        c = F.silu(self.sigma_map(sigma.to(device)))
        return [b.modulation(c) for b in self.blocks] + [self.output_layer.modulation(c)]

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        *,
        sigma: torch.Tensor | None = None,
        mods: list[Modulation] | None = None,
        cache: KVCache | None = None,
        out_rows: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Raw logits `[B, rows, V]` of the tokens at `positions`.

        `out_rows` picks the rows that need logits (all when None); an empty
        selection skips the output layer and returns None, which is how a
        finished block is committed to the cache without computing logits.
        """
        if mods is None:
            mods = self.modulations(sigma, batch=tokens.shape[0])
        cos, sin = self.rotary_emb.tables(positions)
        x = self.vocab_embed(tokens)
        for layer, block in enumerate(self.blocks):
            x = block(x, mods[layer], cos, sin, attn_mask, cache, layer)
        if out_rows is not None:
            if out_rows.numel() == 0:
                return None
            x = x[:, out_rows]
        return self.output_layer(x, mods[-1]).float()

    def forward_train(self, xt: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Raw logits `[B, n, V]` for the noisy half of one forward over `[x_t ; x_0]`."""
        n = xt.shape[1]
        positions = torch.arange(n, device=xt.device).repeat(2)
        mask = training_mask(n, self.config.block_size, device=xt.device)
        logits_rows = torch.arange(n, device=xt.device)
        return self.forward(torch.cat([xt, x0], dim=1), positions, mask, sigma=sigma, out_rows=logits_rows)
