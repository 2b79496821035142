"""Chat model folders with random weights in the published layout (dLLM A2D / SDAR), of any shape.

The tokenizer is the shared fixtures' (GPT-2's BPE plus <|im_start|>,
<|im_end|> and <|mask|>, with a ChatML template). Weights are written one
tensor at a time into bfloat16 shards named by model.safetensors.index.json
(or one model.safetensors), so a Qwen3-0.6B-shaped folder is made without
holding the model in memory (benchmarks/chat_memory.py uses that).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from bd3lm_core.model.decoder import Decoder
from bd3lm_core.model.hf_layout import decoder_config

SHARED_BACKBONES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "backbones"
TOKENIZER_FROM = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"
MASK_ID = 50259  # <|mask|> in that tokenizer
STOP_IDS = [50258, 50256]  # <|im_end|>, <|endoftext|>


def make_backbone_folder(
    folder: Path,
    model_type: str = "a2d-llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    head_dim: int | None = None,
    vocab: int = 50260,
    tie: bool = False,
    shards: int = 1,
    mask_in_config: bool = True,
    seed: int = 0,
    extra: dict | None = None,
) -> Path:
    """Write a random chat model folder; `shards` > 1 splits the weights across files named by an index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Random"], "model_type": model_type, "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": head_dim or hidden // heads, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
        "tie_word_embeddings": tie, "max_position_embeddings": 4096, "rope_scaling": None, "torch_dtype": "bfloat16",
        "eos_token_id": STOP_IDS[0], "attention_bias": model_type == "a2d-qwen2",
    }
    if mask_in_config:
        config["mask_token_id"] = MASK_ID
    with torch.device("meta"):  # the shapes, before `extra` (which may ask for what the loader refuses)
        shapes = {n: tuple(t.shape) for n, t in Decoder(decoder_config(config, MASK_ID)).state_dict().items()}
    config.update(extra or {})
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": STOP_IDS}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_FROM / name, folder / name)
    _write_weights(folder, shapes, shards, seed)
    return folder


def _write_weights(folder: Path, shapes: dict[str, tuple[int, ...]], shards: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    names = sorted(shapes)
    groups = [names[i::shards] for i in range(shards)]
    weight_map = {}
    for i, group in enumerate(groups):
        file = "model.safetensors" if shards == 1 else f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for name in group:
            if name.endswith("norm.weight"):
                t = 1.0 + 0.1 * torch.randn(shapes[name], generator=generator)
            else:
                t = 0.05 * torch.randn(shapes[name], generator=generator)
            tensors[name] = t.to(torch.bfloat16)
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in group})
        del tensors
    if shards > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
