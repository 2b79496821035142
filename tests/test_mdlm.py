"""MDLM, the BD3-LM paper's baseline: its checkpoints load unchanged, compute MDLM's logits,
and are sampled past their context in overlapping windows; BD3-LMs keep their blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bd3lm_core import BD3LMError, BlockDone, CATALOG, Finished, SamplerSettings, Step, generate, load_model, load_network
from bd3lm_core.cli import main
from bd3lm_core.hub.hf_cache import find_model
from bd3lm_core.model.checkpoints import load_weights
from bd3lm_core.model.config import published_tensor_name
from bd3lm_core.model.config import BD3LMConfig
from bd3lm_core.model.network import BD3LM
from bd3lm_core.sampling.context import CachedContext, FullContext, WindowContext
from bd3lm_core.sampling.strategies import STRATEGIES, Strategy
from model_factory import make_mdlm_folder, make_model_folder, mdlm_tensor_shapes

FIXTURE = Path(__file__).parent / "fixtures" / "parity-mdlm"
QUIET = dict(stop_at_eos=False, stop_on_repetition=False)


@pytest.fixture(scope="module")
def mdlm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mdlm_folder(tmp_path_factory.mktemp("mdlm"), model_length=16)


@pytest.fixture(scope="module")
def mdlm(mdlm_folder: Path):
    return load_model(mdlm_folder, device="cpu")


def test_an_mdlm_config_without_block_size_is_one_block_over_its_context(mdlm_folder: Path) -> None:
    raw = json.loads((mdlm_folder / "config.json").read_text())
    assert "block_size" not in raw and raw["model_type"] == "mdlm"
    config = BD3LMConfig.load(mdlm_folder / "config.json")
    assert config.is_mdlm and config.block_size == config.model_length == 16
    assert (config.n_layers, config.n_heads, config.adaln, config.time_conditioning) == (2, 2, True, False)
    assert config.mask_id == raw["vocab_size"] - 1


def test_an_mdlm_config_with_a_smaller_block_size_is_refused_in_one_line(mdlm_folder: Path) -> None:
    raw = {**json.loads((mdlm_folder / "config.json").read_text()), "block_size": 4}
    with pytest.raises(BD3LMError, match="block_size 4 must equal model_length 16") as err:
        BD3LMConfig.from_dict(raw)
    assert "\n" not in str(err.value)


def test_an_unknown_model_type_is_refused_in_one_line(mdlm_folder: Path) -> None:
    raw = {**json.loads((mdlm_folder / "config.json").read_text()), "model_type": "llama", "block_size": 16}
    with pytest.raises(BD3LMError, match="'llama' is neither a BD3-LM nor an MDLM"):
        BD3LMConfig.from_dict(raw)


def test_an_mdlm_written_by_us_keeps_mdlms_config_layout(mdlm_folder: Path, tmp_path: Path) -> None:
    config = BD3LMConfig.load(mdlm_folder / "config.json")
    config.save(tmp_path / "config.json")
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "mdlm" and written["architectures"] == ["MDLM"]
    assert "block_size" not in written and written["n_blocks"] == 2
    assert BD3LMConfig.load(tmp_path / "config.json") == config


def test_the_mdlm_tensor_layout_loads_unchanged_and_every_tensor_is_needed(mdlm_folder: Path, tmp_path: Path) -> None:
    tensors = load_file(str(mdlm_folder / "model.safetensors"))
    model = load_network(mdlm_folder)
    ours = {published_tensor_name(name) for name in model.state_dict()}
    assert set(tensors) == ours | {"backbone.rotary_emb.inv_freq"}
    assert set(tensors) == set(mdlm_tensor_shapes(model.config.vocab_size, 32, 2, 2, 16))
    for name, t in model.state_dict().items():
        assert torch.equal(t, tensors[published_tensor_name(name)])
    del tensors["backbone.blocks.1.adaLN_modulation.bias"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(BD3LMError, match=r"missing: backbone\.blocks\.1\.adaLN_modulation\.bias"):
        load_weights(BD3LM(model.config), tmp_path / "model.safetensors")


def test_mdlm_logits_are_our_network_with_one_block_over_the_context(mdlm_folder: Path, mdlm) -> None:
    """MDLM attends bidirectionally over its input: exactly a BD3-LM whose block is the whole context."""
    as_bd3lm = BD3LM(BD3LMConfig(**{**vars(mdlm.config), "model_type": "bd3lm"})).eval()
    load_weights(as_bd3lm, mdlm_folder / "model.safetensors")
    generator = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, mdlm.config.mask_id, (2, 16), generator=generator)
    xt = torch.where(torch.rand(x0.shape, generator=generator) < 0.6, mdlm.config.mask_id, x0)
    context = WindowContext(mdlm.model, batch=2)
    with torch.no_grad():
        reference = as_bd3lm.forward_train(xt, x0)
        window = context.logits(xt, torch.arange(16))
    assert reference.abs().max() > 1.0
    assert (window - reference).abs().max() <= 1e-4


@pytest.mark.parametrize("row", [0, 1], ids=["first-window", "clean-half-then-noisy-stride"])
def test_a_window_gives_the_logits_of_mdlms_own_code(row: int) -> None:
    """The parity fixture made with MDLM's model code: row 1 is a semi-autoregressive window."""
    fixture = json.loads((FIXTURE / "fixture.json").read_text())
    expected = load_file(str(FIXTURE / "expected.safetensors"))
    model = load_network(FIXTURE / "checkpoint")
    assert model.config.is_mdlm and fixture["window_row"] == 1
    context = WindowContext(model)
    xt = expected["xt"][row : row + 1]
    clean = fixture["window_clean"] if row == 1 else 0
    context.commit(xt[:, :clean])
    rows = torch.arange(xt.shape[1] - clean)
    got = context.logits(xt[:, clean:], rows)
    assert (got - expected["train_logits"][row : row + 1, clean:]).abs().max() <= 1e-4


def spy_windows(monkeypatch: pytest.MonkeyPatch, model: BD3LM) -> list[dict]:
    """Record what every forward of `model` is given."""
    calls: list[dict] = []
    forward = model.forward

    def spy(tokens, positions, attn_mask=None, **kw):
        calls.append({"tokens": tokens.clone(), "positions": positions.clone(), "mask": attn_mask,
                      "rows": kw["out_rows"].clone()})
        return forward(tokens, positions, attn_mask, **kw)

    monkeypatch.setattr(model, "forward", spy)
    return calls


@pytest.mark.parametrize("prompt_words", [0, 4, 25], ids=["no-prompt", "short-prompt", "prompt-past-the-window"])
def test_sampling_past_the_context_moves_a_window_by_half_a_context(mdlm, monkeypatch, prompt_words: int) -> None:
    prompt = " ".join(["the cat sat on the mat"] * 6).split()[:prompt_words]
    prompt = " ".join(prompt)
    calls = spy_windows(monkeypatch, mdlm.model)
    events = list(generate(mdlm, prompt, SamplerSettings(tokens=45, steps=4, seed=3, **QUIET)))
    finished = events[-1]
    n_prompt, W, S = len(finished.prompt_ids), 16, 8
    sequence = list(finished.prompt_ids)  # then every block in full (the last one runs past the length asked)
    for e in (e for e in events if isinstance(e, BlockDone)):
        sequence[e.start :] = e.tokens
    assert isinstance(finished, Finished) and len(finished.token_ids) == 45
    assert mdlm.config.mask_id not in finished.token_ids

    spans = [(e.start, len(e.tokens)) for e in events if isinstance(e, BlockDone)]
    first = 0 if n_prompt < W else 1 + (n_prompt - W) // S  # blocks wholly inside the prompt are context
    expected = [(0, W)] + [(W + i * S, S) for i in range(20)]
    assert spans == [s for s in expected[first:] if s[0] < n_prompt + 45]

    by_start, forwards = dict(spans), 0
    for step in (e for e in events if isinstance(e, Step)):
        if step.nfe == forwards:
            continue  # this step revealed nothing and ran no forward
        forwards = step.nfe
        call = calls[forwards - 1]
        tokens, L = call["tokens"][0].tolist(), by_start[step.start]
        assert call["mask"] is None  # every token of the window sees every other
        assert call["positions"].tolist() == list(range(len(tokens)))  # positions inside the window
        n_context = len(tokens) - L
        assert n_context == min(step.start, W - L)  # the clean text just before the block, up to a window
        assert tokens[:n_context] == sequence[step.start - n_context : step.start]
        block = tokens[n_context:]
        assert all(t in (mdlm.config.mask_id, sequence[step.start + i]) for i, t in enumerate(block))
        assert set(call["rows"].tolist()) <= {n_context + i for i, t in enumerate(block) if t == mdlm.config.mask_id}
    assert len(calls) == finished.nfe > len(spans)


@pytest.mark.parametrize("sampler", list(STRATEGIES))
def test_every_sampler_writes_an_mdlm_sample_of_exact_length(mdlm, sampler: str) -> None:
    events = list(generate(mdlm, "Once upon a time", SamplerSettings(tokens=30, sampler=sampler, seed=4, **QUIET)))
    finished = events[-1]
    assert len(finished.token_ids) == 30 and mdlm.config.mask_id not in finished.token_ids
    starts = {e.start: len(e.tokens) for e in events if isinstance(e, BlockDone)}
    for step in (e for e in events if isinstance(e, Step)):
        assert all(step.start <= r.position < step.start + starts[step.start] for r in step.revealed)
        assert 0.0 <= step.t <= 1.0
    first_of_stride = next(e for e in events if isinstance(e, Step) and e.start == 16)
    if STRATEGIES[sampler].pick is Strategy.pick:  # a confidence sampler: time is the masked share of this 8-token block, not of the context
        assert first_of_stride.t == (8 - len(first_of_stride.revealed)) / 8


def test_samples_of_an_mdlm_batch_equal_single_generations(mdlm) -> None:
    settings = SamplerSettings(tokens=30, steps=4, seed=11, **QUIET)
    together = [e for e in generate(mdlm, "A dog", settings, num_samples=2) if isinstance(e, Finished)]
    for f in together:
        alone = list(generate(mdlm, "A dog", SamplerSettings(tokens=30, steps=4, seed=11 + f.row, **QUIET)))[-1]
        assert f.token_ids == alone.token_ids


def test_another_block_size_for_an_mdlm_is_refused_in_one_line(mdlm) -> None:
    with pytest.raises(BD3LMError, match="is an MDLM.*leave the block size at 16") as err:
        list(generate(mdlm, "", SamplerSettings(tokens=8, block_size=4)))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("context", [CachedContext, FullContext])
def test_a_bd3lm_context_lays_out_blocks_of_one_size_as_before(tmp_path: Path, context: type) -> None:
    model = load_network(make_model_folder(tmp_path, block_size=4, model_length=16))
    blocks = context(model, 3).blocks
    assert [blocks.span(i) for i in range(40)] == [(3 * i, 3) for i in range(40)]
    assert [blocks.first_open(n) for n in range(100)] == [n // 3 for n in range(100)]


def test_bd3lm_confidence_samplers_keep_their_time_per_block(tmp_path: Path) -> None:
    loaded = load_model(make_model_folder(tmp_path, block_size=4, model_length=16), device="cpu")
    events = list(generate(loaded, "A dog", SamplerSettings(tokens=20, sampler="low-confidence", seed=2, **QUIET)))
    end = len(events[-1].prompt_ids) + 20  # the last block's positions from here on stay masks: not asked for
    for step in (e for e in events if isinstance(e, Step)):
        assert step.t == sum(step.masked[: end - step.start]) / 4 and step.start % 4 == 0 and len(step.tokens) == 4
    assert any(step.start + 4 > end for step in events if isinstance(step, Step))  # there is such a block here


def test_mdlm_owt_is_in_the_catalog_and_bd3lm_models_lists_it(capsys, tmp_path: Path, monkeypatch) -> None:
    [entry] = [e for e in CATALOG if e.repo_id == "kuleshov-group/mdlm-owt"]
    assert entry.block_size == 1024 and "MDLM" in entry.description
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path))
    assert main(["models"]) == 0
    assert "kuleshov-group/mdlm-owt " in capsys.readouterr().out


def test_an_mdlm_in_the_hugging_face_cache_is_found_and_loads(hf_cache, bd3lm_home, mdlm_folder: Path) -> None:
    files = {name: (mdlm_folder / name).read_bytes() for name in ("config.json", "model.safetensors", "tokenizer.json")}
    snapshot = hf_cache.add("kuleshov-group/mdlm-owt", files)
    assert find_model("kuleshov-group/mdlm-owt") == snapshot
    loaded = load_model("kuleshov-group/mdlm-owt", device="cpu")
    assert loaded.config.is_mdlm and loaded.path == snapshot
