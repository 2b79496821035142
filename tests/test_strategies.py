"""The samplers as strategies: which positions each reveals, and that each runs through the whole loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bd3lm_core import Finished, SamplerSettings, Step, generate, load_model
from bd3lm_core.sampling.context import CachedContext
from bd3lm_core.sampling.draws import Draft, RandomStream
from bd3lm_core.sampling.strategies import STRATEGIES, EntropyBounded, LowConfidence, Threshold
from model_factory import make_model_folder

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
    chosen, _ = cls(s).choose(d.positions, 1.0, step, RandomStream(0, torch.device("cpu")), d)
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_model(make_model_folder(tmp_path_factory.mktemp("tiny"), block_size=4, model_length=32), device="cpu")


@pytest.mark.parametrize("sampler", sorted(STRATEGIES))
def test_every_sampler_writes_the_text_reproducibly(tiny, sampler: str) -> None:
    settings = SamplerSettings(tokens=45, seed=3, sampler=sampler, steps=2, stop_at_eos=False, stop_on_repetition=False)
    events = list(generate(tiny, "A cat", settings))
    again = list(generate(tiny, "A cat", settings))[-1]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "length"
    assert len(finished.token_ids) == 45 and tiny.config.mask_id not in finished.token_ids
    assert again.token_ids == finished.token_ids
    steps = [e for e in events if isinstance(e, Step)]
    per_block: dict[int, int] = {}
    for e in steps:
        per_block[e.block] = e.step
        assert all(r.token == e.tokens[r.position - e.start] for r in e.revealed)
    if sampler in ("ddpm", "low-confidence"):
        assert max(per_block.values()) <= 2  # T = 2 steps per block
    if sampler in STRATEGIES and STRATEGIES[sampler].needs_confidence:
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
