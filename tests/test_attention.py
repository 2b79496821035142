"""Attention's parts, checked against the plain formulas: rotary angles, trimmed masks, both kernels."""

from __future__ import annotations

import math

import pytest
import torch

from bd3lm_core.model.masks import sampling_mask, trim_visible
from bd3lm_core.model.network import FEW_QUERIES, Rotary, apply_rotary, attend


def test_rotary_turns_each_pair_by_its_positions_angle() -> None:
    head_dim, base = 8, 500.0
    positions = torch.tensor([0, 3, 17, 4000])
    x = torch.randn(2, 3, len(positions), head_dim, generator=torch.Generator().manual_seed(0))
    cos, sin = Rotary(head_dim, base).tables(positions)
    turned = apply_rotary(x, cos, sin).double()
    half = head_dim // 2
    for i in range(half):  # element i pairs with element i + half, turned by position * base^(-2i/hd)
        angle = positions.double() * base ** (-2 * i / head_dim)
        a, b = x[..., i].double(), x[..., i + half].double()
        assert torch.allclose(turned[..., i], a * angle.cos() - b * angle.sin(), atol=1e-5)
        assert torch.allclose(turned[..., i + half], b * angle.cos() + a * angle.sin(), atol=1e-5)


def test_a_steps_mask_is_trimmed_to_the_block_it_writes() -> None:
    """A block's first step writes the block before it: only the new block's keys are hidden (from that block)."""
    block, cached = 4, 12
    queries = torch.arange(cached, cached + 2 * block)  # the committed block, then the block being denoised
    mask = sampling_mask(queries, torch.arange(cached + 2 * block), block, window=1024)
    trimmed = trim_visible(mask)
    assert trimmed.shape == (2 * block, block) and torch.equal(trimmed, mask[:, -block:])
    assert not trimmed[:block].any() and trimmed[block:].all()  # the committed block never sees the new one
    assert trim_visible(mask[block:]) is None  # the new block alone sees every key


def test_a_sliding_window_keeps_the_mask_from_the_first_hidden_key() -> None:
    block, window = 4, 8
    queries = torch.arange(4, 12)  # two blocks; the second no longer sees keys 0-3
    mask = sampling_mask(queries, torch.arange(12), block, window)
    trimmed = trim_visible(mask)
    assert mask[:, 0].any() and not mask[:, 0].all()  # key 0: seen by the first block only
    assert torch.equal(trimmed, mask)  # so nothing is trimmed


@pytest.mark.parametrize("queries", [6, FEW_QUERIES + 10])  # explicit products, then SDPA
def test_attention_under_a_trimmed_mask_is_attention_under_the_whole_mask(queries: int) -> None:
    g = torch.Generator().manual_seed(1)
    keys, hidden = queries + 40, 12
    q, k, v = (torch.randn(1, 2, n, 16, generator=g) for n in (queries, keys, keys))
    mask = torch.ones(queries, keys, dtype=torch.bool)
    mask[: queries // 2, -hidden:] = False  # the first half of the queries may not see the last keys
    scores = (q @ k.transpose(-2, -1) / math.sqrt(16)).masked_fill(~mask, -math.inf)
    expected = scores.softmax(-1) @ v
    trimmed = trim_visible(mask)
    assert trimmed.shape == (queries, hidden)
    assert torch.allclose(attend(q, k, v, trimmed), expected, atol=1e-5)
    assert torch.allclose(attend(q, k, v, mask), expected, atol=1e-5)


@pytest.mark.parametrize("queries", [6, FEW_QUERIES + 10])
def test_float32_queries_over_a_bfloat16_cache_get_float32_attention_within_bfloat16s_rounding(queries: int) -> None:
    """int8 weights on a CPU with AMX keep the cache in bfloat16 (kernels.int8_cache_dtype); activations stay float32."""
    g = torch.Generator().manual_seed(2)
    keys, hidden = queries + 40, 12
    q, k, v = (torch.randn(1, 2, n, 16, generator=g) for n in (queries, keys, keys))
    mask = torch.ones(queries, keys, dtype=torch.bool)
    mask[: queries // 2, -hidden:] = False
    k16, v16 = k.bfloat16(), v.bfloat16()
    expected = attend(q.bfloat16().float(), k16.float(), v16.float(), trim_visible(mask))  # same numbers, float32
    out = attend(q, k16, v16, trim_visible(mask))
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert (out - expected).abs().max() < 2e-2 * expected.abs().max()  # bfloat16's own rounding of scores and sums
    assert (attend(q, k, v, mask) - out).abs().max() > 0  # and it did run in bfloat16
