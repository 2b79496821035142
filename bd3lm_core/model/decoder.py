"""A decoder-only transformer (Qwen3, Qwen2, Llama) run as a block diffusion denoiser.

The chat models people download (dLLM's A2D conversions, JetLM's SDAR) are
these autoregressive networks fine-tuned to denoise blocks. The network is
unchanged; only the attention mask differs: within the current block every
position sees every other, and earlier blocks are seen whole (from the KV
cache while sampling). There is no time conditioning.

One file, nanoGPT-style. What differs between the families is three switches:
- Qwen3: q/k RMSNorm per head, no biases;
- Qwen2: biases on q, k and v, no q/k norm;
- Llama: neither (optional biases everywhere with `attention_bias` / `mlp_bias`).
All use RMSNorm, grouped-query attention, a SwiGLU MLP and rotary position
embeddings with base `rope_theta`. Module names follow the published
checkpoints (`model.layers.3.self_attn.q_proj.weight`, `lm_head.weight`), so
their tensors load by name; `hf_layout.py` reads the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .denoiser import Denoiser
from .network import Rotary, apply_rotary, attend

if TYPE_CHECKING:
    from ..sampling.kv_cache import CacheSpan


@dataclass(frozen=True)
class DecoderConfig:
    model_type: str  # config.json's: a2d-qwen3, a2d-qwen2, a2d-llama or sdar
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    qk_norm: bool  # Qwen3 (and SDAR): RMSNorm on each head's queries and keys
    qkv_bias: bool  # Qwen2: biases on q, k and v
    o_bias: bool  # Llama's attention_bias also puts one on the output projection
    mlp_bias: bool
    mask_id: int
    model_length: int  # max_position_embeddings: the context a block may attend over
    block_size: int  # the block size it was trained with (the sampler's default)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 and cast back (as the published models do)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = c.n_heads, c.n_kv_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.n_heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.n_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.n_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.n_heads * c.head_dim, c.hidden_size, bias=c.o_bias)
        if c.qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
            self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
        cache: CacheSpan | None, layer: int, rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention output `[B, len(rows) or S, d]`: every token gives a key and a value, only `rows` ask (all: None)."""
        B, S, _ = x.shape
        if rows is not None:
            q_in, cos_q, sin_q, mask = x[:, rows], cos[rows], sin[rows], None if mask is None else mask[rows]
        else:
            q_in, cos_q, sin_q = x, cos, sin
        q = self.q_proj(q_in).view(B, q_in.shape[1], self.n_heads, self.head_dim)  # [B, Sq, H, hd]
        k = self.k_proj(x).view(B, S, self.n_kv_heads, self.head_dim)  # [B, S, Hkv, hd]
        v = self.v_proj(x).view(B, S, self.n_kv_heads, self.head_dim)  # [B, S, Hkv, hd]
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H or Hkv, Sq or S, hd]
        q, k = apply_rotary(q, cos_q, sin_q), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, Hkv, K, hd]: every key this forward may see
        a = grouped_attention(q, k, v, mask)  # [B, H, Sq, hd]
        return self.o_proj(a.transpose(1, 2).reshape(B, q.shape[2], self.n_heads * self.head_dim))  # heads together


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of queries `[B, H, S, hd]` over fewer key/value heads `[B, Hkv, K, hd]` (`mask [S, K']`, see `attend`).

    The g = H / Hkv query heads that share a key head are stacked as extra
    query rows, so the (cached) keys and values are read as they are, never
    repeated or copied.
    """
    B, H, S, hd = q.shape
    g = H // k.shape[1]
    q = q.reshape(B, k.shape[1], g * S, hd)  # [B, Hkv, g*S, hd]: heads of a group one after another
    if mask is not None:
        mask = mask.repeat(g, 1)  # [g*S, K]
    return attend(q, k, v, mask).reshape(B, H, S, hd)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask, cache, layer, rows=None) -> torch.Tensor:
        """The layer's output for `rows` of `x` (all: None); every row's key and value reach the cache."""
        a = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer, rows)
        x = (x if rows is None else x[:, rows]) + a
        return x + self.mlp(self.post_attention_layernorm(x))


class Trunk(nn.Module):
    """Everything but the output head, under the published name `model`."""

    def __init__(self, c: DecoderConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Decoder(Denoiser):
    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Trunk(config)
        with torch.device("cpu"):  # computed, not loaded: real even when the weights are built on `meta`
            self.rotary = Rotary(config.head_dim, base=config.rope_theta)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    # --- the backbone contract (denoiser.py) ---
    @property
    def kv_layout(self) -> tuple[int, int, int]:
        return self.config.n_layers, self.config.n_kv_heads, self.config.head_dim

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight

    def block_logits(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cache: CacheSpan | None,
        rows: torch.Tensor,
        constants: Any = None,
    ) -> torch.Tensor | None:
        cos, sin = self.rotary.tables(positions)  # [S, hd] each
        x = self.model.embed_tokens(tokens)  # [B, S, d]
        *layers, last = self.model.layers
        for i, layer in enumerate(layers):
            x = layer(x, cos, sin, attn_mask, cache, i)
        # Past the last layer's keys and values, only the rows that get logits matter: the last layer
        # computes queries, attention and MLP for those alone (a step asks a few; a write, none).
        x = last(x, cos, sin, attn_mask, cache, len(layers), rows)  # [B, rows, d]
        if rows.numel() == 0:
            return None
        x = self.model.norm(x)
        head = getattr(self, "lm_head", None)  # untied; or, tied, an int8 copy of the embedding (kernels.int8_head)
        if head is None:
            return F.linear(x, self.embedding_weight).float()  # [B, rows, V]
        return head(x).float()  # [B, rows, V]
