"""The training recipe of the paper, sized for a laptop.

One step: draw one t per block (antithetic across the batch) inside the
current window [beta, omega], mask, one forward over `[x_t ; x_0]`, NELBO
loss, AdamW with warm-up, gradient clipping at 1.0 and an EMA of the
weights. Every `eval_every` steps the variance search picks the window for
the next steps and the EMA model's held-out NELBO (t over [0.001, 1]) is
logged; the EMA weights are saved in the published layout, so the run folder
is a model that `bd3lm generate` loads. The weights of the best held-out
evaluation so far are also kept in `best/`: on a small corpus the held-out
loss turns up again once the model starts to memorise the training text.

Everything needed to continue is in `train_state.safetensors` (weights,
optimizer, EMA, step, window, random states; see `state.py`); the data order
is a function of the seed and the step, so `--resume` continues exactly where
the run stopped.

No progress is lost: Ctrl+C and SIGTERM stop a run after saving it, every
file is replaced atomically (the previous save stays whole if the disk fills
up), and signals that arrive during a save wait until it is written.

Launched by torchrun, the processes train as one `Group` (`group.py`): each
takes its rows of a batch of `batch_size` rows per process, with the noise
one process with that whole batch would draw, and DDP averages the
gradients, so N processes train the weights one process with N times the
batch would, to round-off. Rank 0 alone evaluates, saves, logs and reports,
and hands the others what they need (the window, the saved state). A signal
to any rank is only noted; the group stops together after the step, and rank
0 saves.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..budgets import require, training_bytes
from ..errors import BD3LMError
from ..interrupts import Terminated, held_signals, terminate_like_interrupt
from ..model.checkpoints import save_weights
from ..model.config import BD3LMConfig
from ..model.network import BD3LM
from ..model.tokenizer import Tokenizer
from .data import prepare_data
from .evaluation import FULL_WINDOW, choose_window, nelbo
from .group import Group
from .objective import block_losses
from .settings import TrainSettings
from .state import STATE_FILE, RunState, read_state, restore, save_state, state_bytes, state_from_bytes

LOG_FILE = "train_log.jsonl"
LOCK_FILE = "train.lock"  # locked while a training writes the folder; holds that process's id
BEST_DIR = "best"

# Why `Trainer.run` returned; the CLI turns the last two into exit statuses 130 and 143, as a shell would.
FINISHED, TIME_LIMIT, INTERRUPTED, TERMINATED = "finished", "time limit reached", "interrupted", "terminated"
STOPS = (TIME_LIMIT, INTERRUPTED, TERMINATED)  # by rising urgency: a group stops for the most urgent any rank asks for


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    loss: float
    tokens_per_second: float
    eta_seconds: float
    window: tuple[float, float]


def lr_at(step: int, settings: TrainSettings) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    if settings.schedule == "constant":
        return settings.lr
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_rows(step: int, n_rows: int, batch_size: int, seed: int) -> torch.Tensor:
    """Row indices of the batch at `step`: a fresh shuffle every epoch, fixed by seed and step."""
    per_epoch = max(1, n_rows // batch_size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64))
    return order[index * batch_size : (index + 1) * batch_size]


def _check_same_data(given: TrainSettings, run: TrainSettings) -> None:
    """--resume trains on the run's own data: refuse other --data rather than silently ignore it."""
    same = [os.path.abspath(p) for p in given.data] == [os.path.abspath(p) for p in run.data]
    if not same:
        raise BD3LMError(
            f"--data {' '.join(given.data)} is not the data of the run being resumed ({' '.join(run.data)}); "
            "--resume continues on the run's own data, so pass the same --data, or start a new run from its weights "
            "with --init-from and a new --out."
        )


@contextmanager
def run_folder_lock(out: Path) -> Iterator[None]:
    """Hold `out` for one training at a time: a second writer is refused with the first one's process id."""
    if fcntl is None:  # not on POSIX: no lock
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip() or "another process"
            raise BD3LMError(
                f"{out} is being trained by process {holder}; wait for it to end, or pass another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)  # the id stays: it is only read while the lock is held
    finally:
        os.close(fd)


class Trainer:
    def __init__(
        self,
        settings: TrainSettings,
        resume: bool = False,
        report: Callable[[str], None] = print,
        group: Group | None = None,
    ) -> None:
        settings.check()  # every flag, before any work
        self.group = g = group or Group()
        self.settings = settings
        self.out = Path(settings.out)
        self.report = report
        state = g.from_main(
            lambda: self._begin(resume),
            lambda state: b"" if state is None else state_bytes(state),
            lambda data: state_from_bytes(data, self.out / STATE_FILE) if data else None,
        )
        if state is not None:
            _check_same_data(settings, state.settings)
            self.settings = settings = replace(state.settings, steps=settings.steps, max_minutes=settings.max_minutes)
        # rank 0 reads the text and makes (or loads) the tokenizer; the others make the same rows with it
        self.tokenizer, self.train_rows, self.held_rows = g.from_main(
            lambda: self._data(state is not None),
            lambda prepared: prepared[0].to_json().encode(),
            lambda data: prepare_data(settings, Tokenizer.from_json(data.decode(), "rank 0's tokenizer")),
        )
        torch.manual_seed(settings.seed)
        self.config = self._model_config()
        require(training_bytes(self.config, settings.batch_size), "training this model", torch.device(g.device),
                "use a smaller --hidden-dim, --n-layers, --batch-size or --model-length")
        self.model = BD3LM(self.config).to(g.device)
        if settings.init_from and state is None:
            g.from_main(lambda: self._init_from(settings.init_from))  # the others get the weights from DDP, next
        self.forward = g.training_forward(self.model)
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.window = FULL_WINDOW
        self.best = math.inf  # lowest held-out NELBO so far, whose weights are in BEST_DIR
        self.saved_step: int | None = None  # the step of the last save in this run
        self._last_saved: int | None = state.step if state is not None else None  # of any run, for messages
        if state is not None:
            restore(state, self.model, self.ema, self.optimizer, self.generator)
            self.step, self.window, self.best = state.step, state.window, state.best

    def _begin(self, resume: bool) -> RunState | None:
        """Rank 0: the state to continue from, or None after checking that the run folder can be written."""
        if not resume:
            self._check_out_is_writable()  # before minutes of tokenizer training, not at the first save
        state = read_state(self.out) if resume else None
        with run_folder_lock(self.out):  # a training running there is refused now, not after data preparation
            pass
        if state is None:
            return None
        if state.processes != self.group.size:
            was, now = (f"{n} process{'es' if n > 1 else ''}" for n in (state.processes, self.group.size))
            raise BD3LMError(
                f"{self.out} was trained by {was} and this is {now}: a step's batch is split across the processes, "
                f"so resume it with {was} in all (torchrun's --nnodes times --nproc-per-node), or start a new run from its weights "
                f"with --init-from {self.out} --tokenizer {self.out / 'tokenizer.json'} and a new --out."
            )
        return state

    def _data(self, resuming: bool) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
        """Rank 0: the tokenizer (the run's own when resuming) and the rows, checked against the group's batch."""
        existing = Tokenizer.load(self.out / "tokenizer.json") if resuming else None
        tokenizer, train_rows, held_rows = prepare_data(self.settings, existing)
        batch = self.settings.batch_size * self.group.size
        if self.group.size > 1 and batch > len(train_rows):
            raise BD3LMError(
                f"the group's batch of {self.group.size} x {self.settings.batch_size} rows is more than the "
                f"{len(train_rows)} training rows; lower --batch-size or give more text."
            )
        return tokenizer, train_rows, held_rows

    def _model_config(self) -> BD3LMConfig:
        s = self.settings
        return BD3LMConfig(
            block_size=s.block_size, cond_dim=s.cond_dim, hidden_dim=s.hidden_dim, model_length=s.model_length,
            n_layers=s.n_layers, n_heads=s.n_heads, vocab_size=self.tokenizer.size + 1, dropout=s.dropout,
        )

    def _init_from(self, source: str) -> None:
        from ..loader import load_model  # the loader imports hub code the trainer otherwise never needs

        loaded = load_model(source, device="cpu", dtype="float32")
        loaded.require_dit("--init-from")
        if loaded.config.vocab_size != self.config.vocab_size:
            raise BD3LMError(
                f"--init-from model has {loaded.config.vocab_size} ids but the tokenizer gives "
                f"{self.config.vocab_size}; pass --tokenizer with that model's tokenizer.json."
            )
        shape = ("hidden_dim", "n_layers", "n_heads", "cond_dim", "adaln")
        differ = [name for name in shape if getattr(loaded.config, name) != getattr(self.config, name)]
        if differ:
            wanted = ", ".join(f"{name} {getattr(loaded.config, name)}" for name in differ)
            raise BD3LMError(
                f"--init-from model has another shape ({wanted}); pass the same model flags as that model's config.json."
            )
        self.model.load_state_dict(loaded.model.state_dict())

    # --- state -------------------------------------------------------------
    def _check_out_is_writable(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise BD3LMError(f"cannot write to {self.out} ({err.strerror}); pass an --out folder you can write to.") from None

    def save_model(self, folder: Path) -> None:
        """Write the EMA model in the published layout."""
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder / "config.json")
        self.tokenizer.save(folder / "tokenizer.json")
        save_weights(self.ema, folder / "model.safetensors")

    def save(self, best: bool = False) -> list[int]:
        """Write the EMA model in the published layout (also to BEST_DIR if `best`), then the state to continue from.

        Every file is replaced atomically, so a failed write (a full disk)
        leaves the previous save whole and the message can promise that
        --resume continues from it. Ctrl+C and SIGTERM wait until the save is
        written; the signals that came meanwhile are returned.
        """
        if not all(bool(torch.isfinite(p).all()) for p in self.ema.parameters()):
            raise self._diverged(f"the weights hold NaN or infinite values at step {self.step}")
        with held_signals() as received:
            try:
                if best:
                    self.save_model(self.out / BEST_DIR)
                self.save_model(self.out)
                save_state(
                    self.out / STATE_FILE, self.settings, self.step, self.window, self.best,
                    self.model, self.ema, self.optimizer, self.generator, self.group.size,
                )
                self._last_saved = self.step
            except OSError as err:
                raise BD3LMError(
                    f"could not save step {self.step} to {self.out} ({err.strerror or err}); free some space and "
                    "run again with --resume to continue from the last save."
                ) from None
        return received

    def _diverged(self, what: str) -> BD3LMError:
        """The error that stops a run gone numerically wrong, before its weights are saved over the last good ones."""
        kept = (f"the last save (step {self._last_saved}) is kept; continue it with --resume and a lower --lr"
                if self._last_saved is not None else "nothing was saved; start again with a lower --lr")
        return BD3LMError(f"{what}: training diverged. Stopped; {kept}.")

    def log(self, **record) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": self.step, **record}) + "\n")

    # --- loop --------------------------------------------------------------
    def train_step(self) -> float:
        """One optimizer step on this process's rows of the step's batch; returns their mean loss."""
        s, g = self.settings, self.group
        self.model.train()
        x0 = self.train_rows[batch_rows(self.step, len(self.train_rows), s.batch_size * g.size, s.seed)]  # the group's batch
        if g.size > 1 or g.device.type != "cpu":
            # Dropout draws from the global random stream of each rank and GPU, which the state does not hold (it
            # holds one CPU stream): reseed it from the step, so that --resume stays exact.
            torch.manual_seed((s.seed * 1_000_003 + self.step) * 65_537 + g.rank)
        with g.precision():
            losses, _ = block_losses(
                self.model, x0.to(g.device), *self.window, generator=self.generator, rows=g.shard(s.batch_size),
                forward=self.forward,
            )
        loss = losses.mean()  # equal shards: DDP's mean of the ranks' gradients is the gradient of the batch's mean
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, s)
        self.optimizer.step()
        decay = min(s.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1 - decay)
        self.step += 1
        return loss.item()

    def evaluate(self) -> float:
        """The variance search and the EMA's held-out NELBO, on batches of the group's size (rank 0 only)."""
        s = self.settings
        held = self.held_rows[: s.eval_rows]
        batch = s.batch_size * self.group.size
        with self.group.precision():
            if self.config.block_size > 1:
                self.window, variances = choose_window(self.ema, held[:batch], seed=s.seed)
                self.log(window=list(self.window), variances={f"{a:.2f}-{b:.2f}": v for (a, b), v in variances.items()})
            result = nelbo(self.ema, held, samples=1, batch_size=batch, seed=s.seed)
        self.log(heldout_nelbo=result.nelbo_per_token, heldout_ppl_bound=result.ppl_bound, window=list(self.window))
        return result.nelbo_per_token

    def checkpoint(self) -> tuple[tuple[float, float], list[int]]:
        """Rank 0: evaluate, report and save; returns the new window and the signals that came during the save."""
        value = self.evaluate()
        improved = value < self.best
        self.best = min(value, self.best)
        kept = f"; best so far, kept in {self.out / BEST_DIR}" if improved else ""
        self.report(f"step {self.step}: held-out NELBO {value:.4f} (ppl <= {math.exp(value):.2f}), window {self.window}{kept}")
        return self.window, self.save(best=improved)

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> str:
        """Train up to `settings.steps`, saving at every evaluation and at the end, however it ends.

        Returns why it stopped: FINISHED, TIME_LIMIT, INTERRUPTED (Ctrl+C) or
        TERMINATED (SIGTERM); the state is saved in every case. In a group,
        every rank returns the same.
        """
        with run_folder_lock(self.out) if self.group.main else nullcontext():
            return self._run(on_progress)

    def _run(self, on_progress: Callable[[Progress], None] | None) -> str:
        one = self.group.size == 1
        self.saved_step = None
        # One process stops at once on Ctrl+C or SIGTERM (a KeyboardInterrupt). In a group, a rank that stopped
        # mid-step would leave the others waiting for its gradients: the signals are only noted, for the whole
        # run, and the group stops together after the step.
        with nullcontext([]) if one else held_signals() as signals:
            try:
                with terminate_like_interrupt() if one else nullcontext():
                    stopped = self._train(on_progress, signals)
            except KeyboardInterrupt as err:
                stopped = TERMINATED if isinstance(err, Terminated) else INTERRUPTED
            if self.saved_step != self.step:
                self.group.from_main(self.save)
        if stopped != FINISHED and self.group.main:
            self.report(f"{stopped} at step {self.step}; saved. Continue with --resume.")
        return stopped

    def _train(self, on_progress: Callable[[Progress], None] | None, signals: list[int]) -> str:
        """The steps, until the last or until the group agrees to stop; returns why it stopped."""
        s, g = self.settings, self.group
        started = time.monotonic()
        first_step = self.step
        tokens_per_step = s.batch_size * g.size * s.model_length
        while self.step < s.steps:
            loss = self.train_step()
            elapsed = time.monotonic() - started
            over_time = g.main and s.max_minutes is not None and elapsed > 60 * s.max_minutes
            loss, asked = g.agree(loss, [over_time, signal.SIGINT in signals, signal.SIGTERM in signals])
            if not math.isfinite(loss):  # every rank sees the same mean, so all stop here, and nothing is saved
                raise self._diverged(f"the loss became {loss} at step {self.step}")
            stopped = next((why for why, yes in zip(STOPS[::-1], asked[::-1]) if yes), FINISHED)
            rate = (self.step - first_step) / elapsed
            if on_progress and g.main:
                on_progress(Progress(self.step, s.steps, loss, rate * tokens_per_step, (s.steps - self.step) / rate, self.window))
            if self.step % 20 == 0 and g.main:
                self.log(loss=loss, lr=lr_at(self.step - 1, s), elapsed=elapsed)
            if self.step % s.eval_every == 0 or self.step == s.steps:
                window, held = g.from_main(self.checkpoint)
                self.window, self.saved_step = tuple(window), self.step
                if held:  # Ctrl+C or SIGTERM during the save: stop now that it is written
                    stopped = TERMINATED if held[0] == signal.SIGTERM else INTERRUPTED
            if stopped != FINISHED:
                return stopped
        return FINISHED
