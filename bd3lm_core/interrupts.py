"""Ctrl+C and SIGTERM in the commands that run for long.

- Training: SIGTERM (what `kill`, systemd and batch schedulers send) stops a
  run the way Ctrl+C does: the trainer saves, then returns.
- Saving: while a save is written, both signals are noted and acted on only
  once the files are whole, so a second Ctrl+C cannot cut a save in half.
- Generating: the first Ctrl+C asks the sampler to stop before its next step,
  so what was generated so far is kept and printed; a second one aborts.

Signal handlers can only be set from the main thread; elsewhere (a worker
thread of the app) these blocks change nothing, and neither do they for a
signal that was set to be ignored when the program started.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C's KeyboardInterrupt so that the same handlers save and stop."""


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread."""
    def handler(signum, frame):
        raise Terminated()

    with _handling({signal.SIGTERM: handler}):
        yield


@contextmanager
def held_signals() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are only noted; the yielded list holds the ones that came."""
    received: list[int] = []
    handler = lambda signum, frame: received.append(signum)  # noqa: E731
    with _handling({signal.SIGINT: handler, signal.SIGTERM: handler}):
        yield received


@contextmanager
def first_interrupt_cancels(cancel: threading.Event) -> Iterator[None]:
    """Within the block, the first Ctrl+C sets `cancel`; another one raises KeyboardInterrupt as usual."""
    def handler(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    with _handling({signal.SIGINT: handler}):
        yield


@contextmanager
def _handling(handlers: dict[int, object]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal the parent set to be ignored (`nohup`, a background job of a script) stays ignored
    ignored = {signum for signum in handlers if signal.getsignal(signum) is signal.SIG_IGN}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items() if signum not in ignored}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
