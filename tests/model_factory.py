"""Tiny BD3-LMs and MDLMs for tests: random weights, a real byte-level BPE, built in a second.

The weights are random but the output layer and adaLN are not zero, so the
text is varied (not useful) and every wire of the network matters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from bd3lm_core.model.checkpoints import save_weights
from bd3lm_core.model.config import BD3LMConfig
from bd3lm_core.model.network import BD3LM
from bd3lm_core.model.tokenizer import train_bpe

CORPUS = [
    "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.",
    "One day, a big red ball rolled into the garden. The boy ran after it and laughed.",
    "The cat sat on the mat. It was a sunny day and the birds were singing in the tree.",
] * 20


def make_model_folder(
    folder: Path,
    block_size: int = 4,
    model_length: int = 64,
    vocab: int = 300,
    hidden_dim: int = 32,
    n_layers: int = 2,
    n_heads: int = 2,
    seed: int = 0,
    adaln: bool = True,
) -> Path:
    """Write config.json, model.safetensors and tokenizer.json of a random tiny model into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe(CORPUS, vocab)
    config = BD3LMConfig(
        block_size=block_size, cond_dim=16, hidden_dim=hidden_dim, model_length=model_length,
        n_layers=n_layers, n_heads=n_heads, vocab_size=tokenizer.size + 1, adaln=adaln,
    )
    torch.manual_seed(seed)
    model = BD3LM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    config.save(folder / "config.json")
    save_weights(model, folder / "model.safetensors")
    tokenizer.save(folder / "tokenizer.json")
    return folder


def mdlm_tensor_shapes(vocab: int, hidden_dim: int, n_heads: int, n_layers: int, cond_dim: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of an MDLM checkpoint (kuleshov-group/mdlm-owt's layout) and its shape, written out by hand.

    Their model class holds the DiT as `backbone`; its layers are `blocks`,
    the adaLN layers are always there, and `rotary_emb.inv_freq` is saved.
    """
    d, head_dim = hidden_dim, hidden_dim // n_heads
    shapes = {
        "backbone.vocab_embed.embedding": (vocab, d),
        "backbone.sigma_map.mlp.0.weight": (cond_dim, 256),
        "backbone.sigma_map.mlp.0.bias": (cond_dim,),
        "backbone.sigma_map.mlp.2.weight": (cond_dim, cond_dim),
        "backbone.sigma_map.mlp.2.bias": (cond_dim,),
        "backbone.rotary_emb.inv_freq": (head_dim // 2,),
        "backbone.output_layer.norm_final.weight": (d,),
        "backbone.output_layer.linear.weight": (vocab, d),
        "backbone.output_layer.linear.bias": (vocab,),
        "backbone.output_layer.adaLN_modulation.weight": (2 * d, cond_dim),
        "backbone.output_layer.adaLN_modulation.bias": (2 * d,),
    }
    for i in range(n_layers):
        layer = f"backbone.blocks.{i}."
        shapes.update({
            layer + "norm1.weight": (d,),
            layer + "attn_qkv.weight": (3 * d, d),
            layer + "attn_out.weight": (d, d),
            layer + "norm2.weight": (d,),
            layer + "mlp.0.weight": (4 * d, d),
            layer + "mlp.0.bias": (4 * d,),
            layer + "mlp.2.weight": (d, 4 * d),
            layer + "mlp.2.bias": (d,),
            layer + "adaLN_modulation.weight": (6 * d, cond_dim),
            layer + "adaLN_modulation.bias": (6 * d,),
        })
    return shapes


def make_mdlm_folder(folder: Path, model_length: int = 16, vocab: int = 300, hidden_dim: int = 32,
                     n_heads: int = 2, n_layers: int = 2, seed: int = 0) -> Path:
    """A random tiny MDLM in the layout of kuleshov-group/mdlm-owt: its config.json key set
    (no block_size), the tensors of `mdlm_tensor_shapes`, and a tokenizer.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe(CORPUS, vocab)
    cond_dim = 16
    config = {
        "_name_or_path": "kuleshov-group/mdlm-owt",
        "architectures": ["MDLM"],
        "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig", "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
        "cond_dim": cond_dim,
        "dropout": 0.1,
        "hidden_dim": hidden_dim,
        "model_length": model_length,
        "model_type": "mdlm",
        "n_blocks": n_layers,
        "n_heads": n_heads,
        "return_dict": False,
        "time_conditioning": False,
        "torch_dtype": "float32",
        "transformers_version": "4.38.2",
        "vocab_size": tokenizer.size + 1,
    }
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        name: torch.randn(shape, generator=generator) * 0.3
        for name, shape in mdlm_tensor_shapes(tokenizer.size + 1, hidden_dim, n_heads, n_layers, cond_dim).items()
    }
    head_dim = hidden_dim // n_heads
    tensors["backbone.rotary_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save(folder / "tokenizer.json")
    return folder
