"""Who may attend to whom: the two attention masks of block diffusion.

Both return boolean tensors `[queries, keys]`, True where attention is
allowed, which is what `scaled_dot_product_attention` takes.
"""

from __future__ import annotations

import torch


def training_mask(n: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The mask of one training forward over the concatenation `[x_t ; x_0]` (length 2n).

    A noisy token sees its own noisy block and the clean blocks strictly
    before it; a clean token sees the clean blocks up to and including its own.
    """
    block = torch.arange(n, device=device) // block_size
    q, k = block[:, None], block[None, :]
    noisy_to_noisy = q == k
    noisy_to_clean = k < q
    clean_to_clean = k <= q
    clean_to_noisy = torch.zeros_like(noisy_to_noisy)
    top = torch.cat([noisy_to_noisy, noisy_to_clean], dim=1)
    bottom = torch.cat([clean_to_noisy, clean_to_clean], dim=1)
    return torch.cat([top, bottom], dim=0)


def window_mask(query_pos: torch.Tensor, key_pos: torch.Tensor, block_size: int, window: int) -> torch.Tensor:
    """The sampling mask: block-causal attention inside a sliding window.

    A token in the block that ends at position `e` (exclusive) sees every key
    in `[e - window, e)`: its own block (bidirectionally) and the earlier
    blocks that still fit in the model's context. This one rule gives the
    same logits whether the prefix is recomputed or read from a KV cache.
    """
    block_end = (query_pos // block_size + 1) * block_size
    k = key_pos[None, :]
    return (k < block_end[:, None]) & (k >= block_end[:, None] - window)
