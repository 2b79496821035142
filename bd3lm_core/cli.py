"""The `bd3lm` command: generate, download, list models, train, evaluate.

Every subcommand goes through the same public API as the app. User errors
(`BD3LMError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .errors import BD3LMError


def _progress_line(text: str) -> None:
    sys.stderr.write("\r" + text.ljust(79)[:200])
    sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- train ------------------------------------------------------------------
def add_train(sub: argparse._SubParsersAction) -> None:
    from .training import TrainSettings

    d = TrainSettings(data=[], out="")
    p = sub.add_parser("train", help="train a BD3-LM on your own text", description="Train a BD3-LM on plain-text files.")
    p.add_argument("--data", action="append", required=True, metavar="FILE", help="a UTF-8 text file (repeat for several)")
    p.add_argument("--separator", action="append", metavar="RULE",
                   help="where documents end: blank (an empty line), newline (one newline; blank lines stay inside), "
                        "line, or marker:STRING. One for all files or one per --data. Default: blank")
    p.add_argument("--fix-mojibake", action="store_true", help="repair UTF-8 punctuation mis-decoded as Windows-1252 (â€œ)")
    p.add_argument("--ascii-punctuation", action="store_true", help="turn curly quotes, dashes and ellipses into ASCII")
    p.add_argument("--holdout-bytes", type=int, help="hold out this many bytes from the end of the last file (default 5%%)")
    p.add_argument("--tokenizer", help="use this tokenizer.json instead of training a BPE")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help="size of the trained BPE (default %(default)s)")
    for name in ("block_size", "model_length", "hidden_dim", "n_blocks", "n_heads", "cond_dim", "batch_size",
                 "warmup", "steps", "eval_every", "eval_rows", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name), help="default %(default)s")
    for name in ("dropout", "lr", "weight_decay", "ema", "grad_clip"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name), help="default %(default)s")
    p.add_argument("--schedule", choices=["cosine", "constant"], default=d.schedule)
    p.add_argument("--init-from", metavar="SRC", help="start from this model's weights (folder or hub repo id)")
    p.add_argument("--max-minutes", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: the model and the state to --resume from")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from .training import Trainer, TrainSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    fields = TrainSettings.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values["separators"] = args.separator or ["blank"]
    settings = TrainSettings(**values)
    trainer = Trainer(settings, resume=args.resume, report=lambda text: print("\n" + text, file=sys.stderr))
    params = sum(p.numel() for p in trainer.model.parameters())
    print(
        f"model: {params / 1e6:.2f}M parameters, vocab {trainer.config.vocab_size}, block {trainer.config.block_size}, "
        f"context {trainer.config.model_length}; data: {len(trainer.train_rows)} training rows, "
        f"{len(trainer.held_rows)} held-out rows",
        file=sys.stderr,
    )
    trainer.run(
        lambda p: _progress_line(
            f"step {p.step}/{p.steps}  loss {p.loss:.3f}  {p.tokens_per_second:.0f} tok/s  ETA {_duration(p.eta_seconds)}"
        )
    )
    print(f"\nsaved to {settings.out}", file=sys.stderr)
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bd3lm", description="Block diffusion language models: generate, download, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BD3LMError as err:
        print(f"bd3lm: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbd3lm: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
