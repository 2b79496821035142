"""A Qwen3-0.6B-shaped block diffusion checkpoint with random weights, in dLLM's published A2D layout.

    python benchmarks/chat_checkpoint.py [--layers N] [--out FOLDER]

The shape is Qwen3-0.6B's, which dLLM's `dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1`
keeps: hidden 1024, 28 layers, 16 query / 8 key-value heads of 128, SwiGLU
3072, 151,936 ids, tied embeddings, rope_theta 1e6, q/k RMSNorm. The folder
holds what that repository holds: `config.json` (model_type `a2d-qwen3`,
`mask_token_id`), `model.safetensors` (bfloat16, transformers' tensor names,
no `lm_head.weight` since it is tied), `generation_config.json`,
`tokenizer.json` and `tokenizer_config.json`.

The real Qwen tokenizer cannot be downloaded here, so the tokenizer is the
shared backbone fixtures' one (GPT-2's byte-level BPE plus `<|im_start|>`,
`<|im_end|>`, `<|mask|>`, ids below 50,260, a ChatML template). The network
still has all 151,936 output rows; the benchmarks feed it random ordinary
token ids, which is all random weights need.

Made once per shape into ~/.cache/bd3lm-bench/ (outside git; 1.2 GB for
the full shape) and reused; `--layers` makes a shallower one for smoke runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_TOKENIZER = ROOT.parent / "shared" / "fixtures" / "backbones" / "a2d-qwen3-bs4" / "checkpoint"
CACHE = Path(os.environ.get("BD3LM_BENCH_CACHE", Path.home() / ".cache" / "bd3lm-bench"))

QWEN3_0_6B = {  # Qwen3-0.6B's config.json fields, as dLLM's A2D conversion keeps them
    "architectures": ["A2DQwen3LMHeadModel"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "model_type": "a2d-qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.57.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
# The fixture tokenizer's special ids (tokenizer.json's added tokens)
PAD_ID, IM_END_ID, MASK_ID = 50256, 50258, 50259
ORDINARY_IDS = 50256  # ids 0 .. 50255 are GPT-2's ordinary tokens: what random prompts draw from


def linear_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """[out, in] of every linear of one decoder layer, by transformers' name."""
    hidden, inter, head = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * head, config["num_key_value_heads"] * head
    return {
        "self_attn.q_proj": (q, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
        "self_attn.o_proj": (hidden, q),
        "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter),
    }


def config_for(layers: int, **shape: int) -> dict:
    """Qwen3-0.6B's config with `layers` layers; `shape` overrides other sizes (the tests make tiny ones)."""
    config = dict(QWEN3_0_6B, **shape, num_hidden_layers=layers, layer_types=["full_attention"] * layers,
                  mask_token_id=MASK_ID, pad_token_id=PAD_ID, eos_token_id=IM_END_ID)
    return dict(sorted(config.items()))


def random_weights(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """bfloat16 tensors under transformers' names: normal(0, 0.02) matrices, unit norms."""
    generator = torch.Generator().manual_seed(seed)

    def matrix(rows: int, cols: int) -> torch.Tensor:
        return (torch.randn(rows, cols, generator=generator) * config["initializer_range"]).to(torch.bfloat16)

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, dtype=torch.bfloat16)

    hidden = config["hidden_size"]
    weights = {"model.embed_tokens.weight": matrix(config["vocab_size"], hidden), "model.norm.weight": ones(hidden)}
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        for name, shape in linear_shapes(config).items():
            weights[prefix + name + ".weight"] = matrix(*shape)
        weights[prefix + "self_attn.q_norm.weight"] = ones(config["head_dim"])
        weights[prefix + "self_attn.k_norm.weight"] = ones(config["head_dim"])
        weights[prefix + "input_layernorm.weight"] = ones(hidden)
        weights[prefix + "post_attention_layernorm.weight"] = ones(hidden)
    return weights


def make_chat_checkpoint(folder: Path, layers: int = QWEN3_0_6B["num_hidden_layers"], **shape: int) -> Path:
    """Write the checkpoint into `folder` (created; written to a temporary name first, so a crash leaves nothing)."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = config_for(layers, **shape)
    (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"eos_token_id": [IM_END_ID, PAD_ID], "pad_token_id": PAD_ID}
    (partial / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(FIXTURE_TOKENIZER / name, partial / name)
    save_file(random_weights(config), str(partial / "model.safetensors"), metadata={"format": "pt"})
    partial.rename(folder)
    return folder


def cached_checkpoint(layers: int = QWEN3_0_6B["num_hidden_layers"]) -> Path:
    """The checkpoint of this depth under the cache folder, made on first use."""
    folder = CACHE / f"a2d-qwen3-0.6b-shape-{layers}-layers"
    if not (folder / "model.safetensors").is_file():
        if not (FIXTURE_TOKENIZER / "tokenizer.json").is_file():
            raise SystemExit(f"the tokenizer comes from {FIXTURE_TOKENIZER}, which is missing: "
                             "run from a checkout with ../shared beside it")
        make_chat_checkpoint(folder, layers)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=QWEN3_0_6B["num_hidden_layers"])
    parser.add_argument("--out", type=Path, help="write here instead of the cache (must not exist)")
    args = parser.parse_args()
    if args.out:
        if args.out.exists():
            raise SystemExit(f"--out {args.out}: already exists; give a new folder")
        print(make_chat_checkpoint(args.out, args.layers))
    else:
        print(cached_checkpoint(args.layers))


if __name__ == "__main__":
    main()
