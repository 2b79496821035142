"""The three ways our networks can multiply rows by their layers' weights on a CPU, side by side.

    python benchmarks/linear_kernels.py [--network qwen3|dit] [--rows 1,4,16,32,64,256,1088] [--threads N] [--layers L]

Every linear of `--layers` layers (default: all of the network's) of
Qwen3-0.6B (q, k, v, o, gate, up, down; 28 layers, 2.1 GB) or of the
GPT-2-small-shaped BD3-LM DiT the other benchmarks use (qkv, out, the two
MLP matrices; 12 layers, 340 MB), random float32 weights of their own per
layer, so each pass reads them from memory as a step does, run over R rows:
- plain: `torch.matmul(x, W.t())`, what versus_dllm.py's plain floor times;
- few rows: `FewRowsLinear` (kernels.py), the kernel the output layers and
  non-x86 machines sample with;
- packed: `PackedLinear` (kernels.py), oneDNN's linear on a weight packed
  once at load: what float32 layers sample with on an x86 CPU.
Each figure is the fastest of 3 passes after one that warms up; the last
columns are each kernel's time over the plain one. Whether packing pays
depends on the CPU: run this on the machine in question (the loader packs
on every x86 CPU; benchmarks/README.md has the machines it was measured on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bd3lm_core.model.kernels import FewRowsLinear, PackedLinear, packing_available  # noqa: E402
from chat_checkpoint import QWEN3_0_6B, linear_shapes  # noqa: E402
from versus_dllm import best_of  # noqa: E402

# [out, in] of one layer's linears, and the network's layer count
NETWORKS = {"qwen3": (list(linear_shapes(QWEN3_0_6B).values()), 28),
            "dit": ([(3 * 768, 768), (768, 768), (4 * 768, 768), (768, 4 * 768)], 12)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,4,16,32,64,256,1088", help="row counts, comma-separated (default %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="qwen3", help="whose layers (default %(default)s)")
    parser.add_argument("--layers", type=int, help="layers (default: the network's, 28 or 12)")
    args = parser.parse_args()
    shapes, layers = NETWORKS[args.network]
    args.layers = layers if args.layers is None else args.layers
    try:
        rows = [int(r) for r in args.rows.split(",")]
    except ValueError:
        raise SystemExit(f"--rows {args.rows}: give whole numbers separated by commas, such as 4,32,64") from None
    # rows: up to a long prompt (an input of 16,384 rows is 200 MB); layers: 75 MB of weights each, held twice
    for name, values, most in (("rows", rows, 16_384), ("threads", [args.threads], 1024), ("layers", [args.layers], 64)):
        if min(values) < 1 or max(values) > most:
            raise SystemExit(f"--{name} {getattr(args, name)}: give whole numbers from 1 to {most}")
    if not packing_available():
        raise SystemExit("this machine has no oneDNN packed linear (an x86 CPU and a torch built with oneDNN): "
                         "nothing to compare")
    torch.set_num_threads(args.threads)

    plain = []  # every layer's weights, as nn.Linear
    for _ in range(args.layers):
        for out_features, in_features in shapes:
            linear = nn.Linear(in_features, out_features, bias=False)
            nn.init.normal_(linear.weight, std=0.02)
            plain.append(linear)
    kernels = {"plain": [lambda x, w=linear.weight: torch.matmul(x, w.t()) for linear in plain],
               "few rows": [FewRowsLinear.taking_over(linear) for linear in plain],
               "packed": [PackedLinear(linear) for linear in plain]}
    print(f"{args.layers} {args.network} layers, float32, {args.threads} threads, torch {torch.__version__}\n")
    print("| rows | plain ms | few rows ms | packed ms | few rows / plain | packed / plain |")
    print("|---|---|---|---|---|---|")
    with torch.no_grad():
        for count in rows:
            inputs = {n: torch.randn(count, n) for n in {linear.in_features for linear in plain}}
            def one_pass(fs: list) -> None:  # each product dropped when the next starts, as in a forward
                for f, linear in zip(fs, plain):
                    f(inputs[linear.in_features])

            ms = {name: 1000 * best_of(lambda: one_pass(fs)) for name, fs in kernels.items()}
            print(f"| {count} | {ms['plain']:.1f} | {ms['few rows']:.1f} | {ms['packed']:.1f} | "
                  f"{ms['few rows'] / ms['plain']:.2f} | {ms['packed'] / ms['plain']:.2f} |")


if __name__ == "__main__":
    main()
