"""Starting and ending the app's worker threads, the same way everywhere.

A QObject moved to its own QThread runs its slots there, one request at a
time, when they are called through queued signals. Ending the thread waits
for the current request to return, so no thread is ever destroyed running.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread


def start_in_thread(worker: QObject, name: str) -> QThread:
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.start()
    return thread


def end_thread(thread: QThread) -> None:
    """Let the thread finish its current request, then stop it (safe to call twice)."""
    if thread.isRunning():
        thread.quit()
        thread.wait()
