"""`load_judge`: a judge from a folder or hub repo id, or the default judge for a model.

The default follows the model's tokenizer (compared by content, wherever
the file lives): models with the shipped model's tokenizer are judged by the
shipped judge (`resources/models/<DEFAULT_JUDGE>`, a block-size-1 BD3-LM
trained on the same text); models with GPT-2's tokenizer, the published
BD3-LMs among them, by GPT-2 Large as in the paper, downloaded once like any
model. Other models have no default: the user names a judge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from .. import hub
from ..devices import resolve_device
from ..errors import BD3LMError
from ..loader import LoadedModel, find_tokenizer, load_model, resolve_source
from ..model.config import BD3LMConfig, read_config_json
from ..model.tokenizer import Tokenizer
from ..resources import DEFAULT_JUDGE, default_judge_dir
from .gpt2 import load_gpt2
from .judge import Judge, bd3lm_scorer, gpt2_scorer

GPT2_JUDGE = "openai-community/gpt2-large"  # the paper's judge, for models with GPT-2's tokenizer
GPT2_VOCAB = 50257  # ids in GPT-2's tokenizer: only a tokenizer of this size is compared with it


def load_judge(
    source: str | Path | None = None,
    model: LoadedModel | None = None,
    device: str = "cpu",
    progress: Callable | None = None,
    cancel: threading.Event | None = None,
) -> Judge:
    """A judge (in float32) from a folder or hub repo id; None picks the default judge for `model`.

    `progress` receives download progress when the judge comes from the hub,
    and setting `cancel` stops that download (raising `DownloadCancelled`).
    """
    folder, name = resolve_source(default_judge(model) if source is None else source, progress, cancel)
    config_path = folder / "config.json"
    raw = read_config_json(config_path)
    if raw.get("model_type") == "gpt2":
        return _gpt2_judge(folder, name, device)
    if raw.get("model_type", "bd3lm") != "bd3lm":
        raise BD3LMError(f"{name} is a {raw['model_type']} model; a judge is a GPT-2 or a BD3-LM with block size 1.")
    config = BD3LMConfig.from_dict(raw, where=str(config_path))
    if config.block_size != 1:
        raise BD3LMError(
            f"{name} has block size {config.block_size}, so it cannot judge; a judge is autoregressive: "
            "a GPT-2 (model_type gpt2) or a BD3-LM with block size 1."
        )
    loaded = load_model(folder, device=device, dtype="float32")
    return Judge(name, loaded.tokenizer, config.model_length, bd3lm_scorer(loaded.model))


def _gpt2_judge(folder: Path, name: str, device: str) -> Judge:
    network = load_gpt2(folder, resolve_device(device))
    tokenizer = find_tokenizer(folder)
    if tokenizer.size > network.config.vocab_size:
        raise BD3LMError(
            f"{folder}: the tokenizer has {tokenizer.size} ids but the model only {network.config.vocab_size}; "
            "use the tokenizer.json made for this model."
        )
    return Judge(name, tokenizer, network.config.n_positions, gpt2_scorer(network))


def default_judge(model: LoadedModel | None) -> Path | str:
    """The shipped judge's folder or GPT-2 Large's repo id, by `model`'s tokenizer; None means the shipped judge."""
    shipped = default_judge_dir()
    if model is None or _same_tokenizer(model.tokenizer, shipped / "tokenizer.json"):
        if not (shipped / "config.json").is_file():
            raise BD3LMError(
                f"the shipped judge ({DEFAULT_JUDGE}) is not installed; pass --judge with a judge folder or hub repo id."
            )
        return shipped
    tokenizer = model.tokenizer
    if tokenizer.size == GPT2_VOCAB and tokenizer.same_as(Tokenizer.load(hub.gpt2_tokenizer())):
        return GPT2_JUDGE
    raise BD3LMError(
        f"there is no default judge for {model.name}: its tokenizer is neither the shipped model's nor GPT-2's; "
        "pass --judge with an autoregressive model (a GPT-2, or a BD3-LM with block size 1)."
    )


def _same_tokenizer(tokenizer: Tokenizer, path: Path) -> bool:
    return path.is_file() and tokenizer.same_as(Tokenizer.load(path))
