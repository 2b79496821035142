"""Our GPT-2 against Hugging Face `transformers`' numbers, and its checks on config and weights.

Parity runs every folder with the gpt2-judge layout (see
/work/shared/fixtures/README.md): the shared fixtures next to the checkout,
tests/fixtures/ (gpt2-judge-small, small enough for git) and every folder in
the colon-separated BD3LM_JUDGE_FIXTURES. Each is its own test, named after
its folder. `transformers` is needed only to make a fixture, never here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bd3lm_core import BD3LMError, load_judge
from bd3lm_core.quality.gpt2 import load_gpt2

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "fixtures"  # /work/shared/fixtures from /work/main or /work/wt-*
SMALL = HERE / "fixtures" / "gpt2-judge-small"


def judge_fixtures() -> list[Path]:
    """Folders holding an expected.json beside a checkpoint, and every folder the environment names."""
    found = [
        folder for root in (SHARED, HERE / "fixtures") if root.is_dir()
        for folder in sorted(root.iterdir()) if (folder / "expected.json").is_file() and (folder / "checkpoint").is_dir()
    ]
    listed = [Path(entry) for entry in os.environ.get("BD3LM_JUDGE_FIXTURES", "").split(":") if entry]
    # a listed folder without the layout fails its test, saying so; one found and listed runs once
    return list({folder.resolve(): folder for folder in found + listed}.values())


@pytest.mark.parametrize("fixture", judge_fixtures(), ids=lambda folder: folder.name)
def test_gpt2_matches_transformers_logits_and_perplexity(fixture: Path) -> None:
    for name in ("checkpoint/config.json", "text.txt", "expected.json", "expected.safetensors"):
        assert (fixture / name).is_file(), f"{fixture} lacks {name}: not a gpt2-judge fixture"
    expected = json.loads((fixture / "expected.json").read_text())
    judge = load_judge(fixture / "checkpoint")
    text = (fixture / "text.txt").read_text(encoding="utf-8")
    ids = [judge.tokenizer.bos_id] + judge.tokenizer.encode(text)
    assert ids == expected["ids"]

    first_logits = load_file(str(fixture / "expected.safetensors"))["first_logits"]
    with torch.no_grad():
        logits = load_gpt2(fixture / "checkpoint")(torch.tensor([ids]))[0]
    assert (logits[: len(first_logits)] - first_logits).abs().max().item() <= 1e-4

    judgement = judge.score(text)
    assert judgement.scored_tokens == expected["scored_tokens"]
    assert judgement.gen_ppl == pytest.approx(expected["ppl"], rel=1e-6)
    assert math.log(judgement.gen_ppl) * judgement.scored_tokens == pytest.approx(expected["nll_sum"], rel=1e-6)


def test_the_small_fixture_is_found_and_is_small() -> None:
    assert SMALL in judge_fixtures()
    assert sum(f.stat().st_size for f in SMALL.rglob("*") if f.is_file()) < 500_000


@pytest.fixture
def small_copy(tmp_path: Path) -> Path:
    """A writable copy of the small fixture's checkpoint, to damage."""
    return Path(shutil.copytree(SMALL / "checkpoint", tmp_path / "gpt2"))


def reference_logits(folder: Path) -> torch.Tensor:
    with torch.no_grad():
        return load_gpt2(folder)(torch.arange(10)[None])


def rewrite_tensors(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_tensor_names_load_with_and_without_the_transformer_prefix(small_copy: Path) -> None:
    before = reference_logits(small_copy)
    rewrite_tensors(small_copy, lambda t: t.update({k.removeprefix("transformer."): t.pop(k) for k in list(t)}))
    assert torch.equal(reference_logits(small_copy), before)


def test_a_file_with_lm_head_and_causal_mask_buffers_loads_the_same(small_copy: Path) -> None:
    before = reference_logits(small_copy)

    def add_extras(tensors: dict) -> None:
        tensors["lm_head.weight"] = tensors["transformer.wte.weight"].clone()
        for i in range(2):
            tensors[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
            tensors[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)

    rewrite_tensors(small_copy, add_extras)
    assert torch.equal(reference_logits(small_copy), before)


def test_an_untied_lm_head_is_used_for_the_logits(small_copy: Path) -> None:
    config = json.loads((small_copy / "config.json").read_text())
    (small_copy / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(BD3LMError, match="missing: lm_head.weight"):
        load_gpt2(small_copy)
    rewrite_tensors(small_copy, lambda t: t.update({"lm_head.weight": torch.zeros_like(t["transformer.wte.weight"])}))
    assert torch.equal(reference_logits(small_copy), torch.zeros(1, 10, config["vocab_size"]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"), "missing: h.1.mlp.c_fc.bias"),
        (lambda t: t.update({"transformer.h.2.ln_1.weight": torch.ones(32)}), "unexpected: h.2.ln_1.weight"),
        (lambda t: t.update({"transformer.wpe.weight": torch.zeros(32, 32)}), r"wpe.weight should be \(64, 32\) by config.json but the file has \(32, 32\)"),
    ],
    ids=["missing", "unexpected", "misshaped"],
)
def test_weights_that_do_not_fit_the_config_are_named_in_one_line(small_copy: Path, change, message: str) -> None:
    rewrite_tensors(small_copy, change)
    with pytest.raises(BD3LMError, match=message) as err:
        load_gpt2(small_copy)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"n_embd": None}, "lacks the key"),
        ({"n_head": "4"}, 'n_head must be a whole number from 1 to 4096, not "4"'),
        ({"n_head": 5}, "does not split into 5 heads"),
        ({"activation_function": "relu"}, 'activation_function "relu" is not supported'),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx = true is not supported"),
        # issue 21: sizes that would allocate without end, and values of the wrong type
        ({"n_positions": 10**10}, "n_positions must be a whole number from 2 to 1048576"),
        ({"n_embd": 2**20}, "n_embd must be a whole number from 1 to 65536"),
        ({"n_layer": 10**7}, "n_layer must be a whole number from 1 to 1024"),
        ({"n_layer": 1000}, "n_layer 1000 but the file has 2 layers"),
        ({"n_positions": 1}, "n_positions must be a whole number from 2"),
        ({"n_positions": 4096}, r"wpe.weight should be \(4096, 32\)"),
        ({"layer_norm_epsilon": "1e-5"}, 'layer_norm_epsilon must be a finite number in \\(0, 1\\), not "1e-5"'),
        ({"tie_word_embeddings": "false"}, 'tie_word_embeddings must be true or false, not "false"'),
        ({"n_head": 10**4000}, "n_head must be a whole number from 1 to 4096, not a number of about"),
    ],
    ids=["no-width", "string-heads", "uneven-heads", "relu", "scaled-by-layer", "positions-10**10", "width-2**20",
         "layers-10**7", "layers-1000", "positions-1", "positions-not-the-file's", "string-epsilon",
         "string-false", "4000-digit-heads"],
)
def test_a_config_this_gpt2_cannot_run_is_refused_in_one_line(small_copy: Path, edit: dict, message: str) -> None:
    config = json.loads((small_copy / "config.json").read_text())
    config.update(edit)
    config = {k: v for k, v in config.items() if v is not None}
    (small_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BD3LMError, match=message) as err:
        load_judge(small_copy)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update({k: v.to(torch.int8) for k, v in t.items()}), "as I8, not a float"),
    (lambda t: t["transformer.h.0.mlp.c_fc.weight"].__setitem__((0, 0), float("nan")), "holds NaN or infinite values"),
], ids=["int8", "nan"])
def test_weights_that_are_not_finite_floats_are_refused_in_one_line(small_copy: Path, change, message: str) -> None:
    rewrite_tensors(small_copy, change)
    with pytest.raises(BD3LMError, match=message) as err:
        load_judge(small_copy)
    assert "\n" not in str(err.value)


def test_weights_so_large_the_perplexity_overflows_are_refused_not_printed_as_infinity(small_copy: Path) -> None:
    rewrite_tensors(small_copy, lambda t: t["transformer.ln_f.weight"].mul_(1e6))  # logits of ~1e6: NLLs far past 700
    with pytest.raises(BD3LMError, match="which no trained judge gives; its weights are damaged"):
        load_judge(small_copy).score("Once upon a time there was a cat.")
