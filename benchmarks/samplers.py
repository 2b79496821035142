"""Samplers measured against each other on one model: forwards per token, speed, Gen PPL and entropy.

    python benchmarks/samplers.py [--model SRC] [--judge SRC] [--samples 32] [--tokens 256] [--json] [--plot PATH]
                                  [--dtype float32|int8] [--only LABEL ...]

Each setting (sampler, steps per block, threshold, top-p) writes one sample of
`--tokens` tokens after each of `--samples` prompts: the first words of
held-out TinyStories documents (the shipped models' held-out split). Samples
run past end-of-text (so every one is as long as the others; the end-of-text
tokens stay in what the judge reads) and stop early only by the repetition
rule, whose rate is reported. Gen PPL is scored by the judge (default: the
shipped judge) on the generated tokens given the prompt; entropy is over each
sample's own tokens. The held-out text itself, cut into windows of the same
length, is scored the same way as the reference. The last line names the
recommended setting: the best Gen PPL among those whose entropy is within 5%
of the held-out text's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bd3lm_core import Finished, SamplerSettings, generate, load_judge, load_model  # noqa: E402
from bd3lm_core.training.data import TextOptions, make_rows, read_documents, split_tail  # noqa: E402

HELD_OUT = ROOT.parent / "shared" / "data" / "tinystories" / "valid-head.txt"
HOLDOUT_BYTES = 100_000  # the shipped models' held-out split: the last 100 KB of valid-head.txt
PROMPT_WORDS = 8
ENTROPY_TOLERANCE = 0.05
TOP_P = 0.9  # of every setting that names no other, whatever the engine's default is


def settings_to_measure(block: int) -> list[tuple[str, dict]]:
    """(label, SamplerSettings fields) for each setting the issue asks about."""
    runs = []
    step_counts = sorted({1, 2, block})  # one, two and one per position (the same at block size 2)
    for steps in step_counts:
        runs.append((f"ddpm T={steps}", dict(sampler="ddpm", steps=steps)))
    for steps in step_counts:
        runs.append((f"low-confidence T={steps}", dict(sampler="low-confidence", steps=steps)))
    runs.append(("first-hitting", dict(sampler="first-hitting")))
    for threshold in (0.7, 0.8, 0.9, 0.95):
        runs.append((f"threshold {threshold}", dict(sampler="threshold", threshold=threshold)))
    for bound in (0.5, 1.0, 2.0):
        runs.append((f"entropy-bounded {bound}", dict(sampler="entropy-bounded", entropy_bound=bound)))
    for top_p in (0.8, 1.0):  # beside the TOP_P of every run above
        runs.append((f"ddpm T={block}, top-p {top_p}", dict(sampler="ddpm", steps=block, top_p=top_p)))
        runs.append((f"first-hitting, top-p {top_p}", dict(sampler="first-hitting", top_p=top_p)))
        runs.append((f"threshold 0.9, top-p {top_p}", dict(sampler="threshold", threshold=0.9, top_p=top_p)))
    return runs


def held_out_documents(path: Path) -> list[str]:
    docs = read_documents(path, TextOptions("blank", fix_mojibake=True, ascii_punctuation=True))
    return split_tail(docs, HOLDOUT_BYTES)[1]


def prompts(documents: list[str], count: int) -> list[str]:
    """The first words of the first `count` held-out documents long enough to continue."""
    long_enough = [d for d in documents if len(d.split()) >= 5 * PROMPT_WORDS]
    return [" ".join(d.split()[:PROMPT_WORDS]) for d in long_enough[:count]]


def reference(loaded, judge, documents: list[str], count: int, tokens: int) -> dict:
    """Gen PPL and entropy of the held-out text itself, in `count` windows of `tokens` tokens."""
    tok = loaded.tokenizer
    rows = make_rows((tok.encode(d) for d in documents), tokens + 1, tok.bos_id, tok.eos_id)[:count, 1:]
    judged = [judge.score(tok.inner.decode(row.tolist(), skip_special_tokens=False), row.tolist()) for row in rows]
    return {"gen_ppl": statistics.mean(j.gen_ppl for j in judged), "entropy": statistics.mean(j.entropy for j in judged)}


def measure(loaded, judge, texts: list[str], fields: dict, tokens: int) -> dict:
    settings = SamplerSettings(tokens=tokens, seed=0, stop_at_eos=False, **{"top_p": TOP_P, **fields})
    finished, seconds = [], 0.0
    for prompt in texts:
        began = time.perf_counter()
        finished.append([e for e in generate(loaded, prompt, settings) if isinstance(e, Finished)][0])
        seconds += time.perf_counter() - began
    decode = lambda ids: loaded.tokenizer.inner.decode(list(ids), skip_special_tokens=False)  # noqa: E731
    judged = [judge.score(decode(f.token_ids), f.token_ids, prompt=p) for f, p in zip(finished, texts)]
    generated = sum(len(f.token_ids) for f in finished)
    return {
        "nfe_per_token": sum(f.nfe for f in finished) / generated,
        "tokens_per_second": generated / seconds,
        "gen_ppl": statistics.mean(j.gen_ppl for j in judged),
        "entropy": statistics.mean(j.entropy for j in judged),
        "repetition_stops": sum(f.stop_reason == "repetition" for f in finished) / len(finished),
    }


def recommend(results: list[dict], ref: dict) -> dict:
    """The best Gen PPL among settings whose entropy is within 5% of the held-out text's."""
    close = [r for r in results if abs(r["entropy"] - ref["entropy"]) <= ENTROPY_TOLERANCE * ref["entropy"]]
    return min(close or results, key=lambda r: r["gen_ppl"])


def plot(results: list[dict], ref: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = {"ddpm": "o", "low-confidence": "s", "first-hitting": "^", "threshold": "D", "entropy-bounded": "v"}
    for sampler, marker in markers.items():
        points = [r for r in results if r["settings"]["sampler"] == sampler]
        ax.scatter([r["nfe_per_token"] for r in points], [r["gen_ppl"] for r in points], marker=marker, label=sampler)
    ax.axhline(ref["gen_ppl"], color="grey", linestyle="--", label="held-out text")
    ax.set(xlabel="forward passes per token (NFE / token)", ylabel="Gen PPL (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", metavar="SRC", help="model folder or repo id (default: the shipped model)")
    parser.add_argument("--judge", metavar="SRC", help="judge folder or repo id (default: the model's default judge)")
    parser.add_argument("--samples", type=int, default=32, help="prompts, one sample each (default %(default)s)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per sample (default %(default)s)")
    parser.add_argument("--held-out", type=Path, default=HELD_OUT, help="valid-head.txt, for prompts and the reference")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plot", type=Path, help="draw Gen PPL against forwards per token into this PNG")
    parser.add_argument("--dtype", default="float32", choices=("float32", "int8"), help="the model's precision")
    parser.add_argument("--only", metavar="LABEL", action="append", help="measure only this setting (repeatable)")
    args = parser.parse_args()
    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    judge = load_judge(args.judge, model=loaded, device="cpu")
    documents = held_out_documents(args.held_out)
    texts = prompts(documents, args.samples)
    ref = reference(loaded, judge, documents, args.samples, args.tokens)
    results = []
    every = settings_to_measure(loaded.config.block_size)
    unknown = sorted(set(args.only or ()) - {label for label, _ in every})
    if unknown:
        parser.error(f"--only {unknown[0]!r} is not a setting here; the settings are: {'; '.join(l for l, _ in every)}")
    chosen = [(label, fields) for label, fields in every if not args.only or label in args.only]
    for label, fields in chosen:
        r = {"label": label, "settings": {"top_p": TOP_P, **fields}, **measure(loaded, judge, texts, fields, args.tokens)}
        results.append(r)
        print(f"{label}: {r['nfe_per_token']:.2f} NFE/token, Gen PPL {r['gen_ppl']:.1f}", file=sys.stderr)
    best = recommend(results, ref)
    if args.plot:
        plot(results, ref, args.plot)
    if args.json:
        print(json.dumps({"model": loaded.name, "judge": judge.name, "samples": len(texts), "tokens": args.tokens,
                          "held_out": ref, "results": results, "recommended": best["label"]}))
        return
    print(f"{loaded.name}, judge {judge.name}, {len(texts)} prompted samples of {args.tokens} tokens each, "
          f"{loaded.placement[1]} on {loaded.placement[0]}, {loaded.threads} thread(s)\n")
    print("| setting | NFE / token | tokens/s | Gen PPL | entropy | repetition stops |")
    print("|---|---|---|---|---|---|")
    print(f"| held-out text | - | - | {ref['gen_ppl']:.1f} | {ref['entropy']:.2f} | - |")
    for r in results:
        print(f"| {r['label']} | {r['nfe_per_token']:.2f} | {r['tokens_per_second']:.0f} | {r['gen_ppl']:.1f} | "
              f"{r['entropy']:.2f} | {r['repetition_stops']:.0%} |")
    print(f"\nRecommended (best Gen PPL with entropy within {ENTROPY_TOLERANCE:.0%} of the held-out text's): "
          f"{best['label']}")


if __name__ == "__main__":
    main()
