"""Where the sampler gets logits from: the committed text plus the block being denoised.

Two interchangeable implementations of the same rule (`masks.window_mask`):

- `CachedContext` keeps committed tokens as keys/values in a `KVCache`. A
  block that has just been finished is not run on its own: its tokens wait
  in `pending` and go through the network together with the first forward
  of the next block, which writes their keys/values and computes no logits
  for them. A long prompt is written the same way, in window-sized chunks.
- `FullContext` recomputes the whole prefix at every forward. It is slow and
  obviously right, which is what the tests compare the cache against.
"""

from __future__ import annotations

import torch

from .kv_cache import KVCache
from .masks import window_mask
from .model import BD3LM, Modulation


class FullContext:
    def __init__(self, model: BD3LM, block_size: int, mods: list[Modulation]) -> None:
        self.model, self.block_size, self.mods = model, block_size, mods
        self.window = model.config.model_length
        self.committed = torch.empty(1, 0, dtype=torch.long, device=model.vocab_embed.embedding.device)

    def commit(self, tokens: torch.Tensor) -> None:
        self.committed = torch.cat([self.committed, tokens], dim=1)

    @torch.no_grad()
    def logits(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw logits `[len(rows), V]` of `rows` (offsets in `block`), the block following the committed tokens."""
        tokens = torch.cat([self.committed, block], dim=1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        mask = window_mask(positions, positions, self.block_size, self.window)
        out = self.model(tokens, positions, mask, mods=self.mods, out_rows=rows + self.committed.shape[1])
        return out[0]


class CachedContext:
    def __init__(self, model: BD3LM, block_size: int, mods: list[Modulation]) -> None:
        self.model, self.block_size, self.mods = model, block_size, mods
        config = model.config
        self.window = config.model_length
        weight = model.vocab_embed.embedding
        self.cache = KVCache(
            config.n_blocks, 1, config.n_heads, config.head_dim, self.window, weight.device, weight.dtype
        )
        self.cached = 0  # positions [0, cached) have keys/values in the cache
        self.pending: list[torch.Tensor] = []  # committed tokens not yet run through the network
        self._no_logits = torch.empty(0, dtype=torch.long, device=weight.device)

    def commit(self, tokens: torch.Tensor) -> None:
        self.pending.append(tokens)

    def _oldest_key(self, first_query: int) -> int:
        """The first position the block of `first_query` may attend to."""
        block_end = (first_query // self.block_size + 1) * self.block_size
        return max(0, block_end - self.window)

    def _forward(self, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        start = self.cached
        stop = start + tokens.shape[1]
        oldest = self._oldest_key(start)
        key_positions = self.cache.prepare(start, stop, oldest)
        positions = torch.arange(start, stop, device=tokens.device)
        mask = window_mask(positions, key_positions, self.block_size, self.window)
        return self.model(tokens, positions, None if bool(mask.all()) else mask, mods=self.mods, cache=self.cache, out_rows=rows)

    @torch.no_grad()
    def logits(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.pending:
            waiting = torch.cat(self.pending, dim=1)
            self.pending = []
            # write chunks of at most one window, so that every forward fits the cache
            while waiting.shape[1] > 0 and waiting.shape[1] + block.shape[1] > self.window:
                chunk, waiting = waiting[:, : self.window], waiting[:, self.window :]
                self._forward(chunk, self._no_logits)
                self.cached += chunk.shape[1]
            block = torch.cat([waiting, block], dim=1)
            rows = rows + waiting.shape[1]
            out = self._forward(block, rows)
            self.cached += waiting.shape[1]
        else:
            out = self._forward(block, rows)
        return out[0]
