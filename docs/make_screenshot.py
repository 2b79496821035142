"""Take docs/screenshot.png: BD3-LM Studio in the middle of a run, from a real window.

Needs a display; on a headless machine use Xvfb:

    xvfb-run -s "-screen 0 1280x800x24" python docs/make_screenshot.py [--model FOLDER]

It uses throw-away settings (never yours), types a prompt, presses Generate
and grabs the window at the first repaint, some way into the run, where the
current block shows both masked positions and tokens revealed in that very
step. Without --model it opens the shipped model, like the app.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    from bd3lm_studio.main_window import MainWindow
    from bd3lm_studio.settings import Settings
except ModuleNotFoundError:  # a checkout that was never pip-installed: the package is the app/ folder
    from app.main_window import MainWindow
    from app.settings import Settings

PROMPT = "Once upon a time, there was a little girl named Lily. One day"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or repo id (default: the shipped model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--after", type=int, default=100, help="new tokens to wait for before the shot")
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    if app.platformName() in ("offscreen", "minimal"):
        sys.exit("run this under a real display (for example xvfb-run), not the offscreen platform")
    store = QSettings(str(Path(tempfile.mkdtemp()) / "screenshot.ini"), QSettings.IniFormat)
    window = MainWindow(model_source=args.model, settings=Settings(store))
    window.resize(1240, 760)
    window.prompt.setPlainText(PROMPT)
    window.controls.tokens.set_value(200)
    window.controls.seed.setValue(3)
    window.controls.stop_at_eos.setChecked(False)  # a story that ends early would end the shot too
    window.show()
    failed: list[str] = []
    saved: list[str] = []

    def maybe_shoot(index: int) -> None:
        trace = window.trace
        if index < 0 or trace is None or not window.running or saved:
            return
        frame = trace.frames[index]
        if trace.generated_count(index) >= args.after and frame.revealed and any(frame.masked):
            window.grab().save(args.out)
            saved.append(args.out)
            print(f"saved {args.out} at step {index + 1} (block {frame.block}, step {frame.step})")
            window.close()

    def watch() -> None:
        """Runs on the UI thread: start once the model is in, give up if the run ends unshot."""
        if window.loading or saved:
            return
        if window.model is None:
            failed.append("the model did not load (see the dialog)")
        elif window.trace is None and not window.running:
            window.generate()
            return
        elif window.trace is not None and window.trace.outcome is not None:
            failed.append("the run ended before a repaint matched; try a smaller --after")
        else:
            return
        window.close()

    window.view.rendered.connect(maybe_shoot)
    poll = QTimer(window)
    poll.timeout.connect(watch)
    poll.start(200)
    app.exec()
    if failed:
        print("no screenshot:", failed[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
