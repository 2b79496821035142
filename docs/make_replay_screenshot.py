"""Take docs/replay-page.png: an exported .html replay page in headless Chromium, stopped mid-block.

    QT_QPA_PLATFORM=offscreen python docs/make_replay_screenshot.py [--model FOLDER]

It runs the model in an app window (offscreen is fine: nothing of the window is
drawn), exports the run as File → Export does, and has Chromium draw a copy of
the page moved to a step where the current block shows both masks and the
tokens revealed in that very step. Needs Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
try:
    from bd3lm_studio.views.main_window import MainWindow
    from bd3lm_studio.settings import Settings
except ModuleNotFoundError:  # a checkout that was never pip-installed: the package is the app/ folder
    from app.main_window import MainWindow
    from app.settings import Settings

PROMPT = "Once upon a time, there was a little girl named Lily. One day"
CHROMIUM = ("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--disable-sync")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or repo id (default: the shipped model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "replay-page.png"))
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    work = Path(tempfile.mkdtemp(prefix="bd3lm-replay-shot-"))
    window = MainWindow(model_source=args.model, settings=Settings(QSettings(str(work / "s.ini"), QSettings.IniFormat)))
    window.prompt.setPlainText(PROMPT)
    window.controls.tokens.set_value(96)
    window.controls.seed.setValue(3)
    window.controls.new_seed.setChecked(False)  # the seed above, not a fresh one
    window.controls.stop_at_eos.setChecked(False)

    def watch() -> None:
        if window.loading:
            return
        if window.model is None:
            app.exit(1)
        elif window.trace is None and not window.running:
            window.generate()
        elif window.trace is not None and window.trace.outcome is not None:
            app.exit(0)

    poll = QTimer()
    poll.timeout.connect(watch)
    poll.start(100)
    exported = app.exec() == 0 and window.export_to(work / "run.html")
    window.close()  # stops the engine's thread
    if not exported:
        print("no screenshot: the model did not load or the run could not be exported", file=sys.stderr)
        return 1
    frames = window.trace.frames
    # a step two thirds in, in the middle of a block: some positions revealed by it, some still masked
    k = next(i for i in range(2 * len(frames) // 3, len(frames)) if frames[i].revealed and any(frames[i].masked))
    page = (work / "run.html").read_text(encoding="utf-8")
    jump = f'<script>document.getElementById("timeline").value = {k}; render({k});</script>\n</body>'
    (work / "shot.html").write_text(page.replace("</body>", jump), encoding="utf-8")
    subprocess.run(
        [*CHROMIUM, f"--user-data-dir={work / 'profile'}", "--window-size=1000,400", f"--screenshot={args.out}",
         (work / "shot.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    print(f"saved {args.out} at step {k + 1} of {len(frames)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
