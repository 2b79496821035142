"""The judge: Gen PPL in windows, entropy, BD3-LM judges of block size 1, and which judge is the default."""

from __future__ import annotations

import functools
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

import bd3lm_core.hub
import bd3lm_core.hub.lookup
from bd3lm_core import BD3LMError, DEFAULT_JUDGE, load_judge, load_model
from bd3lm_core.hub import download_model, models_dir
from bd3lm_core.hub.layout import GPT2_FOLDER
from bd3lm_core.model.checkpoints import save_weights
from bd3lm_core.model.config import BD3LMConfig
from bd3lm_core.model.network import BD3LM
from bd3lm_core.quality import GPT2_JUDGE, Judge, default_judge
from bd3lm_core.quality.gpt2 import GPT2, GPT2Config
from bd3lm_core.quality.judge import bd3lm_scorer, gpt2_scorer
from bd3lm_core.quality.windows import windowed_nll
from hubserver import HubServer
from model_factory import CORPUS, make_model_folder
from tiny import tiny_tokenizer_json

SMALL_GPT2 = Path(__file__).resolve().parent / "fixtures" / "gpt2-judge-small" / "checkpoint"
LONG_TEXT = " ".join(CORPUS[:3])  # 145 tokens of the tiny models' tokenizer
STORY = CORPUS[0]  # 59 tokens: several windows of a 16-token context


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models sharing one tokenizer: autoregressive ones (context 16 and 256) and one of block size 4."""
    root = tmp_path_factory.mktemp("judges")
    return {
        "ar16": make_model_folder(root / "ar16", block_size=1, model_length=16, seed=1),
        "ar256": make_model_folder(root / "ar256", block_size=1, model_length=256, seed=2),
        "bs4": make_model_folder(root / "bs4", block_size=4, model_length=16),
    }


def window_start(i: int, context: int) -> int:
    """Where the window that scores token i starts: the first window (k * context/2) that reaches i."""
    stride = context // 2
    return max(0, math.ceil((i + 1 - context) / stride)) * stride


# --- windows ------------------------------------------------------------------
@pytest.mark.parametrize("n, context", [(5, 8), (8, 8), (9, 8), (40, 8), (41, 9), (30, 2)])
def test_windows_score_every_token_once_with_the_context_of_its_window(n: int, context: int) -> None:
    seen: list[tuple[int, int]] = []

    def context_lengths(ids: torch.Tensor) -> torch.Tensor:  # "NLL" = how many tokens precede each one in the window
        assert len(ids) <= context
        seen.append((int(ids[0]), int(ids[-1])))
        return torch.arange(1, len(ids), dtype=torch.float64)

    ids = torch.arange(n)
    got = windowed_nll(ids, context, context_lengths).tolist()
    assert got == [i - window_start(i, context) for i in range(1, n)]
    assert seen[-1][1] == n - 1 and all(b - a + 1 == context for a, b in seen[:-1])


# --- scores, against direct computations ------------------------------------------
def bd3lm_token_nll(model: BD3LM, ids: list[int], i: int, start: int) -> float:
    """-log p(ids[i] | ids[start:i]) from one training forward over that window alone, the mask left out."""
    x0 = torch.tensor([ids[start : i + 1]])
    with torch.no_grad():
        logits = model.forward_train(torch.full_like(x0, model.config.mask_id), x0)[0, -1]
    logp = torch.log_softmax(logits[: model.config.mask_id], dim=-1)
    return -float(logp[ids[i]])


def gpt2_token_nll(model: GPT2, ids: list[int], i: int, start: int) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids[start:i]]))[0, -1]
    return -float(torch.log_softmax(logits, dim=-1)[ids[i]])


def test_a_text_that_fits_is_scored_as_one_pass_of_the_whole_text(models: dict[str, Path]) -> None:
    judge = load_judge(models["ar256"])
    network = load_model(models["ar256"], device="cpu", dtype="float32").model
    ids = [judge.tokenizer.bos_id] + judge.tokenizer.encode(LONG_TEXT)
    assert len(ids) <= judge.context == 256
    x0 = torch.tensor([ids])
    with torch.no_grad():
        logits = network.forward_train(torch.full_like(x0, network.config.mask_id), x0)[0, 1:, :-1]  # mask column out
    nll = -torch.log_softmax(logits, dim=-1).gather(1, x0[0, 1:, None]).double()
    judgement = judge.score(LONG_TEXT)
    assert judgement.scored_tokens == len(ids) - 1
    assert judgement.gen_ppl == pytest.approx(math.exp(float(nll.mean())), rel=1e-5)


def test_a_bd3lm_judge_on_a_longer_text_matches_a_brute_force_score_of_each_token(models: dict[str, Path]) -> None:
    judge = load_judge(models["ar16"])
    network = load_model(models["ar16"], device="cpu", dtype="float32").model
    ids = [judge.tokenizer.bos_id] + judge.tokenizer.encode(STORY)
    assert len(ids) > 3 * judge.context
    brute = [bd3lm_token_nll(network, ids, i, window_start(i, 16)) for i in range(1, len(ids))]
    assert judge.score(STORY).gen_ppl == pytest.approx(math.exp(sum(brute) / len(brute)), rel=1e-5)


def test_a_gpt2_judge_on_a_longer_text_matches_a_brute_force_score_of_each_token() -> None:
    config = GPT2Config(vocab_size=300, n_positions=10, n_embd=16, n_layer=2, n_head=2, n_inner=64)
    torch.manual_seed(0)
    model = GPT2(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    tokenizer = load_judge(SMALL_GPT2).tokenizer
    judge = Judge("random-gpt2", tokenizer, config.n_positions, gpt2_scorer(model))
    ids = [tokenizer.bos_id] + tokenizer.encode(STORY)
    brute = [gpt2_token_nll(model, ids, i, window_start(i, 10)) for i in range(1, len(ids))]
    assert judge.score(STORY).gen_ppl == pytest.approx(math.exp(sum(brute) / len(brute)), rel=1e-5)


def test_the_mask_token_is_never_a_prediction_of_a_bd3lm_judge(models: dict[str, Path]) -> None:
    loaded = load_model(models["ar16"], device="cpu", dtype="float32")
    judge = Judge("ar16", loaded.tokenizer, loaded.config.model_length, bd3lm_scorer(loaded.model))
    before = judge.score(LONG_TEXT).gen_ppl
    mask_id = loaded.config.mask_id
    with torch.no_grad():
        loaded.model.output_layer.linear.bias[mask_id] += 50.0  # the mask would now take nearly all the mass
        x0 = torch.tensor([[loaded.tokenizer.bos_id] * 4])
        logits = loaded.model.forward_train(torch.full_like(x0, mask_id), x0)
    assert torch.softmax(logits, dim=-1)[..., mask_id].min() > 0.99
    assert judge.score(LONG_TEXT).gen_ppl == pytest.approx(before, rel=1e-5)


def test_a_prompt_is_read_but_not_scored(models: dict[str, Path]) -> None:
    judge = load_judge(models["ar256"])
    network = load_model(models["ar256"], device="cpu", dtype="float32").model
    prompt, text = "The cat sat on the mat.", " It was a sunny day."
    before = [judge.tokenizer.bos_id] + judge.tokenizer.encode(prompt)
    ids = before + judge.tokenizer.encode(text)
    expected = [bd3lm_token_nll(network, ids, i, 0) for i in range(len(before), len(ids))]
    judgement = judge.score(text, prompt=prompt)
    assert judgement.scored_tokens == len(ids) - len(before)
    assert judgement.gen_ppl == pytest.approx(math.exp(sum(expected) / len(expected)), rel=1e-5)


def test_entropy_is_of_the_samples_own_tokens_in_nats(models: dict[str, Path]) -> None:
    judge = load_judge(models["ar16"])
    given = judge.score("The cat sat.", token_ids=[5, 5, 5, 7])
    assert given.tokens == 4
    assert given.entropy == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    own = judge.tokenizer.encode(LONG_TEXT)  # without ids, the judge's tokens of the text
    counts = Counter(own).values()
    judged = judge.score(LONG_TEXT)
    assert judged.tokens == len(own) and judged.judge == "ar16"
    assert judged.entropy == pytest.approx(-sum(c / len(own) * math.log(c / len(own)) for c in counts))


def test_an_empty_text_is_refused_in_one_line(models: dict[str, Path]) -> None:
    with pytest.raises(BD3LMError, match="no text to judge") as err:
        load_judge(models["ar16"]).score("")
    assert "\n" not in str(err.value)


# --- loading and the default judge ------------------------------------------------
def test_a_model_with_blocks_longer_than_one_cannot_judge(models: dict[str, Path]) -> None:
    with pytest.raises(BD3LMError, match="bs4 has block size 4, so it cannot judge"):
        load_judge(models["bs4"])


def test_a_model_that_is_neither_gpt2_nor_bd3lm_cannot_judge(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(SMALL_GPT2, tmp_path / "llama"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(BD3LMError, match="llama is a llama model; a judge is a GPT-2 or a BD3-LM with block size 1"):
        load_judge(folder)


def test_a_gpt2_whose_tokenizer_is_larger_than_its_vocabulary_is_refused(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(SMALL_GPT2, tmp_path / "gpt2"))
    (folder / "tokenizer.json").write_text(tiny_tokenizer_json(400))
    with pytest.raises(BD3LMError, match="the tokenizer has 400 ids but the model only 300"):
        load_judge(folder)


@pytest.fixture
def shipped_judge(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped judge's folder, stood in for by the tiny autoregressive model."""
    monkeypatch.setattr("bd3lm_core.quality.loading.default_judge_dir", lambda: models["ar16"])
    return models["ar16"]


def test_without_a_model_the_default_judge_is_the_shipped_one(shipped_judge: Path) -> None:
    assert DEFAULT_JUDGE == "tinystories-ar-judge"
    judge = load_judge()
    assert judge.name == shipped_judge.name and judge.context == 16
    assert judge.score(LONG_TEXT).gen_ppl == load_judge(shipped_judge).score(LONG_TEXT).gen_ppl


def test_a_model_with_the_shipped_tokenizer_gets_the_shipped_judge_wherever_its_file_lives(
    shipped_judge: Path, models: dict[str, Path]
) -> None:
    model = load_model(models["bs4"], device="cpu")
    assert model.path != shipped_judge  # two files, one content
    assert default_judge(model) == shipped_judge
    assert load_judge(model=model).name == shipped_judge.name


def test_a_missing_shipped_judge_says_to_pass_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bd3lm_core.quality.loading.default_judge_dir", lambda: tmp_path / DEFAULT_JUDGE)
    with pytest.raises(BD3LMError, match="shipped judge .* is not installed; pass --judge"):
        load_judge()


def test_a_model_with_another_tokenizer_has_no_default_judge(shipped_judge: Path, tmp_path: Path) -> None:
    model = load_model(make_model_folder(tmp_path / "other", vocab=260), device="cpu")
    with pytest.raises(BD3LMError, match="no default judge for other.*pass --judge") as err:
        load_judge(model=model)
    assert "\n" not in str(err.value)


def gpt2_vocabulary_model(folder: Path, tokenizer_json: str) -> Path:
    """A minimal BD3-LM over a tokenizer of GPT-2's size (50,257 ids), like the published models."""
    folder.mkdir(parents=True)
    config = BD3LMConfig(block_size=4, cond_dim=8, hidden_dim=8, model_length=8, n_layers=1, n_heads=2, vocab_size=50258)
    config.save(folder / "config.json")
    save_weights(BD3LM(config), folder / "model.safetensors")
    (folder / "tokenizer.json").write_text(tokenizer_json)
    return folder


def test_a_gpt2_tokenizer_model_gets_gpt2_large_downloaded_with_progress(
    bd3lm_home: Path, online, shipped_judge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpt2_json = tiny_tokenizer_json(50257)  # stands in for GPT-2's tokenizer, here and in the store
    (models_dir() / GPT2_FOLDER).mkdir(parents=True)
    (models_dir() / GPT2_FOLDER / "tokenizer.json").write_text(gpt2_json)
    model = load_model(gpt2_vocabulary_model(tmp_path / "published", gpt2_json), device="cpu")
    assert default_judge(model) == GPT2_JUDGE == "openai-community/gpt2-large"

    files = {name: (SMALL_GPT2 / name).read_bytes() for name in ("config.json", "model.safetensors", "tokenizer.json")}
    with HubServer({GPT2_JUDGE: files}) as server:
        monkeypatch.setattr(bd3lm_core.hub.lookup, "download_model", functools.partial(download_model, endpoint=server.url))
        reports = []
        judge = load_judge(model=model, progress=reports.append)
    assert judge.name == GPT2_JUDGE and judge.context == 64
    assert reports and reports[-1].downloaded == reports[-1].total == sum(len(b) for b in files.values())
    expected = json.loads((SMALL_GPT2.parent / "expected.json").read_text())
    text = (SMALL_GPT2.parent / "text.txt").read_text()
    assert judge.score(text).gen_ppl == pytest.approx(expected["ppl"], rel=1e-6)


def test_a_tokenizer_of_gpt2s_size_that_is_not_gpt2s_has_no_default_judge(
    bd3lm_home: Path, shipped_judge: Path, tmp_path: Path
) -> None:
    (models_dir() / GPT2_FOLDER).mkdir(parents=True)
    (models_dir() / GPT2_FOLDER / "tokenizer.json").write_text(tiny_tokenizer_json(50257))
    renamed = json.loads(tiny_tokenizer_json(50257))
    vocab = renamed["model"]["vocab"]
    vocab["w1"], vocab["w2"] = vocab["w2"], vocab["w1"]
    model = load_model(gpt2_vocabulary_model(tmp_path / "lookalike", json.dumps(renamed)), device="cpu")
    with pytest.raises(BD3LMError, match="no default judge for lookalike"):
        default_judge(model)
