"""Where a repo id's model is: the one place that owns the lookup order.

Our models folder first (a download wins), then the Hugging Face cache (used in place, read one repo at a time),
and only then the hub. GPT-2's tokenizer, which the published checkpoints lack, is found the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from . import hf_cache
from .download import download_gpt2_tokenizer, download_model
from .store import is_installed, model_folder


def locate(
    repo_id: str, *, download: bool = True, progress: Callable | None = None, cancel: threading.Event | None = None,
) -> Path | None:
    """The folder to load `repo_id` from: ours, else the Hugging Face cache's snapshot, else (with `download`) a
    fresh download (`progress` hears of it, `cancel` stops it). Without `download`, None when it is in neither."""
    if is_installed(repo_id):
        return model_folder(repo_id)
    cached = hf_cache.find_model(repo_id)
    if cached is not None or not download:
        return cached
    return download_model(repo_id, progress=progress, cancel=cancel)


def gpt2_tokenizer(endpoint: str | None = None) -> Path:
    """GPT-2's tokenizer.json: the Hugging Face cache's, else our copy (downloaded once, then offline)."""
    return hf_cache.gpt2_tokenizer_in_cache() or download_gpt2_tokenizer(endpoint)
