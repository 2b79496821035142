"""The local model store: where downloaded models live, which are complete, and removing them.

A downloaded model is a plain model folder, `models_dir()/<org>--<name>/`,
holding config.json, model.safetensors and tokenizer.json. Every file
appears there only once it is complete and matches the hub's hash (see
`download.py`), so a folder with all three is an installed model; the
download writes VERIFIED_MARKER last. Folders downloaded before files were
verified have no marker: they still count as installed (they load and list
as before) and are verified by the next download that reaches the hub.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..errors import BD3LMError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)
VERIFIED_MARKER = ".bd3lm-verified.json"  # the commit and the hashes every file of the folder matched
GPT2_FOLDER = "gpt2-tokenizer"  # GPT-2's tokenizer.json, shared by the published models (not a model itself)


@dataclass(frozen=True)
class InstalledModel:
    repo_id: str
    path: Path
    size_bytes: int


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


def installed_models() -> list[InstalledModel]:
    """Complete downloads; partial ones and the shared GPT-2 tokenizer folder are not models."""
    root = models_dir()
    if not root.is_dir():
        return []
    return [
        # Hub ids cannot contain "--", so the folder name maps back to exactly one id.
        InstalledModel(folder.name.replace("--", "/"), folder, sum((folder / n).stat().st_size for n in MODEL_FILES))
        for folder in sorted(root.iterdir())
        if _is_complete(folder)
    ]


def remove_model(repo_id: str) -> None:
    """Delete a downloaded model; a partial download can be removed too, to reclaim its space."""
    folder = model_folder(repo_id)
    if not folder.is_dir():
        raise BD3LMError(f"{repo_id} is not downloaded; run `bd3lm models` to see the installed models.")
    try:
        shutil.rmtree(folder)
    except OSError as err:
        raise BD3LMError(
            f"could not delete {folder} ({err.strerror}); close programs using it and try again."
        ) from None


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MODEL_FILES)
