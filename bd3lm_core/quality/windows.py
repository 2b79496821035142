"""Scoring a text longer than the judge's context: overlapping windows, each token scored once.

The paper scores long samples with GPT-2 Large (1024 tokens of context) in
windows moved by half the context. Window k covers tokens [k*stride,
k*stride + context); the first window scores all its tokens after the
first, every later one only the tokens no earlier window reached (its last
`stride`). So each token is scored exactly once, with at least
context - stride tokens before it and as many as the window holds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# ids [S] -> the negative log-likelihood [S-1] of ids[1:], each given the ids before it in the window
WindowScorer = Callable[[torch.Tensor], torch.Tensor]


def windowed_nll(ids: torch.Tensor, context: int, score: WindowScorer) -> torch.Tensor:
    """Per-token NLL `[N-1]` of ids[1:] (`ids [N]`, BOS first), through windows of `context` tokens."""
    if context < 2:
        raise ValueError(f"a judge needs a context of at least 2 tokens, not {context}")
    stride = context // 2
    parts = []
    start, scored_to = 0, 1  # ids[:scored_to] are scored (or BOS, which never is)
    while scored_to < len(ids):
        end = min(start + context, len(ids))
        nll = score(ids[start:end])  # [end - start - 1]: tokens start+1 .. end-1
        parts.append(nll[scored_to - start - 1 :])  # only tokens no earlier window scored
        scored_to = end
        start += stride
    return torch.cat(parts) if parts else torch.zeros(0)
