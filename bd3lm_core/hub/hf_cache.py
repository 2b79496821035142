"""Checkpoints the user already holds in the Hugging Face cache, used where they are.

Anyone who ran the authors' `from_pretrained("kuleshov-group/bd3lm-owt-block_size4")`
has the checkpoint in `$HF_HUB_CACHE` (by default `$HF_HOME/hub`), as
`models--ORG--NAME/snapshots/COMMIT/` with `refs/main` naming the commit.
We find it with huggingface_hub's own cache functions, never by building
paths, and load the snapshot folder in place: nothing is copied, and nothing
here writes to or deletes from that cache, which every Hugging Face tool on
the machine shares.

Which snapshot: the one `refs/main` points to; offline (HF_HUB_OFFLINE), the
newest complete one when that one is not. A snapshot without config.json and
model.safetensors (an interrupted download), or a repo with a link to a
missing blob, is skipped with a one-line note and never loaded.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, scan_cache_dir, try_to_load_from_cache
from huggingface_hub.errors import CacheNotFound, CorruptedCacheException
from huggingface_hub.utils import CachedRepoInfo, CachedRevisionInfo

from ..errors import BD3LMError
from ..files import read_limited
from ..model.config import MAX_CONFIG_BYTES, missing_keys
from ..model.hf_layout import is_chat_layout
from .store import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, InstalledModel, has_weights

GPT2_REPOS = ("openai-community/gpt2", "gpt2")  # the GPT-2 tokenizer's repo, under its new and its old name
_MODEL_FOLDER = re.compile(r"models--([\w.-]+)")  # the cache's folder of a model repo, in a scanner warning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheScan:
    """The BD3-LM checkpoints in the Hugging Face cache."""

    models: dict[str, InstalledModel]  # repo id -> the snapshot to load
    skipped: dict[str, str]  # repo id -> a one-line note saying why none of its snapshots is used


def scan() -> CacheScan:
    """Every BD3-LM checkpoint in the cache, each at the snapshot `find_model` would load."""
    try:
        info = scan_cache_dir(constants.HF_HUB_CACHE)  # read now: tests and users may move the cache
    except (CacheNotFound, ValueError):  # no cache yet, or a file where it should be
        return CacheScan({}, {})
    models: dict[str, InstalledModel] = {}
    skipped: dict[str, str] = {}
    for repo in info.repos:
        configs = (r.snapshot_path / CONFIG_FILE for r in repo.revisions)
        if repo.repo_type != "model" or not any(_is_bd3lm_config(path) for path in configs):
            continue  # another kind of model: not ours to list or to note
        chosen = _choose(repo)
        if chosen is None:
            skipped[repo.repo_id] = _incomplete_note(repo)
        else:
            models[repo.repo_id] = InstalledModel(
                repo.repo_id, chosen.snapshot_path, chosen.size_on_disk, in_hf_cache=True
            )
    for warning in info.warnings:
        repo_id = _damaged_repo(warning)
        if repo_id is not None:
            skipped[repo_id] = f"skipped {repo_id} in the Hugging Face cache, which is damaged: {warning}"
    return CacheScan(models, skipped)


def find_model(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` to load in place, or None; a skipped one is logged in one line."""
    found = scan()
    if repo_id in found.skipped:
        log.warning("note: %s", found.skipped[repo_id])
    model = found.models.get(repo_id)
    return model.path if model is not None else None


def gpt2_tokenizer() -> Path | None:
    """GPT-2's tokenizer.json from the cache (at `refs/main`), or None when it is not there."""
    for repo_id in GPT2_REPOS:
        path = try_to_load_from_cache(repo_id, TOKENIZER_FILE, cache_dir=constants.HF_HUB_CACHE)
        if isinstance(path, str):  # not None, nor the marker of a file known to be absent
            return Path(path)
    return None


def _choose(repo: CachedRepoInfo) -> CachedRevisionInfo | None:
    """The `refs/main` snapshot if complete; offline, else the newest complete one."""
    main = repo.refs.get("main")
    if main is not None and _is_complete(main):
        return main
    if not constants.is_offline_mode():
        return None
    complete = [r for r in repo.revisions if _is_complete(r)]
    return max(complete, key=lambda r: r.last_modified) if complete else None


def _is_complete(revision: CachedRevisionInfo) -> bool:
    return (revision.snapshot_path / CONFIG_FILE).is_file() and has_weights(revision.snapshot_path)


def _is_bd3lm_config(path: Path) -> bool:
    """Whether `path` is a BD3-LM, MDLM or block diffusion chat model's config.json (the cache holds every other kind too)."""
    try:
        raw = json.loads(read_limited(path, MAX_CONFIG_BYTES, "config.json"))
    except (OSError, ValueError, RecursionError, BD3LMError):  # a pipe there would otherwise hang `bd3lm models`
        return False
    return isinstance(raw, dict) and (not missing_keys(raw) or is_chat_layout(raw))


def _incomplete_note(repo: CachedRepoInfo) -> str:
    where = "a complete snapshot" if constants.is_offline_mode() else "a complete snapshot at refs/main"
    return (
        f"skipped {repo.repo_id} in the Hugging Face cache ({repo.repo_path}): "
        f"it has no {where} ({CONFIG_FILE} and {WEIGHTS_FILE})"
    )


def _damaged_repo(warning: CorruptedCacheException) -> str | None:
    """The BD3-LM repo a scanner warning is about (every warning names a path in the repo's folder), else None.

    The scanner drops a repo with any broken link as a whole, so its config is read where
    huggingface_hub itself would: at `refs/main`.
    """
    folders = _MODEL_FOLDER.findall(str(warning))
    parts = folders[-1].split("--") if folders else []
    if len(parts) not in (1, 2):  # repo ids never contain "--": `name` or `org/name`
        return None
    repo_id = "/".join(parts)
    config = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=constants.HF_HUB_CACHE)
    return repo_id if isinstance(config, str) and _is_bd3lm_config(Path(config)) else None
