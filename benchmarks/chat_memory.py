"""Peak memory of loading and sampling a Qwen3-0.6B-shaped chat model, against the target.

    python benchmarks/chat_memory.py [--folder DIR] [--dtype float32] [--keep]

Makes (once, in --folder, default a temporary folder) a checkpoint with random
weights in the published layout, shaped like dLLM's Qwen3-0.6B BD3LM
(hidden 1024, 28 layers, 16 query / 8 key-value heads of 128, MLP 3072,
151936 ids, tied embeddings): bfloat16 shards named by
model.safetensors.index.json. Then runs `bd3lm generate --tokens 4` on it in
its own process and reads that process's peak resident memory
(getrusage of the child). Target (issue 23): at most 1.3 x the float32
weights plus 0.4 GB for Python and torch. A memory figure, not a timing, so
a busy machine does not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backbone_factory import make_backbone_folder  # noqa: E402

QWEN3_06B = dict(model_type="a2d-qwen3", hidden=1024, layers=28, heads=16, kv_heads=8, intermediate=3072,
                 head_dim=128, vocab=151936, tie=True, shards=4)
OVERHEAD = 0.4e9  # Python, torch and the tokenizer


def weights_bytes(folder: Path, itemsize: int) -> int:
    """Parameters in the checkpoint (from the shards' headers) times `itemsize`."""
    from bd3lm_core.model.hf_layout import read_folder, weight_count

    count = weight_count(read_folder(folder))
    return (count.linear + count.other) * itemsize


def peak_rss(folder: Path, dtype: str) -> tuple[int, dict]:
    """Peak resident bytes of `bd3lm generate --tokens 4` in its own process, and its JSON result."""
    command = [sys.executable, "-m", "bd3lm_core.cli", "generate", "--model", str(folder), "--tokens", "4",
               "--prompt", "The history of", "--seed", "0", "--device", "cpu", "--dtype", dtype, "--json"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    if result.returncode:
        sys.exit(result.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far: only this one
    return peak_kib * 1024, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="where the checkpoint is (made there if missing)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chat-memory-") as tmp:
        folder = args.folder or Path(tmp) / "qwen3-0.6b-random"
        if not (folder / "config.json").is_file():
            print(f"writing a Qwen3-0.6B-shaped checkpoint to {folder} ...", file=sys.stderr)
            make_backbone_folder(folder, **QWEN3_06B)
        f32 = weights_bytes(folder, 4)
        peak, run = peak_rss(folder, args.dtype)
    target = 1.3 * f32 + OVERHEAD
    print(f"weights in float32: {f32 / 1e9:.2f} GB; target for float32: 1.3 x weights + 0.4 GB = {target / 1e9:.2f} GB")
    print(f"peak RSS of `bd3lm generate --tokens 4 --dtype {args.dtype}`: {peak / 1e9:.2f} GB "
          f"({peak / f32:.2f} x the float32 weights); {run['nfe']} forwards, {run['seconds']:.1f} s")
    if args.dtype == "float32":
        print("within the target" if peak <= target else "ABOVE the target")


if __name__ == "__main__":
    main()
