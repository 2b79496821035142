"""The status bar: messages on the left, the run's numbers on the right, a download's progress when loading.

Qt's own temporary messages are painted over the status bar's left part
whatever its width, so long ones ran into the numbers. Here the message is
a label of its own, laid out beside the numbers, that shrinks with an
ellipsis (the whole text in its tooltip): nothing overlaps, and a long
message never makes the window wider. The numbers are plain labels: they
change on every step, and a plain label costs the UI thread least.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton, QWidget

from bd3lm_core import DownloadProgress
from bd3lm_core import formatting
from bd3lm_core.formatting import counted

from ..engine.requests import NoJudgement
from ..records.trace import Judgement, Trace
from .labels import ElidedLabel

STATS = ("progress", "speed", "nfe", "elapsed", "seed", "judgement")
TIPS = {
    "progress": "Tokens generated so far, and where the sampler is",
    "speed": "Generated tokens per second",
    "nfe": "Forward passes of the network so far (NFE: number of function evaluations), and tokens\n"
           "generated per forward pass (above 1 when steps reveal several tokens at once)",
    "elapsed": "Time since the run began",
    "seed": "The seed of the run on screen; right-click or Run → Copy seed copies it",
}


class StatusArea(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = ElidedLabel(min_chars=12)
        self.addWidget(self.message, 1)
        self.labels: dict[str, QLabel] = {}
        for name in STATS:  # the long ones may shrink, so that the window fits a small screen
            label = self.labels[name] = ElidedLabel(min_chars=10) if name in ("progress", "judgement") else QLabel()
            label.setToolTip(TIPS.get(name, ""))
            self.addPermanentWidget(label)
        self.download = QProgressBar()
        self.download.setRange(0, 1000)
        self.download.setMaximumWidth(140)
        self.cancel_download = QToolButton()
        self.cancel_download.setText("Cancel download")
        for widget in (self.download, self.cancel_download):
            self.addPermanentWidget(widget)
            widget.hide()
        self._stats: dict[str, str] = {}  # what each number label shows (asking Qt would cost a call)
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self.clear_message)

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        """Say `text` (for `timeout_ms`, or until the next message when 0)."""
        self.message.setText(text)
        self.message.setToolTip(text)
        self._expiry.stop()
        if timeout_ms:
            self._expiry.start(timeout_ms)

    def clear_message(self) -> None:
        self.show_message("")

    def current_message(self) -> str:
        return self.message.text()

    def set_stat(self, name: str, text: str, tip: str | None = None) -> None:
        label = self.labels[name]
        if text != self._stats.get(name):
            self._stats[name] = text
            label.setText(text)
        if tip is not None:
            label.setToolTip(tip)

    def show_frame(self, trace: Trace | None, index: int) -> None:
        """The numbers of the run on screen as of frame `index`: tokens so far, speed, forwards, time, seed."""
        if trace is None or index < 0:
            for name in ("progress", "speed", "nfe", "elapsed"):
                self.set_stat(name, "")
        else:
            frame = trace.frames[index]
            tokens = trace.generated_count(index)
            total = len(trace.outcome.token_ids) if trace.outcome is not None else trace.settings["tokens"]
            self.set_stat("progress", f"{tokens} of {counted(total, 'token')}, block {frame.block} step {frame.step}")
            self.set_stat("speed", f"{tokens / frame.elapsed if frame.elapsed > 0 else 0.0:,.1f} tokens/s")
            per_forward = f" · {tokens / frame.nfe:.2f} tokens/forward" if frame.nfe else ""
            self.set_stat("nfe", f"NFE {frame.nfe}{per_forward}")
            self.set_stat("elapsed", f"{frame.elapsed:.2f} s")
        self.set_stat("seed", "" if trace is None else f"seed {trace.settings['seed']}")

    def show_judgement(self, judgement: Judgement | None, missing: NoJudgement | None = None) -> None:
        """Gen PPL and entropy of the run on screen, or why there are none (the hint in the tooltip)."""
        if judgement is None:
            missing = missing or NoJudgement("not in this trace", "The run was saved without the judge's figures.")
            self.set_stat("judgement", f"Gen PPL: {missing.reason}", missing.hint or None)
            return
        self.set_stat(
            "judgement", f"Gen PPL {judgement.gen_ppl:.1f} · entropy {judgement.entropy:.2f}",
            f"Judged by {judgement.judge} over {judgement.tokens} tokens.\n"
            "Gen PPL: the judge's perplexity of the generated text (lower reads more fluently to it).\n"
            "Entropy: of the text's tokens, in nats (higher is more varied; very low means repetition).",
        )

    def show_download(self, what: str, p: DownloadProgress) -> None:
        """A load is downloading: its progress, and a way to stop it."""
        self.download.setVisible(True)
        self.cancel_download.setVisible(True)
        if p.total:
            self.download.setValue(int(1000 * p.downloaded / p.total))
        else:
            self.download.setRange(0, 0)  # busy, size unknown
        self.show_message(f"Downloading {what}: {formatting.download(p)}")

    def hide_download(self) -> None:
        self.download.hide()
        self.cancel_download.hide()
        self.download.setRange(0, 1000)
