"""Run by test_chat.py's crash test as its own process: the app on the chat fixture, one exchange finished, then
a second reply under way when it says REPLYING, and the test kills it there (SIGKILL: no clean-up of any kind)."""

import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from bd3lm_studio.settings import Settings
from bd3lm_studio.views.main_window import MainWindow


def wait(app: QApplication, done) -> None:
    while not done():
        app.processEvents()
        QTest.qWait(10)


def main(model: str, ini: str) -> None:
    app = QApplication([])
    window = MainWindow(model, Settings(QSettings(ini, QSettings.IniFormat)))
    window.show()
    wait(app, lambda: window.model is not None)
    controls, chat = window.controls, window.chat
    controls.stop_at_eos.setChecked(False)
    controls.stop_on_repetition.setChecked(False)
    controls.tokens.set_value(6)
    QTest.keyClicks(chat.input, "First message")
    QTest.keyClick(chat.input, Qt.Key_Return)
    wait(app, lambda: not chat.running)
    controls.tokens.set_value(1000)
    QTest.keyClicks(chat.input, "Second message, never answered")
    QTest.keyClick(chat.input, Qt.Key_Return)
    wait(app, lambda: chat.run.trace is not None and len(chat.run.trace.frames) > 3)
    print("REPLYING", flush=True)
    wait(app, lambda: False)  # until killed


if __name__ == "__main__":
    main(*sys.argv[1:3])
