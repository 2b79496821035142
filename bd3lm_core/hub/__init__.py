"""Models from the Hugging Face hub: the catalog of published checkpoints, the local store, downloads."""

from .catalog import CATALOG, CatalogEntry
from .download import DownloadCancelled, DownloadProgress, download_model, gpt2_tokenizer
from .store import InstalledModel, installed_models, is_installed, model_folder, models_dir, remove_model

__all__ = [
    "CATALOG", "CatalogEntry", "DownloadCancelled", "DownloadProgress", "download_model", "gpt2_tokenizer",
    "InstalledModel", "installed_models", "is_installed", "model_folder", "models_dir", "remove_model",
]
