"""What several `bd3lm` subcommands share: the model and sampler flags, loading with a progress line, exit codes.

`cli.py` (generate and the rest), `cli_chat.py` and `cli_serve.py` all import
from here, so none of them imports another.
"""

from __future__ import annotations

import argparse
import sys

from . import formatting

EXIT_INTERRUPTED = 130

shown = False  # a progress line (ended by \r, not \n) is on the terminal


def line(text: str) -> None:
    """A progress line that the next one overwrites (and that `cli._error` ends before its message)."""
    global shown
    sys.stderr.write("\r" + text.ljust(79)[:200])
    sys.stderr.flush()
    shown = True


def add_model_options(p: argparse.ArgumentParser) -> None:
    from .devices import DEVICES, DTYPES

    p.add_argument("--model", metavar="SRC", help="model folder or hub repo id (default: the shipped model)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default %(default)s: CUDA, then MPS, then CPU")
    p.add_argument("--dtype", choices=list(DTYPES), default="auto",
                   help="default %(default)s: bf16 on CUDA, fp16 on MPS, fp32 on CPU (chat models: the best that fits "
                        "in free memory); int8: int8 weights on the CPU")
    p.add_argument("--threads", type=int, help="CPU threads (default: one for small models, all cores for large ones)")


def load_from_flags(args: argparse.Namespace):
    """The model the --model, --device, --dtype and --threads flags name, a download shown as a progress line."""
    from .loader import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype, progress=download_progress, threads=args.threads)


def add_sampler_options(p: argparse.ArgumentParser, tokens_help: str = "new tokens to generate") -> None:
    """The sampler's flags, shared by generate, chat and serve, their help built from the strategies. Those left out
    take the model's authors' defaults (chat models) or SamplerSettings' (BD3-LMs): see `sampler_settings`."""
    from .sampling import SamplerSettings
    from .sampling.strategies import MAX_STEPS, STRATEGIES

    d = SamplerSettings()
    samplers = "; ".join(f"{name}: {strategy.description}" for name, strategy in STRATEGIES.items())
    readers = {key: " and ".join(n for n, strategy in STRATEGIES.items() if key in strategy.reads) or "no sampler"
               for key in ("steps", "threshold", "entropy_bound")}
    p.add_argument("--tokens", type=int, default=d.tokens, help=f"{tokens_help} (default %(default)s)")
    p.add_argument("--block-size", type=int, help="tokens per block (default: the checkpoint's, which works best)")
    p.add_argument("--steps", type=int,
                   help=f"denoising steps per block for {readers['steps']}, 1 to {MAX_STEPS} (default: the block size)")
    p.add_argument("--sampler", choices=list(STRATEGIES),
                   help=f"which positions a step reveals. {samplers} (default: the model's authors' choice, else {d.sampler})")
    p.add_argument("--top-p", type=float, help=f"nucleus threshold in (0, 1] (default: the model's, else {d.top_p})")
    p.add_argument("--threshold", type=float,
                   help=f"for {readers['threshold']}: reveal every drawn token the model gives at least this "
                        f"probability (default: the model's, else {d.threshold})")
    p.add_argument("--entropy-bound", type=float,
                   help=f"for {readers['entropy_bound']}: entropy budget per step, in nats (default {d.entropy_bound})")
    p.add_argument("--temperature", type=float, help=f"default: the model's, else {d.temperature}")
    p.add_argument("--seed", type=int, help="random seed, 0 to 2**63-1 (default: a random one, printed with --json)")
    p.add_argument("--ignore-eos", action="store_true", help="keep going past end-of-text")
    p.add_argument("--no-repetition-stop", action="store_true", help="do not stop when the text degenerates into a loop")


def sampler_values(args: argparse.Namespace) -> dict[str, object]:
    """The SamplerSettings fields the flags set; those left out are absent (they take the model's defaults)."""
    given = {
        "tokens": args.tokens, "block_size": args.block_size, "steps": args.steps, "sampler": args.sampler,
        "top_p": args.top_p, "threshold": args.threshold, "entropy_bound": args.entropy_bound,
        "temperature": args.temperature, "seed": args.seed, "stop_at_eos": not args.ignore_eos,
        "stop_on_repetition": not args.no_repetition_stop,
    }
    return {k: v for k, v in given.items() if v is not None}  # None: the model's default


def sampler_settings(args: argparse.Namespace, loaded=None):
    """The SamplerSettings the flags ask for, over the model's defaults (`loaded`), checked.

    Called once before loading (with `loaded` None: a wrong flag is refused before any work) and once after.
    """
    from .sampling import SamplerSettings

    given = sampler_values(args)
    settings = loaded.default_settings(**given) if loaded is not None else SamplerSettings(**given)
    settings.check()
    return settings


def download_progress(p) -> None:
    line(f"downloading {formatting.download(p)}")
