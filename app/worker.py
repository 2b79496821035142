"""The engine's own thread: the only place the app loads or runs a model.

`EngineWorker` lives in a `QThread`, owns the `LoadedModel` and turns the
sampler's event iterator into Qt signals; `Engine` is its handle on the UI
thread, which sends it requests and can always stop it. Steps are sent in
batches at most every `EMIT_INTERVAL` seconds, so a fast model cannot flood
the UI thread with signals.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import asdict, dataclass

from PySide6.QtCore import QObject, Signal, Slot

from bd3lm_core import BD3LMError, Finished, LoadedModel, SamplerSettings, Step, encode_prompt, generate, load_model

from .threads import end_thread, start_in_thread
from .trace import Frame, Outcome, Token, Trace

EMIT_INTERVAL = 1 / 60


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


@dataclass(frozen=True)
class LoadRequest:
    source: str | None
    device: str
    dtype: str


@dataclass(frozen=True)
class RunRequest:
    run_id: int
    prompt: str
    settings: SamplerSettings
    cancel: threading.Event


def _unexpected(err: Exception) -> str:
    """A bug, not the user's doing: keep the traceback on the console, show one line."""
    traceback.print_exc()
    return f"unexpected error ({type(err).__name__}: {err}); details are on the console."


class EngineWorker(QObject):
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str)
    run_started = Signal(int, object)  # run id, Trace (no frames yet)
    run_progressed = Signal(int, object)  # run id, list[Frame]
    run_finished = Signal(int, object)  # run id, Outcome
    run_failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self._model: LoadedModel | None = None

    @Slot(object)
    def load(self, request: LoadRequest) -> None:
        """Load a model; on any failure the previous one stays."""
        try:
            model = load_model(request.source, device=request.device, dtype=request.dtype)
        except BD3LMError as err:
            self.load_failed.emit(str(err))
            return
        except Exception as err:  # noqa: BLE001 - the UI must hear of it, whatever it is
            self.load_failed.emit(_unexpected(err))
            return
        self._model = model
        self.loaded.emit(ModelInfo(
            request.source, model.name, str(model.path), request.device, request.dtype,
            *model.placement, model.config.block_size, model.config.model_length,
        ))

    @Slot(object)
    def run(self, request: RunRequest) -> None:
        if self._model is None:
            self.run_failed.emit(request.run_id, "no model is loaded.")
            return
        try:
            self._run(self._model, request)
        except BD3LMError as err:
            self.run_failed.emit(request.run_id, str(err))
        except Exception as err:  # noqa: BLE001
            self.run_failed.emit(request.run_id, _unexpected(err))

    def _run(self, model: LoadedModel, request: RunRequest) -> None:
        settings = request.settings.resolved(model.config.block_size)
        tokenizer = model.tokenizer
        prompt_ids = encode_prompt(model, request.prompt)
        prompt_tokens = tuple(
            Token(pos, tid, "" if pos == 0 else tokenizer.token_text(tid), -1, 0, 1.0, -1)
            for pos, tid in enumerate(prompt_ids)
        )
        self.run_started.emit(request.run_id, Trace(
            request.prompt, model.name, *model.placement, asdict(settings),
            tokenizer.eos_id, prompt_tokens,
        ))
        began = last_emit = time.perf_counter()
        batch: list[Frame] = []
        count = 0
        for event in generate(model, request.prompt, settings, cancel=request.cancel):
            if isinstance(event, Step):
                revealed = tuple(
                    Token(r.position, r.token, tokenizer.token_text(r.token), event.block, event.step,
                          r.probability, count)
                    for r in event.revealed
                )
                now = time.perf_counter()
                batch.append(Frame(
                    event.block, event.step, event.start, event.t, revealed, event.masked, event.nfe, now - began,
                ))
                count += 1
                if now - last_emit >= EMIT_INTERVAL:
                    self.run_progressed.emit(request.run_id, batch)
                    batch, last_emit = [], now
            elif isinstance(event, Finished):
                if batch:
                    self.run_progressed.emit(request.run_id, batch)
                self.run_finished.emit(request.run_id, Outcome(
                    event.token_ids, event.text, event.nfe, event.seconds, event.reason,
                ))


class Engine(QObject):
    """The UI thread's handle on the worker: requests go out as queued signals, Stop is a flag."""

    _load_requested = Signal(object)
    _run_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = EngineWorker()
        self._load_requested.connect(self.worker.load)
        self._run_requested.connect(self.worker.run)
        self._cancel: threading.Event | None = None
        self._next_run = 0
        self._thread = start_in_thread(self.worker, "bd3lm-engine")

    def load(self, source: str | None, device: str = "auto", dtype: str = "auto") -> None:
        """Stop any run, then load; the answer is `worker.loaded` or `worker.load_failed`."""
        self.stop()
        self._load_requested.emit(LoadRequest(source, device, dtype))

    def generate(self, prompt: str, settings: SamplerSettings) -> int:
        """Start a run (stopping any other) and return its id, which tags all its signals."""
        self.stop()
        self._next_run += 1
        self._cancel = threading.Event()
        self._run_requested.emit(RunRequest(self._next_run, prompt, settings, self._cancel))
        return self._next_run

    def stop(self) -> None:
        """Ask the current run to end; the sampler checks the flag before every step."""
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self) -> None:
        """Stop the run, let the worker finish what it is doing, and end its thread (safe to call twice)."""
        self.stop()
        end_thread(self._thread)
