"""The paper's central trade, reproduced at small scale with our own trainer: block size against quality.

    python benchmarks/block_size_trend.py [--quick] [--json] [--out runs/block-size-trend]

Trains one model per block size (1 = autoregression, 2, 4, 8, 16, and the
whole context = MDLM) on the same TinyStories text, tokenizer (the shipped
model's), held-out split, model size and token budget, then reports for each:
the held-out NELBO per token and its perplexity bound (exact for block 1), and
the Gen PPL (scored by the shipped judge) and entropy of unprompted samples at
a few budgets of forward passes per token. Finished models are kept under
`--out` and reused, and an interrupted training resumes from its last save.
`--quick` trains tiny models (about 15 minutes in all on two cores) to check
the coarse ordering cheaply; `--json` prints one JSON object. With matplotlib installed (the
`benchmarks` extra) it also draws `--plot`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bd3lm_core import BD3LMError, Finished, SamplerSettings, generate, load_judge, load_model  # noqa: E402
from bd3lm_core.devices import TORCH_DEFAULT_THREADS  # noqa: E402
from bd3lm_core.files import read_limited  # noqa: E402
from bd3lm_core.resources import default_model_dir  # noqa: E402
from bd3lm_core.training import Trainer, TrainSettings, nelbo  # noqa: E402
from bd3lm_core.training.data import prepare_data  # noqa: E402
from bd3lm_core.training.state import STATE_FILE, read_state  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "tinystories"
CONTEXT = 256
BLOCK_SIZES = (1, 2, 4, 8, 16, CONTEXT)  # the last is one block over the whole context: MDLM
JSON_LIMIT = 16 * 2**20  # trend.json and tokenizer.json of a run folder are far smaller
BUDGETS = (1.0, 0.5, 0.25)  # forward passes per generated token (steps per block = budget x block size)
# The same recipe for every block size; only the size of the run differs between the two modes.
RECIPE = dict(lr=1e-3, warmup=100, schedule="cosine", ema=0.995, batch_size=16, cond_dim=128, seed=0)
FULL = dict(hidden_dim=128, n_layers=4, n_heads=2, steps=800, eval_every=200, eval_rows=64)
QUICK = dict(hidden_dim=64, n_layers=2, n_heads=2, steps=120, eval_every=60, eval_rows=16)
PAPER = {  # the BD3-LM paper's OpenWebText results, context 1024: perplexity bound, Gen PPL at 1024 tokens
    1: (17.54, 14.1), 4: (20.73, 25.7), 8: (21.68, 30.4), 16: (22.27, 33.4), CONTEXT: (22.98, 46.8),
}


def train_settings(block: int, size: dict, out: Path, data: Path) -> TrainSettings:
    return TrainSettings(
        data=[str(data / "train-head.txt"), str(data / "valid-head.txt")], separators=["newline", "blank"],
        holdout_bytes=100_000, fix_mojibake=True, ascii_punctuation=True,
        tokenizer=str(default_model_dir() / "tokenizer.json"), model_length=CONTEXT, block_size=block,
        out=str(out), **RECIPE, **size,
    )


def same_recipe(saved: object, settings: TrainSettings) -> bool:
    """Whether a run was made with these settings; the tokenizer is compared by content, not by path
    (the default model's folder changes name when a new default ships; its vocabulary does not).
    A run folder whose files cannot be read counts as another recipe: its model is trained again."""
    ours = read_json(Path(settings.out) / "tokenizer.json")
    same_tokenizer = ours is not None and ours == read_json(Path(settings.tokenizer))
    return same_tokenizer and isinstance(saved, dict) and {**saved, "tokenizer": None} == {**asdict(settings), "tokenizer": None}


def read_json(path: Path) -> object:
    """A small JSON file's value, or None when it is missing, too large, not JSON or nested past reason."""
    try:
        return json.loads(read_limited(path, JSON_LIMIT, "JSON file"))
    except (BD3LMError, OSError, ValueError, RecursionError):
        return None


def saved_settings(out: Path) -> tuple[object, object]:
    """The settings recorded by a finished run (trend.json) and by its last save (the training state); None
    for either that is missing or unreadable."""
    recorded = read_json(out / "trend.json")
    finished = recorded.get("settings") if isinstance(recorded, dict) else None
    try:
        saved = asdict(read_state(out).settings) if (out / STATE_FILE).is_file() else None
    except BD3LMError as err:
        print(f"  not resuming: {err}", file=sys.stderr)
        saved = None
    return finished, saved


def train(settings: TrainSettings, threads: int) -> Path:
    """Train (or reuse a finished run) and return the folder of its best held-out weights."""
    out = Path(settings.out)
    finished, saved = saved_settings(out)
    if same_recipe(finished, settings):
        return out / "best"
    torch.set_num_threads(threads)  # sampling and judging below switch a small model to one thread
    started = time.monotonic()
    # an interrupted run of the same recipe continues from its last save instead of starting over
    resume = same_recipe(saved, settings)
    trainer = Trainer(settings, resume=resume, report=lambda text: print(f"  {text}", file=sys.stderr))
    trainer.run(lambda p: print(f"\r  step {p.step}/{p.steps} loss {p.loss:.3f}", end="", file=sys.stderr))
    print(file=sys.stderr)
    (out / "trend.json").write_text(json.dumps({"settings": asdict(settings), "minutes": (time.monotonic() - started) / 60}))
    return out / "best"


def sample_quality(loaded, judge, block: int, budget: float, samples: int, tokens: int) -> dict:
    """Gen PPL and entropy (means over `samples` unprompted samples) at one budget of forwards per token."""
    steps = max(1, round(budget * block))
    # a budget of one forward per token is the paper's setting: first-hitting, one position per step
    sampler = "first-hitting" if budget == 1.0 else "ddpm"
    settings = SamplerSettings(
        tokens=tokens, sampler=sampler, steps=steps, top_p=0.9, seed=1, stop_at_eos=False, stop_on_repetition=False,
    )
    finished = [e for e in generate(loaded, "", settings, num_samples=samples) if isinstance(e, Finished)]
    # the end-of-text tokens stay in the text, so the judge sees where a story ends as the model wrote it
    decode = lambda ids: loaded.tokenizer.inner.decode(list(ids), skip_special_tokens=False)  # noqa: E731
    judged = [judge.score(decode(f.token_ids), f.token_ids) for f in finished]
    nfe = max(f.nfe for f in finished)
    return {
        "budget": budget, "sampler": sampler, "steps": steps, "nfe_per_token": nfe / tokens,
        "gen_ppl": statistics.mean(j.gen_ppl for j in judged), "entropy": statistics.mean(j.entropy for j in judged),
    }


def measure(block: int, folder: Path, held_rows: torch.Tensor, judge, samples: int, tokens: int) -> dict:
    loaded = load_model(folder, device="cpu", dtype="float32")
    likelihood = nelbo(loaded.model, held_rows, samples=4, batch_size=16, seed=0)
    budgets = [b for b in BUDGETS if b * block >= 1 or b == 1.0]
    by_budget = [sample_quality(loaded, judge, block, b, samples, tokens) for b in budgets]
    return {
        "block_size": block, "nelbo_per_token": likelihood.nelbo_per_token, "stderr": likelihood.stderr,
        "ppl_bound": likelihood.ppl_bound, "gen_ppl": by_budget[0]["gen_ppl"], "entropy": by_budget[0]["entropy"],
        "by_budget": by_budget,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| block size | held-out NELBO | perplexity bound | Gen PPL at 1 / 0.5 / 0.25 NFE per token | entropy | paper (OWT): ppl bound, Gen PPL |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = f"{r['block_size']}" + (" (AR)" if r["block_size"] == 1 else " (MDLM)" if r["block_size"] == CONTEXT else "")
        gen = " / ".join(f"{b['gen_ppl']:.1f}" for b in r["by_budget"])
        paper = PAPER.get(r["block_size"])
        lines.append(
            f"| {name} | {r['nelbo_per_token']:.3f} ± {r['stderr']:.3f} | {r['ppl_bound']:.2f} | {gen} | "
            f"{r['entropy']:.2f} | {'%.2f, %.1f' % paper if paper else '-'} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(r["block_size"]) if r["block_size"] != CONTEXT else f"{CONTEXT}\n(MDLM)" for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(labels, [r["ppl_bound"] for r in results], "o-")
    left.set(xlabel="block size", ylabel="held-out perplexity (bound)", title="Likelihood")
    for budget in BUDGETS:
        points = [(lab, b["gen_ppl"]) for lab, r in zip(labels, results) for b in r["by_budget"] if b["budget"] == budget]
        right.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"{budget:g} NFE/token")
    right.set(xlabel="block size", ylabel="Gen PPL (shipped judge, log scale)", title="Samples", yscale="log")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, about 15 minutes in all on two cores")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "block-size-trend", help="where the models go")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train-head.txt and valid-head.txt")
    parser.add_argument("--samples", type=int, help="samples per setting (default 16; 4 with --quick)")
    parser.add_argument("--threads", type=int, default=TORCH_DEFAULT_THREADS, help="CPU threads for training")
    parser.add_argument("--plot", type=Path, help="draw the trend into this PNG (needs matplotlib)")
    parser.add_argument("--judge", metavar="SRC", help="the judge for Gen PPL (default: the shipped judge)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    out = args.out / ("quick" if args.quick else "full")
    samples = args.samples or (4 if args.quick else 16)
    began = time.monotonic()
    judge = load_judge(args.judge, device="cpu")
    held_rows = None
    results = []
    for block in BLOCK_SIZES:
        settings = train_settings(block, size, out / f"block{block}", args.data)
        print(f"block size {block}:", file=sys.stderr)
        folder = train(settings, args.threads)
        if held_rows is None:  # one split for all: same text, tokenizer and context
            held_rows = prepare_data(settings, None)[2]
        results.append(measure(block, folder, held_rows, judge, samples, CONTEXT))
    minutes = (time.monotonic() - began) / 60
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(json.dumps({"quick": args.quick, "model": size, "recipe": RECIPE, "samples": samples,
                          "tokens_per_sample": CONTEXT, "minutes": minutes, "results": results}))
    else:
        print(f"{'quick' if args.quick else 'full'} run, {minutes:.0f} min; models: {size}; {samples} samples of "
              f"{CONTEXT} tokens per setting, top-p 0.9\n")
        print(table(results))


if __name__ == "__main__":
    try:
        main()
    except BD3LMError as err:  # a model, judge or data file that cannot be used: one line, as the CLI says it
        sys.exit(f"block_size_trend.py: {err}")
