"""The masked-diffusion objective: noise, the SUBS parameterization and the NELBO.

Noise schedule: log-linear, so a token is masked at time t with probability
t. The loss of one token is `(1/t) * -log p(x_0 | x_t)` where it is masked
and 0 where it is not; averaged over all tokens it is an upper bound on the
negative log-likelihood per token (the NELBO). Block diffusion draws one t
per block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NEG_INF = -1e6  # what the authors add to the mask logit; exp() of it is 0


def sample_block_times(
    batch: int,
    blocks_per_row: int,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    antithetic: bool = True,
) -> torch.Tensor:
    """One time per block of tokens, `[batch, blocks_per_row]`, uniform on [low, high].

    Antithetic (stratified) draws spread the batch's times evenly over the
    interval, which lowers the variance of the loss estimate.
    """
    count = batch * blocks_per_row
    u = torch.rand(count, generator=generator)
    if antithetic:
        u = (u / count + torch.arange(count) / count) % 1.0
    return (low + (high - low) * u).view(batch, blocks_per_row)


def mask_tokens(
    x0: torch.Tensor, t: torch.Tensor, mask_id: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each token by the mask with probability t (`t` is per token, same shape as x0)."""
    u = torch.rand(x0.shape, generator=generator).to(x0.device)
    return torch.where(u < t, torch.full_like(x0, mask_id), x0)


def token_losses(logits: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Per-token NELBO terms `[B, n]`: (1/t) * -log p(x_0 | x_t) at masked positions, 0 elsewhere."""
    logits = logits.float().clone()
    logits[..., mask_id] += NEG_INF
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x0, reduction="none")
    masked = xt == mask_id
    return torch.where(masked, nll / t, torch.zeros_like(nll))


def block_losses(
    model: torch.nn.Module,
    x0: torch.Tensor,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    antithetic: bool = True,
    rows: slice = slice(None),
    forward: Callable[..., torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise `x0 [B, n]` block-wise and return (per-token losses `[b, n]`, times `[b, n/L']`) of `x0[rows]`.

    The times and masks are drawn for the whole batch whatever `rows` takes,
    so processes that each take their rows of one batch see exactly the noise
    one process with the whole batch sees. `forward(xt, x0, sigma=...)` gives
    the logits (default `model.forward_train`; in a group, the DDP wrapper).
    Block size 1 is autoregression: every token is masked (t = 1) and the
    loss is the exact next-token NLL.
    """
    config = model.config
    batch, n = x0.shape
    block = config.block_size
    if block == 1:
        t_blocks = torch.ones(batch, n)
    else:
        t_blocks = sample_block_times(batch, n // block, low, high, generator, antithetic)
    t = t_blocks.repeat_interleave(block, dim=1).to(x0.device)
    xt = mask_tokens(x0, t, config.mask_id, generator)
    x0, xt, t, t_blocks = x0[rows], xt[rows], t[rows], t_blocks[rows]
    sigma = -torch.log1p(-t_blocks[:, 0].clamp(max=1 - 1e-6)).to(x0.device)  # used only with time conditioning
    logits = (forward or model.forward_train)(xt, x0, sigma=sigma)
    return token_losses(logits, xt, x0, t, config.mask_id), t_blocks
