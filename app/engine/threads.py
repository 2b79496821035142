"""Starting and ending the app's worker threads, the same way everywhere.

A QObject moved to its own QThread runs its slots there, one request at a
time, when they are called through queued signals. Ending the thread waits
for the current request to return, so no thread is destroyed running; the
wait can be bounded, and a thread that outlives it is kept referenced here
(never destroyed while it runs) so the app can still quit.

Python's cycle collector runs in whichever thread happens to allocate when
a threshold is crossed. In a worker thread it can destroy garbage that
holds Qt objects of the GUI thread (a closed window's engine, its signal
connections) while the GUI thread touches them, which Qt does not allow.
`garbage_collected_on_gui_thread` keeps every collection on the GUI thread.
(CI once crashed inside a collection in the engine thread during a model
load. That hazard is one suspect; PySide6 6.12.0's lost references to None,
kept out in pyproject.toml, are the other. Neither was reproduced here.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QObject, QThread, QTimer

_abandoned: list[tuple[QThread, QObject]] = []  # threads still busy when their owner quit


def start_in_thread(worker: QObject, name: str) -> QThread:
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.start()
    return thread


def end_thread(thread: QThread, wait_ms: int | None = None, worker: QObject | None = None) -> bool:
    """Let the thread finish its current request, then stop it (safe to call twice).

    With `wait_ms`, give up after that long and return False: the thread
    (and its `worker`) are then kept alive here until the process ends.
    """
    if not thread.isRunning():
        return True
    thread.quit()
    if thread.wait() if wait_ms is None else thread.wait(wait_ms):
        return True
    _abandoned.append((thread, worker))
    return False


def busy_threads() -> int:
    """How many abandoned threads still run (the process must then end without destroying them)."""
    return sum(thread.isRunning() for thread, _ in _abandoned)


@contextmanager
def garbage_collected_on_gui_thread(interval_ms: int = 500) -> Iterator[None]:
    """Turn automatic collection off and collect from a GUI-thread timer instead.

    The timer follows the interpreter's thresholds: a generation is collected
    once it has grown past its threshold, the oldest after eleven collections
    of the middle one. CPython also waits, for the oldest, until a quarter more
    objects are long-lived, which Python does not expose; so a full collection
    (0.1-0.2 s with torch loaded) can come sooner than it would: in 60 s of
    back-to-back runs of the shipped model the timer made 20 young and 2
    middle collections and no full one. On exit the garbage left is collected
    here and automatic collection comes back. Call it on the GUI thread, with
    a Q(Core)Application, around the event loop.
    """
    thresholds = gc.get_threshold()

    def collect_if_due() -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return

    was_enabled = gc.isenabled()
    gc.disable()
    timer = QTimer()
    timer.timeout.connect(collect_if_due)
    timer.start(interval_ms)
    try:
        yield
    finally:
        timer.stop()
        gc.collect()
        if was_enabled:
            gc.enable()
