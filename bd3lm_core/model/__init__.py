"""The network and the files that describe it: config, weights in the published layout, tokenizer, masks."""

from .config import BD3LMConfig
from .network import BD3LM

__all__ = ["BD3LMConfig", "BD3LM"]
