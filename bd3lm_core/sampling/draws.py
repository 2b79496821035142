"""From logits to tokens: each row's random stream, the top-p nucleus, and inverse-CDF draws.

This runs on one vocabulary row at a time in numpy, in float64 like the
reference: on a small CPU, torch's multi-threaded kernels spend more time
waking threads than working on a 50k-element row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import BD3LMError


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


def softmax(logits: np.ndarray, temperature: float, mask_id: int) -> np.ndarray:
    """The model's distribution over ids for one position (float64), at `temperature`, the mask never predicted."""
    z = logits.astype(np.float64) / temperature
    z[mask_id] = -np.inf
    top = z.max()
    if not np.isfinite(top) or np.isnan(z).any():
        raise BD3LMError(
            "the model computed NaN or infinite logits; its weights may be damaged (download or convert it again), "
            "or its precision too low for it (try --dtype float32)."
        )
    probs = np.exp(z - top)
    return probs / probs.sum()


def top_p_cut(probs: np.ndarray, top_p: float) -> np.ndarray:
    """`probs` cut to the top-p nucleus and renormalised.

    The nucleus keeps the most probable ids whose cumulative probability is
    at most p (always at least one). Only the sorted values are needed, not
    the permutation: the nucleus is every id above the smallest kept value,
    plus as many ids equal to it as the cut allows.
    """
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


def nucleus(logits: np.ndarray, top_p: float, temperature: float, mask_id: int) -> np.ndarray:
    """p(x_0) for one position: softmax at `temperature`, cut to the top-p nucleus."""
    return top_p_cut(softmax(logits, temperature, mask_id), top_p)


def draw(probs: np.ndarray, u: float) -> int:
    """The id at uniform draw `u` of the categorical distribution `probs` (inverse CDF)."""
    cdf = np.cumsum(probs)
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(probs) - 1)


@dataclass(frozen=True)
class Draft:
    """A token drawn for each of some positions of a block, not yet revealed."""

    positions: torch.Tensor  # offsets in the block, ascending
    tokens: list[int]
    probabilities: list[float]  # p(token) in the distribution it was drawn from (temperature, top-p)
    confidence: list[float]  # the model's own p(token): temperature 1, before top-p
    entropy: list[float]  # of the model's distribution at the position (nats): its uncertainty there
    alternatives: list[tuple[tuple[int, float], ...]]  # the model's most likely ids with their probabilities

    def subset(self, keep: torch.Tensor) -> Draft:
        """The draft at `keep` (a subset of `positions`, in order)."""
        index = torch.searchsorted(self.positions, keep).tolist()
        pick = lambda values: [values[i] for i in index]  # noqa: E731
        return Draft(
            keep, pick(self.tokens), pick(self.probabilities), pick(self.confidence), pick(self.entropy),
            pick(self.alternatives),
        )


def draft_tokens(
    logits: np.ndarray,
    positions: torch.Tensor,
    top_p: float,
    temperature: float,
    mask_id: int,
    rng: RandomStream,
    alternatives: int = 0,
) -> Draft:
    """Draw one token per row of `logits [len(positions), V]`, one uniform number each.

    `alternatives` > 0 also lists that many of the model's most likely ids per position.
    """
    tokens, probabilities, confidence, entropy, top = [], [], [], [], []
    for row, u in zip(logits, rng.uniform(len(positions)).tolist()):
        model = softmax(row, 1.0, mask_id)
        probs = top_p_cut(model if temperature == 1.0 else softmax(row, temperature, mask_id), top_p)
        token = draw(probs, u)
        tokens.append(token)
        probabilities.append(float(probs[token]))
        confidence.append(float(model[token]))
        entropy.append(float(-(model * np.log(np.where(model > 0, model, 1.0))).sum()))
        top.append(most_likely(model, alternatives))
    return Draft(positions, tokens, probabilities, confidence, entropy, top)


def most_likely(probs: np.ndarray, k: int) -> tuple[tuple[int, float], ...]:
    """The k most probable ids with their probabilities, most probable first."""
    if k <= 0:
        return ()
    ids = np.argpartition(-probs, min(k, len(probs) - 1))[:k]
    ids = ids[np.argsort(-probs[ids], kind="stable")]
    return tuple((int(i), float(probs[i])) for i in ids)
