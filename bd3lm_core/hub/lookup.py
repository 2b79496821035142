"""Where a repo id's model is: the one place that owns the lookup order.

Our models folder first (a download wins), then the Hugging Face cache (used in place, read one repo at a time),
and only then the hub. The list of installed models follows the same order, so a model listed is the one loaded.
GPT-2's tokenizer, which the published checkpoints lack, is taken from the cache, else from our copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from . import hf_cache
from .download import download_gpt2_tokenizer, download_model
from .layout import InstalledModel
from .store import downloaded_models, is_installed, model_folder


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


def installed_models() -> list[InstalledModel]:
    """Our complete downloads and the Hugging Face cache's checkpoints, sorted by repo id; where both hold a repo,
    ours is listed, as `locate` loads it."""
    models = hf_cache.scan().models | {m.repo_id: m for m in downloaded_models()}
    return [models[repo_id] for repo_id in sorted(models)]


def gpt2_tokenizer(endpoint: str | None = None) -> Path:
    """GPT-2's tokenizer.json: the Hugging Face cache's, else our copy (downloaded once, then offline)."""
    return hf_cache.gpt2_tokenizer_in_cache() or download_gpt2_tokenizer(endpoint)
