"""What a chat model needs in memory, known before it is downloaded or loaded: the catalog's parameter counts are
what the loader counts from files of that shape, and `memory_fit_for` says what `load_model` then does."""

from __future__ import annotations

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from backbone_factory import SHARED_BACKBONES
from bd3lm_core import CATALOG, BD3LMError, load_model, memory_fit_for
from bd3lm_core.devices import memory_needed, weight_bytes
from bd3lm_core.model import hf_layout
from bd3lm_core.model.decoder import Decoder

QWEN3 = {"model_type": "sdar", "vocab_size": 151936, "head_dim": 128, "num_key_value_heads": 8}
SHAPES = {  # config.json of each published model: hidden, MLP, layers, heads, tied embeddings
    "dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1": (1024, 3072, 28, 16, True),
    "JetLM/SDAR-1.7B-Chat": (2048, 6144, 28, 16, False),
    "JetLM/SDAR-4B-Chat": (2560, 9728, 36, 32, True),
    "JetLM/SDAR-8B-Chat": (4096, 12288, 36, 32, False),
}
FIXTURE = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"


@pytest.mark.parametrize("repo_id", SHAPES)
def test_catalog_parameter_counts_are_what_the_loader_counts_for_the_published_shape(repo_id: str) -> None:
    hidden, mlp, layers, heads, tied = SHAPES[repo_id]
    raw = {**QWEN3, "hidden_size": hidden, "intermediate_size": mlp, "num_hidden_layers": layers,
           "num_attention_heads": heads, "tie_word_embeddings": tied}
    with torch.device("meta"):  # shapes only
        state = Decoder(hf_layout.decoder_config(raw, mask_id=0)).state_dict()
    header = {name: ("BF16", tuple(t.shape)) for name, t in state.items()}
    [entry] = [e for e in CATALOG if e.repo_id == repo_id]
    assert entry.parameters == hf_layout._count(header, tied)
    assert abs(2 * (entry.parameters.linear + entry.parameters.other) - entry.size_bytes) < 0.03 * entry.size_bytes  # bfloat16 files


def test_memory_fit_for_a_folder_says_what_the_loader_then_does(monkeypatch) -> None:
    count = hf_layout.folder_weight_count(FIXTURE)
    assert count == hf_layout.weight_count(hf_layout.read_folder(FIXTURE))
    fit = memory_fit_for(str(FIXTURE), "cpu", "float32")
    assert fit.fits and fit.needed == memory_needed(count, torch.float32)

    monkeypatch.setenv("BD3LM_MEMORY_LIMIT", "10M")  # float32 (14.5 MB) no longer fits, bfloat16 (7.2 MB) does
    fit = memory_fit_for(str(FIXTURE), "cpu", "float32")
    assert (fit.fits, fit.fitting, fit.source, fit.missing) == (False, "bfloat16", "BD3LM_MEMORY_LIMIT", fit.needed - 10 * 2**20)
    with pytest.raises(BD3LMError, match="in float32 but 10.5 MB is BD3LM_MEMORY_LIMIT; use --dtype bfloat16"):
        load_model(FIXTURE, device="cpu", dtype="float32")
    assert memory_fit_for(str(FIXTURE), "cpu", "auto").precision == "bfloat16"
    assert load_model(FIXTURE, device="cpu").dtype == torch.bfloat16


def test_int8_weights_are_counted_as_loaded_the_tied_output_layers_copy_included() -> None:
    loaded = load_model(FIXTURE, device="cpu", dtype="int8")  # tied: the output layer is an int8 copy of the embedding
    floats = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    int8 = sum(m.weight().numel() for m in loaded.model.modules() if isinstance(m, DynamicLinear))
    count = hf_layout.folder_weight_count(FIXTURE)
    assert count.tied_output == loaded.model.lm_head.weight().numel() > 0
    assert floats + int8 == weight_bytes(count, torch.qint8)


def test_models_whose_size_is_no_question_have_no_fit() -> None:
    assert memory_fit_for(None) is None  # the shipped BD3-LM
    assert memory_fit_for("kuleshov-group/bd3lm-owt-block_size4") is None  # a catalog BD3-LM, not downloaded
    assert memory_fit_for("JetLM/SDAR-8B-Chat", "cpu", "int8").needed == memory_needed(CATALOG[-1].parameters, torch.qint8)
