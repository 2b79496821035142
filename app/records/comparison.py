"""Runs side by side: the figures that compare them, which is best at each, and the comparison as JSON.

Plain data, shared by the compare window (`compare.py`) and its exports. A
figure that a run lacks (no judge, no tokens) is None and is never best.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bd3lm_core.formatting import counted

from .samplers import NAMES, uses
from .trace import Trace

COMPARISON_FORMAT = "bd3lm-studio-comparison"
COMPARISON_VERSION = 1


@dataclass(frozen=True)
class Figure:
    key: str
    name: str
    higher_is_better: bool
    value: Callable[[Trace], float | None]
    digits: int
    explain: str
    starred: bool = True  # entropy is shown, but more of it is not "better"
    same_length_only: bool = False  # compared only between runs that wrote the same number of tokens


FIGURES = (
    Figure("tokens_per_second", "tokens/s", True, lambda t: t.tokens_per_second, 1,
           "generated tokens per second of sampling (higher is faster)"),
    Figure("tokens_per_forward", "tokens per forward", True, lambda t: t.tokens_per_forward, 2,
           "generated tokens per forward pass of the network: what a block diffusion step buys (higher is cheaper)"),
    Figure("gen_ppl", "Gen PPL", False, lambda t: t.score.gen_ppl if t.score else None, 1,
           "perplexity of the text under the judge model (lower reads more fluently to it); "
           "starred only among runs of the same length", same_length_only=True),
    Figure("entropy", "entropy", True, lambda t: t.score.entropy if t.score else None, 2,
           "entropy of the text's tokens in nats (very low means repetition; not a score to maximise)",
           starred=False),
)


def figures(trace: Trace) -> dict[str, float | None]:
    return {f.key: f.value(trace) if trace.outcome is not None else None for f in FIGURES}


def best(traces: list[Trace | None]) -> dict[str, set[int]]:
    """For each figure, the columns holding its best value as shown (ties share it; none if fewer than two compete).

    Gen PPL is compared only among runs of the same length: a run that stopped early at end-of-text is
    judged on fewer tokens, which is no fair contest. Entropy is never starred.
    """
    marks: dict[str, set[int]] = {}
    finished = {i: t for i, t in enumerate(traces) if t is not None and t.outcome is not None}
    longest = max((len(t.outcome.token_ids) for t in finished.values()), default=0)
    for f in FIGURES:
        values = {i: figures(t)[f.key] for i, t in finished.items()}
        if f.same_length_only:
            values = {i: v for i, v in values.items() if len(finished[i].outcome.token_ids) == longest}
        values = {i: round(v, f.digits) for i, v in values.items() if v is not None}
        if not f.starred or len(values) < 2:
            marks[f.key] = set()
            continue
        top = (max if f.higher_is_better else min)(values.values())
        marks[f.key] = {i for i, v in values.items() if v == top}
    return marks


def label(settings: dict[str, Any], model: str) -> str:
    """What distinguishes a run, in a few words: model, block size, sampler and its knobs."""
    sampler = settings["sampler"]
    parts = [model, f"block {settings['block_size']}", NAMES.get(sampler, sampler)]
    if uses(sampler, "steps"):
        parts.append(counted(settings["steps"], "step"))
    if uses(sampler, "threshold"):
        parts.append(f"threshold {settings['threshold']:g}")
    if uses(sampler, "entropy_bound"):
        parts.append(f"bound {settings['entropy_bound']:g}")
    parts.append(f"top-p {settings['top_p']:g}")
    if settings["temperature"] != 1.0:
        parts.append(f"temperature {settings['temperature']:g}")
    return " · ".join(parts)


def to_json(traces: list[Trace]) -> dict[str, Any]:
    """Every run's figures and full trace, with the best of each figure named."""
    marks = best(list(traces))
    return {
        "format": COMPARISON_FORMAT,
        "version": COMPARISON_VERSION,
        "prompt": traces[0].prompt if traces else "",
        "figures": {f.key: {"name": f.name, "higher_is_better": f.higher_is_better, "explain": f.explain}
                    for f in FIGURES},
        "runs": [
            {
                "label": label(t.settings, t.model),
                "figures": figures(t),
                "best": sorted(key for key, columns in marks.items() if i in columns),
                "trace": t.to_json(),
            }
            for i, t in enumerate(traces)
        ],
    }
