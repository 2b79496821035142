"""One model, one generation at a time: a bounded line of waiting requests and the thread that runs them.

The server's event loop never runs the network. It hands a request to
`Runner.submit`, which gives back a `Ticket`; the runner's thread runs the
tickets in order and puts what happens (`Piece`, `StepInfo`, `Done`,
`Failed`, then `END`) on the ticket's asyncio queue. Setting
`ticket.cancel` (the client went away) skips a waiting ticket and stops a
running one before its next step.

Stop strings are applied here, in the thread, so that the generation can
stop as soon as every sample has met one, and so that a streaming client is
never sent text past a stop: a piece that could be the start of a stop
string is held back until the next block shows whether it is.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

from ..errors import BD3LMError
from ..failures import EXIT_BUG, describe
from ..loader import LoadedModel
from ..sampling import BlockDone, Finished, SamplerSettings, Step, generate


@dataclass(frozen=True)
class Piece:
    row: int
    text: str  # final text of sample `row`, after the pieces before it


@dataclass(frozen=True)
class StepInfo:
    row: int
    block: int
    step: int
    revealed: tuple[tuple[int, int, str], ...]  # (position, token id, its text)


@dataclass(frozen=True)
class Done:
    finished: Finished
    text: str  # the whole sample, cut before the first stop string
    finish_reason: str  # OpenAI's words: "stop" (end-of-text, a stop rule or a stop string) or "length"
    stop_reason: str  # ours: the engine's reason ("eos", "length", ...), or "stop-string"


@dataclass(frozen=True)
class Failed:
    message: str
    status: int  # 400: the request asked for something the model cannot do; 500: our bug


END = object()  # after the last event of a ticket


class Busy(Exception):
    """Every place in the line is taken; `retry_after` is a guess in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class StopCut:
    """The text of one sample as it may be sent: everything before the first stop string."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.held, self.stopped = stops, "", False

    def feed(self, text: str) -> str:
        """What of `text` (the next piece of the sample) can be sent now."""
        if self.stopped:
            return ""
        text = self.held + text
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped, self.held = True, ""
            return text[: min(hits)]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def cut(self, whole: str) -> str:
        """`whole` up to its first stop string (the same rule as feeding it piece by piece)."""
        hits = [i for i in (whole.find(s) for s in self.stops) if i >= 0]
        return whole[: min(hits)] if hits else whole


class Ticket:
    """A request in the line: its prompt and settings, a way to cancel it, and the queue its events arrive on."""

    def __init__(self, prompt: str, settings: SamplerSettings, n: int, stops: tuple[str, ...], step_events: bool,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.prompt, self.settings, self.n, self.stops, self.step_events = prompt, settings, n, stops, step_events
        self.cancel = threading.Event()
        self.events: asyncio.Queue = asyncio.Queue()
        self._loop = loop

    def put(self, item: object) -> None:
        """Hand `item` to the event loop (called from the runner's thread)."""
        self._loop.call_soon_threadsafe(self.events.put_nowait, item)


class Runner:
    """The one thread that runs `loaded`, and at most `queue_size` tickets waiting for it."""

    def __init__(self, loaded: LoadedModel, queue_size: int) -> None:
        self.loaded, self.queue_size = loaded, queue_size
        self._line: queue.Queue[Ticket | None] = queue.Queue()
        self._waiting = 0
        self._lock = threading.Lock()
        self._seconds_per_request = 1.0  # the last request's duration, for Retry-After
        self._thread = threading.Thread(target=self._run, name="bd3lm-serve", daemon=True)
        self._thread.start()

    def submit(self, ticket: Ticket) -> Ticket:
        with self._lock:
            if self._waiting >= self.queue_size:
                raise Busy(max(1, round(self._waiting * self._seconds_per_request)))
            self._waiting += 1
        self._line.put(ticket)
        return ticket

    def close(self) -> None:
        """Stop after the running ticket (its client should cancel it first)."""
        self._line.put(None)

    def _run(self) -> None:
        while (ticket := self._line.get()) is not None:  # None: close()
            with self._lock:
                self._waiting -= 1
            if ticket.cancel.is_set():  # its client left while it waited
                ticket.put(END)
                continue
            start = time.monotonic()
            try:
                self._generate(ticket)
            except BD3LMError as err:
                ticket.put(Failed(str(err), 400))
            except Exception as err:  # noqa: BLE001 - one failed request must not stop the server
                failure = describe(err, "generating an answer")  # one line; the traceback goes to a report file
                ticket.put(Failed(failure.message, 500 if failure.status == EXIT_BUG else 400))
            self._seconds_per_request = max(0.1, time.monotonic() - start)
            ticket.put(END)

    def _generate(self, ticket: Ticket) -> None:
        cuts = [StopCut(ticket.stops) for _ in range(ticket.n)]
        decode = self.loaded.tokenizer.decode
        events = generate(self.loaded, ticket.prompt, ticket.settings, cancel=ticket.cancel, num_samples=ticket.n)
        for event in events:
            if isinstance(event, Step) and ticket.step_events:
                revealed = tuple((r.position, r.token, decode([r.token])) for r in event.revealed)
                ticket.put(StepInfo(event.row, event.block, event.step, revealed))
            elif isinstance(event, BlockDone):
                text = cuts[event.row].feed(event.text)
                if text:
                    ticket.put(Piece(event.row, text))
                if ticket.stops and all(cut.stopped for cut in cuts):
                    ticket.cancel.set()  # every sample has met a stop string: nothing more will be sent
            elif isinstance(event, Finished):
                cut = cuts[event.row]
                text = cut.cut(event.text)
                ours = "stop-string" if cut.stopped else event.stop_reason
                ticket.put(Done(event, text, "length" if ours == "length" else "stop", ours))
