"""The benchmark against the authors' sampler refuses bad input in one line, before any heavy work.

Its real runs need the authors' checkout and their packages, which the tests do
not have; benchmarks/README.md says how to run it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "versus_reference.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--reference", "{tmp}"], "not a checkout of kuleshov-group/bd3lms"),
        (["--reference", "{tmp}", "--dtype", "bfloat16"], "on the CPU their network runs only in float32"),
    ],
)
def test_versus_reference_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
