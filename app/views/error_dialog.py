"""Errors that nothing below caught: one line in a dialog, the details in a report file, and the app keeps running.

Python calls `sys.excepthook` for an exception that escapes a Qt slot and
`threading.excepthook` for one that ends a thread; both land here. The line
and the report come from `bd3lm_core.failures`, as the CLI's do, and the
dialog is shown on the GUI thread whichever thread failed.
"""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

from bd3lm_core.failures import describe

TITLE = "Something went wrong"


class ErrorReporter(QObject):
    """Turns an uncaught exception into a dialog; `reported` carries its line to the GUI thread."""

    reported = Signal(str)

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.reported.connect(self._show, Qt.QueuedConnection)

    def report(self, error: BaseException, doing: str) -> None:
        """Write the report, say it on stderr (the only place before the window is up) and queue the dialog."""
        message = describe(error, doing).message
        print(f"bd3lm-studio: {message}", file=sys.stderr, flush=True)
        self.reported.emit(message)

    def _show(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Critical, TITLE, message, QMessageBox.Ok, QApplication.activeWindow())
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)  # so the report's path can be copied
        box.open()  # not modal in a loop of its own: the app goes on running behind it


def install_error_hooks(app: QApplication) -> ErrorReporter:
    """From now on, an exception that escapes a slot or a thread opens a dialog instead of printing a traceback."""
    reporter = ErrorReporter(app)

    def on_main(kind, error, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        reporter.report(error.with_traceback(tb), "running BD3-LM Studio")

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a background thread"
        reporter.report(args.exc_value.with_traceback(args.exc_traceback), f"running {name}")

    sys.excepthook = on_main
    threading.excepthook = on_thread
    return reporter
