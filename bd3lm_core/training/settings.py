"""Everything a training run is told, in one dataclass; the CLI makes its flags from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .. import checks
from ..errors import BD3LMError
from ..model.config import WHOLE_RANGES, check_model_values
from ..sampling.settings import SEED_LIMIT
from .data import TextOptions

MIN_BPE_SIZE = 257  # a byte-level BPE holds the 256 bytes and <|endoftext|> before any merge


@dataclass
class TrainSettings:
    data: list[str]
    out: str
    separators: list[str] = field(default_factory=lambda: ["blank"])
    fix_mojibake: bool = False
    ascii_punctuation: bool = False
    holdout_bytes: int | None = None  # held out from the end of the last file; default 5% of it
    tokenizer: str | None = None  # an existing tokenizer.json; else a BPE is trained
    vocab_size: int = 4096  # size of the trained BPE (the model adds one mask id)
    block_size: int = 4
    model_length: int = 256
    hidden_dim: int = 256
    n_layers: int = 6
    n_heads: int = 4
    cond_dim: int = 128
    dropout: float = 0.1
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 200
    schedule: str = "cosine"  # or "constant"
    steps: int = 2000
    ema: float = 0.999
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_rows: int = 64
    seed: int = 0
    init_from: str | None = None
    max_minutes: float | None = None

    @classmethod
    def from_saved(cls, raw: object, where: str) -> TrainSettings:
        """The settings stored in a run's state file, checked like flags (the file may have been edited)."""
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not {"data", "out"} <= set(raw) or not set(raw) <= names:
            raise BD3LMError(f"{where} does not hold the settings of a run; start a new run without --resume.")
        settings = cls(**raw)
        try:
            settings.check()
        except BD3LMError as err:
            raise BD3LMError(f"{where}: {err}") from None
        return settings

    def check(self) -> None:
        """Check every value before any work starts; a message names the value by its `bd3lm train` flag."""
        if not isinstance(self.data, list) or not self.data:
            raise BD3LMError("give at least one --data file.")
        for path in self.data:
            checks.string(path, "--data")
        checks.string(self.out, "--out")
        if not isinstance(self.separators, list) or len(self.separators) not in (1, len(self.data)):
            raise BD3LMError("give one --separator for all files, or one per --data file.")
        for separator in self.separators:
            TextOptions(checks.text(separator, "--separator"))
        checks.boolean(self.fix_mojibake, "--fix-mojibake")
        checks.boolean(self.ascii_punctuation, "--ascii-punctuation")
        if self.holdout_bytes is not None:
            checks.whole(self.holdout_bytes, "--holdout-bytes", 1)
        for name in ("tokenizer", "init_from"):
            if getattr(self, name) is not None:
                checks.string(getattr(self, name), _flag(name))
        checks.whole(self.vocab_size, "--vocab-size", MIN_BPE_SIZE, WHOLE_RANGES["vocab_size"][1] - 1)
        model = ("block_size", "model_length", "hidden_dim", "n_layers", "n_heads", "cond_dim", "dropout")
        check_model_values({name: getattr(self, name) for name in model}, _flag)
        for name in ("batch_size", "steps", "eval_every", "eval_rows"):
            checks.whole(getattr(self, name), _flag(name), 1)
        checks.whole(self.warmup, "--warmup", 0)
        checks.whole(self.seed, "--seed", 0, SEED_LIMIT - 1)
        checks.number(self.lr, "--lr", 0.0, open_low=True)
        checks.number(self.weight_decay, "--weight-decay", 0.0)
        checks.number(self.ema, "--ema", 0.0, 1.0, open_high=True)
        checks.number(self.grad_clip, "--grad-clip", 0.0, open_low=True)
        if self.schedule not in ("cosine", "constant"):
            raise BD3LMError(f"--schedule must be cosine or constant, not {self.schedule!r}.")
        if self.max_minutes is not None:
            checks.number(self.max_minutes, "--max-minutes", 0.0, open_low=True)


def _flag(name: str) -> str:
    """A field's flag: `batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")
