"""What `generate` streams: a `Step` per denoising step, a `BlockDone` per finished block, one `Finished`.

Every event names its `row`: 0 for a single generation, 0 .. N-1 when N
samples of the same prompt are drawn in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import SamplerSettings


@dataclass(frozen=True)
class Reveal:
    position: int  # absolute position in the sequence (BOS is 0)
    token: int
    probability: float  # p(token) in the distribution it was drawn from: after temperature and top-p
    confidence: float  # the model's own p(token) when it was drawn: temperature 1, before top-p
    alternatives: tuple[tuple[int, float], ...] = ()  # the model's most likely ids then, with their probabilities


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
    row: int = 0


@dataclass(frozen=True)
class BlockDone:
    block: int
    start: int
    tokens: tuple[int, ...]
    text: str  # text added since the previous BlockDone (may lag behind a split character)
    nfe: int
    row: int = 0


@dataclass(frozen=True)
class Finished:
    prompt_ids: tuple[int, ...]  # BOS first for a BD3-LM; a chat model's are its tokenizer's own
    token_ids: tuple[int, ...]  # generated ids only
    text: str
    nfe: int
    seconds: float
    stop_reason: str  # "length", "eos", "repetition" or "cancelled": the JSON key's word too
    settings: SamplerSettings  # resolved: every value that was used, this row's own seed included
    row: int = 0

    @property
    def tokens_per_second(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else 0.0


Event = Step | BlockDone | Finished
