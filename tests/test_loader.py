"""Loading: published layouts load unchanged; anything else gets one clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bd3lm_core import BD3LMError, load_model, load_network
from bd3lm_core.devices import resolve_device, resolve_dtype
from model_factory import make_model_folder

FIXTURE = Path(__file__).parent / "fixtures" / "parity-bs4" / "checkpoint"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "model")


def test_a_model_folder_loads_with_its_tokenizer(folder: Path) -> None:
    loaded = load_model(folder, device="cpu")
    assert loaded.config.mask_id == loaded.tokenizer.size
    assert loaded.tokenizer.bos_id == loaded.tokenizer.eos_id == loaded.tokenizer.inner.token_to_id("<|endoftext|>")
    assert loaded.name == "model" and loaded.device.type == "cpu" and loaded.dtype == torch.float32


def test_published_extras_are_tolerated_and_defaults_applied() -> None:
    raw = json.loads((FIXTURE / "config.json").read_text())
    assert "adaln" not in raw and "auto_map" in raw  # the published key set
    model = load_network(FIXTURE)
    assert model.config.adaln is True and model.config.causal is False
    assert "backbone.rotary_emb.inv_freq" in load_file(str(FIXTURE / "model.safetensors"))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BD3LMError, match="neither a model folder nor a hub repo id"):
        load_model(tmp_path / "nope" / "deeper")


def test_corrupt_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BD3LMError, match="not a readable safetensors file"):
        load_model(folder)


def test_config_without_a_required_key(folder: Path) -> None:
    raw = json.loads((folder / "config.json").read_text())
    del raw["hidden_dim"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(BD3LMError, match="lacks the key.*hidden_dim"):
        load_model(folder)


def test_config_that_is_not_json(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")
    with pytest.raises(BD3LMError, match="not valid JSON"):
        load_model(folder)


def test_wrong_and_missing_tensors_are_listed(folder: Path) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["backbone.blocks.0.norm1.weight"]
    tensors["backbone.blocks.1.attn_out.weight"] = torch.zeros(3, 3)
    tensors["backbone.extra.weight"] = torch.zeros(1)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(BD3LMError) as err:
        load_model(folder)
    message = str(err.value)
    assert "missing: backbone.blocks.0.norm1.weight" in message
    assert "unexpected: backbone.extra.weight" in message
    assert "backbone.blocks.1.attn_out.weight (3, 3)" in message
    assert "\n" not in message


def test_vocab_mismatch(folder: Path, tmp_path: Path) -> None:
    other = make_model_folder(tmp_path / "other", vocab=280)
    shutil.copy(other / "tokenizer.json", folder / "tokenizer.json")
    with pytest.raises(BD3LMError, match="the tokenizer has 280 ids but the model expects 300"):
        load_model(folder)


def test_auto_precision_is_float32_on_the_cpu_and_float16_on_mps() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error() -> None:
    with pytest.raises(BD3LMError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weights_in_any_float_precision_load_and_float64_is_cast(folder: Path, dtype: torch.dtype) -> None:
    full = load_network(folder).state_dict()
    tensors = {name: t.to(dtype) for name, t in load_file(str(folder / "model.safetensors")).items()}
    save_file(tensors, str(folder / "model.safetensors"))
    model = load_network(folder)
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32, name
        assert torch.equal(value, full[name].to(dtype).float()), name


def test_loading_a_repo_id_downloads_it_with_progress_and_can_be_cancelled(hub_as_default, bd3lm_home) -> None:
    """A load that has to download reports progress, and a cancel stops it, keeping the partial file."""
    import threading

    from bd3lm_core import DownloadCancelled, installed_models

    repo = "test-org/tiny-bd3lm"
    hub_as_default.chunk_delay = 0.05  # the weights take over a second: the cancel lands mid-file
    cancel = threading.Event()
    seen = []

    def on_progress(p) -> None:
        seen.append(p)
        if p.filename == "model.safetensors" and p.downloaded > len(hub_as_default.repos[repo]["config.json"]):
            cancel.set()

    with pytest.raises(DownloadCancelled):
        load_model(repo, device="cpu", progress=on_progress, cancel=cancel)
    assert seen and installed_models() == []
    hub_as_default.chunk_delay = 0.0
    loaded = load_model(repo, device="cpu")  # continues, then loads
    assert loaded.name == repo and [m.repo_id for m in installed_models()] == [repo]
