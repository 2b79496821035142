"""The names in a model folder and what makes one complete: shared by our store, the Hugging Face cache reader
and the downloader, so none of them imports another for a file name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BD3LMError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # larger chat models: weights in shards this file names
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)
# what chat models add; each is optional (hub/download.py fetches those a repo has)
CHAT_FILES = ("tokenizer_config.json", "generation_config.json", "chat_template.jinja")
VERIFIED_MARKER = ".bd3lm-verified.json"  # the commit and the hashes every file of the folder matched
GPT2_FOLDER = ".gpt2-tokenizer"  # GPT-2's tokenizer.json for the published models; no repo id starts with "."


@dataclass(frozen=True)
class InstalledModel:
    repo_id: str
    path: Path
    size_bytes: int
    in_hf_cache: bool = False  # a snapshot in the Hugging Face cache, used in place and never deleted by us

    @property
    def where(self) -> str:
        return "in the Hugging Face cache" if self.in_hf_cache else "downloaded"


def has_weights(folder: Path) -> bool:
    """model.safetensors, or an index whose every shard is there."""
    if (folder / WEIGHTS_FILE).is_file():
        return True
    shards = shard_names(folder / WEIGHTS_INDEX)
    return bool(shards) and all((folder / name).is_file() for name in shards)


def shard_names(index: Path) -> list[str]:
    """The shard files a model.safetensors.index.json names, [] if it is missing or not a valid index."""
    from ..model.hf_layout import read_weight_map  # here: the model package is not needed to list downloads

    try:
        return sorted(set(read_weight_map(index).values())) if index.is_file() else []
    except (OSError, BD3LMError):
        return []
