"""Sampler speed on a GPT-2-small-shaped BD3-LM (random weights).

    python benchmarks/sampler.py [--device cpu] [--dtype float32] [--threads N] [--long 2048]

Prints markdown tables: tokens/s and forwards (NFE) for block sizes 4 and 16
at a few step counts, ms per forward, the naive sampler (which recomputes
the prefix at every forward) beside the cached one, 8 samples in one batch
beside one, int8 weights beside float32 (on the CPU), and the cost per token
at 256, 1024 and 2048 tokens of one long generation. Random weights make
the nucleus wide (top-p 0.9 keeps most of the vocabulary), which is the
worst case for the top-p step. Ratios come from the same run, so they hold
on a busy machine; absolute times only mean something on an idle one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bd3lm_core import BlockDone, Finished, SamplerSettings, encode_prompt, generate, load_model  # noqa: E402
from bd3lm_core.model.checkpoints import save_weights  # noqa: E402
from bd3lm_core.model.config import BD3LMConfig  # noqa: E402
from bd3lm_core.model.network import BD3LM  # noqa: E402
from bd3lm_core.sampling import sample  # noqa: E402
from bd3lm_core.sampling.context import FullContext  # noqa: E402

GPT2_TOKENIZER = ROOT.parent / "shared" / "data" / "gpt2" / "tokenizer.json"


def make_checkpoint(folder: Path, tokenizer: Path) -> None:
    config = BD3LMConfig(block_size=4, cond_dim=128, hidden_dim=768, model_length=1024, n_layers=12, n_heads=12, vocab_size=50258)
    torch.manual_seed(0)
    model = BD3LM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    config.save(folder / "config.json")
    save_weights(model, folder / "model.safetensors")
    shutil.copy(tokenizer, folder / "tokenizer.json")


def timed(loaded, settings: SamplerSettings, naive: bool = False, num_samples: int = 1) -> Finished:
    """The run's Finished; with several samples, the last to finish (its seconds and NFE are the batch's)."""
    if naive:
        s = settings.resolved(loaded.config.block_size)
        events = sample(loaded, encode_prompt(loaded, ""), s, FullContext(loaded.model, s.block_size))
    else:
        events = generate(loaded, "", settings, num_samples=num_samples)
    for event in events:
        pass
    return event


def cost_per_token(loaded, settings: SamplerSettings, marks: list[int]) -> dict[int, float]:
    """ms per token over the 256 tokens that end at each mark, from one long generation.

    Each figure is the median over the blocks committed in that span, so that a
    burst of load from elsewhere on a shared machine does not move it.
    """
    per_block: list[tuple[int, float]] = []  # (end position, ms per token of this block)
    last = time.perf_counter()
    for event in generate(loaded, "", settings):
        if isinstance(event, BlockDone):
            now = time.perf_counter()
            per_block.append((event.start + len(event.tokens), 1000 * (now - last) / len(event.tokens)))
            last = now
    return {mark: statistics.median(ms for end, ms in per_block if mark - 256 < end <= mark) for mark in marks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, help="CPU threads (default: what the loader chooses for the model)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per speed run (default %(default)s)")
    parser.add_argument("--long", type=int, default=2048, help="length of the cost-per-token run (default %(default)s)")
    parser.add_argument("--tokenizer", type=Path, default=GPT2_TOKENIZER)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        make_checkpoint(Path(tmp), args.tokenizer)
        loaded = load_model(tmp, device=args.device, dtype=args.dtype, threads=args.threads)
        int8 = load_model(tmp, device="cpu", dtype="int8", threads=args.threads) if args.device == "cpu" else None
    base = dict(tokens=args.tokens, top_p=0.9, seed=0, stop_at_eos=False, stop_on_repetition=False)
    timed(loaded, SamplerSettings(**base, sampler="first-hitting"))  # warm-up: caches, allocator, thread pool

    print(f"device {loaded.device}, {loaded.dtype}, {torch.get_num_threads()} threads, batch 1, {args.tokens} tokens, top-p 0.9\n")
    print("| sampler | block | steps | tokens/s | NFE | ms/forward |")
    print("|---|---|---|---|---|---|")
    runs = [("first-hitting", 4, None), ("ddpm", 4, 4), ("ddpm", 4, 8), ("first-hitting", 16, None), ("ddpm", 16, 8), ("ddpm", 16, 16)]
    results = {}
    for sampler, block, steps in runs:
        f = timed(loaded, SamplerSettings(**base, sampler=sampler, block_size=block, steps=steps))
        results[(sampler, block, steps)] = f
        print(f"| {sampler} | {block} | {steps or block} | {f.tokens_per_second:.1f} | {f.nfe} | {1000 * f.seconds / f.nfe:.1f} |")

    print("\nNaive (prefix recomputed every forward) beside cached, first-hitting, block 4:\n")
    print("| sampler | tokens/s | NFE | ms/forward | cached speed-up |")
    print("|---|---|---|---|---|")
    cached = results[("first-hitting", 4, None)]
    naive = timed(loaded, SamplerSettings(**base, sampler="first-hitting", block_size=4), naive=True)
    for name, f in (("cached", cached), ("naive", naive)):
        print(f"| {name} | {f.tokens_per_second:.1f} | {f.nfe} | {1000 * f.seconds / f.nfe:.1f} | "
              f"{naive.seconds / f.seconds:.2f}x |")

    print("\nSamples in one batch (total tokens/s over every sample), block 4, top-p 0.9:\n")
    print("| sampler | samples | tokens/s | NFE | speed-up over one |")
    print("|---|---|---|---|---|")
    for sampler, steps in (("first-hitting", None), ("ddpm", 4)):
        one = results[(sampler, 4, steps)]
        batch = timed(loaded, SamplerSettings(**base, sampler=sampler, block_size=4, steps=steps), num_samples=8)
        speed = 8 * args.tokens / batch.seconds
        print(f"| {sampler} | 1 | {one.tokens_per_second:.1f} | {one.nfe} | 1.00x |")
        print(f"| {sampler} | 8 | {speed:.1f} | {batch.nfe} | {speed / one.tokens_per_second:.2f}x |")

    if int8 is not None:
        timed(int8, SamplerSettings(**base, sampler="first-hitting"))  # warm-up
        print(f"\nint8 weights beside {loaded.placement[1]} (CPU, {torch.get_num_threads()} threads), block 4:\n")
        print("| sampler | precision | tokens/s | NFE | ms/forward | speed-up |")
        print("|---|---|---|---|---|---|")
        for sampler, steps in (("first-hitting", None), ("ddpm", 4)):
            full = results[(sampler, 4, steps)]
            q = timed(int8, SamplerSettings(**base, sampler=sampler, block_size=4, steps=steps))
            for name, f in ((loaded.placement[1], full), ("int8", q)):
                print(f"| {sampler} | {name} | {f.tokens_per_second:.1f} | {f.nfe} | {1000 * f.seconds / f.nfe:.1f} | "
                      f"{f.tokens_per_second / full.tokens_per_second:.2f}x |")

    marks = [m for m in (256, 1024, 2048) if m <= args.long]
    costs = cost_per_token(loaded, SamplerSettings(**{**base, "tokens": args.long}, sampler="first-hitting", block_size=4), marks)
    print(f"\nCost per token in one {args.long}-token generation (first-hitting, block 4; context window 1024):\n")
    print("| at token | ms/token | relative to 256 |")
    print("|---|---|---|")
    for mark, ms in costs.items():
        print(f"| {mark} | {ms:.1f} | {ms / costs[marks[0]]:.2f} |")


if __name__ == "__main__":
    main()
