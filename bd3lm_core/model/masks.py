"""Who may attend to whom: the attention masks of block diffusion.

All return boolean tensors `[queries, keys]`, True where attention is
allowed, which is what `scaled_dot_product_attention` takes. The names are
the paper's: M_BD (block-diagonal), M_OBC (offset block-causal) and M_BC
(block-causal).
"""

from __future__ import annotations

import torch


def training_mask(n: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The mask `[2n, 2n]` of one training forward over the concatenation `[x_t ; x_0]`.

        [ M_BD   M_OBC ]    x_t queries: own noisy block; clean blocks strictly before
        [ 0      M_BC  ]    x_0 queries: clean blocks up to and including their own
    """
    block = torch.arange(n, device=device) // block_size
    q, k = block[:, None], block[None, :]  # block index of each query row / key column
    m_bd = q == k
    m_obc = k < q
    m_bc = k <= q
    top = torch.cat([m_bd, m_obc], dim=1)  # [n, 2n]
    bottom = torch.cat([torch.zeros_like(m_bd), m_bc], dim=1)  # [n, 2n]: x_0 never sees x_t
    return torch.cat([top, bottom], dim=0)


def sampling_mask(query_pos: torch.Tensor, key_pos: torch.Tensor, block_size: int, window: int) -> torch.Tensor:
    """The sampling mask `[queries, keys]`: M_BC inside a sliding window.

    A token in the block that ends at position `e` (exclusive) sees every key
    in `[e - window, e)`: its own block (bidirectionally) and the earlier
    blocks that still fit in the model's context. This one rule gives the
    same logits whether the prefix is recomputed or read from a KV cache.
    """
    block_end = (query_pos // block_size + 1) * block_size  # [queries]
    k = key_pos[None, :]
    return (k < block_end[:, None]) & (k >= block_end[:, None] - window)


def trim_visible(mask: torch.Tensor) -> torch.Tensor | None:
    """`mask [queries, keys]` without its leading key columns that every query sees; None when it sees all.

    That is the form `network.attend` takes: masking costs a pass over
    every score it covers, and in a sampling step only the last keys (the
    blocks the forward itself writes) are hidden from anyone.
    """
    hidden = (~mask).any(dim=0).nonzero()  # key columns some query may not see
    return None if len(hidden) == 0 else mask[:, int(hidden[0]):]
