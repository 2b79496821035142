"""Where the sampler gets logits from: the committed text plus the block being denoised.

Contexts see a network only through the backbone contract (`model/denoiser.py`),
so DiTs and Qwen/Llama decoders are sampled alike. A context also says where its blocks lie (`blocks`). For a batch of rows that
share their positions (samples of one prompt), BD3-LMs have two
interchangeable implementations of the same rule (`masks.sampling_mask`):

- `CachedContext` keeps committed tokens as keys/values in a `KVCache`. A
  block that has just been finished is not run on its own: its tokens wait
  in `pending` and go through the network together with the first forward
  of the next block, which writes their keys/values and computes no logits
  for them. A long prompt is written the same way, in window-sized chunks.
- `FullContext` recomputes the whole prefix at every forward. It is slow and
  obviously right, which is what the tests compare the cache against.

MDLMs have `WindowContext`: no cache (clean tokens attend to the noisy ones),
and blocks that overlap the text before them (semi-autoregressive windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.denoiser import Denoiser
from ..model.masks import sampling_mask, trim_visible


@dataclass(frozen=True)
class Blocks:
    """Where the blocks of new tokens lie: the first `first` positions, then `stride` positions at a time.

    BD3-LMs use blocks of one size throughout (first == stride == block size).
    """

    first: int
    stride: int

    def span(self, index: int) -> tuple[int, int]:
        """(start, length) of block `index`."""
        if index == 0:
            return 0, self.first
        return self.first + (index - 1) * self.stride, self.stride

    def first_open(self, n: int) -> int:
        """The index of the first block that does not lie wholly within the first `n` positions."""
        return 0 if n < self.first else 1 + (n - self.first) // self.stride


class FullContext:
    def __init__(self, model: Denoiser, block_size: int, batch: int = 1) -> None:
        self.model, self.block_size, self.batch = model, block_size, batch
        self.blocks = Blocks(block_size, block_size)
        self.window = model.context_length
        self.constants = model.run_constants()
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
        mask = trim_visible(sampling_mask(positions, positions, self.block_size, self.window))
        return self.model.block_logits(tokens, positions, mask, None, rows + self.committed.shape[1], self.constants)


class CachedContext:
    def __init__(self, model: Denoiser, block_size: int, batch: int = 1, positions: int | None = None) -> None:
        """`positions`: how many the run will write at most (a cache for that many, when under two windows)."""
        self.model, self.block_size, self.batch = model, block_size, batch
        self.blocks = Blocks(block_size, block_size)
        self.window = model.context_length
        self.constants = model.run_constants()
        capacity = None if positions is None or positions >= 2 * self.window else positions
        self.cache = model.new_cache(batch, self.window, capacity)
        self.cached = 0  # positions [0, cached) have keys/values in the cache
        self.pending: list[torch.Tensor] = []  # committed tokens `[batch, n]` not yet run through the network
        self._no_logits = torch.empty(0, dtype=torch.long, device=model.device)

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
        return self.model.block_logits(tokens, positions, trim_visible(mask), span, rows, self.constants)

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


class WindowContext:
    """MDLM's semi-autoregressive windows, as the MDLM and BD3-LM papers sample past an MDLM's context.

    An MDLM attends bidirectionally over its whole context, so the keys of
    clean tokens depend on the noisy ones and cannot be cached: every forward
    runs one window of at most `model_length` tokens, the block being denoised
    after the committed tokens just before it, all attending to all, at
    positions 0.. of the window (as the authors run it). The first block is
    the whole context; each later block is `stride` new tokens after the last
    `model_length - stride` committed ones (the papers: 512 new tokens after
    512 of context, in windows of 1024).
    """

    def __init__(self, model: Denoiser, batch: int = 1) -> None:
        self.model, self.batch = model, batch
        self.window = model.context_length
        self.stride = max(1, self.window // 2)
        self.blocks = Blocks(self.window, self.stride)
        self.keep_last = self.window - self.stride  # the committed tokens a later window still holds
        self.constants = model.run_constants()
        self.committed = torch.empty(batch, 0, dtype=torch.long, device=model.device)

    def commit(self, tokens: torch.Tensor) -> None:
        """Append final tokens `[batch, n]`, keeping only what a window can still see."""
        text = torch.cat([self.committed, tokens], dim=1)
        self.committed = text[:, text.shape[1] - min(self.keep_last, text.shape[1]) :]

    def keep(self, rows: list[int]) -> None:
        """Go on with these rows only (the others have finished)."""
        self.committed = self.committed[rows]
        self.batch = len(rows)

    @torch.no_grad()
    def logits(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw logits `[batch, len(rows), V]` of `rows` (offsets in `block [batch, L]`), the block at the end of its window."""
        n_context = min(self.committed.shape[1], self.window - block.shape[1])
        tokens = torch.cat([self.committed[:, self.committed.shape[1] - n_context :], block], dim=1)  # [batch, <= window]
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.model.block_logits(tokens, positions, None, None, rows + n_context, self.constants)
