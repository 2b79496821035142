"""Runs side by side: the figures that compare them, which is best at each, and the comparison as JSON.

Plain data, shared by the compare window (`views/compare.py`) and its exports. A
column holds one run per seed; its figures are the mean and the standard
deviation over those runs. A figure that a run lacks (no judge, no tokens) is
None and is never best.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bd3lm_core.formatting import counted

from .samplers import NAMES, uses
from .trace import Trace

COMPARISON_FORMAT = "bd3lm-studio-comparison"
COMPARISON_VERSION = 2  # 2: columns of several seeds, with mean and spread


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
    Figure("gen_ppl", "Gen PPL", False, lambda t: t.judgement.gen_ppl if t.judgement else None, 1,
           "perplexity of the text under the judge model (lower reads more fluently to it); "
           "starred only among runs of the same length", same_length_only=True),
    Figure("entropy", "entropy", True, lambda t: t.judgement.entropy if t.judgement else None, 2,
           "entropy of the text's tokens in nats (very low means repetition; not a score to maximise)",
           starred=False),
)


def figures(trace: Trace) -> dict[str, float | None]:
    return {f.key: f.value(trace) if trace.outcome is not None else None for f in FIGURES}


@dataclass(frozen=True)
class Spread:
    """A figure over a column's runs: the mean, the sample standard deviation (0 for one run) and how many runs."""

    mean: float
    sd: float
    n: int

    def shown(self, digits: int) -> str:
        return f"{self.mean:.{digits}f}" + (f" \u00b1 {self.sd:.{digits}f}" if self.n > 1 else "")

    def to_json(self) -> dict[str, float | int]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n}


Column = Sequence[Trace]  # one column of a comparison: its runs, one per seed


def runs_of(columns: Sequence[Trace | Column | None]) -> list[list[Trace]]:
    """Each column as the list of its finished runs (a lone Trace is a column of one; None, or unfinished, none)."""
    out = []
    for c in columns:
        group = [c] if isinstance(c, Trace) else list(c or ())
        out.append([t for t in group if t.outcome is not None])
    return out


def summary(runs: Sequence[Trace]) -> dict[str, Spread | None]:
    """Each figure's mean and spread over `runs` (those that have it); None where no run has it."""
    out: dict[str, Spread | None] = {}
    for f in FIGURES:
        values = [v for v in (figures(t)[f.key] for t in runs) if v is not None]
        if not values:
            out[f.key] = None
            continue
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out[f.key] = Spread(mean, sd, len(values))
    return out


def best(columns: Sequence[Trace | Column | None]) -> dict[str, set[int]]:
    """For each figure, the columns holding its best mean as shown (ties share it; none if fewer than two compete).

    With several seeds a column is starred only where its mean is apart from every other column's by more than
    their spreads (mean ± one standard deviation, the two intervals not overlapping): a difference inside the
    spread is the seeds talking, not the settings. With one seed per column this is the plain best value.
    Gen PPL is compared only among columns whose every run has the longest length: a run that stopped early at
    end-of-text is judged on fewer tokens, which is no fair contest. Entropy is never starred.
    """
    marks: dict[str, set[int]] = {}
    groups = {i: runs for i, runs in enumerate(runs_of(columns)) if runs}
    longest = max((len(t.outcome.token_ids) for runs in groups.values() for t in runs), default=0)
    stats = {i: summary(runs) for i, runs in groups.items()}
    for f in FIGURES:
        spreads = {i: s[f.key] for i, s in stats.items() if s[f.key] is not None}
        if f.same_length_only:
            spreads = {i: v for i, v in spreads.items()
                       if all(len(t.outcome.token_ids) == longest for t in groups[i])}
        if not f.starred or len(spreads) < 2:
            marks[f.key] = set()
            continue
        shown = {i: round(v.mean, f.digits) for i, v in spreads.items()}
        top = (max if f.higher_is_better else min)(shown.values())
        tied = {i for i, v in shown.items() if v == top}
        marks[f.key] = {
            i for i in tied
            if all(abs(spreads[i].mean - spreads[j].mean) > spreads[i].sd + spreads[j].sd
                   for j in spreads if j not in tied)
        }
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


def to_json(columns: Sequence[Trace | Column]) -> dict[str, Any]:
    """Every column's figures (mean and spread over its seeds) and every run's figures and full trace, with the
    best of each figure named."""
    groups = runs_of(columns)
    marks = best(groups)
    starred = [sorted(key for key, where in marks.items() if i in where) for i in range(len(groups))]
    return {
        "format": COMPARISON_FORMAT,
        "version": COMPARISON_VERSION,
        "prompt": next((runs[0].prompt for runs in groups if runs), ""),
        "figures": {f.key: {"name": f.name, "higher_is_better": f.higher_is_better, "explain": f.explain}
                    for f in FIGURES},
        "spread": "mean and sample standard deviation over the column's seeds",
        "columns": [
            {
                "label": label(runs[0].settings, runs[0].model) if runs else "",
                "seeds": [t.settings.get("seed") for t in runs],
                "figures": {k: v.to_json() if v is not None else None for k, v in summary(runs).items()},
                "best": starred[i],
            }
            for i, runs in enumerate(groups)
        ],
        "runs": [
            {
                "column": i,
                "label": label(t.settings, t.model),
                "seed": t.settings.get("seed"),
                "figures": figures(t),
                "best": starred[i],
                "trace": t.to_json(),
            }
            for i, runs in enumerate(groups) for t in runs
        ],
    }
