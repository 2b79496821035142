"""Model → Serve on localhost…: the loaded model behind `bd3lm serve`, started and stopped from the app.

The server is the CLI's own `bd3lm serve`, run as a child process: it loads
its own copy of the model (memory twice, but the app's worker and the
server never wait on each other, and a server fault cannot take the window
down). The dialog shows the address to copy and the server's last message;
closing the dialog leaves the server running, quitting the app stops it.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QProcess, Qt
from PySide6.QtWidgets import (
    QApplication, QDialog, QHBoxLayout, QLabel, QLayout, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ..engine.requests import ModelInfo

DEFAULT_PORT = 8000
STOP_WAIT_MS = 3000  # then the server is killed


class ServeDialog(QDialog):
    def __init__(self, parent: QWidget, model: ModelInfo | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Serve on localhost")
        self.model = model
        self.process: QProcess | None = None
        self.what = QLabel(self._what_text())
        self.what.setWordWrap(True)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.start_stop = QPushButton("Start")
        self.start_stop.clicked.connect(self.toggle)
        self.start_stop.setEnabled(model is not None)
        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setPlaceholderText("not serving")
        self.copy = QPushButton("Copy")
        self.copy.clicked.connect(lambda: QApplication.clipboard().setText(self.address.text()))
        self.copy.setEnabled(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        port_row = QHBoxLayout()
        port_row.addWidget(QLabel("Port"))
        port_row.addWidget(self.port)
        port_row.addStretch(1)
        port_row.addWidget(self.start_stop)
        address_row = QHBoxLayout()
        address_row.addWidget(self.address, 1)
        address_row.addWidget(self.copy)
        # the width on the labels, not the dialog: the layout's minimum size would override the dialog's own
        for label in (self.what, self.message):
            label.setMinimumWidth(self.fontMetrics().averageCharWidth() * 64)  # the title and the address in full
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SetMinimumSize)  # grows with its messages instead of clipping them
        for part in (self.what, port_row, address_row, self.message):
            (layout.addLayout if isinstance(part, QHBoxLayout) else layout.addWidget)(part)
        QApplication.instance().aboutToQuit.connect(self.stop)

    def _say(self, text: str) -> None:
        """Show a message, the dialog taller where it wraps: a window's layout does not grow it for a longer label."""
        self.message.setText(text)
        self.layout().activate()
        self.resize(self.width(), max(self.height(), self.heightForWidth(self.width())))

    def _what_text(self) -> str:
        if self.model is None:
            return "Load a model first: the server serves the loaded model."
        return (f"Serves {self.model.name} through the OpenAI API on this machine only (127.0.0.1), for programs "
                "such as the openai package or Open WebUI. The server loads its own copy of the model.")

    @property
    def serving(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def toggle(self) -> None:
        self.stop() if self.serving else self.start()

    def start(self) -> None:
        """Run `bd3lm serve` on the loaded model's folder at the chosen port."""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.SeparateChannels)
        self.process.readyReadStandardError.connect(self._read_messages)
        self.process.finished.connect(self._ended)
        # the repo id where there is one, so clients ask for the model by the name the app shows (a folder would
        # be served under its folder name); the lookup finds the installed folder first, so this stays offline
        source = self.model.source or self.model.path
        arguments = ["-m", "bd3lm_core.cli", "serve", "--model", source, "--port", str(self.port.value()),
                     "--device", self.model.device, "--dtype", self.model.dtype]
        self.process.start(sys.executable, arguments)
        self.start_stop.setText("Stop")
        self.port.setEnabled(False)
        self._say("Starting the server (it loads the model)…")

    def stop(self) -> None:
        if not self.serving:
            return
        self.process.terminate()
        if not self.process.waitForFinished(STOP_WAIT_MS):
            self.process.kill()
            self.process.waitForFinished(STOP_WAIT_MS)

    def _read_messages(self) -> None:
        for line in bytes(self.process.readAllStandardError()).decode("utf-8", "replace").splitlines():
            if line.startswith("serving "):
                self.address.setText(line.split(" at ")[1].split()[0])
                self.copy.setEnabled(True)
                self._say(f"Serving. Point a client at the address, with model \"{line.split()[1]}\" "
                                     "(any API key).")
            elif line.strip():
                self._say(line.strip())

    def _ended(self) -> None:
        self.address.clear()
        self.copy.setEnabled(False)
        self.start_stop.setText("Start")
        self.port.setEnabled(True)
        if self.message.text().startswith(("Serving", "Starting")):
            self._say("The server has stopped.")
