"""Where the sampler gets logits from: the committed text plus the block being denoised.

Two interchangeable implementations of the same rule (`masks.sampling_mask`),
for a batch of rows that share their positions (samples of one prompt):

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

from ..model.masks import sampling_mask
from ..model.network import BD3LM
from .kv_cache import KVCache


class FullContext:
    def __init__(self, model: BD3LM, block_size: int, batch: int = 1) -> None:
        self.model, self.block_size, self.batch = model, block_size, batch
        self.window = model.config.model_length
        with torch.no_grad():  # constant without time conditioning; one row broadcasts over the batch
            self.mods = model.modulations(None)
        self.committed = torch.empty(batch, 0, dtype=torch.long, device=model.device)

    def commit(self, tokens: torch.Tensor) -> None:
        """Append final tokens `[batch, n]`."""
        self.committed = torch.cat([self.committed, tokens], dim=1)

    def keep(self, rows: list[int]) -> None:
        """Go on with these rows only (the others have finished)."""
        self.committed = self.committed[rows]
        self.batch = len(rows)

    @torch.no_grad()
    def logits(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw logits `[batch, len(rows), V]` of `rows` (offsets in `block [batch, L]`), the block after the committed tokens."""
        tokens = torch.cat([self.committed, block], dim=1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        mask = sampling_mask(positions, positions, self.block_size, self.window)
        return self.model(tokens, positions, mask, mods=self.mods, out_rows=rows + self.committed.shape[1])


class CachedContext:
    def __init__(self, model: BD3LM, block_size: int, batch: int = 1) -> None:
        self.model, self.block_size, self.batch = model, block_size, batch
        config = model.config
        self.window = config.model_length
        weight = model.vocab_embed.embedding
        with torch.no_grad():  # constant without time conditioning; one row broadcasts over the batch
            self.mods = model.modulations(None)
        self.cache = KVCache(config.n_layers, batch, config.n_heads, config.head_dim, self.window, weight.device, weight.dtype)
        self.cached = 0  # positions [0, cached) have keys/values in the cache
        self.pending: list[torch.Tensor] = []  # committed tokens `[batch, n]` not yet run through the network
        self._no_logits = torch.empty(0, dtype=torch.long, device=weight.device)

    def commit(self, tokens: torch.Tensor) -> None:
        """Append final tokens `[batch, n]`; they reach the cache with the next forward."""
        self.pending.append(tokens)

    def keep(self, rows: list[int]) -> None:
        """Go on with these rows only (the others have finished)."""
        self.cache.keep(rows)
        self.pending = [tokens[rows] for tokens in self.pending]
        self.batch = len(rows)

    def _oldest_key(self, first_query: int) -> int:
        """The first position the block of `first_query` may attend to."""
        block_end = (first_query // self.block_size + 1) * self.block_size
        return max(0, block_end - self.window)

    def _forward(self, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        start = self.cached
        stop = start + tokens.shape[1]
        oldest = self._oldest_key(start)
        span = self.cache.span(start, stop, oldest)
        positions = torch.arange(start, stop, device=tokens.device)
        mask = sampling_mask(positions, span.key_positions, self.block_size, self.window)
        return self.model(tokens, positions, None if bool(mask.all()) else mask, mods=self.mods, cache=span, out_rows=rows)

    @torch.no_grad()
    def logits(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw logits `[batch, len(rows), V]` of `rows` (offsets in `block [batch, L]`)."""
        if not self.pending:
            return self._forward(block, rows)
        waiting = torch.cat(self.pending, dim=1)
        self.pending = []
        # write chunks of at most one window, so that every forward fits the cache
        while waiting.shape[1] > 0 and waiting.shape[1] + block.shape[1] > self.window:
            chunk, waiting = waiting[:, : self.window], waiting[:, self.window :]
            self._forward(chunk, self._no_logits)
            self.cached += chunk.shape[1]
        out = self._forward(torch.cat([waiting, block], dim=1), rows + waiting.shape[1])
        self.cached += waiting.shape[1]
        return out
