"""What issue 14 adds to loading and generating: CPU threads chosen for the model, int8 weights, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bd3lm_core import BD3LMError, load_model
from bd3lm_core.cli import main
from bd3lm_core.devices import ONE_THREAD_BELOW, TORCH_DEFAULT_THREADS, choose_threads, resolve_dtype
from bd3lm_core.sampling.context import CachedContext
from model_factory import make_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("speed") / "tiny", hidden_dim=64, n_heads=4)


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_small_models_get_one_thread_and_large_ones_torchs_default(folder: Path) -> None:
    assert choose_threads(ONE_THREAD_BELOW - 1) == 1
    assert choose_threads(ONE_THREAD_BELOW) == TORCH_DEFAULT_THREADS
    torch.set_num_threads(2)
    loaded = load_model(folder, device="cpu")
    assert loaded.threads == 1 and torch.get_num_threads() == 1
    loaded = load_model(folder, device="cpu", threads=2)
    assert loaded.threads == 2 and torch.get_num_threads() == 2
    with pytest.raises(BD3LMError, match="threads must be a whole number from 1 to 1024, not 0"):
        load_model(folder, device="cpu", threads=0)


def test_int8_keeps_the_linear_weights_in_int8_and_the_logits_close(folder: Path) -> None:
    full = load_model(folder, device="cpu", dtype="float32")
    int8 = load_model(folder, device="cpu", dtype="int8")
    assert int8.placement == ("cpu", "int8")
    quantized = [m for m in int8.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == 4 * full.config.n_layers + 1 + full.config.n_layers  # qkv, out, 2 mlp, adaLN; output
    block = torch.tensor([[full.tokenizer.bos_id, full.config.mask_id, full.config.mask_id, full.config.mask_id]])
    rows = torch.arange(4)
    a = CachedContext(full.model, 4).logits(block, rows)
    b = CachedContext(int8.model, 4).logits(block, rows)
    assert (a - b).abs().max() < 0.05 * a.abs().max()  # close, and not the same computation
    assert (a - b).abs().max() > 0


@pytest.mark.parametrize("amx", [True, False])
def test_int8_keeps_its_cache_in_bfloat16_on_a_cpu_with_amx_and_in_float32_elsewhere(folder: Path, amx: bool,
                                                                                     monkeypatch) -> None:
    from bd3lm_core.budgets import sampling_bytes
    from bd3lm_core.model import kernels

    full = load_model(folder, device="cpu", dtype="float32")
    monkeypatch.setattr(kernels, "amx_available", lambda: amx)
    int8 = load_model(folder, device="cpu", dtype="int8")
    cached = CachedContext(int8.model, 4)
    assert cached.cache.k.dtype == cached.cache.v.dtype == (torch.bfloat16 if amx else torch.float32)
    block = torch.tensor([[full.tokenizer.bos_id] + [full.config.mask_id] * 7])
    a = CachedContext(full.model, 4).logits(block, torch.arange(8))  # two blocks: the second attends over the cache
    b = cached.logits(block, torch.arange(8))
    assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05 * a.abs().max()
    logits = 4 * full.config.block_size * full.config.vocab_size  # float32 logits of one block
    cache = sampling_bytes(full, 1, 100) - logits  # float32 keys and values
    assert sampling_bytes(int8, 1, 100) - logits == (cache // 2 if amx else cache)


def test_int8_is_refused_on_a_gpu_with_what_to_use_instead() -> None:
    for device in ("cuda", "mps"):
        with pytest.raises(BD3LMError, match="int8 runs on the CPU only.*bfloat16"):
            resolve_dtype("int8", torch.device(device))


def test_num_samples_gives_each_sample_and_totals_in_json(folder: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["generate", "--model", str(folder), "--tokens", "17", "--seed", "40", "--ignore-eos", "--json"]
    assert main(args + ["--num-samples", "3"]) == 0
    batch = json.loads(capsys.readouterr().out)
    assert [s["seed"] for s in batch["samples"]] == [40, 41, 42]
    for s in batch["samples"]:
        assert main(args[:6] + [str(s["seed"])] + args[7:]) == 0  # the single run with that seed
        single = json.loads(capsys.readouterr().out)
        assert (single["token_ids"], single["stop_reason"]) == (s["token_ids"], s["stop_reason"])
    assert batch["num_samples"] == 3
    assert batch["tokens_per_second"] == pytest.approx(3 * 17 / batch["seconds"])
    assert "text" not in batch  # per sample only


def test_int8_counts_the_same_weights_when_choosing_threads(folder: Path, monkeypatch) -> None:
    import bd3lm_core.loader as loader

    seen = []
    monkeypatch.setattr(loader, "choose_threads", lambda weights: seen.append(weights) or 1)
    load_model(folder, device="cpu", dtype="float32")
    load_model(folder, device="cpu", dtype="int8")
    assert seen[0] == seen[1] > 0  # quantized layers hold no nn.Parameters, yet the model is as large
