"""The one way to get a model: `load_model(source, device, dtype)`.

`source` is a folder in the published layout (`config.json`,
`model.safetensors`, optionally `tokenizer.json`), a Hugging Face repo id
(downloaded once, then loaded from disk), or None for the model shipped
with the project. The CLI, the app and the trainer all come through here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import hub
from .devices import resolve_device, resolve_dtype
from .errors import BD3LMError
from .model.checkpoints import load_weights
from .model.config import BD3LMConfig
from .model.kernels import use_sampling_kernels
from .model.network import BD3LM
from .model.tokenizer import Tokenizer
from .resources import DEFAULT_MODEL, default_model_dir

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    model: BD3LM
    tokenizer: Tokenizer
    config: BD3LMConfig
    name: str  # what to show the user: the repo id, or the folder's name
    path: Path
    device: torch.device
    dtype: torch.dtype

    @property
    def placement(self) -> tuple[str, str]:
        """Device and precision as the user names them: ("cuda", "bfloat16")."""
        return str(self.device), str(self.dtype).removeprefix("torch.")


def load_network(folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> BD3LM:
    """The network of a published-layout folder, weights checked and loaded, in eval mode."""
    folder = Path(folder)
    config = BD3LMConfig.load(folder / "config.json")
    model = BD3LM(config)
    load_weights(model, folder / "model.safetensors")
    model = model.to(device=device, dtype=dtype).eval()
    if torch.device(device).type == "cpu":
        use_sampling_kernels(model)
    return model


def find_tokenizer(folder: Path) -> Tokenizer:
    """The folder's own tokenizer.json, else GPT-2's (what the published checkpoints use)."""
    own = Path(folder) / "tokenizer.json"
    if own.is_file():
        return Tokenizer.load(own)
    try:
        return Tokenizer.load(hub.gpt2_tokenizer())
    except BD3LMError as err:
        raise BD3LMError(
            f"{folder} has no tokenizer.json and GPT-2's could not be fetched ({err}). "
            "Copy the model's tokenizer.json into the folder."
        ) from None


def resolve_source(
    source: str | Path | None, progress: Callable | None = None, cancel: threading.Event | None = None,
) -> tuple[Path, str]:
    """(folder, display name) for a folder, a repo id (downloading it if needed) or None (the default model)."""
    if source is None:
        folder = default_model_dir()
        if not (folder / "config.json").is_file():
            raise BD3LMError(
                f"the default model ({DEFAULT_MODEL}) is not installed; pass --model with a folder or a hub repo id."
            )
        return folder, DEFAULT_MODEL
    path = Path(source).expanduser()
    if path.is_dir():
        return path, path.name
    text = str(source)
    if REPO_ID.match(text) and not path.exists():
        return hub.download_model(text, progress=progress, cancel=cancel), text  # at once when installed
    raise BD3LMError(f"{source} is neither a model folder nor a hub repo id (like kuleshov-group/bd3lm-owt-block_size4).")


def load_model(
    source: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    progress: Callable | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """Load a model ready for sampling.

    A repo id that is not installed yet is downloaded first: `progress`
    receives its `DownloadProgress`, and setting `cancel` stops the download
    (raising `DownloadCancelled`; the partial file stays for the next try).
    """
    folder, name = resolve_source(source, progress, cancel)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    model = load_network(folder, torch_device, torch_dtype)
    tokenizer = find_tokenizer(folder)
    config = model.config
    if tokenizer.size != config.mask_id:
        raise BD3LMError(
            f"{folder}: the tokenizer has {tokenizer.size} ids but the model expects {config.mask_id} "
            f"(vocab_size {config.vocab_size} minus the mask token); use the tokenizer.json made for this model."
        )
    return LoadedModel(model, tokenizer, config, name, folder, torch_device, torch_dtype)
