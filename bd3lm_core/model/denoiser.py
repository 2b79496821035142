"""What a denoising network gives the sampler: the backbone contract.

The sampler (`sampling/context.py`) never looks inside a network. It asks a
`Denoiser` for:
- `block_logits`: raw logits for chosen rows of the tokens it is given (the
  block being denoised, perhaps after committed tokens), reading earlier
  blocks from a KV cache span and writing its own tokens' keys/values there.
  Asking for no rows writes a finished block into the cache and computes no
  logits at all.
- `new_cache`: an empty KV cache shaped for the network (layers, key/value
  heads, head size) on its device and in its precision (`cache_dtype`).
- `run_constants`: what stays fixed over a run and is computed once (the
  DiT's adaLN values without time conditioning; nothing for a decoder).
- its mask id, the context it attends over and its default block size.

Two implementations: the DiT of BD3-LM and MDLM (`network.BD3LM`) and the
decoder-only transformers of Qwen/Llama chat models (`decoder.Decoder`).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

if TYPE_CHECKING:  # the cache belongs to sampling; a network only writes to and reads from it
    from ..sampling.kv_cache import CacheSpan, KVCache


class Denoiser(nn.Module, metaclass=ABCMeta):
    """A network the sampler can denoise blocks with (see the module docstring)."""

    # Implementations hold a `config` naming `mask_id`, `model_length` (the context) and `block_size`.
    @property
    def mask_id(self) -> int:
        """The id of the mask token."""
        return self.config.mask_id

    @property
    def context_length(self) -> int:
        """How many positions a block may attend over: the window of the sampling mask."""
        return self.config.model_length

    @property
    def default_block_size(self) -> int:
        """The block size the network was trained with (what the sampler uses unless told otherwise)."""
        return self.config.block_size

    @property
    @abstractmethod
    def kv_layout(self) -> tuple[int, int, int]:
        """(layers, key/value heads, head size): the shape of what one position leaves in the cache."""

    @property
    @abstractmethod
    def embedding_weight(self) -> torch.Tensor:
        """The token embedding matrix: where the network lives and in which precision it computes."""

    @property
    def device(self) -> torch.device:
        return self.embedding_weight.device

    # Set by the loader where the KV cache is kept in another precision than the activations:
    # bfloat16 for int8 weights on a CPU with AMX (`kernels.int8_cache_dtype`).
    cache_precision: torch.dtype | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The precision of activations (float32 for int8 weights)."""
        return self.embedding_weight.dtype

    @property
    def cache_dtype(self) -> torch.dtype:
        """The precision of the KV cache and of attention over it: the activations', unless the loader chose another."""
        return self.cache_precision or self.dtype

    def new_cache(self, batch: int, window: int, capacity: int | None = None) -> KVCache:
        """An empty cache for `batch` rows and a sliding `window`, with room for `capacity` positions (default 2 windows)."""
        from ..sampling.kv_cache import KVCache

        layers, heads, head_dim = self.kv_layout
        return KVCache(layers, batch, heads, head_dim, window, self.device, self.cache_dtype, capacity)

    def run_constants(self) -> Any:
        """What every forward of one run shares and is worth computing once; passed back to `block_logits`."""
        return None

    @abstractmethod
    def block_logits(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cache: CacheSpan | None,
        rows: torch.Tensor,
        constants: Any = None,
    ) -> torch.Tensor | None:
        """Raw float32 logits `[B, len(rows), V]` for `rows` of `tokens [B, S]` at `positions [S]`.

        `attn_mask [S, K']` (True: may attend; None: all) covers the last K'
        keys: of the tokens themselves, or of the cache span when `cache` is
        given (then the tokens' keys/values are written there first). Every
        token sees the keys before those (`masks.trim_visible`). Empty `rows`
        computes no logits and returns None.
        """
