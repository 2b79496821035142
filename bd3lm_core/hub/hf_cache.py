"""Checkpoints the user already holds in the Hugging Face cache, used where they are.

Anyone who ran the authors' `from_pretrained("kuleshov-group/bd3lm-owt-block_size4")`
has the checkpoint in `$HF_HUB_CACHE` (by default `$HF_HOME/hub`), as
`models--ORG--NAME/snapshots/COMMIT/` with `refs/main` naming the commit.
We look up one repo at a time, in the layout huggingface_hub writes, and
load the snapshot folder in place: nothing is copied, and nothing here
writes to or deletes from that cache, which every Hugging Face tool on the
machine shares. Every file's type and size is checked before it is read (a
ref is 40 hex characters, nothing else), so a FIFO, a link to /dev/zero, a
looping link or bytes that are not text in one repo cost that repo a note
and never hang or break the lookup of another.

Which snapshot: the one `refs/main` points to; offline (HF_HUB_OFFLINE), the
newest complete one when that one is not. A snapshot without config.json and
model.safetensors (an interrupted download), or a repo with a damaged ref or
a link to a missing blob, is skipped with a one-line note and never loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from ..errors import BD3LMError
from ..files import read_limited
from ..model.config import MAX_CONFIG_BYTES, missing_keys
from ..model.hf_layout import is_chat_layout
from .layout import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, InstalledModel, has_weights

GPT2_REPOS = ("openai-community/gpt2", "gpt2")  # the GPT-2 tokenizer's repo, under its new and its old name
_COMMIT = re.compile(r"[0-9a-f]{40}")
_MAX_REF_BYTES = 41  # a commit hash, and a newline someone's editor may have added

log = logging.getLogger(__name__)


class _Damaged(Exception):
    """A part of one repo's cache folder that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class CacheScan:
    """The BD3-LM checkpoints in the Hugging Face cache."""

    models: dict[str, InstalledModel]  # repo id -> the snapshot to load
    skipped: dict[str, str]  # repo id -> a one-line note saying why none of its snapshots is used


def scan() -> CacheScan:
    """Every BD3-LM checkpoint in the cache, each at the snapshot `find_model` would load; one note per bad repo."""
    try:
        names = sorted(os.listdir(constants.HF_HUB_CACHE))  # read now: tests and users may move the cache
    except OSError:  # no cache yet, or a file where it should be
        return CacheScan({}, {})
    models: dict[str, InstalledModel] = {}
    skipped: dict[str, str] = {}
    for name in names:
        parts = name.removeprefix("models--").split("--")
        if not name.startswith("models--") or len(parts) not in (1, 2):  # repo ids never contain "--"
            continue
        repo_id = "/".join(parts)
        model, note = look_up(repo_id)
        if model is not None:
            models[repo_id] = model
        elif note is not None:
            skipped[repo_id] = note
    return CacheScan(models, skipped)


def find_model(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` to load in place, or None; a skipped one is logged in one line."""
    model, note = look_up(repo_id)
    if note is not None:
        log.warning("note: %s", note)
    return model.path if model is not None else None


def look_up(repo_id: str) -> tuple[InstalledModel | None, str | None]:
    """`repo_id`'s BD3-LM snapshot in the cache, or None and a one-line note when it is there but unusable."""
    folder = _repo_folder(repo_id)
    try:
        return _chosen(repo_id, folder), None
    except _Damaged as err:
        return None, f"skipped {repo_id} in the Hugging Face cache, which is damaged: {err}"
    except _Incomplete:
        where = "a complete snapshot" if constants.is_offline_mode() else "a complete snapshot at refs/main"
        return None, (f"skipped {repo_id} in the Hugging Face cache ({folder}): "
                      f"it has no {where} ({CONFIG_FILE} and {WEIGHTS_FILE})")


def gpt2_tokenizer_in_cache() -> Path | None:
    """GPT-2's tokenizer.json from the cache (at `refs/main`), or None when it is not there."""
    for repo_id in GPT2_REPOS:
        folder = _repo_folder(repo_id)
        try:
            commit = _ref(folder)
            path = _file(folder / "snapshots" / commit, TOKENIZER_FILE) if commit is not None else None
        except _Damaged:
            continue
        if path is not None:
            return path
    return None


class _Incomplete(Exception):
    """A BD3-LM repo in the cache without a snapshot to load (an interrupted download)."""


def _repo_folder(repo_id: str) -> Path:
    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def _chosen(repo_id: str, folder: Path) -> InstalledModel | None:
    """The `refs/main` snapshot if complete; offline, else the newest complete one; None if not a BD3-LM repo."""
    revisions = _revisions(folder)
    if not any(_is_bd3lm_config(r / CONFIG_FILE) for r in revisions):
        return None  # not here, or another kind of model: not ours to list or to note
    main = _ref(folder)
    snapshot = folder / "snapshots" / main if main is not None else None
    if snapshot not in revisions or not _is_complete(snapshot):
        complete = [r for r in revisions if _is_complete(r)] if constants.is_offline_mode() else []
        if not complete:
            raise _Incomplete()
        snapshot = max(complete, key=lambda r: (r / WEIGHTS_FILE).stat().st_mtime)
    size = sum(path.stat().st_size for path in map(snapshot.joinpath, os.listdir(snapshot)) if _is_plain(path))
    return InstalledModel(repo_id, snapshot, size, in_hf_cache=True)


def _revisions(folder: Path) -> list[Path]:
    """The snapshot folders of a repo (named by a commit, real folders, not links)."""
    try:
        names = os.listdir(folder / "snapshots")
    except OSError:
        return []
    return [folder / "snapshots" / n for n in sorted(names)
            if _COMMIT.fullmatch(n) and stat.S_ISDIR((folder / "snapshots" / n).lstat().st_mode)]


def _ref(folder: Path, name: str = "main") -> str | None:
    """The commit `refs/<name>` names, checked before it is read: a plain file of 40 hex characters."""
    path = folder / "refs" / name
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _Damaged(f"{path} cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_REF_BYTES:
        raise _Damaged(f"{path} is not a commit hash (a link, a pipe, a device or a large file)")
    try:
        text = read_limited(path, _MAX_REF_BYTES, "ref").decode("ascii").strip()
    except (OSError, BD3LMError, UnicodeDecodeError):
        text = ""
    if not _COMMIT.fullmatch(text):
        raise _Damaged(f"{path} does not hold a commit hash (40 hex characters)")
    return text


def _file(snapshot: Path, name: str) -> Path | None:
    """snapshot/name if it leads to a plain file; None if absent; _Damaged if its link is broken or loops."""
    path = snapshot / name
    try:
        path.lstat()
    except FileNotFoundError:
        return None
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _Damaged(f"{path} is a broken symlink (its blob is missing)") from None
    except OSError as err:  # ELOOP: a link that loops
        raise _Damaged(f"{path} cannot be followed ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _Damaged(f"{path} is not a plain file")
    return path


def _is_plain(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _is_complete(snapshot: Path) -> bool:
    """config.json and the weights: one model.safetensors, or a chat model's shards (layout.has_weights)."""
    return _file(snapshot, CONFIG_FILE) is not None and (_file(snapshot, WEIGHTS_FILE) is not None or has_weights(snapshot))


def _is_bd3lm_config(path: Path) -> bool:
    """Whether `path` is a BD3-LM, MDLM or block diffusion chat model's config.json (the cache holds every other kind too)."""
    try:
        raw = json.loads(read_limited(path, MAX_CONFIG_BYTES, "config.json"))
    except (OSError, ValueError, RecursionError, BD3LMError):  # a pipe there would otherwise hang `bd3lm models`
        return False
    return isinstance(raw, dict) and (not missing_keys(raw) or is_chat_layout(raw))
