"""Tiny BD3-LMs for tests: random weights, a real byte-level BPE, built in a second.

The weights are random but the output layer and adaLN are not zero, so the
text is varied (not useful) and every wire of the network matters.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bd3lm_core.model.checkpoints import save_weights
from bd3lm_core.model.config import BD3LMConfig
from bd3lm_core.model.network import BD3LM
from bd3lm_core.model.tokenizer import train_bpe
from bd3lm_core.training import TrainSettings

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


def toy_settings(tmp_path: Path, **overrides) -> TrainSettings:
    """Settings of a training run that takes seconds: a 300-id BPE, a 2-layer model, contexts of 32."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS * 3), encoding="utf-8")
    values = dict(
        data=[str(corpus)], out=str(tmp_path / "run"), vocab_size=300, block_size=4, model_length=32,
        hidden_dim=32, n_layers=2, n_heads=2, cond_dim=16, batch_size=8, lr=3e-3, warmup=5, steps=40,
        eval_every=20, eval_rows=8, holdout_bytes=600,
    )
    values.update(overrides)
    return TrainSettings(**values)
