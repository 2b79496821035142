"""Can Qt's platform plugin load? Checked before the QApplication exists, because when the X11 (xcb)
plugin's system libraries are missing Qt prints a long message and aborts the process (status 134).

Only the xcb plugin is checked: it is the one whose libraries (small X11 helper libraries, not part of
PySide6) a fresh desktop often lacks. `ldd` lists what the plugin needs and which of those are not found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import QLibraryInfo

# library (soname without its version) -> (Debian/Ubuntu package, Fedora package)
PACKAGES = {
    "libxcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util": ("libxcb-util1", "xcb-util"),
    "libxcb-randr": ("libxcb-randr0", "libxcb"),
    "libxcb-shape": ("libxcb-shape0", "libxcb"),
    "libxcb-shm": ("libxcb-shm0", "libxcb"),
    "libxcb-sync": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render": ("libxcb-render0", "libxcb"),
    "libxcb-xkb": ("libxcb-xkb1", "libxcb"),
    "libxcb": ("libxcb1", "libxcb"),
    "libxkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb": ("libx11-xcb1", "libX11-xcb"),
    "libX11": ("libx11-6", "libX11"),
    "libGL": ("libgl1", "libglvnd-glx"),
    "libEGL": ("libegl1", "libglvnd-egl"),
    "libfontconfig": ("libfontconfig1", "fontconfig"),
    "libfreetype": ("libfreetype6", "freetype"),
    "libglib-2.0": ("libglib2.0-0", "glib2"),
    "libdbus-1": ("libdbus-1-3", "dbus-libs"),
}
Ldd = Callable[[Path], str]


def run_ldd(library: Path) -> str:
    """`ldd`'s report on `library` ("" where there is no ldd, or it fails: then nothing is known)."""
    if shutil.which("ldd") is None:
        return ""
    done = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def platform_to_check(env: Mapping[str, str], qt_args: Sequence[str]) -> str | None:
    """"xcb" where Qt will use its X11 plugin (on Linux, unless told otherwise or on Wayland), else None."""
    if not sys.platform.startswith("linux"):
        return None
    named = qt_args[qt_args.index("-platform") + 1] if "-platform" in qt_args[:-1] else env.get("QT_QPA_PLATFORM", "")
    first = re.split(r"[;:]", named)[0].strip()  # "xcb:option=..." or a fallback list "wayland;xcb"
    if first:
        return "xcb" if first == "xcb" else None
    on_wayland = env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY")
    return None if on_wayland else "xcb"


def plugin_path(env: Mapping[str, str]) -> Path | None:
    """The xcb plugin Qt would load: from $QT_QPA_PLATFORM_PLUGIN_PATH first, else PySide6's own."""
    folders = [Path(env["QT_QPA_PLATFORM_PLUGIN_PATH"])] if env.get("QT_QPA_PLATFORM_PLUGIN_PATH") else []
    folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
    return next((f / "libqxcb.so" for f in folders if (f / "libqxcb.so").is_file()), None)


def missing_libraries(plugin: Path, ldd: Ldd = run_ldd) -> list[str]:
    """The libraries `plugin` needs that the system does not have, each once, in ldd's order."""
    found = re.findall(r"^\s*(\S+) => not found", ldd(plugin), re.M)
    return list(dict.fromkeys(found))


def install_hint(libraries: Sequence[str]) -> str:
    """The packages that provide `libraries`, as Debian/Ubuntu and Fedora install commands."""
    known = [PACKAGES.get(re.sub(r"\.so(\.\d+)*$", "", lib)) for lib in libraries]
    if not all(known):
        unknown = [lib for lib, pair in zip(libraries, known) if pair is None]
        return f"install the packages that provide {', '.join(unknown)} (apt-file search, dnf provides)"
    debian = " ".join(dict.fromkeys(d for d, _ in known))
    fedora = " ".join(dict.fromkeys(f for _, f in known))
    return f"on Debian/Ubuntu: sudo apt install {debian}; on Fedora: sudo dnf install {fedora}"


def platform_problem(env: Mapping[str, str], qt_args: Sequence[str], ldd: Ldd = run_ldd) -> str | None:
    """One line saying which system libraries Qt's platform plugin lacks and how to install them, or None."""
    if platform_to_check(env, qt_args) is None:
        return None
    plugin = plugin_path(env)
    missing = missing_libraries(plugin, ldd) if plugin is not None else []
    if not missing:
        return None
    return (
        f"bd3lm-studio: Qt's X11 (xcb) plugin cannot start: {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} missing; {install_hint(missing)}"
    )


def check_platform(qt_args: Sequence[str]) -> int | None:
    """Print the problem and return 2 (the exit status) when the platform plugin cannot load, else None."""
    problem = platform_problem(os.environ, qt_args)
    if problem is None:
        return None
    print(problem, file=sys.stderr)
    return 2
