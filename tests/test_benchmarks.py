"""The benchmarks refuse bad input in one line, before any heavy work.

The real runs of those against other projects' samplers need those projects'
checkouts and packages, which the tests do not have; benchmarks/README.md
says how to run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "versus_reference.py"


def run(*args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)


def assert_one_line(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--reference", "{tmp}"], "not a checkout of kuleshov-group/bd3lms"),
        (["--reference", "{tmp}", "--dtype", "bfloat16"], "on the CPU their network runs only in float32"),
    ],
)
def test_versus_reference_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    assert_one_line(run(*[a.format(tmp=tmp_path) for a in args]), message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dllm-python", "{tmp}/no-python"], "no-python: no such file"),
        (["--dllm", "{tmp}", "--dllm-python", sys.executable], "not a checkout of ZHZisZZ/dllm"),
        (["--tokens", "0"], "--tokens 0: give a whole number of at least 1"),
        (["--block", "-4"], "--block -4: give a whole number of at least 1"),
        (["--repeats", "0"], "--repeats 0: give a whole number of at least 1"),
    ],
)
def test_versus_dllm_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    assert_one_line(run(*[a.format(tmp=tmp_path) for a in args], script=BENCHMARKS / "versus_dllm.py"), message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "100000000"], "the prompt and four blocks must fit the network's context of 4096 positions"),
        (["--block", "0"], "--block 0: give a whole number of at least 1"),
        (["--threads", "100000"], "the number of threads must be a whole number from 1 to 1024, not 100000."),
    ],
)
def test_step_overhead_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    assert_one_line(run(*args, script=BENCHMARKS / "step_overhead.py"), message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rows", "4,x"], "--rows 4,x: give whole numbers separated by commas"),
        (["--rows", "0,4"], "--rows 0,4: give whole numbers from 1 to 16384"),
        (["--rows", "4,99999999"], "--rows 4,99999999: give whole numbers from 1 to 16384"),
        (["--rows", ""], "--rows : give whole numbers separated by commas"),
        (["--layers", "1000"], "--layers 1000: give whole numbers from 1 to 64"),
        (["--threads", "0"], "--threads 0: give whole numbers from 1 to 1024"),
    ],
)
def test_linear_kernels_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    assert_one_line(run(*args, script=BENCHMARKS / "linear_kernels.py"), message)
