"""Training as a group of processes: two CPU processes with gloo on 127.0.0.1, launched the way torchrun
launches `bd3lm train` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment).

Each process runs one thread: two processes share this machine's cores with whatever else runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from bd3lm_core import BD3LMError
from bd3lm_core.training import Trainer, TrainSettings
from bd3lm_core.training.evaluation import FULL_WINDOW
from bd3lm_core.training.state import STATE_FILE, read_state
from bd3lm_core.training.trainer import LOG_FILE
from model_factory import toy_settings

ROOT = Path(__file__).resolve().parent.parent
WAIT = 240  # seconds a group may take on a busy two-core machine before the test gives up


def flags(settings: TrainSettings) -> list[str]:
    """`bd3lm train`'s flags for `settings`."""
    out = []
    for f in fields(settings):
        value, flag = getattr(settings, f.name), "--" + f.name.replace("_", "-")
        if f.name in ("data", "separators"):
            out += [part for item in value for part in ("--" + f.name.removesuffix("s"), item)]
        elif value is True:
            out.append(flag)
        elif value is not None and value is not False:
            out += [flag, str(value)]
    return out


def launch(settings: TrainSettings, *extra: str, size: int = 2) -> list[subprocess.Popen]:
    """`size` processes of `bd3lm train`, as torchrun starts them on one machine."""
    with socket.socket() as probe:  # a free port for rank 0's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "WORLD_SIZE": str(size), "PYTHONFAULTHANDLER": "1",
           "TORCHELASTIC_RUN_ID": "test"}  # as torchrun sets it: the ranks then wait 5 s before saying they wait
    command = [sys.executable, "-m", "bd3lm_core.cli", "train", *flags(settings), "--threads", "1", *extra]
    return [
        subprocess.Popen(command, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(size)
    ]


def finish(processes: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """Each process's exit status and what it printed, once all have ended."""
    ended = []
    for process in processes:
        out, err = process.communicate(timeout=WAIT)
        ended.append((process.returncode, out + err))
    return ended


def run_group(settings: TrainSettings, *extra: str) -> list[tuple[int, str]]:
    return finish(launch(settings, *extra))


def assert_statuses(ended: list[tuple[int, str]], expected: list[int]) -> None:
    """Each process ended with its expected status; else what the others printed, whole."""
    wrong = "\n".join(f"rank {rank} ended with {status}:\n{said}" for rank, ((status, said), want)
                      in enumerate(zip(ended, expected)) if status != want)
    assert not wrong, wrong


def weights(tensors: dict[str, torch.Tensor], trainer: Trainer) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, saved tensor, trainer's tensor) for every weight and EMA weight."""
    return [(prefix + name, tensors[prefix + name], value)
            for prefix, module in (("model.", trainer.model), ("ema.", trainer.ema))
            for name, value in module.state_dict().items()]


@pytest.mark.slow  # starts several processes
def test_two_processes_train_the_weights_one_process_trains_with_their_whole_batch(tmp_path: Path) -> None:
    # No dropout: each process draws its own dropout, which one process cannot draw alike. Two evaluations
    # (steps 2 and 4): the window rank 0 picks at step 2 shapes the noise of both processes' rows after it.
    same = dict(steps=4, eval_every=2, dropout=0.0)
    group = run_group(toy_settings(tmp_path / "group", batch_size=4, **same))
    one = Trainer(toy_settings(tmp_path / "one", batch_size=8, **same), report=lambda _: None)
    one.run()
    half = Trainer(toy_settings(tmp_path / "half", batch_size=4, **same), report=lambda _: None)
    half.run()

    assert_statuses(group, [0, 0])
    assert "saved to" in group[0][1] and group[1][1] == ""  # rank 1 neither prints nor reports
    out = tmp_path / "group" / "run"
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["window"] for r in log if "variances" in r][0] != list(FULL_WINDOW)  # the window did change the noise
    state = read_state(out)
    assert state.processes == 2 and state.step == 4 and state.window == one.window
    # The group sums its gradients in another order than one process (two means of four rows, averaged by
    # DDP's all-reduce, against one mean of eight): float32 round-off, ~1e-7 of each gradient. Adam moves a
    # weight by about lr * g / sqrt(v), so four steps of lr 3e-3 keep the difference near 1e-7 (measured
    # 6e-8); 1e-6 allows for that and is 10,000 times smaller than the gap to one process with half the batch.
    for name, saved, expected in weights(state.tensors, one):
        torch.testing.assert_close(saved, expected, rtol=1e-5, atol=1e-6, msg=name)
    assert max((saved - expected).abs().max().item() for _, saved, expected in weights(state.tensors, half)) > 1e-3
    assert state.best == pytest.approx(one.best, rel=1e-5)  # rank 0 evaluated the group's batch as one process would


@pytest.mark.slow  # starts several processes
def test_sigterm_to_one_process_stops_the_group_after_the_same_step_and_the_group_resumes_exactly(tmp_path: Path) -> None:
    # With dropout (0.1): each rank's dropout stream is fixed by the seed, the step and the rank, so resuming is exact.
    settings = toy_settings(tmp_path / "stopped", batch_size=4, steps=100_000, eval_every=2, schedule="constant")
    out = Path(settings.out)
    processes = launch(settings)
    deadline = time.monotonic() + WAIT
    while not (out / STATE_FILE).exists():  # the save at step 2: both processes are in the loop
        assert all(p.poll() is None for p in processes) and time.monotonic() < deadline, finish(processes)
        time.sleep(0.1)
    processes[1].send_signal(signal.SIGTERM)  # as a scheduler would stop one node
    ended = finish(processes)
    assert_statuses(ended, [143, 143])
    (_, said0), (_, said1) = ended
    stopped = read_state(out).step
    assert f"terminated at step {stopped}; saved" in said0 and said1 == ""

    resumed = run_group(replace(settings, steps=stopped + 2), "--resume")
    straight = run_group(replace(settings, out=str(tmp_path / "straight"), steps=stopped + 2))
    assert_statuses(resumed + straight, [0, 0, 0, 0])
    a, b = read_state(out), read_state(tmp_path / "straight")
    assert a.step == b.step == stopped + 2
    for name in [n for n in a.tensors if n.startswith(("model.", "ema."))]:
        assert torch.equal(a.tensors[name], b.tensors[name]), name

    with pytest.raises(BD3LMError, match="trained by 2 processes and this is 1 process: .* resume it with 2 processes"):
        Trainer(settings, resume=True, report=lambda _: None)


def test_an_error_on_rank_0_stops_every_process_with_one_message(tmp_path: Path) -> None:
    settings = toy_settings(tmp_path, batch_size=4)
    ended = run_group(settings, "--resume")  # nothing to resume: only rank 0 looks
    assert_statuses(ended, [2, 2])
    (_, said0), (_, said1) = ended
    assert said0.startswith("bd3lm: nothing to resume") and said0.count("\n") == 1
    assert said1 == "bd3lm: rank 1: stopped with rank 0, which failed (its message says why).\n"
