"""Keys and values of tokens already in the context, for fast sampling.

Keys are stored after the rotary embedding, at their absolute positions, so
a cached key is never touched again: attention with rotary embeddings only
depends on the distance between a query and a key, so the sliding window
needs no re-rotation.

Storage is one preallocated buffer per layer with room for two context
windows, or for the whole run when that is shorter (a chat model's context is
tens of thousands of positions). Positions are kept in order; a forward writes its tokens' keys and
values in place and reads the contiguous span its queries may see. When the
buffer is full, the part still inside the window moves to the front: one
copy per `model_length` generated tokens, none per denoising step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class KVCache:
    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_heads: int,
        head_dim: int,
        window: int,
        device: torch.device | str,
        dtype: torch.dtype,
        capacity: int | None = None,
    ) -> None:
        self.window = window
        self.capacity = 2 * window if capacity is None else capacity  # less when the run is known to need less
        shape = (n_layers, batch, n_heads, self.capacity, head_dim)  # positions in order along dim 3
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.base = 0  # absolute position held in slot 0

    def span(self, start: int, stop: int, oldest: int) -> CacheSpan:
        """The part of the cache one forward uses: it writes positions `[start, stop)`
        and its queries read keys from `oldest` on.

        Positions before `start` must already have been written, positions
        from `start` on may be rewritten (a noisy block is rewritten at every
        denoising step until it is final).
        """
        if stop - oldest > self.capacity:
            raise ValueError(f"a forward over [{oldest}, {stop}) does not fit a cache of {self.capacity} positions")
        if oldest < self.base:
            raise ValueError(f"position {oldest} has already left the cache (it starts at {self.base})")
        if stop - self.base > self.capacity:
            keep = slice(oldest - self.base, start - self.base)
            n = keep.stop - keep.start
            self.k[:, :, :, :n] = self.k[:, :, :, keep].clone()
            self.v[:, :, :, :n] = self.v[:, :, :, keep].clone()
            self.base = oldest
        return CacheSpan(
            self, slice(start - self.base, stop - self.base), slice(oldest - self.base, stop - self.base),
            torch.arange(oldest, stop, device=self.k.device),
        )

    def keep(self, rows: list[int]) -> None:
        """Keep only these batch rows (samples that have finished are dropped)."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]



@dataclass(frozen=True)
class CacheSpan:
    """What one forward writes to and reads from the cache; the network calls `update` once per layer."""

    cache: KVCache
    write: slice  # slots of the forward's own tokens
    read: slice  # slots of every key its queries may see
    key_positions: torch.Tensor  # absolute positions of the keys read

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this forward's keys/values `[B, H, S, hd]` for `layer`; return the keys/values to attend to (views)."""
        c = self.cache
        c.k[layer, :, :, self.write] = k
        c.v[layer, :, :, self.write] = v
        return c.k[layer, :, :, self.read], c.v[layer, :, :, self.read]
