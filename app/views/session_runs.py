"""Run → Runs this session: every finished run of this window, each one click from being back on screen.

A run comes back whole: its text and replay, the prompt it was given and the
settings it used (so Generate reproduces it). That also undoes a Continue:
the run before it is in the list. The list lives as long as the window (at
most `MAX_RUNS`, oldest dropped first); saved runs are File → Export's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QMenu, QWidget

from ..records.trace import Trace
from ..settings import Choices

MAX_RUNS = 50
PROMPT_SHOWN = 32  # characters of the prompt in a menu item


@dataclass(frozen=True)
class SessionRun:
    trace: Trace
    choices: Choices  # as the controls were when it ran
    finished_at: float  # time.time()

    def title(self) -> str:
        out = self.trace.outcome
        prompt = " ".join(self.trace.prompt.split())
        prompt = (prompt[:PROMPT_SHOWN] + "…") if len(prompt) > PROMPT_SHOWN else prompt
        when = time.strftime("%H:%M:%S", time.localtime(self.finished_at))
        return f"{when} · {len(out.token_ids)} tokens · seed {self.trace.settings['seed']} · “{prompt}”"


class SessionRunsMenu(QMenu):
    restore_requested = Signal(object)  # a SessionRun

    def __init__(self, parent: QWidget) -> None:
        super().__init__("Runs this session", parent)
        self.runs: list[SessionRun] = []
        self.aboutToShow.connect(self.fill)
        self.fill()

    def add(self, trace: Trace, choices: Choices) -> None:
        self.runs = (self.runs + [SessionRun(trace, choices, time.time())])[-MAX_RUNS:]
        self.fill()

    def fill(self) -> None:
        """Newest first; the menu is rebuilt each time it opens."""
        self.clear()
        for run in reversed(self.runs):
            self.addAction(run.title(), lambda run=run: self.restore_requested.emit(run))
        if not self.runs:
            self.addAction("(none yet: Generate writes one)").setEnabled(False)
