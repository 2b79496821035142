"""Generating text: blocks left to right, each denoised from all-masks.

`generate` is a streaming iterator shared by the CLI and the app. It yields a
`Step` for every denoising step, a `BlockDone` when a block is final and one
`Finished` at the end, and it stops between two steps when `cancel` is set.

Inside a block, with T steps and times t = 1, (T-1)/T, ..., 0, a still
masked position stays masked from t to s with probability s/t and otherwise
takes a token drawn from p(x_0) (the model's distribution, limited to the
top-p nucleus). The first-hitting sampler instead reveals exactly one
uniformly chosen masked position per step. The model runs only for steps
that reveal something, and computes logits only for the revealed rows.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from .context import CachedContext, FullContext
from .errors import BD3LMError
from .loader import LoadedModel

SAMPLERS = ("ddpm", "first-hitting")
REPETITION_WINDOW = 256  # the spec's degenerate-text rule: entropy of the last 256 tokens ...
REPETITION_MIN_ENTROPY = 4.0  # ... below 4 nats means the text is stuck in a loop


@dataclass(frozen=True)
class SamplerSettings:
    tokens: int = 128  # new tokens to generate
    block_size: int | None = None  # None: the checkpoint's own (the best choice)
    steps: int | None = None  # denoising steps per block (DDPM); None: the block size
    sampler: str = "ddpm"
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int | None = None  # None: a random seed, reported in `Finished`
    stop_at_eos: bool = True
    stop_on_repetition: bool = True

    def resolved(self, checkpoint_block_size: int) -> "SamplerSettings":
        """The same settings with every None filled in, after checking the values."""
        block = self.block_size or checkpoint_block_size
        s = replace(
            self,
            block_size=block,
            steps=self.steps or block,
            seed=self.seed if self.seed is not None else random.randrange(2**31),
        )
        if s.tokens < 1:
            raise BD3LMError("the number of new tokens must be at least 1.")
        if s.block_size < 1 or s.steps < 1:
            raise BD3LMError("block size and steps must be at least 1.")
        if s.sampler not in SAMPLERS:
            raise BD3LMError(f"unknown sampler {s.sampler!r}; choose {' or '.join(SAMPLERS)}.")
        if not 0.0 < s.top_p <= 1.0:
            raise BD3LMError("top-p must be in (0, 1].")
        if s.temperature <= 0:
            raise BD3LMError("temperature must be above 0.")
        return s


@dataclass(frozen=True)
class Reveal:
    position: int  # absolute position in the sequence (BOS is 0)
    token: int
    probability: float  # p(x_0 = token) after top-p, when it was drawn


@dataclass(frozen=True)
class Step:
    block: int  # index of the block (blocks start at position 0)
    step: int  # 1-based step inside the block
    start: int  # absolute position of the block's first token
    t: float  # diffusion time after this step
    revealed: tuple[Reveal, ...]
    tokens: tuple[int, ...]  # the block now; the mask id where still masked
    masked: tuple[bool, ...]
    nfe: int  # forwards so far in this run


@dataclass(frozen=True)
class BlockDone:
    block: int
    start: int
    tokens: tuple[int, ...]
    text: str  # text added since the previous BlockDone (may lag behind a split character)
    nfe: int


@dataclass(frozen=True)
class Finished:
    prompt_ids: tuple[int, ...]  # BOS included
    token_ids: tuple[int, ...]  # generated ids only
    text: str
    nfe: int
    seconds: float
    reason: str  # "length", "eos", "repetition" or "cancelled"
    settings: SamplerSettings  # resolved: every value that was used

    @property
    def tokens_per_second(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else 0.0


Event = Step | BlockDone | Finished


def nucleus(logits: np.ndarray, top_p: float, temperature: float, mask_id: int) -> np.ndarray:
    """p(x_0) for one position: softmax at `temperature`, the mask never predicted, cut to the top-p nucleus.

    The nucleus keeps the most probable ids whose cumulative probability is
    at most p (always at least one) and renormalises. Only the sorted values
    are needed, not the permutation: the nucleus is every id above the
    smallest kept value, plus as many ids equal to it as the cut allows.

    This runs on one row of the vocabulary in numpy, in float64 like the
    reference: on a small CPU, torch's multi-threaded kernels spend more time
    waking threads than working on a 50k-element row.
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


def histogram_entropy(tokens: list[int]) -> float:
    counts = Counter(tokens).values()
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts)


class _Run:
    """The state of one generation: the sequence, the context, the random stream."""

    def __init__(self, loaded: LoadedModel, prompt_ids: list[int], settings: SamplerSettings, naive: bool) -> None:
        self.loaded = loaded
        self.settings = settings
        model = loaded.model
        self.mask_id = loaded.config.mask_id
        self.eos_id = loaded.tokenizer.eos_id
        self.device = loaded.device
        with torch.no_grad():
            mods = model.modulations(None)
        self.context = (FullContext if naive else CachedContext)(model, settings.block_size, mods)
        self.generator = torch.Generator(device=self.device).manual_seed(settings.seed)
        self.prompt = prompt_ids
        self.sequence: list[int] = list(prompt_ids)
        self.nfe = 0

    def rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device)

    def denoise(self, block: torch.Tensor, index: int, start: int, cancel: threading.Event | None) -> Iterator[Step]:
        """Unmask `block [1, L']` in place, one event per step; returns early on cancel.

        Which positions a step reveals does not depend on the model, so it is
        drawn first; the network then runs only if something is revealed (a
        step that changes nothing would reuse the same p(x_0)), and computes
        logits only for the revealed rows.
        """
        s = self.settings
        t, step = 1.0, 0
        while len(masked := (block[0] == self.mask_id).nonzero()[:, 0]):
            if cancel is not None and cancel.is_set():
                return
            step += 1
            if s.sampler == "first-hitting":
                t *= float(self.rand(1)) ** (1.0 / len(masked))
                chosen = masked[torch.randint(len(masked), (1,), generator=self.generator, device=self.device)]
            else:
                t_next = max(0.0, 1.0 - step / s.steps)
                chosen = masked[self.rand(len(masked)) >= t_next / t]
                t = t_next
            revealed: tuple[Reveal, ...] = ()
            if len(chosen):
                logits = self.context.logits(block, chosen).cpu().numpy()
                self.nfe += 1
                draws = []
                for row, u in zip(logits, self.rand(len(chosen)).tolist()):
                    probs = nucleus(row, s.top_p, s.temperature, self.mask_id)
                    token = draw(probs, u)
                    draws.append((token, float(probs[token])))
                block[0, chosen] = torch.tensor([tok for tok, _ in draws], device=self.device)
                revealed = tuple(Reveal(start + o, tok, p) for o, (tok, p) in zip(chosen.tolist(), draws))
            current = block[0].tolist()
            yield Step(
                index, step, start, t, revealed, tuple(current),
                tuple(tok == self.mask_id for tok in current), self.nfe,
            )


def encode_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    """The fixed start of a generation: BOS, then the prompt's tokens."""
    return [loaded.tokenizer.bos_id] + loaded.tokenizer.encode(prompt)


def generate(
    loaded: LoadedModel,
    prompt: str = "",
    settings: SamplerSettings = SamplerSettings(),
    cancel: threading.Event | None = None,
    naive: bool = False,
) -> Iterator[Event]:
    """Stream the generation of `settings.tokens` new tokens after `prompt`.

    The prompt's whole blocks go straight into the context; its last partial
    block is completed by the sampler. `naive=True` recomputes the prefix at
    every forward instead of caching it (for tests and benchmarks).
    """
    if loaded.config.time_conditioning:
        raise BD3LMError("time-conditioned checkpoints are not supported by the sampler.")
    s = settings.resolved(loaded.config.block_size)
    yield from _generate(_Run(loaded, encode_prompt(loaded, prompt), s, naive), cancel)


def _generate(run: _Run, cancel: threading.Event | None) -> Iterator[Event]:
    s = run.settings
    L = s.block_size
    tokenizer = run.loaded.tokenizer
    began = time.perf_counter()
    n_prompt = len(run.prompt)
    end = n_prompt + s.tokens
    emitted = ""
    reason = "length"
    full_blocks = n_prompt // L
    if full_blocks:
        run.context.commit(torch.tensor([run.prompt[: full_blocks * L]], device=run.device))
    index = full_blocks
    generated: list[int] = []
    while True:
        start = index * L
        block = torch.full((1, L), run.mask_id, dtype=torch.long, device=run.device)
        fixed = run.prompt[start:]
        block[0, : len(fixed)] = torch.tensor(fixed, dtype=torch.long)
        yield from run.denoise(block, index, start, cancel)
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
            generated = run.sequence[n_prompt:end]  # the blocks committed so far
            break
        final = block[0].tolist()
        run.sequence[start:] = final
        run.context.commit(block)
        generated = run.sequence[n_prompt:end]
        tail = run.sequence[-REPETITION_WINDOW:]
        if s.stop_at_eos and run.eos_id in generated:
            reason = "eos"
            generated = generated[: generated.index(run.eos_id) + 1]
        elif s.stop_on_repetition and len(tail) == REPETITION_WINDOW and histogram_entropy(tail) < REPETITION_MIN_ENTROPY:
            reason = "repetition"
        last = reason != "length" or (index + 1) * L >= end
        text = tokenizer.decode(generated)
        if not last:  # a character split across blocks would show as U+FFFD until its other bytes arrive
            text = text.rstrip("\ufffd")
        yield BlockDone(index, start, tuple(final), text[len(emitted):], run.nfe)
        emitted = text
        if last:
            break
        index += 1
    yield Finished(
        tuple(run.prompt), tuple(generated), tokenizer.decode(generated), run.nfe,
        time.perf_counter() - began, reason, s,
    )
