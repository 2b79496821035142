"""The published BD3-LM checkpoints and their MDLM baseline, so users can pick one without knowing repo ids.

All five are the same network (about 170M parameters, 12 layers, hidden 768,
GPT-2 tokenizer) trained on OpenWebText; the BD3-LMs differ only in block
size. MDLM (Sahoo et al., 2024) is the masked diffusion model the BD3-LM
paper compares with: one block over the whole context, no KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    repo_id: str
    block_size: int
    size_bytes: int  # download size, approximate (see _APPROX_SIZE)
    description: str


# model.safetensors holds ~170M float32 parameters (~680 MB); config.json and
# the GPT-2 tokenizer.json add ~1.4 MB. Approximate: for showing sizes and
# checking free disk space before asking the hub, not for verifying files.
_APPROX_SIZE = 681_400_000

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "kuleshov-group/bd3lm-owt-block_size4", 4, _APPROX_SIZE,
        "4 tokens per block; the best perplexity of the published models.",
    ),
    CatalogEntry(
        "kuleshov-group/bd3lm-owt-block_size8", 8, _APPROX_SIZE,
        "8 tokens per block.",
    ),
    CatalogEntry(
        "kuleshov-group/bd3lm-owt-block_size16", 16, _APPROX_SIZE,
        "16 tokens per block: more tokens decoded in parallel, somewhat higher perplexity.",
    ),
    CatalogEntry(
        "kuleshov-group/bd3lm-owt-block_size1024-pretrain", 1024, _APPROX_SIZE,
        "MDLM-style pretrain (the whole context is one block); the others are fine-tuned from it.",
    ),
    CatalogEntry(
        "kuleshov-group/mdlm-owt", 1024, _APPROX_SIZE,
        "MDLM, the paper's baseline: writes 1024 tokens at once, longer texts 512 new tokens per window.",
    ),
)

