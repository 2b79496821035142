"""Models from the Hugging Face hub: the catalog of published checkpoints, the local store, downloads,
and the checkpoints already in the Hugging Face cache (`hf_cache`); `locate` says which of those a repo id
loads from."""

from . import hf_cache
from .catalog import CATALOG, CatalogEntry
from .download import DownloadCancelled, DownloadProgress, download_model
from .layout import InstalledModel
from .lookup import gpt2_tokenizer, installed_models, locate
from .store import is_installed, model_folder, models_dir, partial_bytes, remove_model

__all__ = [
    "CATALOG", "CatalogEntry", "DownloadCancelled", "DownloadProgress", "download_model", "gpt2_tokenizer", "locate",
    "InstalledModel", "hf_cache", "installed_models", "is_installed", "model_folder", "models_dir", "partial_bytes",
    "remove_model",
]
