"""The streaming sampler: same logits as a full recompute, the DDPM step distribution (a masked position stays
masked with probability s/t, else takes a token from the nucleus), the stop rules."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from bd3lm_core import BlockDone, Finished, SamplerSettings, Step, encode_prompt, generate, load_model
from bd3lm_core.sampling import sample
from bd3lm_core.sampling.context import CachedContext, FullContext
from model_factory import make_model_folder


def run(loaded, prompt: str = "", **settings) -> list:
    """The loop's events; its mechanics are tested with the paper's DDPM sampler unless a test names another
    (the default sampler is a measured choice that may change)."""
    settings = {"sampler": "ddpm", "top_p": 0.9, **settings}
    return list(generate(loaded, prompt, SamplerSettings(**settings)))


def record_logits(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    original = cls.logits

    def logits(self, block, rows):
        out = original(self, block, rows)
        seen.append(out.clone())
        return out

    monkeypatch.setattr(cls, "logits", logits)
    return seen


@pytest.mark.parametrize("prompt_words", [3, 40], ids=["short-prompt", "prompt-longer-than-context"])
def test_cached_and_full_recompute_contexts_see_the_same_logits(tiny, monkeypatch, prompt_words: int) -> None:
    prompt = " ".join(["the cat sat on the mat"] * prompt_words)[: prompt_words * 6]
    settings = SamplerSettings(tokens=90, seed=5, steps=3, stop_at_eos=False, stop_on_repetition=False)
    cached_logits = record_logits(monkeypatch, CachedContext)
    full_logits = record_logits(monkeypatch, FullContext)
    cached = list(generate(tiny, prompt, settings))
    resolved = settings.resolved(tiny.config.block_size)
    full = list(sample(tiny, encode_prompt(tiny, prompt), resolved, FullContext(tiny.model, resolved.block_size)))
    assert len(cached_logits) == len(full_logits) == cached[-1].nfe > 20
    for a, b in zip(cached_logits, full_logits):
        assert torch.allclose(a, b, atol=1e-4)
    assert cached[-1].token_ids == full[-1].token_ids
    assert len(tiny.tokenizer.encode(prompt)) + 1 + 90 > 3 * tiny.config.model_length  # the window slid


def test_revealed_tokens_never_change_and_prompt_is_kept(tiny) -> None:
    prompt = "Once upon a time"
    prompt_ids = [tiny.tokenizer.bos_id] + tiny.tokenizer.encode(prompt)
    events = run(tiny, prompt, tokens=40, steps=6, seed=1, stop_at_eos=False)
    mask = tiny.config.mask_id
    seen: dict[int, int] = {}
    for e in [e for e in events if isinstance(e, Step)]:
        for offset, token in enumerate(e.tokens):
            pos = e.start + offset
            if pos < len(prompt_ids):
                assert token == prompt_ids[pos]
            if pos in seen:
                assert token == seen[pos], f"position {pos} changed after it was revealed"
            elif token != mask:
                seen[pos] = token
        for r in e.revealed:
            assert e.tokens[r.position - e.start] == r.token and 0 < r.probability <= 1
    assert events[-1].prompt_ids == tuple(prompt_ids)


@pytest.mark.parametrize("block_size", [None, 1, 3, 8])
def test_exact_length_without_masks(tiny, block_size) -> None:
    finished = run(tiny, "A dog", tokens=37, block_size=block_size, seed=2, stop_at_eos=False, stop_on_repetition=False)[-1]
    assert finished.stop_reason == "length"
    assert len(finished.token_ids) == 37
    assert tiny.config.mask_id not in finished.token_ids
    assert finished.settings.block_size == (block_size or 4)


@pytest.mark.parametrize("sampler", ["ddpm", "first-hitting", "low-confidence", "threshold", "entropy-bounded"])
def test_no_token_is_drawn_past_the_last_position_asked_for(tiny, sampler: str) -> None:
    events = run(tiny, "A dog", tokens=10, block_size=8, steps=8, sampler=sampler, seed=2, stop_at_eos=False,
                 stop_on_repetition=False)
    end = len(events[-1].prompt_ids) + 10
    [last] = [e for e in events if isinstance(e, BlockDone) and e.start + 8 > end]  # the block the end falls in
    assert last.start < end
    assert all(tok == tiny.config.mask_id for tok in last.tokens[end - last.start:])  # left masked, not drawn
    assert all(r.position < end for e in events if isinstance(e, Step) for r in e.revealed)
    assert tiny.config.mask_id not in events[-1].token_ids and len(events[-1].token_ids) == 10
    if sampler in ("first-hitting", "low-confidence"):  # one token per forward: one forward per token asked
        assert events[-1].nfe == 10


def test_same_seed_same_text(tiny) -> None:
    a = run(tiny, tokens=30, seed=11, stop_at_eos=False)[-1]
    b = run(tiny, tokens=30, seed=11, stop_at_eos=False)[-1]
    c = run(tiny, tokens=30, seed=12, stop_at_eos=False)[-1]
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids


def test_block_events_stream_the_final_text(tiny) -> None:
    events = run(tiny, tokens=30, seed=4, stop_at_eos=False)
    streamed = "".join(e.text for e in events if isinstance(e, BlockDone))
    assert streamed == events[-1].text


def test_cancel_stops_within_one_step(tiny) -> None:
    cancel = threading.Event()
    steps_after_cancel = 0
    events = []
    for event in generate(tiny, "", SamplerSettings(tokens=200, steps=8, seed=0, stop_at_eos=False), cancel=cancel):
        events.append(event)
        if cancel.is_set() and isinstance(event, Step):
            steps_after_cancel += 1
        if isinstance(event, Step) and event.block == 2 and event.step == 3:
            cancel.set()
    assert steps_after_cancel == 0
    assert isinstance(events[-1], Finished) and events[-1].stop_reason == "cancelled"


def test_stop_at_eos_truncates_after_it(tiny) -> None:
    eos = tiny.tokenizer.eos_id
    for seed in range(40):
        finished = run(tiny, tokens=60, seed=seed, temperature=3.0, top_p=1.0)[-1]
        if finished.stop_reason == "eos":
            assert finished.token_ids[-1] == eos and eos not in finished.token_ids[:-1]
            return
    pytest.fail("no run ended at EOS")


def test_repetition_rule_stops_degenerate_text(tiny, monkeypatch) -> None:
    # a model that only ever predicts one token produces a histogram of entropy 0
    def constant(self, block, rows):
        out = torch.full((len(block), len(rows), tiny.config.vocab_size), -10.0)
        out[..., 7] = 10.0
        return out

    monkeypatch.setattr(CachedContext, "logits", constant)
    finished = run(tiny, tokens=400, seed=0, stop_at_eos=False)[-1]
    assert finished.stop_reason == "repetition"
    assert 256 <= len(finished.token_ids) + 1 < 400


def test_the_masks_a_last_block_keeps_past_the_end_are_not_read_as_repetition() -> None:
    from bd3lm_core.sampling.stop_rules import REPETITION_WINDOW, stop_reason

    text = list(range(1000, 1000 + REPETITION_WINDOW))  # varied text: every token once
    settings = SamplerSettings(stop_at_eos=False, stop_on_repetition=True)
    end = len(text)
    sequence = text + [50257] * 200  # a wide last block, the run ending at its start: the rest stays masks
    assert stop_reason(sequence, 0, end, {0}, settings) is None
    assert stop_reason([7] * REPETITION_WINDOW, 0, REPETITION_WINDOW, {0}, settings) == "repetition"


def test_first_hitting_reveals_one_position_per_step(tiny) -> None:
    events = run(tiny, "Lily", tokens=24, sampler="first-hitting", seed=3, stop_at_eos=False)
    steps = [e for e in events if isinstance(e, Step)]
    assert steps and all(len(e.revealed) == 1 for e in steps)
    assert all(e.nfe == i + 1 for i, e in enumerate(steps))  # every step changes the block: one forward each


def nucleus_reference(probs: np.ndarray, p: float) -> np.ndarray:
    order = np.argsort(-probs, kind="stable")
    keep = np.cumsum(probs[order]) <= p
    keep[0] = True
    out = np.zeros_like(probs)
    out[order[keep]] = probs[order[keep]]
    return out / out.sum()


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_one_ddpm_step_has_the_analytic_distribution(tmp_path: Path, top_p: float) -> None:
    check_one_ddpm_step(tmp_path, top_p, "cpu")


def check_one_ddpm_step(tmp_path: Path, top_p: float, device: str) -> None:
    """Block [BOS, mask], T = 2: after step 1 (t=1 -> s=1/2) the position is still masked with
    probability 1/2, else it holds token v with probability 1/2 * p_nucleus(v). (test_cuda.py runs it on a GPU.)"""
    loaded = load_model(make_model_folder(tmp_path, block_size=2, model_length=8, vocab=260), device=device,
                        dtype="float32")
    mask = loaded.config.mask_id
    with torch.no_grad():
        logits = FullContext(loaded.model, 2).logits(
            torch.tensor([[loaded.tokenizer.bos_id, mask]], device=device), torch.tensor([1], device=device)
        )[0, 0].double().cpu()
    logits[mask] = -math.inf
    p_x0 = nucleus_reference(logits.softmax(-1).numpy(), top_p)
    expected = np.append(0.5 * p_x0, 0.5)  # tokens, then "still masked"
    draws = 3000
    counts = np.zeros(len(expected))
    for seed in range(draws):
        first = next(generate(loaded, "", SamplerSettings(tokens=1, steps=2, seed=seed, top_p=top_p, sampler="ddpm")))
        token = first.tokens[1]
        counts[-1 if token == mask else token] += 1
    # chi-square over the categories with enough expected mass; the rest pooled
    big = expected * draws >= 5
    observed = np.append(counts[big], counts[~big].sum())
    wanted = np.append(expected[big], expected[~big].sum()) * draws
    observed, wanted = observed[wanted > 0], wanted[wanted > 0]
    chi2 = float(((observed - wanted) ** 2 / wanted).sum())
    df = len(wanted) - 1
    z = 3.29  # one-sided p = 0.0005
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3  # Wilson-Hilferty
    assert df >= 3
    assert chi2 < critical, f"chi2 {chi2:.1f} >= {critical:.1f} with {df} degrees of freedom"
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus, never the mask as a token


@pytest.mark.parametrize("sampler", ["ddpm", "first-hitting"])
def test_each_sample_of_a_batch_is_the_single_run_with_its_own_seed(tiny, sampler: str) -> None:
    settings = SamplerSettings(tokens=70, seed=0, steps=3, sampler=sampler, temperature=2.0, top_p=1.0)
    events = list(generate(tiny, "The dog", settings, num_samples=4))
    finished = {e.row: e for e in events if isinstance(e, Finished)}
    assert sorted(finished) == [0, 1, 2, 3]
    reasons = {f.stop_reason for f in finished.values()}
    for row, f in finished.items():
        single = run(tiny, "The dog", **{**settings.__dict__, "seed": row})[-1]
        assert f.token_ids == single.token_ids and f.stop_reason == single.stop_reason and f.settings.seed == row
        streamed = "".join(e.text for e in events if isinstance(e, BlockDone) and e.row == row)
        assert streamed == f.text
    assert len({f.token_ids for f in finished.values()}) == 4
    assert reasons == {"eos", "length"}, "the seeds should give rows that stop early and rows that run to length"
    # one batch: fewer forwards than the four single runs together
    assert max(f.nfe for f in finished.values()) < sum(run(tiny, "The dog", **{**settings.__dict__, "seed": r})[-1].nfe for r in range(4))


def reference_top_p(probs: list[float], top_p: float) -> list[float]:
    """Top-p written plainly: ids by probability, highest first and lower id first among equals; keep them
    while the running total stays at most p (always the first one); renormalise."""
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    kept, total = [order[0]], probs[order[0]]
    for i in order[1:]:
        if total + probs[i] > top_p:
            break
        kept.append(i)
        total += probs[i]
    return [probs[i] / total if i in kept else 0.0 for i in range(len(probs))]


def test_top_p_matches_a_plain_reference_on_rows_full_of_ties() -> None:
    from bd3lm_core.sampling.draws import top_p_cut

    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 5, size=12).astype(float) for _ in range(200)]  # weights 1..4: many equal values
    rows += [np.ones(10), np.array([2.0, 1, 1, 1, 1, 2, 2, 1]), np.array([0.0, 1, 1, 0, 1])]
    for row in rows:
        probs = row / row.sum()
        for top_p in (0.05, 0.25, 0.5, 0.6, 0.8, 0.999):
            got = top_p_cut(torch.tensor(probs[None, :]), top_p)[0].tolist()
            assert got == pytest.approx(reference_top_p(probs.tolist(), top_p), abs=1e-12), (row.tolist(), top_p)


def test_a_prompt_past_few_queries_takes_sdpa_and_a_step_the_explicit_products_and_they_agree(tmp_path: Path, monkeypatch) -> None:
    """The DiT takes the same attention rule as the chat decoders (network.attend)."""
    from bd3lm_core.model import network

    loaded = load_model(make_model_folder(tmp_path / "m", model_length=512), device="cpu", dtype="float32")
    block, length = 4, network.FEW_QUERIES + 48
    ids = torch.randint(0, 250, (1, length), generator=torch.Generator().manual_seed(3))
    prefix, last, rows = ids[:, :-block], ids[:, -block:], torch.arange(block)
    sdpa_rows = []
    sdpa = network.F.scaled_dot_product_attention
    monkeypatch.setattr(network.F, "scaled_dot_product_attention", lambda q, *a, **k: sdpa_rows.append(q.shape[2]) or sdpa(q, *a, **k))
    full, cached = FullContext(loaded.model, block), CachedContext(loaded.model, block)
    full.commit(prefix)
    cached.commit(prefix)
    cached.logits(last, rows)  # the prompt into the cache, with the block: SDPA
    explicit = cached.logits(last, rows)  # the block alone over the cache: explicit products
    whole = full.logits(last, rows)  # every token at once: SDPA
    assert sdpa_rows == [length] * 2 * loaded.config.n_layers  # the cached prompt and the full forward, every layer
    assert whole.abs().max() > 0.1 and (whole - explicit).abs().max() < 1e-4
