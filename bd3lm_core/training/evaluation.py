"""Likelihood of held-out text, and the choice of the training noise window.

`nelbo` estimates the negative ELBO per token with t ~ U[0.001, 1] (an upper
bound on the NLL, so exp(NELBO) bounds the perplexity). Block size 1 gives
the exact autoregressive NLL.

`choose_window` is the paper's variance search: the loss is an unbiased
estimate for any window of t, but its variance is not, and training with the
lowest-variance window [beta, omega] trains faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..model.network import BD3LM
from .objective import block_losses

FULL_WINDOW = (1e-3, 1.0)


@dataclass(frozen=True)
class EvalResult:
    nelbo_per_token: float
    ppl_bound: float
    tokens: int
    stderr: float
    samples: int



@torch.no_grad()
def nelbo(
    model: BD3LM,
    rows: torch.Tensor,
    samples: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """NELBO per token of `rows [R, n]`, averaged over `samples` draws of t and masks.

    The standard error is over the per-row, per-draw means.
    """
    was_training = model.training
    model.eval()
    device = model.vocab_embed.embedding.device
    generator = torch.Generator().manual_seed(seed)
    draws = 1 if model.config.block_size == 1 else samples
    per_row: list[torch.Tensor] = []
    total = draws * math.ceil(len(rows) / batch_size)
    done = 0
    for _ in range(draws):
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size].to(device)
            losses, _ = block_losses(model, batch, *FULL_WINDOW, generator=generator)
            per_row.append(losses.mean(dim=1).double().cpu())
            done += 1
            if progress:
                progress(done, total)
    model.train(was_training)
    values = torch.cat(per_row)
    mean = float(values.mean())
    stderr = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return EvalResult(mean, math.exp(mean), int(rows.numel()), stderr, draws)


def candidate_windows(widths: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9), stride: float = 0.05) -> list[tuple[float, float]]:
    """Every [beta, omega] inside [0, 1] of the given widths, moved in steps of `stride`."""
    windows = []
    for width in widths:
        steps = int(round((1.0 - width) / stride))
        for i in range(steps + 1):
            beta = round(i * stride, 4)
            windows.append((beta, round(beta + width, 4)))
    return windows


def pick_window(
    windows: list[tuple[float, float]], per_block_losses: Callable[[tuple[float, float]], torch.Tensor]
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The window whose per-block losses vary least, with every window's variance."""
    variances = {w: float(per_block_losses(w).double().var()) for w in windows}
    return min(variances, key=variances.get), variances


@torch.no_grad()
def choose_window(model: BD3LM, rows: torch.Tensor, seed: int = 0) -> tuple[tuple[float, float], dict]:
    """Run the variance search on held-out `rows` (one batch is enough)."""
    was_training = model.training
    model.eval()
    device = model.vocab_embed.embedding.device
    block = model.config.block_size
    x0 = rows.to(device)

    def per_block(window: tuple[float, float]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        # beta = 0 would divide by t = 0 on a masked token; clip as the full window does
        losses, _ = block_losses(model, x0, max(window[0], FULL_WINDOW[0]), window[1], generator=generator)
        return losses.view(len(x0), -1, block).mean(dim=-1)

    best, variances = pick_window(candidate_windows(), per_block)
    model.train(was_training)
    return best, variances
