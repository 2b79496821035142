"""Where this process trains, and the processes it trains with (torchrun).

One process (no torchrun) is a group of one: every method below then does
its work directly and nothing is exchanged. Launched by `torchrun`, which
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each
process, the processes join one `torch.distributed` group (gloo on the CPU;
on CUDA, NCCL for the gradients and gloo for the few small values the ranks
exchange on the host) and train one model:

- DistributedDataParallel all-reduces (averages) the gradients in backward,
  so the optimizer, the clipping and the EMA see the same gradients on every
  rank and the weights stay equal without ever being sent again;
- what only rank 0 does (reading the run folder, training the tokenizer,
  evaluating, saving) reaches the others through `from_main`, a broadcast of
  bytes: JSON or safetensors, never a pickle, since unpickling what comes
  over a socket could run code;
- once a step, `agree` sums every rank's loss and its wishes to stop (a
  signal, the time limit), so all ranks stop after the same step.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import _set_pg_timeout
from torch.nn.parallel import DistributedDataParallel

from ..errors import BD3LMError, one_line
from ..model.network import BD3LM

T = TypeVar("T")
TRAIN_DEVICES = ("cpu", "cuda")
# How long a rank waits for the others at a collective. Rank 0 alone trains the tokenizer, evaluates and
# saves while the others wait, which on a large corpus or model takes minutes, not hours.
WAIT = timedelta(hours=1)
# How long the processes wait for each other to start. A WORLD_SIZE left over in a shell (no torchrun, no
# peers) would otherwise wait the whole hour above in silence; BD3LM_JOIN_TIMEOUT (seconds) changes it.
JOIN_WAIT = 60
# Seconds of waiting before rank 0 says what it waits for under torchrun (which sets TORCHELASTIC_RUN_ID),
# where the peers are normally there by then and the line would only be noise. Without torchrun, where a
# WORLD_SIZE is most likely left over in a shell, every rank says it at once.
JOIN_NOTE_AFTER = 5


class GroupFailed(BD3LMError):
    """Another process of the group stopped with an error; its own message says why."""


@dataclass(frozen=True)
class Group:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the one process that evaluates, saves, writes and prints."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's rows of the group's batch, `size * batch_size` rows of which each rank takes `batch_size`."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)

    def precision(self) -> AbstractContextManager:
        """bfloat16 autocast on CUDA (the layer norms and the loss stay in float32); float32 on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def training_forward(self, model: BD3LM) -> Callable[..., torch.Tensor]:
        """What a training step calls for logits: `model.forward_train`, through DDP in a group.

        DDP's constructor also hands every rank rank 0's weights.
        """
        if self.size == 1:
            return model.forward_train
        ids = [self.device.index] if self.device.type == "cuda" else None
        return _collective(lambda: DistributedDataParallel(_TrainingForward(model), device_ids=ids))

    def from_main(
        self,
        work: Callable[[], T],
        encode: Callable[[T], bytes] = lambda value: json.dumps(value).encode(),
        decode: Callable[[bytes], T] = json.loads,
    ) -> T:
        """`work()` done by rank 0 alone; the other ranks get `decode(encode(its result))`.

        When `work` fails on rank 0, the others raise `GroupFailed` (whose
        message points to rank 0's) rather than wait for a step that will not come.
        """
        if self.size == 1:
            return work()
        if self.main:
            try:
                value = work()
            except BaseException:  # a BD3LMError, a bug or Ctrl+C: the others stop instead of waiting
                self._broadcast(False, b"")
                raise
            self._broadcast(True, encode(value))
            return value
        ok, data = self._broadcast(False, b"")
        if not ok:
            raise GroupFailed("stopped with rank 0, which failed (its message says why).")
        return decode(data)

    def agree(self, loss: float, wishes: list[bool]) -> tuple[float, list[bool]]:
        """The group's mean loss, and for each wish whether any rank has it: one small all-reduce per step."""
        if self.size == 1:
            return loss, wishes
        values = torch.tensor([loss, *wishes], dtype=torch.float64)  # on the host: gloo, whatever the gradients use
        _collective(lambda: dist.all_reduce(values))  # a sum
        return values[0].item() / self.size, [bool(v > 0) for v in values[1:].tolist()]

    def _broadcast(self, ok: bool, data: bytes) -> tuple[bool, bytes]:
        """Rank 0's `ok` and `data` on every rank (the others' arguments are ignored): its length, then its bytes."""
        header = torch.tensor([int(ok), len(data)], dtype=torch.int64)
        _collective(lambda: dist.broadcast(header, src=0))
        ok, length = bool(header[0]), int(header[1])
        if length == 0:
            return ok, b""
        body = torch.frombuffer(bytearray(data), dtype=torch.uint8) if self.main else torch.empty(length, dtype=torch.uint8)
        _collective(lambda: dist.broadcast(body, src=0))
        return ok, body.numpy().tobytes()


class _TrainingForward(torch.nn.Module):
    """`model.forward_train` as a module's forward, which is what DDP wraps and calls."""

    def __init__(self, model: BD3LM) -> None:
        super().__init__()
        self.model = model

    def forward(self, xt: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.forward_train(xt, x0, sigma=sigma)


MAX_PROCESSES = 65536  # more ranks than any launcher starts; a larger WORLD_SIZE is a typo, not a cluster


def join_group(device: str = "cpu") -> Group:
    """This process's group: a group of one unless torchrun (or another launcher) set RANK and WORLD_SIZE.

    On CUDA each rank takes the GPU of its LOCAL_RANK.
    """
    if device not in TRAIN_DEVICES:
        raise BD3LMError(f"training runs on {' or '.join(TRAIN_DEVICES)}, not {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise BD3LMError("CUDA is not available on this machine; train with --device cpu.")
    rank, size, local = (_environment_number(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if size is None or size == 1:
        return Group(device=torch.device(device))
    if rank is None or not 0 <= rank < size:
        raise BD3LMError(f"RANK must be a whole number from 0 to {size - 1} when WORLD_SIZE is {size}; launch with torchrun.")
    where = torch.device("cpu")
    if device == "cuda":
        local = local or 0
        if local >= torch.cuda.device_count():
            raise BD3LMError(
                f"rank {rank}: LOCAL_RANK {local} has no GPU, this machine has {torch.cuda.device_count()}; "
                "pass torchrun --nproc-per-node at most that many."
            )
        where = torch.device("cuda", local)
        torch.cuda.set_device(where)
    # DDP imports torch._dynamo; imported only once a group exists, it keeps a reference to the group (torch 2.13),
    # so destroy_process_group cannot join gloo's threads and one of them, freeing a tensor while Python exits,
    # aborts the process ("terminate called without an active exception"). Imported here, before the group, it
    # does not; and a process that trains alone, or only generates, does not pay its second of import.
    importlib.import_module("torch._dynamo")

    backend = "cpu:gloo,cuda:nccl" if device == "cuda" else "gloo"
    join = _join_wait()
    where_to = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    waits_for = f"{size - 1} more rank(s)" if rank == 0 else "rank 0 and the others"
    note = threading.Timer(JOIN_NOTE_AFTER, _say_waiting, (rank, size, join, waits_for, where_to))
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:  # without them joining fails at once: no wait
        if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun: only rank 0 speaks, as for everything else
            if rank == 0:
                note.start()
        else:
            _say_waiting(rank, size, join, waits_for, where_to)
    try:
        with _native_log_kept_unless_failed():
            dist.init_process_group(backend, rank=rank, world_size=size, timeout=timedelta(seconds=join))
    except (RuntimeError, ValueError) as err:
        if "Timed out" in str(err) or "timed out" in str(err):
            raise BD3LMError(
                f"rank {rank}: the other processes of WORLD_SIZE={size} did not join within {join} s at {where_to}; "
                "start them all with torchrun, or unset WORLD_SIZE and RANK to train alone "
                "(BD3LM_JOIN_TIMEOUT sets the wait)."
            ) from None
        raise BD3LMError(
            f"rank {rank} could not join the group of {size} ({one_line(err)}); check MASTER_ADDR and MASTER_PORT "
            "(torchrun's --master-addr and --master-port), which every node must reach."
        ) from None
    finally:
        note.cancel()
    _set_pg_timeout(WAIT)  # joined: from now on a rank may wait for rank 0's evaluations and saves
    return Group(rank, size, where)


def leave_group() -> None:
    """Destroy the group, which joins its threads, once the trainer and its DDP are gone (collected: DDP has cycles)."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextmanager
def _native_log_kept_unless_failed() -> Iterator[None]:
    """What torch's C++ writes to stderr (fd 2) meanwhile, passed on only if the block succeeds.

    A rank that cannot reach rank 0's store logs a C++ stack trace of 40 frames before the timeout
    reaches Python; the one line made of that timeout says all of it that a user needs.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)  # reached only when the block succeeded
        os.write(2, log.read())


def _say_waiting(rank: int, size: int, join: int, waits_for: str, where_to: str) -> None:
    """The one line that says why training has not started: a wait for peers a stray WORLD_SIZE asked for."""
    print(f"bd3lm: rank {rank} of {size} is waiting up to {join} s for {waits_for} at {where_to}, as WORLD_SIZE={size} "
          "in the environment asks; to train alone, unset WORLD_SIZE and RANK.", file=sys.stderr, flush=True)


def _join_wait() -> int:
    """BD3LM_JOIN_TIMEOUT in whole seconds (1 to a day), else JOIN_WAIT."""
    value = os.environ.get("BD3LM_JOIN_TIMEOUT")
    if value is None:
        return JOIN_WAIT
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 86400):
        raise BD3LMError(f"BD3LM_JOIN_TIMEOUT is {one_line(value, 40)!r}, not a whole number of seconds from 1 to 86400.")
    return int(value)


def _environment_number(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_PROCESSES):  # "²".isdigit() is True
        raise BD3LMError(f"{name} is {one_line(value, 40)!r}, not a whole number from 0 to {MAX_PROCESSES}; "
                         "launch with torchrun, which sets it.")
    return int(value)


def _collective(call: Callable[[], T]) -> T:
    """A collective, where a rank that died (its own message says why) becomes one line, not a traceback."""
    try:
        return call()
    except RuntimeError as err:  # DistBackendError and gloo's connection errors are RuntimeErrors
        raise GroupFailed(
            f"the training group lost a process ({one_line(err, 120)}); the other processes' messages say why. "
            "Fix that and start the group again, with --resume to continue from the last save."
        ) from None
