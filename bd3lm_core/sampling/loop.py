"""Generating text: blocks left to right, each denoised from all-masks.

`generate` is a streaming iterator shared by the CLI and the app. It yields a
`Step` for every denoising step, a `BlockDone` when a block is final and a
`Finished` at the end, per sample (`row`), and it stops before the next step
when `cancel` is set.

Blocks lie where the context says (`context.blocks`): one size throughout
for a BD3-LM, a whole context and then half contexts for an MDLM. Each step
asks the strategy (`strategies.py`) which masked positions to reveal, runs
the network for those positions only (a step that reveals nothing needs no
forward) and draws their tokens from the model's distribution cut to the
top-p nucleus. Several samples of one prompt move
through the blocks together, in one batch: each has its own random stream
(sample i of seed s is the single generation with seed s + i) and its own
stop rule, and leaves the batch when it stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace

import torch

from .. import checks
from ..budgets import require_sampling_memory
from ..errors import BD3LMError
from ..loader import LoadedModel
from .context import CachedContext, FullContext, WindowContext
from .draws import RandomStream, draft_tokens
from .events import BlockDone, Event, Finished, Reveal, Step
from .settings import SamplerSettings
from .stop_rules import stop_reason
from .strategies import STRATEGIES

MAX_SAMPLES = 1024  # samples of one prompt in one batch; each holds its own KV cache

Context = CachedContext | FullContext | WindowContext


def encode_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    """The fixed start of a generation: BOS then the prompt's tokens for a BD3-LM; for a chat model the
    tokens its own tokenizer gives (a BOS only if its post-processor adds one)."""
    text = checks.text(prompt, "the prompt")
    if not loaded.add_bos:
        return loaded.tokenizer.encode(text, add_special_tokens=True)
    return [loaded.tokenizer.bos_id] + loaded.tokenizer.encode(text)


def generate(
    loaded: LoadedModel,
    prompt: str = "",
    settings: SamplerSettings = SamplerSettings(),
    cancel: threading.Event | None = None,
    num_samples: int = 1,
    alternatives: int = 0,
) -> Iterator[Event]:
    """Stream the generation of `settings.tokens` new tokens after `prompt`, `num_samples` times at once.

    The prompt's whole blocks go straight into the context; its last partial
    block is completed by the sampler, and the last block only up to the
    last token asked for. Keys and values of finished blocks are
    cached; an MDLM, which cannot cache them, runs in windows instead.
    `alternatives` > 0 lists, with every revealed token, that many of the ids
    the model found most likely there.
    """
    model = loaded.model
    checks.whole(num_samples, "the number of samples", 1, MAX_SAMPLES)
    s = settings.resolved(model.default_block_size, model.context_length)
    prompt_ids = encode_prompt(loaded, prompt)
    if loaded.family == "mdlm":
        context = WindowContext(model, batch=num_samples)
        if s.block_size != model.default_block_size:
            raise BD3LMError(
                f"{loaded.name} is an MDLM: it writes its whole {model.context_length}-token context as one block, "
                f"then {context.stride} new tokens per window; leave the block size at {model.default_block_size}."
            )
    else:
        # Checked here, on the first step, so every caller (the app's engine thread included) is refused before
        # the cache is allocated; the CLI and the server also check earlier, before they start their answer.
        positions = len(prompt_ids) + s.tokens + s.block_size
        require_sampling_memory(loaded, num_samples, positions)
        context = CachedContext(model, s.block_size, batch=num_samples, positions=positions)
    yield from sample(loaded, prompt_ids, s, context, cancel, alternatives)


def sample(
    loaded: LoadedModel,
    prompt_ids: list[int],
    settings: SamplerSettings,
    context: Context,
    cancel: threading.Event | None = None,
    alternatives: int = 0,
) -> Iterator[Event]:
    """The sampling loop, on `context.batch` samples; `settings` must be resolved."""
    return _Generation(loaded, prompt_ids, settings, context, alternatives).run(cancel)


@dataclass
class _Sample:
    """One row of the batch: its seed, its random stream and the tokens committed so far."""

    row: int
    settings: SamplerSettings  # with this sample's own seed
    rng: RandomStream
    sequence: list[int]  # the prompt, then every committed block
    t: float = 1.0  # diffusion time inside the current block
    emitted: str = ""  # text already reported in BlockDone events


class _Generation:
    def __init__(
        self, loaded: LoadedModel, prompt_ids: list[int], settings: SamplerSettings, context: Context, alternatives: int,
    ) -> None:
        self.tokenizer = loaded.tokenizer
        self.mask_id = loaded.model.mask_id
        self.stop_ids = loaded.stop_ids
        self.device = loaded.device
        self.settings = settings
        self.strategy = STRATEGIES[settings.sampler](settings)  # made again for each block of another size
        self.context = context
        self.alternatives = alternatives
        self.prompt = list(prompt_ids)
        self.end = len(prompt_ids) + settings.tokens  # one past the last position to generate
        self.samples = [
            _Sample(row, replace(settings, seed=settings.seed + row), RandomStream(settings.seed + row, self.device), list(prompt_ids))
            for row in range(context.batch)
        ]
        self.nfe = 0
        self.began = time.perf_counter()

    def run(self, cancel: threading.Event | None) -> Iterator[Event]:
        blocks = self.context.blocks
        index = blocks.first_open(len(self.prompt))  # the prompt's whole blocks are context, not work
        start = blocks.span(index)[0]
        if start:
            self.context.commit(self._rows(self.prompt[:start]))
        while self.samples:
            start, L = blocks.span(index)
            if L != self.strategy.settings.block_size:
                self.strategy = STRATEGIES[self.settings.sampler](replace(self.settings, block_size=L))
            fixed = self.prompt[start : start + L]  # the prompt's last partial block, if any
            block = self._rows(fixed + [self.mask_id] * (L - len(fixed)))
            completed = yield from self._denoise(block, index, start, cancel)
            if not completed:
                for s in self.samples:
                    yield self._finished(s, "cancelled")
                return
            self.context.commit(block)
            yield from self._close_block(block, index, start)
            index += 1

    def _rows(self, ids: list[int]) -> torch.Tensor:
        """The same ids for every sample: `[batch, len(ids)]`."""
        return torch.tensor([ids], dtype=torch.long, device=self.device).repeat(len(self.samples), 1)

    def _denoise(
        self, block: torch.Tensor, index: int, start: int, cancel: threading.Event | None
    ) -> Generator[Step, None, bool]:
        """Unmask `block [batch, L]` in place, one Step per sample and step; False if cancelled first.

        Positions past the last one the run asks for stay masked: the model
        sees them as masks, as it sees any position not yet revealed, and no
        forward is spent on tokens that would be thrown away.
        """
        for s in self.samples:
            s.t = 1.0
        in_run = block[:, : self.end - start]  # a view: what the run keeps of this block
        step = 0
        while bool((in_run == self.mask_id).any()):
            if cancel is not None and cancel.is_set():
                return False
            step += 1
            masked = [(row == self.mask_id).nonzero()[:, 0] for row in in_run]
            asked = [self._ask(s, m, step) if len(m) else m for s, m in zip(self.samples, masked)]
            wanted = torch.cat(asked).unique()  # sorted offsets that need logits in some row
            logits = None
            if len(wanted):
                logits = self.context.logits(block, wanted)  # [batch, len(wanted), V], on the model's device
                self.nfe += 1
            for r, s in enumerate(self.samples):
                if not len(masked[r]):
                    continue  # this sample's block is done; it waits for the others
                revealed: tuple[Reveal, ...] = ()
                if len(asked[r]):
                    rows = logits[r, torch.searchsorted(wanted, asked[r])]
                    revealed = self._reveal(s, block[r], masked[r], asked[r], rows, step, start)
                current = block[r].tolist()
                yield Step(index, step, start, s.t, revealed, tuple(current),
                           tuple(tok == self.mask_id for tok in current), self.nfe, s.row)
        return True

    def _ask(self, s: _Sample, masked: torch.Tensor, step: int) -> torch.Tensor:
        """The offsets to draw tokens for, as the strategy picks them."""
        picked, s.t = self.strategy.pick(masked, s.t, step, s.rng)
        return picked

    def _reveal(
        self, s: _Sample, row: torch.Tensor, masked: torch.Tensor, asked: torch.Tensor, logits: torch.Tensor,
        step: int, start: int,
    ) -> tuple[Reveal, ...]:
        """Draw tokens for `asked`, let the strategy keep some, and write those into `row`."""
        settings = self.settings
        draft = draft_tokens(logits, asked, settings.top_p, settings.temperature, self.mask_id, s.rng, self.alternatives)
        kept, s.t = self.strategy.keep(masked, s.t, step, s.rng, draft)
        if kept is not draft.positions:
            draft = draft.subset(kept)
        row[draft.positions] = torch.tensor(draft.tokens, device=row.device)
        return tuple(
            Reveal(start + o, tok, p, c, alt)
            for o, tok, p, c, alt in zip(
                draft.positions.tolist(), draft.tokens, draft.probabilities, draft.confidence, draft.alternatives
            )
        )

    def _close_block(self, block: torch.Tensor, index: int, start: int) -> Iterator[Event]:
        """Commit the block to each sample's text, report it, and let go of the samples that stop here."""
        n_prompt = len(self.prompt)
        last_block = start + block.shape[1] >= self.end
        going_on = []
        for r, s in enumerate(self.samples):
            s.sequence[start:] = block[r].tolist()
            reason = stop_reason(s.sequence, n_prompt, self.end, self.stop_ids, s.settings) or (
                "length" if last_block else None
            )
            text = self.tokenizer.decode(self._generated(s, reason))
            if reason is None:  # a character split across blocks would show as U+FFFD until its other bytes arrive
                text = text.rstrip("\ufffd")
            yield BlockDone(index, start, tuple(block[r].tolist()), text[len(s.emitted):], self.nfe, s.row)
            s.emitted = text
            if reason is None:
                going_on.append(r)
            else:
                yield self._finished(s, reason)
        if len(going_on) < len(self.samples):
            self.context.keep(going_on)
            self.samples = [self.samples[r] for r in going_on]

    def _generated(self, s: _Sample, reason: str | None) -> list[int]:
        """The sample's generated ids, cut after its first EOS when that is why it stopped."""
        generated = s.sequence[len(self.prompt) : self.end]
        if reason == "eos":
            generated = generated[: min(i for i, tok in enumerate(generated) if tok in self.stop_ids) + 1]
        return generated

    def _finished(self, s: _Sample, reason: str) -> Finished:
        generated = self._generated(s, reason)
        return Finished(
            tuple(self.prompt), tuple(generated), self.tokenizer.decode(generated), self.nfe,
            time.perf_counter() - self.began, reason, s.settings, s.row,
        )
