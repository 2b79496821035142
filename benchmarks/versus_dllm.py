"""Our engine beside dLLM's own BD3LM sampler, on a Qwen3-0.6B-shaped A2D checkpoint, in one run.

    python benchmarks/versus_dllm.py --dllm CHECKOUT [--dllm-python PYTHON] [--threads N]
        [--prompt 1060] [--tokens 128] [--block 32] [--repeats 3] [--int8] [--quick] [--skip-dllm]

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
reads per forward). Ours runs `--repeats` times with the same seed, so every
step has the same shapes and context each time: tokens/s is the first run's
(dLLM runs once), and each step is also reported as the fastest of its
repeats, which is how the floors below are measured (a step timed once
carries whatever else the machine did at that moment).

Floors, measured in the same run, in this process:
- compute: plain float32 `torch.matmul`s with the network's shapes, the
  fastest of 3 passes. A step that runs R query rows and asks logits for N
  of them costs at least the trunk over R rows (28 layers x q, k, v, o,
  gate, up, down, and attention's two products at the mid-generation
  context, each layer over keys and values of its own) plus the output
  layer over N rows; every step is set against the floor of its own R and
  N. (Ours asks logits only for the rows still masked, and a block's first
  step also writes the block before it into the cache: R = 2 x block. Its
  last layer runs queries, attention and MLP for the N rows alone, so its
  floor holds that layer's share of them over N rows, not R.) Our float32
  chat layers run oneDNN's linear on weights packed once at load
  (kernels.PackedLinear) on an x86 CPU, which beats a plain matmul at
  these row counts: ours is also set against the floor of those kernels,
  the same passes with packed weights. That ratio is the overhead; the
  plain one is what the issue asks about.
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
    """Wall time of every call of `owner.method` (one forward of the network), and what it computed.

    `step_rows(arguments)` gets the call's arguments by parameter name and
    returns, for a call that computed logits for the block being denoised,
    how many query rows it ran (the block, with any committed tokens written
    into the cache in the same pass) and for how many of them it computed
    logits; for a call that computed no step (a prompt prefill, or a prefix
    recomputed into a cache), (0, 0).
    """

    def __init__(self, owner: object, method: str, step_rows: Callable[[dict], tuple[int, int]]) -> None:
        self.forwards: list[tuple[tuple[int, int], float]] = []  # ((query rows, logit rows) of a step, or (0, 0); seconds)
        original = getattr(owner, method)
        signature = inspect.signature(original)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            out = original(*args, **kwargs)
            self.forwards.append((step_rows(signature.bind(*args, **kwargs).arguments), time.perf_counter() - began))
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


def steps_of(forwards: list[tuple[tuple[int, int], float]]) -> list[tuple[int, int, float]]:
    """The denoising steps among timed forwards, as (query rows, logit rows, seconds)."""
    return [(*rows, s) for rows, s in forwards if rows[0]]


def side_report(seconds: float, new_ids: list[int], mask_id: int, forwards: list[tuple[tuple[int, int], float]]) -> dict:
    others = [s for rows, s in forwards if not rows[0]]
    return {"seconds": seconds, "new_tokens": len(new_ids), "masks_left": new_ids.count(mask_id),
            "forwards": len(forwards), "steps": steps_of(forwards), "other_forwards": others,
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
    timer = ForwardTimer(model, "forward", lambda a: (a["input_ids"].shape[1],) * 2 if a.get("past_key_values") is not None
                         else (0, 0))  # a step: logits for every row of the block
    sampler.sample([prompt_ids[:args.block]], config, max_new_tokens=4)  # warm-up: one short block
    timer.reset()
    began = time.perf_counter()
    x = sampler.sample([prompt_ids], config)
    seconds = time.perf_counter() - began
    padded = -(-len(prompt_ids) // args.block) * args.block  # their prompt, left-padded to whole blocks
    report = side_report(seconds, x[0, padded:].tolist(), tokenizer.mask_token_id, timer.forwards)
    report.update(name="dLLM", commit=checkout_commit(args.dllm), transformers=transformers.__version__,
                  padded_prompt=padded)
    return report


# ---- our side (run in our venv) ----

def run_ours(args: argparse.Namespace, prompt_text: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from bd3lm_core import Finished, SamplerSettings, generate, load_model
    from bd3lm_core.model.kernels import PackedLinear

    loaded = load_model(args.checkpoint, device="cpu", dtype=args.dtype, threads=args.threads)
    settings = SamplerSettings(tokens=args.tokens, block_size=args.block, steps=args.block, sampler="low-confidence",
                               top_p=1.0, temperature=1.0, seed=0, stop_at_eos=False, stop_on_repetition=False)
    # a denoising step asks for logits (its first pass of a block also writes the blocks committed before it into
    # the cache); a call with no rows only writes prompt blocks
    timer = ForwardTimer(loaded.model, "block_logits", lambda a: (a["tokens"].shape[1], a["rows"].numel())
                         if a["rows"].numel() else (0, 0))

    def run(tokens: int) -> Finished:
        events = generate(loaded, prompt_text, settings if tokens == args.tokens else
                          SamplerSettings(**{**settings.__dict__, "tokens": tokens}))
        return [e for e in events if isinstance(e, Finished)][0]

    run(4)  # warm-up: one short block
    runs = []  # (Finished, forwards) of each repeat
    for _ in range(args.repeats):
        timer.reset()
        runs.append((run(args.tokens), list(timer.forwards)))
    finished, forwards = runs[0]
    if any([rows for rows, _ in f] != [rows for rows, _ in forwards] for _, f in runs):
        raise SystemExit("the repeats ran steps of different shapes: their times cannot be set side by side")
    report = side_report(finished.seconds, list(finished.token_ids), loaded.config.mask_id, forwards)
    fastest = [(rows, min(f[i][1] for _, f in runs)) for i, (rows, _) in enumerate(forwards)]
    report.update(name=f"ours ({args.dtype})", nfe=finished.nfe, repeats=args.repeats,
                  fastest_steps=steps_of(fastest), last_layer_on_logit_rows=True,
                  packed_layers=isinstance(loaded.model.model.layers[0].mlp.up_proj, PackedLinear))
    return report


# ---- floors (this process) ----

def times_of(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `fn`, after one call that warms up."""
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    return min(times_of(fn, repeats))


class ComputeFloor:
    """Seconds of plain float32 matmuls with the network's shapes: the arithmetic a forward cannot avoid.

    A forward of `query` rows that computes logits for `logits` of them
    costs at least the trunk (every linear of every layer, and attention's two
    products) over `query` rows plus the output layer over `logits` rows.
    Ours runs its last layer's queries, attention and MLP on the logit rows
    alone (every row's keys and values are still written): pass those as
    `last_rows` and the floor holds that layer over them. Each part is
    measured over every layer once per row count, the fastest of 3 passes;
    one layer is its 1/layers share.
    """

    KEYS_AND_VALUES = ("self_attn.k_proj", "self_attn.v_proj")  # every row's, in every layer

    def __init__(self, config: dict, context: int, packed: bool = False) -> None:
        """`packed`: the layers' products with oneDNN-packed weights (kernels.PackedLinear), not `torch.matmul`."""
        from chat_checkpoint import linear_shapes

        self.context = context  # keys a step attends to (a longer pass: at least its own rows)
        self.layers, self.hidden = config["num_hidden_layers"], config["hidden_size"]
        self.heads, self.head_dim = config["num_attention_heads"], config["head_dim"]
        self.kv_heads = config["num_key_value_heads"]
        self.weights = [{name: torch.randn(shape) * 0.02 for name, shape in linear_shapes(config).items()}
                        for _ in range(self.layers)]
        self.product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = lambda x, w: torch.matmul(x, w.t())
        if packed:
            from bd3lm_core.model.kernels import PackedLinear

            linears = {}  # packed weight -> its layer; the plain weights give the shapes and the FLOP count
            for layer in self.weights:
                for name, w in layer.items():
                    linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
                    linear.weight = torch.nn.Parameter(w, requires_grad=False)
                    linears[id(w)] = PackedLinear(linear)

            def product(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():  # a packed weight has no gradient
                    return linears[id(w)](x)

            self.product = product
        self.output = torch.randn(config["vocab_size"], self.hidden) * 0.02
        self.params = sum(w.numel() for layer in self.weights for w in layer.values()) + self.output.numel()
        self._parts: dict[tuple[str, int], float] = {}

    def __call__(self, query: int, logits: int, last_rows: int | None = None) -> float:
        return sum(self.parts(query, logits, last_rows).values())

    def parts(self, query: int, logits: int, last_rows: int | None = None) -> dict[str, float]:
        last = query if last_rows is None else last_rows
        share = 1 / self.layers  # the last layer's share of a part measured over every layer

        def layered(part: str) -> float:
            return (1 - share) * self._part(part, query) + share * self._part(part, last)

        return {"layers": self._part("keys and values", query) + layered("other linears"),
                "attention": layered("attention"), "output layer": self._part("output layer", logits)}

    def gflop(self, query: int, logits: int) -> float:
        trunk = self.params - self.output.numel()
        keys = max(query, self.context)
        return (2 * query * trunk + 2 * logits * self.output.numel()
                + self.layers * 4 * self.heads * query * keys * self.head_dim) / 1e9

    def _part(self, part: str, rows: int) -> float:
        if rows == 0:
            return 0.0
        if (part, rows) not in self._parts:
            self._parts[part, rows] = best_of(self._pass(part, rows))
        return self._parts[part, rows]

    def _pass(self, part: str, rows: int) -> Callable[[], None]:
        if part == "output layer":
            x = torch.randn(rows, self.hidden)
            return lambda: torch.matmul(x, self.output.t())
        if part in ("keys and values", "other linears"):
            chosen = [w for layer in self.weights for name, w in layer.items()
                      if (name in self.KEYS_AND_VALUES) == (part == "keys and values")]
            x = {n: torch.randn(rows, n) for n in {w.shape[1] for w in chosen}}
            return lambda: [self.product(x[w.shape[1]], w) for w in chosen]
        keys = max(rows, self.context)
        groups = self.heads // self.kv_heads  # query heads per key/value head, stacked as rows
        q = torch.randn(self.kv_heads, groups * rows, self.head_dim)
        # every layer reads keys and values of its own, as from a real cache: not the same ones, warm in a CPU cache
        kv = [(torch.randn(self.kv_heads, self.head_dim, keys), torch.randn(self.kv_heads, keys, self.head_dim))
              for _ in range(self.layers)]
        # scores [kv heads, groups x rows, keys], then [kv heads, groups x rows, head_dim], in every layer
        return lambda: [torch.matmul(torch.matmul(q, k), v) for k, v in kv]


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
               "--dtype", dtype, "--threads", str(args.threads), "--dllm", str(args.dllm),
               "--repeats", str(args.repeats if side == "ours" and block == args.block and dtype == "float32" else 1)]
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


def side_row(report: dict, tokens: int) -> str:
    others = report["other_forwards"]
    other = f"{len(others)}, {sum(others):.1f} s" if others else "-"
    return (f"| {report['name']} | {tokens / report['seconds']:.2f} | {report['forwards']} | {report['seconds']:.1f} | "
            f"{report['peak_rss_bytes'] / 1e9:.2f} | {other} |")


def step_rows(report: dict, floor: ComputeFloor, packed_floor: ComputeFloor | None, memory_floor_s: float) -> list[str]:
    """A side's steps, grouped by how many query rows they ran, each against the compute floor of what it computed.

    Every side is set against the plain floor; ours, whose layers run
    oneDNN-packed weights, also against the floor of those kernels (`packed_floor`).
    """
    def floor_of(query: int, logits: int, kind: ComputeFloor = floor) -> float:
        return kind(query, logits, logits if report.get("last_layer_on_logit_rows") else None)

    def against(steps: list[tuple[int, int, float]], query: int, kind: ComputeFloor = floor) -> str:
        ratios = [seconds / floor_of(q, logits, kind) for q, logits, seconds in steps if q == query]
        return f"{median(ratios):.2f}x / {max(ratios):.2f}x | {sum(r <= 1.15 for r in ratios)} of {len(ratios)}"

    repeated, packed = report.get("repeats", 1) > 1, packed_floor is not None and report.get("packed_layers")
    lines = []
    for query in sorted({q for q, _, _ in report["steps"]}):
        seconds = [s for q, _, s in report["steps"] if q == query]
        floors = [floor_of(q, logits) for q, logits, _ in report["steps"] if q == query]
        fastest = against(report["fastest_steps"], query) if repeated else "- | -"
        own = against(report["fastest_steps" if repeated else "steps"], query, packed_floor) if packed else "- | -"
        lines.append(f"| {report['name']} | {query} | {len(seconds)} | {median(seconds) * 1000:.0f} / {max(seconds) * 1000:.0f} | "
                     f"{min(floors) * 1000:.0f}-{max(floors) * 1000:.0f} | {against(report['steps'], query)} | "
                     f"{fastest} | {own} | {median(seconds) / memory_floor_s:.2f}x |")
    return lines


def compare(args: argparse.Namespace) -> None:
    from chat_checkpoint import cached_checkpoint

    sys.path.insert(0, str(ROOT))
    from bd3lm_core.model.kernels import packing_available

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
    floor = ComputeFloor(config, context)
    packed_floor = ComputeFloor(config, context, packed=True) if packing_available() else None
    block_floor = floor.parts(args.block, args.block)
    block_seconds = sum(block_floor.values())
    for kind in [floor] + ([packed_floor] if packed_floor else []):  # measured now, before the sides run
        for logits in range(1, args.block + 1):  # a step asks logits for the rows still masked
            kind(args.block, logits, logits)
        kind(2 * args.block, args.block, args.block)  # a block's first step: the block written, the next one asked
    bandwidth = read_bandwidth()
    weight_bytes = {"float32": 4 * floor.params, "bfloat16": 2 * floor.params,
                    "int8": floor.params}  # int8: one byte a weight, scales aside
    memory_floor = {dtype: n / bandwidth for dtype, n in weight_bytes.items()}
    print(f"checkpoint {args.checkpoint} ({layers} layers, {floor.params / 1e6:.0f} M weights in linears), "
          f"prompt {len(ids)} tokens, {args.tokens} new, block {args.block}, {args.threads} threads, torch {torch.__version__}")
    gflop = floor.gflop(args.block, args.block)
    print(f"compute floor, one {args.block}-row pass with logits for every row: {block_seconds * 1000:.0f} ms = "
          + " + ".join(f"{name} {s * 1000:.0f}" for name, s in block_floor.items())
          + f" ({gflop:.1f} GFLOP at {gflop / block_seconds:.0f} GFLOP/s; attention at {context} keys)")
    if packed_floor is not None:
        packed_parts = packed_floor.parts(args.block, args.block)
        print(f"the same pass with oneDNN-packed layer weights (the kernels our float32 chat layers run here): "
              f"{sum(packed_parts.values()) * 1000:.0f} ms = " + " + ".join(f"{name} {s * 1000:.0f}" for name, s in packed_parts.items()))
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

    print("| side | tokens/s | forwards | seconds | peak RSS GB | other forwards: count, seconds |")
    print("|---|---|---|---|---|---|")
    for report in reports:
        print(side_row(report, args.tokens))
    if len(reports) == 2:
        theirs, ours = reports
        print(f"\nours / dLLM tokens/s: **{theirs['seconds'] / ours['seconds']:.2f}x**; dLLM at commit {theirs['commit']}, "
              f"transformers {theirs['transformers']}; their prompt left-padded to {theirs['padded_prompt']} tokens.")
        print("Other forwards: dLLM recomputes the whole prefix once per block; ours writes prompt blocks only.")
    print("\nsteps by query rows (ours: a block's first step also writes the blocks committed before it into the "
          "cache, the first step of all the prompt's whole blocks), each against the compute floor of its own pass "
          "(the trunk over its query rows, ours with its last layer's queries and MLP over the logit rows alone; "
          "the output layer over the rows it asked logits for); "
          f"ours ran {args.repeats} times, dLLM once:\n")
    print("| side | query rows | steps | ms, median / max | compute floor ms | step / floor, median / max | "
          "within 1.15x | fastest of the repeats / floor, median / max | within 1.15x | "
          "fastest / floor of its own kernels (packed), median / max | within 1.15x | median / memory floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for report in reports:
        print("\n".join(step_rows(report, floor, packed_floor, memory_floor["float32"])))
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
            steps = [s for _, _, s in report["steps"]]
            print(f"| {dtype} | {args.tokens / report['seconds']:.2f} | {report['forwards']} | {report['seconds']:.1f} | "
                  f"{report['peak_rss_bytes'] / 1e9:.2f} | {median(steps) * 1000:.0f} | "
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
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of ours at --block in float32; steps are also timed as the fastest (default %(default)s)")
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
    for name in ("prompt", "tokens", "block", "threads", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} {getattr(args, name)}: give a whole number of at least 1")
    if args.quick:
        args.prompt, args.tokens = min(args.prompt, 96), min(args.tokens, 32)
    compare(args)


if __name__ == "__main__":
    main()
