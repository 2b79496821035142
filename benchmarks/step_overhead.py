"""What a denoising step of a chat model costs beyond its arithmetic: the same network, made narrow.

    python benchmarks/step_overhead.py [--layers 28] [--prompt 1088] [--block 32] [--threads N]

Builds a Qwen3-structured decoder with the layer count and head layout of
Qwen3-0.6B (16 query / 8 key-value heads, q/k RMSNorm, SwiGLU, tied output)
but hidden size 64 and heads of 8, so that its matrix products are almost
free (its output layer keeps the test tokenizer's 50,260 ids: about 1 ms of
a 32-logit step). What a step of it costs is what a full-width step spends
beside its products: Python and dispatch for every operation, element-wise
kernels on small tensors, and attention's softmax and mask, whose score
matrices are as large as the full model's (they grow with heads and
context, not width). It times, over a cache of `--prompt` positions, a step of one
block that asks one logit (most steps) and a block's first step, which also
writes the block before it into the cache (twice the rows, with a mask).
Each figure is the median of 20 steps. versus_dllm.py sets the full-width
steps against their compute floor; this is the part of them no floor holds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backbone_factory import make_backbone_folder  # noqa: E402
from bd3lm_core import BD3LMError, load_model  # noqa: E402
from bd3lm_core.sampling.context import CachedContext  # noqa: E402
from versus_dllm import times_of  # noqa: E402

CONTEXT = 4096  # the test factory's max_position_embeddings


def median_ms(step: Callable[[], object], repeats: int = 20) -> float:
    return 1000 * statistics.median(times_of(step, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=28, help="layers (default %(default)s: Qwen3-0.6B's)")
    parser.add_argument("--prompt", type=int, default=1088, help="positions in the cache (default %(default)s)")
    parser.add_argument("--block", type=int, default=32, help="block size (default %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    args = parser.parse_args()
    for name in ("layers", "prompt", "block", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} {getattr(args, name)}: give a whole number of at least 1")
    if args.prompt + 4 * args.block > CONTEXT:
        raise SystemExit(f"--prompt {args.prompt} and --block {args.block}: the prompt and four blocks must fit the "
                         f"network's context of {CONTEXT} positions")

    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = make_backbone_folder(Path(tmp) / "narrow", model_type="a2d-qwen3", hidden=64, layers=args.layers,
                                          heads=16, kv_heads=8, head_dim=8, intermediate=192, tie=True)
            loaded = load_model(folder, device="cpu", dtype="float32", threads=args.threads)
        except BD3LMError as err:  # a layer count or thread count out of the loader's range
            raise SystemExit(str(err)) from None
    model = loaded.model
    assert model.context_length == CONTEXT
    context = CachedContext(model, args.block, positions=args.prompt + 4 * args.block)
    context.commit(torch.randint(0, 50000, (1, args.prompt)))
    block = torch.full((1, args.block), model.mask_id)
    one_logit, every_row = torch.arange(1), torch.arange(args.block)

    def first_step() -> None:
        """Write one committed block and take the next block's first step; then forget the block, so every repeat is alike."""
        context.commit(torch.randint(0, 50000, (1, args.block)))
        context.logits(block, every_row)
        context.cached -= args.block

    with torch.no_grad():
        context.logits(block, every_row)  # the prompt into the cache
        late = median_ms(lambda: context.logits(block, one_logit))
        first = median_ms(first_step)
    print(f"{args.layers} layers of width 64 with Qwen3-0.6B's heads, {args.prompt} cached positions, block {args.block}, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"a step of {args.block} rows asking 1 logit: {late:.1f} ms")
    print(f"a block's first step ({2 * args.block} rows: the block before it written into the cache): {first:.1f} ms")


if __name__ == "__main__":
    main()
