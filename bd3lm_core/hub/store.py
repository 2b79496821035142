"""The local model store: where downloaded models live, which are complete, and removing them.

A downloaded model is a plain model folder, `models_dir()/<org>--<name>/`,
holding config.json, model.safetensors (or shards named by
model.safetensors.index.json) and tokenizer.json, plus a chat model's
tokenizer_config.json, generation_config.json or chat_template.jinja. Every file
appears there only once it is complete and matches the hub's hash (see
`download.py`), so a folder with all three is an installed model; the
download writes VERIFIED_MARKER last. Folders downloaded before files were
verified have no marker: they still count as installed (they load and list
as before) and are verified by the next download that reaches the hub.
This module knows only our folder: checkpoints in the Hugging Face cache
(`hf_cache.py`) are installed models too, but never ours to delete, and
`lookup.py` is where the two are combined, in one order.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import platformdirs
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..errors import BD3LMError
from .layout import CONFIG_FILE, TOKENIZER_FILE, VERIFIED_MARKER, InstalledModel, has_weights

def models_dir() -> Path:
    """Where downloaded models live; BD3LM_HOME moves it (tests, portable installs)."""
    home = os.environ.get("BD3LM_HOME")
    base = Path(home).expanduser() if home else platformdirs.user_data_path("bd3lm-studio")
    return base / "models"


def model_folder(repo_id: str) -> Path:
    """The folder a hub model downloads to. Only valid hub ids are accepted, so none escapes models_dir()."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise BD3LMError(
            f"'{repo_id}' is not a hub repo id (like org/name); run `bd3lm models` to see the catalog."
        ) from None
    return models_dir() / repo_id.replace("/", "--")


def is_installed(repo_id: str) -> bool:
    return _is_complete(model_folder(repo_id))


def is_verified(repo_id: str) -> bool:
    """Installed by a download that checked every file against the hub's hashes."""
    folder = model_folder(repo_id)
    return _is_complete(folder) and (folder / VERIFIED_MARKER).is_file()


def downloaded_models() -> list[InstalledModel]:
    """The complete downloads in our folder, sorted by repo id (`lookup.installed_models` adds the cache's).

    Partial downloads and the shared GPT-2 tokenizer folder are not models.
    """
    root = models_dir()
    folders = sorted(root.iterdir()) if root.is_dir() else []
    return [
        # Hub ids cannot contain "--", so the folder name maps back to exactly one id.
        InstalledModel(folder.name.replace("--", "/"), folder, _model_bytes(folder))
        for folder in folders
        if _is_complete(folder)
    ]


def partial_bytes(repo_id: str) -> int:
    """Bytes an interrupted or cancelled download of `repo_id` left to resume from (0 when none)."""
    folder = model_folder(repo_id)
    return sum(path.stat().st_size for path in folder.glob("*.incomplete")) if folder.is_dir() else 0


def remove_model(repo_id: str) -> None:
    """Delete a downloaded model; a partial download can be removed too, to reclaim its space."""
    folder = model_folder(repo_id)
    if not folder.is_dir():
        raise BD3LMError(
            f"{repo_id} is not downloaded; run `bd3lm models` to see the installed models "
            "(those in the Hugging Face cache are removed with `hf cache rm`, never by BD3-LM Studio)."
        )
    try:
        shutil.rmtree(folder)
    except OSError as err:
        raise BD3LMError(
            f"could not delete {folder} ({err.strerror}); close programs using it and try again."
        ) from None


def _model_bytes(folder: Path) -> int:
    """The size of the model's own files (not the verification marker, locks or partial downloads)."""
    return sum(
        f.stat().st_size for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".incomplete")
    )


def _is_complete(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / TOKENIZER_FILE).is_file() and has_weights(folder)
