"""`bd3lm-studio`: start the app, on the shipped model unless told otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from bd3lm_core import resource_path

from .engine.threads import busy_threads, garbage_collected_on_gui_thread
from .qt_platform import check_platform
from .settings import APPLICATION, ORGANIZATION
from .views.error_dialog import install_error_hooks
from .views.main_window import MainWindow

MODEL_ENV = "BD3LM_STUDIO_MODEL"
DESKTOP_ID = "io.github.bd3lm_studio.BD3LMStudio"  # packaging/linux/<id>.desktop
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


def app_icon() -> QIcon:
    """The shipped icon at every size (PNGs, so no SVG plugin is needed)."""
    icon = QIcon()
    for n in ICON_SIZES:
        icon.addFile(str(resource_path("icons", "hicolor", f"{n}x{n}", "apps", "bd3lm-studio.png")))
    return icon


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the rest (Qt's own, such as -platform) for QApplication."""
    parser = argparse.ArgumentParser(prog="bd3lm-studio", description="Watch a block diffusion LM write.")
    parser.add_argument(
        "--model", metavar="SRC", default=os.environ.get(MODEL_ENV) or None,
        help=f"model folder or hub repo id to open first (default: ${MODEL_ENV}, else the shipped model)",
    )
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, qt_args = parse_args(sys.argv[1:] if argv is None else argv)
    if QApplication.instance() is None and (status := check_platform(qt_args)) is not None:
        return status  # one line about the missing system libraries, rather than Qt's abort
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("BD3-LM Studio")
    app.setWindowIcon(app_icon())
    app.setDesktopFileName(DESKTOP_ID)  # on Wayland this links the window to its .desktop entry
    install_error_hooks(app)
    with garbage_collected_on_gui_thread():  # from before the window's engine thread starts
        window = MainWindow(model_source=args.model)
        app.aboutToQuit.connect(window.engine.shutdown)  # however the app ends, no thread is left running
        window.show()
        code = app.exec()
    if busy_threads():  # a step or a download that would not stop: end without destroying its thread
        sys.stdout.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
