"""From logits to tokens: each row's random stream, the top-p nucleus, and inverse-CDF draws.

This runs on one vocabulary row at a time in numpy, in float64 like the
reference: on a small CPU, torch's multi-threaded kernels spend more time
waking threads than working on a 50k-element row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class RandomStream:
    """One sample's random numbers, drawn in a fixed order so that a seed gives the same text."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device)

    def integer(self, high: int) -> torch.Tensor:
        """One integer in [0, high), as a 1-element tensor."""
        return torch.randint(high, (1,), generator=self.generator, device=self.device)


def nucleus(logits: np.ndarray, top_p: float, temperature: float, mask_id: int) -> np.ndarray:
    """p(x_0) for one position: softmax at `temperature`, the mask never predicted, cut to the top-p nucleus.

    The nucleus keeps the most probable ids whose cumulative probability is
    at most p (always at least one) and renormalises. Only the sorted values
    are needed, not the permutation: the nucleus is every id above the
    smallest kept value, plus as many ids equal to it as the cut allows.
    """
    z = logits.astype(np.float64) / temperature
    z[mask_id] = -np.inf
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if top_p >= 1.0:
        return probs
    values = np.sort(probs)[::-1]
    count = max(1, int(np.searchsorted(np.cumsum(values), top_p, side="right")))
    cut = values[count - 1]
    keep = probs > cut
    ties = np.flatnonzero(probs == cut)
    keep[ties[: count - int(keep.sum())]] = True
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum()


def draw(probs: np.ndarray, u: float) -> int:
    """The id at uniform draw `u` of the categorical distribution `probs` (inverse CDF)."""
    cdf = np.cumsum(probs)
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(probs) - 1)


@dataclass(frozen=True)
class Draft:
    """A token drawn for each of some positions of a block, not yet revealed."""

    positions: torch.Tensor  # offsets in the block
    tokens: list[int]
    probabilities: list[float]  # p(token) in the distribution it was drawn from (after top-p)

    def subset(self, keep: torch.Tensor) -> Draft:
        """The draft at `keep` (a subset of `positions`, in order)."""
        index = torch.searchsorted(self.positions, keep).tolist()
        return Draft(keep, [self.tokens[i] for i in index], [self.probabilities[i] for i in index])


def draft_tokens(
    logits: np.ndarray, positions: torch.Tensor, top_p: float, temperature: float, mask_id: int, rng: RandomStream
) -> Draft:
    """Draw one token per row of `logits [len(positions), V]`, one uniform number each."""
    tokens, probabilities = [], []
    for row, u in zip(logits, rng.uniform(len(positions)).tolist()):
        probs = nucleus(row, top_p, temperature, mask_id)
        token = draw(probs, u)
        tokens.append(token)
        probabilities.append(float(probs[token]))
    return Draft(positions, tokens, probabilities)
