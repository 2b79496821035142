"""Headless Chromium for tests: load a page, let its timers run, read back the DOM.

`--virtual-time-budget` runs the page's clock as fast as the page can keep
up and `--dump-dom` prints the DOM once that much page time has passed, so a
page that plays for seconds is read in about one second of wall time, with
no DevTools client. Chromium is Debian's `chromium` package (`.ci/run`
installs it). It runs as root in CI, hence --no-sandbox, and with a fresh
profile and nothing that reaches the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)


def chromium() -> str:
    """The chromium executable; without one, fail in CI (it must run there) and skip elsewhere, saying why."""
    path = shutil.which("chromium")
    problem = "chromium is not installed" if path is None else _cannot_run(path)
    if problem is None:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{problem}: .ci/run installs Debian's chromium, and CI must run this test")
    pytest.skip(f"{problem}; install it (apt-get install chromium) to test the page in a browser")


def dump_dom(page: Path, budget_ms: int = 60_000, timeout: float = 120) -> str:
    """The page's DOM after `budget_ms` of page time (timers included), as HTML."""
    with tempfile.TemporaryDirectory(prefix="bd3lm-chromium-") as profile:
        result = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout,
        )
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


def _cannot_run(path: str) -> str | None:
    try:
        subprocess.run([path, "--version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        return f"{path} cannot run ({err})"
    return None
