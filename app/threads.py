"""Starting and ending the app's worker threads, the same way everywhere.

A QObject moved to its own QThread runs its slots there, one request at a
time, when they are called through queued signals. Ending the thread waits
for the current request to return, so no thread is destroyed running; the
wait can be bounded, and a thread that outlives it is kept referenced here
(never destroyed while it runs) so the app can still quit.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread

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
