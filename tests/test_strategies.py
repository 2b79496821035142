"""The samplers as strategies: which positions each reveals, and that each runs through the whole loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bd3lm_core import Finished, SamplerSettings, Step, generate
from bd3lm_core.sampling.context import CachedContext
from bd3lm_core.sampling.draws import Draft, RandomStream
from bd3lm_core.sampling.strategies import STRATEGIES, EntropyBounded, LowConfidence, Strategy, Threshold

MASKED = torch.tensor([0, 1, 2, 3])


def draft(confidence: list[float], spread: list[int] | None = None) -> Draft:
    """Drawn tokens with these confidences; the model spreads position i evenly over spread[i] ids."""
    n = len(confidence)
    model = torch.zeros(n, 16, dtype=torch.float64)
    for i, ids in enumerate(spread or [1] * n):
        model[i, :ids] = 1.0 / ids
    return Draft(MASKED[:n], list(range(n)), confidence, confidence, [()] * n, model)


def choose(cls, settings: SamplerSettings, d: Draft, step: int = 1) -> list[int]:
    s = settings.resolved(4)
    chosen, _ = cls(s).keep(d.positions, 1.0, step, RandomStream(0, torch.device("cpu")), d)
    return chosen.tolist()


def test_low_confidence_keeps_the_k_surest_with_k_spread_over_the_steps() -> None:
    two_steps = SamplerSettings(steps=2)
    assert choose(LowConfidence, two_steps, draft([0.1, 0.9, 0.5, 0.7])) == [1, 3]
    assert choose(LowConfidence, SamplerSettings(steps=3), draft([0.1, 0.9, 0.5, 0.7])) == [1, 3]  # ceil(4/3)
    assert choose(LowConfidence, SamplerSettings(steps=4), draft([0.1, 0.9, 0.5, 0.7])) == [1]
    assert choose(LowConfidence, two_steps, draft([0.2, 0.6]), step=2) == [0, 1]  # the last step takes the rest


def test_threshold_keeps_every_confident_token_and_at_least_one() -> None:
    assert choose(Threshold, SamplerSettings(threshold=0.9), draft([0.95, 0.2, 0.91, 0.5])) == [0, 2]
    assert choose(Threshold, SamplerSettings(threshold=0.9), draft([0.3, 0.2, 0.4, 0.1])) == [2]
    assert choose(Threshold, SamplerSettings(threshold=0.1), draft([0.3, 0.2, 0.4, 0.1])) == [0, 1, 2, 3]


def test_entropy_bounded_spends_its_budget_from_the_least_uncertain() -> None:
    # entropies ln 3, ln 2, ln 8, ln 1: ascending 0, .69, 1.10, 2.08; spent before each 0, 0, .69, 1.79
    d = draft([0.5] * 4, spread=[3, 2, 8, 1])
    assert d.entropy == pytest.approx([math.log(3), math.log(2), math.log(8), 0.0])
    assert choose(EntropyBounded, SamplerSettings(entropy_bound=0.5), d) == [1, 3]
    assert choose(EntropyBounded, SamplerSettings(entropy_bound=1.0), d) == [0, 1, 3]
    assert choose(EntropyBounded, SamplerSettings(entropy_bound=5.0), d) == [0, 1, 2, 3]
    assert choose(EntropyBounded, SamplerSettings(entropy_bound=0.0), draft([0.5] * 2, spread=[4, 2])) == [1]


@pytest.mark.parametrize("sampler", sorted(STRATEGIES))
def test_every_sampler_writes_the_text_reproducibly(tiny, sampler: str) -> None:
    settings = SamplerSettings(tokens=45, seed=3, sampler=sampler, steps=2, stop_at_eos=False, stop_on_repetition=False)
    events = list(generate(tiny, "A cat", settings))
    again = list(generate(tiny, "A cat", settings))[-1]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.stop_reason == "length"
    assert len(finished.token_ids) == 45 and tiny.config.mask_id not in finished.token_ids
    assert again.token_ids == finished.token_ids
    steps = [e for e in events if isinstance(e, Step)]
    per_block: dict[int, int] = {}
    for e in steps:
        per_block[e.block] = e.step
        assert all(r.token == e.tokens[r.position - e.start] for r in e.revealed)
    if sampler in ("ddpm", "low-confidence"):
        assert max(per_block.values()) <= 2  # T = 2 steps per block
    if sampler in STRATEGIES and STRATEGIES[sampler].pick is Strategy.pick:  # draws every masked position
        assert all(e.revealed for e in steps)  # every step reveals at least one: one forward each
        assert finished.nfe == len(steps)


def test_confidence_is_the_models_probability_before_top_p(tiny, monkeypatch) -> None:
    """With fixed logits the model's p of each id is known; top-p 0.5 keeps only the top id."""
    vocab = tiny.config.vocab_size
    base = torch.zeros(vocab)
    base[5], base[6] = 10.0, 8.0  # p(5) about 0.87, p(6) about 0.12

    def fixed(self, block, rows):
        return base.expand(len(block), len(rows), vocab).clone()

    monkeypatch.setattr(CachedContext, "logits", fixed)
    events = list(generate(tiny, "", SamplerSettings(tokens=8, seed=0, top_p=0.5, stop_at_eos=False), alternatives=3))
    model = np.exp(base.double().numpy())
    model[tiny.config.mask_id] = 0
    model /= model.sum()
    revealed = [r for e in events if isinstance(e, Step) for r in e.revealed]
    assert revealed and all(r.token == 5 for r in revealed)
    for r in revealed:
        assert r.probability == 1.0  # the only id left in the nucleus
        assert r.confidence == pytest.approx(model[5], rel=1e-9)
        assert [i for i, _ in r.alternatives[:2]] == [5, 6]  # the third is one of the many equally likely others
        assert [p for _, p in r.alternatives] == pytest.approx([model[5], model[6], model[0]], rel=1e-9)


class _EveryOther(Strategy):
    """A throwaway sixth sampler: it only has to be registered to appear everywhere samplers are listed."""

    title = "Every other"
    description = "each step reveals the first masked position of every pair"
    reads = ("threshold",)

    def pick(self, masked, t, step, rng):
        return masked[::2], t


def test_a_sixth_strategy_registered_in_one_place_shows_in_the_cli_help_and_the_app(monkeypatch, capsys) -> None:
    import importlib

    from bd3lm_core import cli
    from bd3lm_core.sampling import strategies

    monkeypatch.setitem(strategies.STRATEGIES, "every-other", _EveryOther)
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "every-other: each step reveals the first masked position of every pair" in help_text
    assert "{ddpm,first-hitting,low-confidence,threshold,entropy-bounded,every-other}" in help_text
    assert "for threshold and every-other: reveal every drawn token" in help_text
    assert "for ddpm and low-confidence, 1 to 10000" in help_text
    assert SamplerSettings(sampler="every-other").resolved(4).sampler == "every-other"  # the settings accept it

    from bd3lm_studio.records import samplers

    try:
        importlib.reload(samplers)  # the app's sampler list is built from STRATEGIES when it is imported
        assert samplers.NAMES["every-other"] == "Every other"
        assert samplers.uses("every-other", "threshold") and not samplers.uses("every-other", "steps")
        assert samplers.NAMES["low-confidence"] == "Low-confidence (LLaDA)"
    finally:
        monkeypatch.undo()
        importlib.reload(samplers)
    assert "every-other" not in samplers.NAMES


def _stay_masked_frequencies(steps: int, draws: int = 20000) -> list[float]:
    """How often a position still masked before each DDPM step stays masked through it, over many draws."""
    strategy = STRATEGIES["ddpm"](SamplerSettings(steps=steps).resolved(steps))
    rng = RandomStream(3, torch.device("cpu"))
    masked, t, stayed = torch.arange(draws), 1.0, []
    for step in range(1, steps + 1):
        revealed, t = strategy.pick(masked, t, step, rng)
        stayed.append(1 - len(revealed) / len(masked))
        masked = masked[~torch.isin(masked, revealed)]
    return stayed


def test_ddpm_stays_masked_with_probability_s_over_t_on_the_grid_1_to_0_in_steps_of_1_over_t() -> None:
    """Ours: before step k the time is t = 1 - (k-1)/T, after it s = t - 1/T, and a masked position stays
    masked with probability s/t. The authors' loop (diffusion.py, _semi_ar_sampler with first_hitting off)
    takes t from linspace(1, 0, T) but still steps dt = 1/T, so its s/t is another sequence at T > 2 (and
    its last step, at t = 0, divides by zero); the README says so. Both agree at T = 2."""
    T = 4
    ours = [(1 - k / T) / (1 - (k - 1) / T) for k in range(1, T + 1)]
    assert ours == pytest.approx([3 / 4, 2 / 3, 1 / 2, 0.0])
    assert _stay_masked_frequencies(T) == pytest.approx(ours, abs=0.02)
    authors = [(t - 1 / T) / t for t in np.linspace(1, 0, T)[:-1]]  # their t_i, s = t_i - dt
    assert authors == pytest.approx([3 / 4, 5 / 8, 1 / 4])
    assert ours[1:3] != pytest.approx(authors[1:3], abs=0.02)  # the two rules differ past the first step
    authors_two = [(t - 1 / 2) / t for t in np.linspace(1, 0, 2)[:-1]]
    assert _stay_masked_frequencies(2) == pytest.approx(authors_two + [0.0], abs=0.02)  # and agree at T = 2
