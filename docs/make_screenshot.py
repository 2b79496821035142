"""Take the README's pictures of BD3-LM Studio, from real windows.

Needs a display; on a headless machine use Xvfb:

    xvfb-run -s "-screen 0 1400x900x24" python docs/make_screenshot.py [--model FOLDER] [--shot NAME]

Shots (all by default):
  screenshot.png  the main window in the middle of a run, at a watchable pace: the current block's box
                  holds a masked cell and the token revealed in that very step;
  confidence.png  the main window after a run, tokens coloured by the model's confidence, the tooltip of
                  an unsure token open (its two probabilities and the model's top 5);
  compare.png     Run → Compare after the one-click "Block sizes", replaying mid-way.

It uses throw-away settings (never yours). Without --model it opens the shipped model, like the app.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QSettings, QTimer
from PySide6.QtGui import QCursor, QGuiApplication, QHelpEvent, QTextCursor
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    from bd3lm_studio.views.main_window import MainWindow
    from bd3lm_studio.settings import Settings
    from bd3lm_studio.engine.threads import garbage_collected_on_gui_thread
except ModuleNotFoundError:  # a checkout that was never pip-installed: the package is the app/ folder
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.threads import garbage_collected_on_gui_thread

PROMPT = "Once upon a time, there was a little girl named Lily. One day"
SHOTS = ("screenshot", "confidence", "compare")


def grab_screen(widget, path: Path) -> None:
    """The screen where `widget` is, tooltips included (a widget's own grab leaves them out)."""
    frame = widget.frameGeometry()
    QGuiApplication.primaryScreen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height()).save(str(path))


class Director:
    """Runs the shots one after another from timers on the UI thread, as a user would click."""

    def __init__(self, app: QApplication, window: MainWindow, shots: list[str], out: Path) -> None:
        self.app, self.window, self.shots, self.out = app, window, shots, out
        self.failed: list[str] = []

    def after(self, ms: int, step: Callable[[], None]) -> None:
        QTimer.singleShot(ms, step)

    def wait_for(self, ready: Callable[[], bool], then: Callable[[], None], seconds: float = 120) -> None:
        def poll(left: float = seconds) -> None:
            if ready():
                then()
            elif left <= 0:
                self.fail("timed out waiting")
            else:
                QTimer.singleShot(100, lambda: poll(left - 0.1))
        poll()

    def fail(self, why: str) -> None:
        self.failed.append(why)
        self.app.quit()

    def next(self) -> None:
        if not self.shots:
            self.app.quit()
            return
        shot = self.shots.pop(0)
        getattr(self, f"shoot_{shot}")()

    def saved(self, name: str) -> None:
        print(f"saved {self.out / (name + '.png')}")
        self.after(300, self.next)

    def start(self) -> None:
        w = self.window
        self.wait_for(lambda: not w.loading, lambda: self.fail("the model did not load") if w.model is None else self.next())

    # --- the shots -------------------------------------------------------------
    def shoot_screenshot(self) -> None:
        w = self.window
        w.view.colouring.setCurrentIndex(w.view.colouring.findData("plain"))
        pace = w.view.player.pace
        pace.setCurrentIndex(pace.findData(5))
        w.generate()

        def ready() -> bool:
            trace, index = w.trace, w.view.shown
            if trace is None or index < 12:
                return False
            frame = trace.frames[index]
            return bool(frame.revealed) and sum(frame.masked) >= 1 and not w.view.text.final  # a block of 2: one left

        def shoot() -> None:
            w.grab().save(str(self.out / "screenshot.png"))
            w.view.player.toggle()  # pause: the run goes on to its end unwatched
            self.wait_for(lambda: not w.running, lambda: self.saved("screenshot"))

        self.wait_for(ready, shoot)

    def shoot_confidence(self) -> None:
        w = self.window
        if w.trace is None:  # shot alone: make a run first
            w.generate()
            self.wait_for(lambda: not w.running, self.shoot_confidence)
            return
        w.view.player.finish(len(w.trace.frames), skip=True)  # the whole text
        w.view.colouring.setCurrentIndex(w.view.colouring.findData("confidence"))
        text, trace = w.view.text, w.trace
        unsure = min((t for t in trace.tokens.values() if t.frame >= 0 and t.confidence is not None
                      and len(t.text.strip()) > 2 and t.position < trace.end), key=lambda t: t.confidence)
        cursor = QTextCursor(text.document())
        for index in range(text.document().characterCount() - 1):  # where the unsure token is drawn
            cursor.setPosition(index + 1)
            if cursor.charFormat().toolTip() and f"position {unsure.position})" in cursor.charFormat().toolTip():
                cursor.setPosition(index + 1)
                break
        rect = text.cursorRect(cursor)
        point = QPoint(rect.left() + 2, rect.center().y())
        where = text.viewport().mapToGlobal(point)
        QCursor.setPos(where)  # Qt hides a tooltip at once when the pointer is elsewhere
        QApplication.sendEvent(text.viewport(), QHelpEvent(QEvent.ToolTip, point, where))
        self.after(600, lambda: (grab_screen(w, self.out / "confidence.png"), self.saved("confidence")))

    def shoot_compare(self) -> None:
        w = self.window
        w.controls.tokens.set_value(64)
        compare = w.show_compare()
        compare.resize(1360, 820)
        compare.preset("Block sizes", run=True)

        def shoot() -> None:
            compare.player.step(-10_000)
            longest = compare.player.count
            compare.player.timeline.setValue(longest // 3)
            self.after(400, lambda: (compare.grab().save(str(self.out / "compare.png")), compare.close(),
                                     self.saved("compare")))

        self.wait_for(lambda: not compare.running, lambda: self.after(1500, shoot))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or repo id (default: the shipped model)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the pictures")
    parser.add_argument("--shot", choices=SHOTS, action="append", help="one shot (repeatable; default all)")
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    if app.platformName() in ("offscreen", "minimal"):
        sys.exit("run this under a real display (for example xvfb-run), not the offscreen platform")
    store = QSettings(str(Path(tempfile.mkdtemp()) / "screenshot.ini"), QSettings.IniFormat)
    with garbage_collected_on_gui_thread():  # as the app runs (app/main.py)
        window = MainWindow(model_source=args.model, settings=Settings(store))
        window.resize(1200, 760)
        window.move(0, 0)
        window.prompt.setPlainText(PROMPT)
        window.controls.tokens.set_value(160)
        window.controls.seed.setValue(3)
        window.controls.new_seed.setChecked(False)
        window.controls.stop_at_eos.setChecked(False)  # a story that ends early would end the shot too
        window.show()
        director = Director(app, window, list(args.shot or SHOTS), Path(args.out))
        director.start()
        app.exec()
        window.close()
    if director.failed:
        print("no screenshot:", director.failed[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
