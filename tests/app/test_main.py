"""The `bd3lm-studio` command line: which model opens first, and a clear line where Qt cannot start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import PySide6

from bd3lm_studio.main import MODEL_ENV, parse_args
from bd3lm_studio.qt_platform import platform_problem, platform_to_check


def test_model_option_env_and_qt_arguments(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    args, rest = parse_args([])
    assert args.model is None and rest == []  # the shipped model

    monkeypatch.setenv(MODEL_ENV, "/models/from-env")
    assert parse_args([])[0].model == "/models/from-env"
    args, rest = parse_args(["--model", "/models/mine", "-platform", "offscreen"])
    assert args.model == "/models/mine" and rest == ["-platform", "offscreen"]


def test_the_shipped_icon_has_every_size(qapp):
    from bd3lm_studio.main import ICON_SIZES, app_icon

    sizes = {(s.width(), s.height()) for s in app_icon().availableSizes()}
    assert sizes == {(n, n) for n in ICON_SIZES}


# --- missing Qt libraries: one line and status 2 instead of Qt's abort ---------------------------------

QT_DIR = Path(PySide6.__file__).parent / "Qt"


def fake_xcb_plugin(tmp_path: Path, hidden: str) -> Path:
    """A copy of PySide6's xcb plugin that needs `hidden` (a name no system has) in place of
    libxcb-cursor.so.0, beside a link to Qt's own libraries as in PySide6 (the plugin finds them at
    $ORIGIN/../../lib). Returns its platforms folder."""
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (tmp_path / "lib").symlink_to(QT_DIR / "lib")
    real = (QT_DIR / "plugins" / "platforms" / "libqxcb.so").read_bytes()
    assert real.count(b"libxcb-cursor.so.0\0") == 1 and len(hidden) == len("libxcb-cursor.so.0")
    (platforms / "libqxcb.so").write_bytes(real.replace(b"libxcb-cursor.so.0\0", hidden.encode() + b"\0"))
    return platforms


def studio_command() -> list[str]:
    """`bd3lm-studio` as installed beside this Python, else the module."""
    script = Path(sys.executable).parent / "bd3lm-studio"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bd3lm_studio.main"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="Linux, ldd")
def test_missing_xcb_libraries_say_which_packages_and_exit_2(tmp_path):
    platforms = fake_xcb_plugin(tmp_path, "libxcb-cursor.so.9")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "XDG_SESSION_TYPE", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms), DISPLAY=":77")
    done = subprocess.run(studio_command(), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("bd3lm-studio: Qt's X11 (xcb) plugin cannot start: ")
    assert "libxcb-cursor.so.9" in line and "libxcb-cursor0" in line and "xcb-util-cursor" in line
    assert "apt install" in line and "dnf install" in line


def test_the_check_runs_only_for_xcb(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert platform_to_check({}, []) == "xcb"
    assert platform_to_check({"QT_QPA_PLATFORM": "xcb"}, []) == "xcb"
    assert platform_to_check({"QT_QPA_PLATFORM": "offscreen"}, []) is None
    assert platform_to_check({"QT_QPA_PLATFORM": "wayland;xcb"}, []) is None
    assert platform_to_check({"QT_QPA_PLATFORM": "offscreen"}, ["-platform", "xcb"]) == "xcb"
    assert platform_to_check({}, ["-platform", "wayland"]) is None
    assert platform_to_check({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, []) is None
    monkeypatch.setattr(sys, "platform", "darwin")
    assert platform_to_check({}, []) is None


LDD_REPORT = """\
\tlibQt6Gui.so.6 => /opt/Qt/lib/libQt6Gui.so.6 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-icccm.so.4 => not found
"""


def test_missing_libraries_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    problem = platform_problem({}, [], ldd=lambda plugin: LDD_REPORT)
    assert problem == (
        "bd3lm-studio: Qt's X11 (xcb) plugin cannot start: libxcb-icccm.so.4, libxcb-keysyms.so.1 are missing; "
        "on Debian/Ubuntu: sudo apt install libxcb-icccm4 libxcb-keysyms1; "
        "on Fedora: sudo dnf install xcb-util-wm xcb-util-keysyms"
    )
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}, [], ldd=lambda plugin: LDD_REPORT) is None
    assert platform_problem({}, [], ldd=lambda plugin: LDD_REPORT.replace("not found", "/lib/x.so")) is None
    odd = platform_problem({}, [], ldd=lambda plugin: "\tlibodd.so.3 => not found\n")
    assert odd.endswith("libodd.so.3 is missing; install the packages that provide libodd.so.3 "
                        "(apt-file search, dnf provides)")
