"""What the UI and the engine thread hand each other: requests, and what the UI may know of the model.

Plain data, no Qt: the views import these without importing the thread that serves them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bd3lm_core import SamplerSettings


@dataclass(frozen=True)
class ModelInfo:
    """What the UI knows of the loaded model (the model itself stays in the worker)."""

    source: str | None  # what was asked for: a folder, a repo id, or None for the shipped model
    name: str
    path: str
    device_choice: str  # as chosen ("auto", ...)
    dtype_choice: str
    device: str  # as resolved ("cpu", "cuda", ...)
    dtype: str
    block_size: int
    model_length: int
    defaults: tuple[tuple[str, object], ...] = ()  # its authors' sampler settings (catalog), under the user's choices
    chat: bool = False  # it has a chat template: the Chat view can talk to it
    reads_thinking: bool = False  # its template reads enable_thinking (Qwen3's): the Chat view offers the switch


@dataclass(frozen=True)
class NoJudgement:
    """Why a run has no Gen PPL: no judge, or nothing to judge; `hint` says what to do."""

    reason: str
    hint: str = ""


@dataclass(frozen=True)
class OtherModel:
    """A run on another model than the loaded one (a comparison column): its source, as for `load_model`."""

    source: str | None


@dataclass(frozen=True)
class LoadRequest:
    source: str | None
    device: str
    dtype: str
    cancel: threading.Event


@dataclass(frozen=True)
class RunRequest:
    """One generation, or `samples` of the same prompt drawn in one batch (seeds seed, seed + 1, ...).

    Sample i reports under run id `run_id + i`, so each sample is a run of its own to the UI.
    """

    run_id: int
    prompt: str
    settings: SamplerSettings
    model: OtherModel | None = None  # None: the loaded model
    samples: int = 1
    messages: tuple[dict[str, str], ...] | None = None  # a chat: `prompt` is then the template's rendering of these
    enable_thinking: bool | None = None  # for a chat template that reads it

    @property
    def run_ids(self) -> range:
        return range(self.run_id, self.run_id + self.samples)


@dataclass(frozen=True)
class Batch:
    """Runs done one after another, all stopped by one cancel."""

    runs: tuple[RunRequest, ...]
    cancel: threading.Event
