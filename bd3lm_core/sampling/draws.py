"""From logits to tokens: each sample's random stream, the top-p nucleus, and inverse-CDF draws.

Everything here works on all the rows of a step at once, as torch tensors on
the model's device, in float64 like the reference; only the drawn tokens and
their few numbers come back to the host.
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


def softmax(logits: torch.Tensor, temperature: float, mask_id: int) -> torch.Tensor:
    """The model's distribution over ids `[rows, V]` (float64) at `temperature`, the mask never predicted."""
    z = logits.double() / temperature
    z[..., mask_id] = -torch.inf
    top = z.max(dim=-1, keepdim=True).values  # NaN anywhere in a row makes its max NaN
    if not bool(torch.isfinite(top).all()):
        raise BD3LMError(
            "the model computed NaN or infinite logits; its weights may be damaged (download or convert it again), "
            "or its precision too low for it (try --dtype float32)."
        )
    e = z.sub_(top).exp_()
    return e.div_(e.sum(dim=-1, keepdim=True))


def top_p_cut(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """`probs [rows, V]` cut to each row's top-p nucleus and renormalised.

    The nucleus keeps the most probable ids whose cumulative probability is at
    most p, and always at least one. Only the sorted values are needed, not
    the permutation: the nucleus is every id above the smallest kept value,
    plus as many ids equal to it as the count allows (lowest ids first).
    """
    if top_p >= 1.0:
        return probs
    values = _top_values(probs)  # [rows, V], descending
    count = (values.cumsum(dim=-1) <= top_p).sum(dim=-1, keepdim=True).clamp_(min=1)  # nucleus size [rows, 1]
    cut = values.gather(-1, count - 1)  # the smallest kept value [rows, 1]
    keep = probs > cut
    ties = probs == cut
    keep |= ties & (ties.cumsum(dim=-1) <= count - keep.sum(dim=-1, keepdim=True))
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)


def _top_values(probs: torch.Tensor) -> torch.Tensor:
    """Each row's values, descending (numpy sorts on a CPU: its vectorised sort is several times faster than torch's)."""
    if probs.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(np.sort(probs.numpy(), axis=-1)[:, ::-1]))
    return probs.sort(dim=-1, descending=True).values


def draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The ids `[rows]` at uniform draws `u [rows]` of the categorical distributions `probs [rows, V]` (inverse CDF)."""
    cdf = probs.cumsum(dim=-1)
    ids = torch.searchsorted(cdf, (u.double() * cdf[:, -1])[:, None], right=True)[:, 0]
    return ids.clamp_(max=probs.shape[-1] - 1)


@dataclass(frozen=True)
class Draft:
    """A token drawn for each of some positions of a block, not yet revealed."""

    positions: torch.Tensor  # offsets in the block, ascending
    tokens: list[int]
    probabilities: list[float]  # p(token) in the distribution it was drawn from (temperature, top-p)
    confidence: list[float]  # the model's own p(token): temperature 1, before top-p
    alternatives: list[tuple[tuple[int, float], ...]]  # the model's most likely ids with their probabilities
    model: torch.Tensor  # the model's distribution at each position `[len(positions), V]`

    @property
    def entropy(self) -> list[float]:
        """The entropy (nats) of the model's distribution at each position: its uncertainty there."""
        return (-(self.model * self.model.clamp_min(1e-300).log()).sum(dim=-1)).tolist()

    def subset(self, keep: torch.Tensor) -> Draft:
        """The draft at `keep` (a subset of `positions`, in order)."""
        index = torch.searchsorted(self.positions, keep)
        pick = lambda values: [values[i] for i in index.tolist()]  # noqa: E731
        return Draft(
            keep, pick(self.tokens), pick(self.probabilities), pick(self.confidence), pick(self.alternatives),
            self.model[index.to(self.model.device)],
        )


def draft_tokens(
    logits: torch.Tensor,
    positions: torch.Tensor,
    top_p: float,
    temperature: float,
    mask_id: int,
    rng: RandomStream,
    alternatives: int = 0,
) -> Draft:
    """Draw one token per row of `logits [len(positions), V]` (on any device), one uniform number each.

    `alternatives` > 0 also lists that many of the model's most likely ids per position.
    """
    model = softmax(logits, 1.0, mask_id)
    probs = top_p_cut(model if temperature == 1.0 else softmax(logits, temperature, mask_id), top_p)
    tokens = draw(probs, rng.uniform(len(positions)))
    picked = tokens[:, None]
    probability, confidence = torch.stack([probs.gather(-1, picked)[:, 0], model.gather(-1, picked)[:, 0]]).tolist()
    top: list[tuple[tuple[int, float], ...]] = [()] * len(positions)
    if alternatives > 0:
        values, ids = model.topk(min(alternatives, model.shape[-1]), dim=-1)
        top = [tuple(zip(i, v)) for i, v in zip(ids.tolist(), values.tolist())]
    return Draft(positions, tokens.tolist(), probability, confidence, top, model)
