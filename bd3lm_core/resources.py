"""Files shipped with the project (the default model, icons), found the same
way from a checkout and from an installed wheel.

The repository's top-level `resources/` folder is installed as the package
`bd3lm_resources` (see pyproject.toml), so `importlib.resources` finds it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "tinystories-bd3lm-bs2"
# The default judge of models with the shipped model's tokenizer: an autoregressive (block size 1) BD3-LM
# trained on the same text. Shipped as resources/models/<DEFAULT_JUDGE>, a model folder like DEFAULT_MODEL's.
DEFAULT_JUDGE = "tinystories-ar-judge"


def resource_path(*parts: str) -> Path:
    """A shipped file or folder (it may not exist; callers check)."""
    try:
        root = Path(str(resources.files("bd3lm_resources")))
    except ModuleNotFoundError:  # running from a checkout that was never installed
        root = Path(__file__).resolve().parent.parent / "resources"
    return root.joinpath(*parts)


def default_model_dir() -> Path:
    return resource_path("models", DEFAULT_MODEL)


def default_judge_dir() -> Path:
    return resource_path("models", DEFAULT_JUDGE)
