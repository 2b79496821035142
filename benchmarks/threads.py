"""How many CPU threads sampling should use: tokens/s at 1 and 2 threads, idle and beside a busy process.

    python benchmarks/threads.py [--tokens 256] [--repeats 3] [--skip-large]

For the shipped model (5 M parameters) and a GPT-2-small-shaped BD3-LM (random
weights, 170 M), each at 1 thread and at torch's default thread count (all
physical cores), first on an otherwise idle machine and then while this script
keeps one core busy with a spinning process of its own. Prints the median
tokens/s of `--repeats` runs and, per model, how much of its idle speed each
thread count keeps under load. `bd3lm_core.devices.choose_threads` takes one
thread below `ONE_THREAD_BELOW` parameters; this is the measurement behind it.
Run it on an otherwise idle machine: the ratios only mean something then.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bd3lm_core import Finished, SamplerSettings, generate, load_model  # noqa: E402
from bd3lm_core.devices import ONE_THREAD_BELOW, TORCH_DEFAULT_THREADS  # noqa: E402
from sampler import GPT2_TOKENIZER, make_checkpoint  # noqa: E402

SPIN = "while True: pass"


def speed(source, threads: int, tokens: int, repeats: int) -> float:
    """Median tokens/s of `repeats` seeded generations (after one warm-up), at this many threads."""
    loaded = load_model(source, device="cpu", dtype="float32", threads=threads)
    settings = SamplerSettings(tokens=tokens, seed=0, stop_at_eos=False, stop_on_repetition=False)
    rates = []
    for _ in range(repeats + 1):
        finished = [e for e in generate(loaded, "Once upon a time", settings) if isinstance(e, Finished)][0]
        rates.append(finished.tokens_per_second)
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--large-tokens", type=int, default=48, help="tokens per run of the GPT-2 shape")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true", help="only the shipped model")
    parser.add_argument("--tokenizer", type=Path, default=GPT2_TOKENIZER)
    args = parser.parse_args()
    counts = sorted({1, TORCH_DEFAULT_THREADS})
    with tempfile.TemporaryDirectory() as tmp:
        models = [("shipped model (5 M)", None, args.tokens)]
        if not args.skip_large:
            make_checkpoint(Path(tmp), args.tokenizer)
            models.append(("GPT-2 shape (170 M)", tmp, args.large_tokens))
        results: dict[tuple[str, str, int], float] = {}
        for load in ("idle", "one core busy"):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if load != "idle" else None
            try:
                for name, source, tokens in models:
                    for n in counts:
                        results[(name, load, n)] = speed(source, n, tokens, args.repeats)
                        print(f"{name}, {load}, {n} thread(s): {results[(name, load, n)]:.1f} tokens/s", file=sys.stderr)
            finally:
                if spinner is not None:
                    spinner.kill()
    print(f"\n{TORCH_DEFAULT_THREADS} cores by torch's count; one thread is chosen below {ONE_THREAD_BELOW:,} parameters.\n")
    print("| model | threads | idle tokens/s | one core busy tokens/s | kept under load |")
    print("|---|---|---|---|---|")
    for name, _, _ in models:
        for n in counts:
            idle, busy = results[(name, "idle", n)], results[(name, "one core busy", n)]
            print(f"| {name} | {n} | {idle:.1f} | {busy:.1f} | {busy / idle:.0%} |")


if __name__ == "__main__":
    main()
