"""Our engine beside dLLM's own BD3LM sampler, on a Qwen3-0.6B-shaped A2D checkpoint, in one run.

    python benchmarks/versus_dllm.py --dllm CHECKOUT [--dllm-python PYTHON] [--threads N]
        [--prompt 1060] [--tokens 128] [--block 32] [--int8] [--quick] [--skip-dllm]

CHECKOUT is a checkout of ZHZisZZ/dllm; PYTHON is the separate venv's python
that can import it (transformers 4.57; default ../dllm-venv/bin/python beside
the repository). Their code is imported from the checkout at run time and
never copied (dllm_reference.py says how, without their training stack).

Both sides read the same checkpoint (chat_checkpoint.py: random weights,
stored in bfloat16, loaded in float32 on the CPU), get the same prompt
(`--prompt` tokens of tinyshakespeare dialogue, about a chat history's
length) and make `--tokens` new tokens at block `--block` with
low-confidence remasking and one token revealed per forward: theirs is
`BD3LMSampler.sample` with `steps_per_block` = the block size, temperature 0
(their example's setting: argmax), as their `examples/a2d/bd3lm/sample.py`
runs it; ours is `generate` with the `low-confidence` sampler, steps = the
block size, top-p 1. Each side runs in a process of its own, so its peak
memory (the RSS high-water mark, load included) is its own. Each side's
forwards are timed by a wrapper around its network's forward (two clock
reads per forward).

Floors, measured in the same run, in this process before the sides start:
- compute: one 32-row (block-row) pass through every linear of the network
  (28 layers x q, k, v, o, gate, up, down, then the output layer) and the
  attention's two matrix products at the mid-generation context, as plain
  float32 `torch.matmul`, the fastest of 3 passes;
- memory: the bytes of weights a forward reads (every linear, output layer
  included) divided by the read bandwidth of a `sum` over a 512 MB tensor,
  the fastest of 3.

`--int8` also runs ours alone at block 4 (SDAR's size) in int8 and float32.
`--quick` runs a 4-layer checkpoint, a 96-token prompt and 32 new tokens:
a smoke test of the whole path, not a measurement.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
INT8_BLOCK = 4  # SDAR's block size


class ForwardTimer:
    """Wall time of every call of `owner.method` (one forward of the network), and whether it was a denoising step.

    `is_step(arguments)` gets the call's arguments by parameter name and
    says whether the call computed logits for the block being denoised
    (rather than a prompt prefill or a prefix written into a cache).
    """

    def __init__(self, owner: object, method: str, is_step: Callable[[dict], bool]) -> None:
        self.forwards: list[tuple[bool, float]] = []  # (is a step, seconds)
        original = getattr(owner, method)
        signature = inspect.signature(original)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            out = original(*args, **kwargs)
            self.forwards.append((is_step(signature.bind(*args, **kwargs).arguments), time.perf_counter() - began))
            return out

        setattr(owner, method, timed)  # on the instance: nn.Module.__call__ finds it as self.forward

    def reset(self) -> None:
        self.forwards.clear()


def peak_rss_bytes() -> int:
    """This process's resident-set high-water mark: VmHWM, which starts afresh at exec.

    Not getrusage's ru_maxrss: Linux carries the forking parent's peak into
    it across exec, so every side would report at least this script's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise SystemExit("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def side_report(seconds: float, new_ids: list[int], mask_id: int, timer: ForwardTimer) -> dict:
    steps = [s for step, s in timer.forwards if step]
    others = [s for step, s in timer.forwards if not step]
    return {"seconds": seconds, "new_tokens": len(new_ids), "masks_left": new_ids.count(mask_id),
            "forwards": len(timer.forwards), "step_seconds": steps, "other_forwards": others,
            "peak_rss_bytes": peak_rss_bytes(), "torch": torch.__version__, "threads": torch.get_num_threads()}


# ---- their side (run in the dLLM venv) ----

def run_dllm(args: argparse.Namespace, prompt_ids: list[int]) -> dict:
    """dLLM's BD3LMSampler around their A2D model class, loaded as their `get_model`/`get_tokenizer` load it on a CPU."""
    sys.path.insert(0, str(HERE))
    from dllm_reference import checkout_commit, import_dllm

    ref = import_dllm(args.dllm)
    transformers = ref.transformers
    # get_model on a CPU: AutoModelForMaskedLM.from_pretrained(path, dtype=..., device_map=None, no quantization, no peft)
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(args.checkpoint), dtype=torch.float32).eval()
    if type(model).__name__ != "A2DQwen3LMHeadModel":
        raise SystemExit(f"dLLM loaded {type(model).__name__}, not its A2DQwen3LMHeadModel")
    # get_tokenizer for A2D Qwen models: right padding side, pad/eos/bos filled from each other, mask token <|mask|>
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(args.checkpoint), padding_side="right")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.eos_token = tokenizer.eos_token or tokenizer.pad_token
    tokenizer.bos_token = tokenizer.bos_token or tokenizer.pad_token
    tokenizer.add_special_tokens({"mask_token": "<|mask|>"})
    sampler = ref.samplers.BD3LMSampler(model=model, tokenizer=tokenizer)
    config = ref.samplers.BD3LMSamplerConfig(max_new_tokens=args.tokens, block_size=args.block, steps=args.tokens,
                                             steps_per_block=args.block, temperature=0.0, remasking="low_confidence")
    # a denoising step: the block alone over a copy of the prefix cache; the other calls recompute the prefix
    timer = ForwardTimer(model, "forward", lambda a: a.get("past_key_values") is not None)
    sampler.sample([prompt_ids[:args.block]], config, max_new_tokens=4)  # warm-up: one short block
    timer.reset()
    began = time.perf_counter()
    x = sampler.sample([prompt_ids], config)
    seconds = time.perf_counter() - began
    padded = -(-len(prompt_ids) // args.block) * args.block  # their prompt, left-padded to whole blocks
    report = side_report(seconds, x[0, padded:].tolist(), tokenizer.mask_token_id, timer)
    report.update(name="dLLM", commit=checkout_commit(args.dllm), transformers=transformers.__version__,
                  padded_prompt=padded)
    return report


# ---- our side (run in our venv) ----

def run_ours(args: argparse.Namespace, prompt_text: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from bd3lm_core import Finished, SamplerSettings, generate, load_model

    loaded = load_model(args.checkpoint, device="cpu", dtype=args.dtype, threads=args.threads)
    settings = SamplerSettings(tokens=args.tokens, block_size=args.block, steps=args.block, sampler="low-confidence",
                               top_p=1.0, temperature=1.0, seed=0, stop_at_eos=False, stop_on_repetition=False)
    # a denoising step asks for logits; a call with no rows writes prompt blocks into the cache
    timer = ForwardTimer(loaded.model, "block_logits", lambda a: a["rows"].numel() > 0)

    def run(tokens: int) -> Finished:
        events = generate(loaded, prompt_text, settings if tokens == args.tokens else
                          SamplerSettings(**{**settings.__dict__, "tokens": tokens}))
        return [e for e in events if isinstance(e, Finished)][0]

    run(4)  # warm-up: one short block
    timer.reset()
    finished = run(args.tokens)
    report = side_report(finished.seconds, list(finished.token_ids), loaded.config.mask_id, timer)
    report.update(name=f"ours ({args.dtype})", nfe=finished.nfe)
    return report


# ---- floors (this process) ----

def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def compute_floor(config: dict, rows: int, context: int) -> dict:
    """Seconds of one `rows`-row pass of plain float32 matmuls with the network's shapes, by part."""
    from chat_checkpoint import linear_shapes

    layers, hidden, vocab = config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]
    heads, head_dim = config["num_attention_heads"], config["head_dim"]
    weights = [[torch.randn(shape) * 0.02 for shape in linear_shapes(config).values()] for _ in range(layers)]
    output = torch.randn(vocab, hidden) * 0.02
    x = {n: torch.randn(rows, n) for n in {s[1] for s in linear_shapes(config).values()} | {hidden}}
    q, k, v = torch.randn(heads, rows, head_dim), torch.randn(heads, head_dim, context), torch.randn(heads, context, head_dim)

    def linears() -> None:
        for layer in weights:
            for w in layer:
                torch.matmul(x[w.shape[1]], w.t())

    def attention() -> None:
        for _ in range(layers):
            torch.matmul(torch.matmul(q, k), v)  # scores [h, rows, context], then [h, rows, head_dim]

    parts = {"layers": best_of(linears), "output layer": best_of(lambda: torch.matmul(x[hidden], output.t())),
             "attention": best_of(attention)}
    params = sum(w.numel() for layer in weights for w in layer) + output.numel()
    flops = 2 * rows * params + layers * 4 * heads * rows * context * head_dim
    return {"parts": parts, "seconds": sum(parts.values()), "gflop": flops / 1e9, "params": params}


def read_bandwidth(megabytes: int = 512) -> float:
    """Bytes per second of a float32 `sum` over a tensor far larger than the caches."""
    data = torch.ones(megabytes * 2**20 // 4)
    return data.numel() * 4 / best_of(lambda: data.sum())


# ---- the run ----

def prompt_of(tokenizer_json: Path, length: int) -> tuple[str, list[int]]:
    """A text of exactly `length` tokens (the start of tinyshakespeare), and its ids; it encodes back to them."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    ids = tokenizer.encode(PROMPT_TEXT.read_text()[: length * 8], add_special_tokens=False).ids[:length]
    while True:  # a cut can split a word that would encode differently alone: shorten until it round-trips
        text = tokenizer.decode(ids)
        if tokenizer.encode(text, add_special_tokens=False).ids == ids:
            return text, ids
        ids = ids[:-1]


def run_side(python: str, args: argparse.Namespace, side: str, prompt_file: Path, block: int, dtype: str) -> dict:
    command = [python, str(Path(__file__).resolve()), "--side", side, "--checkpoint", str(args.checkpoint),
               "--prompt-file", str(prompt_file), "--tokens", str(args.tokens), "--block", str(block),
               "--dtype", dtype, "--threads", str(args.threads), "--dllm", str(args.dllm)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"the {side} side failed: {tail[0]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["new_tokens"] != args.tokens or report["masks_left"]:
        raise SystemExit(f"the {side} side made {report['new_tokens']} tokens with {report['masks_left']} masks left, "
                         f"not {args.tokens} with none (an end-of-text in a block stops dLLM's sampler: try another --prompt)")
    return report


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else float("nan")


def row(report: dict, tokens: int, floor_s: float, memory_floor_s: float) -> str:
    steps = report["step_seconds"]
    others = report["other_forwards"]
    other = f"{len(others)}, {sum(others):.1f} s" if others else "-"
    return (f"| {report['name']} | {tokens / report['seconds']:.2f} | {report['forwards']} | {report['seconds']:.1f} | "
            f"{report['peak_rss_bytes'] / 1e9:.2f} | {median(steps) * 1000:.0f} / {max(steps, default=float('nan')) * 1000:.0f} | "
            f"{median(steps) / floor_s:.2f}x / {max(steps, default=float('nan')) / floor_s:.2f}x | "
            f"{median(steps) / memory_floor_s:.2f}x | {other} |")


def compare(args: argparse.Namespace) -> None:
    from chat_checkpoint import cached_checkpoint

    if not args.skip_dllm and not Path(args.dllm_python).is_file():
        raise SystemExit(f"--dllm-python {args.dllm_python}: no such file; make the venv of benchmarks/README.md "
                         "('Chat models') or pass its python")
    if not args.skip_dllm and not (args.dllm / "dllm" / "core" / "samplers" / "bd3lm.py").is_file():
        raise SystemExit(f"--dllm {args.dllm}: not a checkout of ZHZisZZ/dllm (no dllm/core/samplers/bd3lm.py)")
    layers = 4 if args.quick else 28
    args.checkpoint = cached_checkpoint(layers)
    config = json.loads((args.checkpoint / "config.json").read_text())
    text, ids = prompt_of(args.checkpoint / "tokenizer.json", args.prompt)
    torch.set_num_threads(args.threads)
    context = len(ids) + args.tokens // 2
    floor = compute_floor(config, args.block, context)
    bandwidth = read_bandwidth()
    weight_bytes = {"float32": 4 * floor["params"], "bfloat16": 2 * floor["params"],
                    "int8": floor["params"]}  # int8: one byte a weight, scales aside
    memory_floor = {dtype: n / bandwidth for dtype, n in weight_bytes.items()}
    print(f"checkpoint {args.checkpoint} ({layers} layers, {floor['params'] / 1e6:.0f} M weights in linears), "
          f"prompt {len(ids)} tokens, {args.tokens} new, block {args.block}, {args.threads} threads, torch {torch.__version__}")
    print(f"compute floor, one {args.block}-row pass: {floor['seconds'] * 1000:.0f} ms = "
          + " + ".join(f"{name} {s * 1000:.0f}" for name, s in floor["parts"].items())
          + f" ({floor['gflop']:.1f} GFLOP at {floor['gflop'] / floor['seconds']:.0f} GFLOP/s; attention at {context} keys)")
    print(f"memory floor: {weight_bytes['float32'] / 1e9:.2f} GB of float32 weights / {bandwidth / 1e9:.1f} GB/s read = "
          f"{memory_floor['float32'] * 1000:.0f} ms per forward\n")

    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = Path(tmp) / "prompt.json"
        prompt_file.write_text(json.dumps({"text": text, "ids": ids}))
        reports = []
        if not args.skip_dllm:
            reports.append(run_side(args.dllm_python, args, "dllm", prompt_file, args.block, "float32"))
        reports.append(run_side(sys.executable, args, "ours", prompt_file, args.block, "float32"))
        small = {}  # ours at block INT8_BLOCK, by precision
        for dtype in ("float32", *(["int8"] if args.int8 else []), *(["bfloat16"] if args.bfloat16 else [])):
            if args.int8 or args.bfloat16:
                small[dtype] = run_side(sys.executable, args, "ours", prompt_file, INT8_BLOCK, dtype)
        large_bf16 = run_side(sys.executable, args, "ours", prompt_file, args.block, "bfloat16") if args.bfloat16 else None

    print(f"| side | tokens/s | forwards | seconds | peak RSS GB | ms per {args.block}-row step, median / max | "
          "step / compute floor, median / max | step / memory floor | other forwards: count, seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for report in reports:
        print(row(report, args.tokens, floor["seconds"], memory_floor["float32"]))
    if len(reports) == 2:
        theirs, ours = reports
        print(f"\nours / dLLM tokens/s: **{theirs['seconds'] / ours['seconds']:.2f}x**; dLLM at commit {theirs['commit']}, "
              f"transformers {theirs['transformers']}; their prompt left-padded to {theirs['padded_prompt']} tokens.")
        print("Other forwards: dLLM recomputes the whole prefix once per block; ours prefills the prompt's whole blocks.")
    tables = [(INT8_BLOCK, small)]
    if large_bf16 is not None:
        tables.append((args.block, {"float32": reports[-1], "bfloat16": large_bf16}))
    for block, by_dtype in tables:
        if len(by_dtype) < 2:
            continue
        base = by_dtype["float32"]
        print(f"\nours at block {block}, each precision beside float32:\n")
        print("| precision | tokens/s | forwards | seconds | peak RSS GB | ms per step, median | memory floor ms | speed-up |")
        print("|---|---|---|---|---|---|---|---|")
        for dtype, report in by_dtype.items():
            print(f"| {dtype} | {args.tokens / report['seconds']:.2f} | {report['forwards']} | {report['seconds']:.1f} | "
                  f"{report['peak_rss_bytes'] / 1e9:.2f} | {median(report['step_seconds']) * 1000:.0f} | "
                  f"{memory_floor[dtype] * 1000:.0f} | {base['seconds'] / report['seconds']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dllm", type=Path, default=ROOT.parent / "dllm", help="a checkout of ZHZisZZ/dllm")
    parser.add_argument("--dllm-python", default=str(ROOT.parent / "dllm-venv" / "bin" / "python"),
                        help="the python of the venv that runs dLLM (transformers 4.57)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads, both sides")
    parser.add_argument("--prompt", type=int, default=1060, help="prompt tokens (default %(default)s)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens (default %(default)s)")
    parser.add_argument("--block", type=int, default=32, help="block size, and steps per block (default %(default)s)")
    parser.add_argument("--int8", action="store_true", help=f"also ours at block {INT8_BLOCK}, int8 beside float32")
    parser.add_argument("--bfloat16", action="store_true",
                        help=f"also ours in bfloat16 beside float32, at --block and at block {INT8_BLOCK}")
    parser.add_argument("--quick", action="store_true", help="4 layers, a 96-token prompt, 32 new tokens: a smoke test")
    parser.add_argument("--skip-dllm", action="store_true", help="ours and the floors only")
    parser.add_argument("--side", choices=("dllm", "ours"), help=argparse.SUPPRESS)  # one side, in its own process
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prompt-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        torch.set_num_threads(args.threads)
        prompt = json.loads(args.prompt_file.read_text())
        report = run_dllm(args, prompt["ids"]) if args.side == "dllm" else run_ours(args, prompt["text"])
        print(json.dumps(report))
        return
    for name in ("prompt", "tokens", "block", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} {getattr(args, name)}: give a whole number of at least 1")
    if args.quick:
        args.prompt, args.tokens = min(args.prompt, 96), min(args.tokens, 32)
    compare(args)


if __name__ == "__main__":
    main()
