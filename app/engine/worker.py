"""The engine's own thread: the only place the app loads, runs or judges a model.

`EngineWorker` lives in a `QThread`, owns the `LoadedModel` and turns the
sampler's event iterator into Qt signals; `Engine` is its handle on the UI
thread, which sends it requests and can always stop them: a run stops
before its next step, a load that downloads stops within a chunk. Steps are
sent in batches at most every `EMIT_INTERVAL` seconds, so a fast model
cannot flood the UI thread with signals.

A request runs one or more generations in order (a comparison is several);
each has its own run id, which tags all its signals, and may use another
model than the loaded one. After each run the worker asks a judge for the
text's Gen PPL and entropy, here and nowhere else.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, replace

from PySide6.QtCore import QObject, Signal, Slot

from bd3lm_core import (
    BD3LMError, DownloadCancelled, DownloadProgress, Judge, LoadedModel, SamplerSettings, encode_prompt, generate,
    load_judge, load_model, render_chat,
)
from bd3lm_core import sampling  # its events, named apart from the records this thread makes of them
from bd3lm_core.failures import describe

from ..records.trace import Frame, Judgement, Finished, Reveal, Trace
from .requests import Batch, LoadRequest, ModelInfo, NoJudgement, OtherModel, RunRequest
from .threads import end_thread, start_in_thread

EMIT_INTERVAL = 1 / 60
ALTERNATIVES = 5  # the model's top tokens kept with every revealed token
SHUTDOWN_WAIT_MS = 5000  # at quit, how long to let the worker finish a step it cannot abandon


def _unexpected(err: Exception) -> str:
    """A bug, not the user's doing: one line to show, the traceback in a report file (as the CLI does)."""
    return describe(err, "running the engine").message


class EngineWorker(QObject):
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str)
    load_cancelled = Signal(str)
    load_progressed = Signal(object)  # DownloadProgress, while a load downloads
    run_started = Signal(int, object)  # run id, Trace (no frames yet)
    run_progressed = Signal(int, object)  # run id, list[Frame]
    run_finished = Signal(int, object)  # run id, Finished
    run_failed = Signal(int, str)
    run_judged = Signal(int, object)  # run id, Judgement or NoJudgement
    judge_progressed = Signal(object)  # DownloadProgress, while a judge downloads

    def __init__(self) -> None:
        super().__init__()
        self._model: LoadedModel | None = None
        self._placement = ("auto", "auto")
        self._others: dict[str | None, LoadedModel] = {}  # models of comparison columns, by source
        self._judges: dict[str, object] = {}  # by model path: a judge, or the NoJudgement saying why none

    @Slot(object)
    def load(self, request: LoadRequest) -> None:
        """Load a model (downloading it first if need be); on any failure the previous one stays."""
        try:
            model = self._load(request.source, request.device, request.dtype, request.cancel)
        except DownloadCancelled as err:
            self.load_cancelled.emit(str(err))
            return
        except BD3LMError as err:
            self.load_failed.emit(str(err))
            return
        except Exception as err:  # noqa: BLE001 - the UI must hear of it, whatever it is
            self.load_failed.emit(_unexpected(err))
            return
        self._model, self._placement = model, (request.device, request.dtype)
        self._others.clear()
        self._judges.clear()  # a judge installed since is found on the next run
        self.loaded.emit(ModelInfo(
            request.source, model.name, str(model.path), request.device, request.dtype,
            *model.placement, model.config.block_size, model.config.model_length, tuple(model.sampler_defaults.items()),
            model.chat_template is not None,
            model.chat_template is not None and model.chat_template.reads_enable_thinking,
        ))

    def _load(self, source: str | None, device: str, dtype: str, cancel: threading.Event) -> LoadedModel:
        return load_model(source, device=device, dtype=dtype, progress=self.load_progressed.emit, cancel=cancel)

    @Slot(object)
    def run(self, batch: Batch) -> None:
        """Each run of the batch in turn; after a stop, the runs not begun fail with a note saying so."""
        wanted = {r.model.source for r in batch.runs if r.model is not None}
        for source in set(self._others) - wanted:  # columns of an earlier comparison
            del self._others[source]
        for request in batch.runs:
            if batch.cancel.is_set():
                for run_id in request.run_ids:
                    self.run_failed.emit(run_id, "not run: stopped before it began.")
                continue
            try:
                model = self._model_for(request, batch.cancel)
                outcomes = self._run(model, request, batch.cancel)
                for run_id, (prompt, outcome) in zip(request.run_ids, outcomes):
                    self.run_judged.emit(run_id, self._judge(model, prompt, outcome, batch.cancel))
            except DownloadCancelled:
                for run_id in request.run_ids:
                    self.run_failed.emit(run_id, "not run: its model's download was stopped.")
            except BD3LMError as err:
                for run_id in request.run_ids:
                    self.run_failed.emit(run_id, str(err))
            except Exception as err:  # noqa: BLE001
                message = _unexpected(err)
                for run_id in request.run_ids:
                    self.run_failed.emit(run_id, message)

    def _model_for(self, request: RunRequest, cancel: threading.Event) -> LoadedModel:
        if request.model is None:
            if self._model is None:
                raise BD3LMError("no model is loaded.")
            return self._model
        source = request.model.source
        if source not in self._others:
            self._others[source] = self._load(source, *self._placement, cancel)
        return self._others[source]

    def _run(self, model: LoadedModel, request: RunRequest, cancel: threading.Event) -> list[tuple[str, Finished]]:
        """Generate, turning the sampler's events into each sample's frames; (the prompt given, how each sample
        ended), in row order."""
        settings = request.settings.resolved(model.config.block_size)
        tokenizer = model.tokenizer
        texts: dict[int, str] = {}  # each token's text, decoded once per run (five alternatives a token add up)

        def text(tid: int) -> str:
            if tid not in texts:
                texts[tid] = tokenizer.token_text(tid)
            return texts[tid]

        prompt = request.prompt
        if request.messages is not None:  # a chat turn: the model is given what its template makes of the conversation
            prompt = render_chat(model, list(request.messages), request.enable_thinking)
        prompt_ids = encode_prompt(model, prompt)
        prompt_tokens = tuple(
            Reveal(pos, tid, "" if pos == 0 else text(tid), -1, 0, 1.0, -1) for pos, tid in enumerate(prompt_ids)
        )
        ids = list(request.run_ids)
        for row, run_id in enumerate(ids):  # the engine's rule: sample i of a batch draws with seed + i
            own = replace(settings, seed=settings.seed + row) if settings.seed is not None else settings
            self.run_started.emit(run_id, Trace(
                prompt, model.name, *model.placement, asdict(own), tokenizer.eos_id, prompt_tokens,
            ))
        began = time.perf_counter()
        last_emit = [began] * len(ids)
        pending: list[list[Frame]] = [[] for _ in ids]
        counts = [0] * len(ids)
        outcomes: dict[int, Finished] = {}
        for event in generate(model, prompt, settings, cancel=cancel, num_samples=len(ids),
                              alternatives=ALTERNATIVES):
            row = event.row
            if isinstance(event, sampling.Step):
                if not event.revealed:  # a DDPM step that drew no position: nothing to show or replay
                    continue
                revealed = tuple(
                    Reveal(r.position, r.token, text(r.token), event.block, event.step, r.probability, counts[row],
                          r.confidence, tuple((tid, text(tid), p) for tid, p in r.alternatives))
                    for r in event.revealed
                )
                now = time.perf_counter()
                pending[row].append(Frame(
                    event.block, event.step, event.start, event.t, revealed, event.masked, event.nfe, now - began,
                ))
                counts[row] += 1
                if now - last_emit[row] >= EMIT_INTERVAL:
                    self.run_progressed.emit(ids[row], pending[row])
                    pending[row], last_emit[row] = [], now
            elif isinstance(event, sampling.Finished):
                if pending[row]:
                    self.run_progressed.emit(ids[row], pending[row])
                    pending[row] = []
                outcomes[row] = Finished(event.token_ids, event.text, event.nfe, event.seconds, event.stop_reason)
                self.run_finished.emit(ids[row], outcomes[row])
        if len(outcomes) != len(ids):
            raise AssertionError("generate ended without a Finished for every sample")
        return [(prompt, outcomes[row]) for row in range(len(ids))]

    def _judge(
        self, model: LoadedModel, prompt: str, outcome: Finished, cancel: threading.Event,
    ) -> Judgement | NoJudgement:
        """Gen PPL and entropy of the generated text, from the model's judge (loaded once, kept).

        The judge reads the prompt as context but scores only the generated text.

        A judge that must be downloaded first reports its progress, and Stop
        (or the status bar's Cancel) ends that download.
        """
        if not outcome.token_ids:
            return NoJudgement("no text to judge")
        judge = self._judges.get(str(model.path))
        if judge is None:
            judge = self._judges[str(model.path)] = self._load_judge(model, cancel)
        if isinstance(judge, NoJudgement):
            return judge
        try:
            judgement = judge.score(outcome.text, token_ids=list(outcome.token_ids), prompt=prompt)
        except BD3LMError as err:
            return NoJudgement("the judge failed", str(err))
        except Exception as err:  # noqa: BLE001 - a judge's bug must not fail the run it judges
            return NoJudgement("the judge failed", _unexpected(err))
        return Judgement(int(judgement.tokens), float(judgement.gen_ppl), float(judgement.entropy), str(judgement.judge))

    def _load_judge(self, model: LoadedModel, cancel: threading.Event) -> Judge | NoJudgement:
        """The default judge of `model`, or a NoJudgement saying why there is none."""
        try:
            return load_judge(source=None, model=model, device="cpu", progress=self.judge_progressed.emit, cancel=cancel)
        except DownloadCancelled:
            return NoJudgement("judge download stopped", "it continues when the model is loaded again.")
        except BD3LMError as err:
            return NoJudgement("no judge installed", str(err))


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
        self._load_cancel: threading.Event | None = None
        self._next_run = 0
        self.left_running = False  # the worker outlived shutdown: the process must end without waiting
        self._thread = start_in_thread(self.worker, "bd3lm-engine")

    def load(self, source: str | None, device: str = "auto", dtype: str = "auto") -> None:
        """Stop any run, then load; the answer is `worker.loaded`, `load_failed` or `load_cancelled`."""
        self.stop()
        self._load_cancel = threading.Event()
        self._load_requested.emit(LoadRequest(source, device, dtype, self._load_cancel))

    def cancel_load(self) -> None:
        """Stop a load that is downloading its model (the partial download stays for the next try)."""
        if self._load_cancel is not None:
            self._load_cancel.set()

    def generate(self, prompt: str, settings: SamplerSettings) -> int:
        """Start a run on the loaded model (stopping any other) and return its id, which tags all its signals."""
        return self.run_all(prompt, [(None, settings)])[0]

    def run_chat(self, messages: list[dict[str, str]], settings: SamplerSettings,
                 enable_thinking: bool | None = None) -> int:
        """Start the loaded chat model's reply to `messages` (stopping anything running); its run id."""
        request = RunRequest(self._ids(1), "", settings, messages=tuple(messages), enable_thinking=enable_thinking)
        return self._send([request])[0]

    def run_all(self, prompt: str, runs: list[tuple[OtherModel | None, SamplerSettings]], samples: int = 1) -> list[int]:
        """Start runs one after another (stopping anything running) and return their ids, in order.

        With `samples` > 1 each run draws that many samples in one batch (seeds seed, seed + 1, ...); the ids
        come run by run, each run's samples together.
        """
        return self._send([RunRequest(self._ids(samples), prompt, settings, model, samples) for model, settings in runs])

    def _ids(self, count: int) -> int:
        """The first of `count` fresh run ids."""
        self._next_run += count
        return self._next_run - count + 1

    def _send(self, requests: list[RunRequest]) -> list[int]:
        """Stop what runs, then hand these requests to the worker as one batch; their run ids, in order."""
        self.stop()
        self._cancel = threading.Event()
        self._run_requested.emit(Batch(tuple(requests), self._cancel))
        return [run_id for r in requests for run_id in r.run_ids]

    def stop(self) -> None:
        """Ask the current runs to end; the sampler checks the flag before every step."""
        if self._cancel is not None:
            self._cancel.set()

    def shutdown(self) -> None:
        """Stop everything, let the worker finish its step, and end its thread (safe to call twice).

        The wait is bounded: a step or a download chunk that hangs cannot keep
        the window from closing (`left_running` then tells `main` so).
        """
        self.stop()
        self.cancel_load()
        if not end_thread(self._thread, SHUTDOWN_WAIT_MS, self.worker):
            self.left_running = True
            print("bd3lm-studio: the engine thread did not stop in time; quitting without it.", file=sys.stderr)
