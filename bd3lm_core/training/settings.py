"""Everything a training run is told, in one dataclass; the CLI makes its flags from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field


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
