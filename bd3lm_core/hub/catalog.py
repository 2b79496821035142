"""The published checkpoints, so users can pick one without knowing repo ids.

The paper's five are the same network (about 170M parameters, 12 layers,
hidden 768, GPT-2 tokenizer) trained on OpenWebText; the BD3-LMs differ only
in block size. MDLM (Sahoo et al., 2024) is the masked diffusion model the
BD3-LM paper compares with: one block over the whole context, no KV cache.

The chat models are Qwen3 networks turned into block diffusion models:
dLLM's A2D conversions of Qwen3-0.6B (a BD3LM and its MDLM twin) and JetLM's
SDAR chat models. Each family comes with the sampler settings its authors
use (`CHAT_DEFAULTS`, with where they come from); a folder of the same
family loaded from disk gets them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..devices import AUTO_ORDER, DTYPES, WeightCount, weight_bytes
from ..formatting import size


@dataclass(frozen=True)
class ChatDefaults:
    """Sampler settings a chat model's authors use (SamplerSettings field -> value), and where they say so."""

    settings: dict[str, object]
    source: str


CHAT_DEFAULTS = {
    # block 32 is the model's own (config default below); steps left to the block size: one token per forward
    "a2d": ChatDefaults(
        {"sampler": "low-confidence", "top_p": 1.0},
        "dLLM examples/a2d/bd3lm/chat.py: block_size 32, steps 128 for 128 tokens, low_confidence remasking",
    ),
    "sdar": ChatDefaults(
        {"sampler": "threshold", "threshold": 0.9, "temperature": 1.0, "top_p": 1.0},
        "SDAR README (generate.py): block_length 4, low_confidence_dynamic remasking, threshold 0.9, temperature 1.0",
    ),
}


def chat_defaults(model_type: str) -> ChatDefaults | None:
    """The authors' sampler settings for a chat model's config.json model_type (None for BD3-LMs)."""
    if model_type.startswith("a2d-"):
        return CHAT_DEFAULTS["a2d"]
    return CHAT_DEFAULTS.get(model_type)


@dataclass(frozen=True)
class CatalogEntry:
    repo_id: str
    block_size: int
    size_bytes: int  # download size, approximate (see _APPROX_SIZE)
    description: str
    family: str = "bd3lm"  # config.json's model_type
    # chat models: the parameters as the loader counts them from the files, so that the memory a model needs at
    # each precision is known before it is downloaded (devices.memory_fit)
    parameters: WeightCount | None = None

    @property
    def defaults(self) -> ChatDefaults | None:
        return chat_defaults(self.family)

    @property
    def memory(self) -> str:
        """The weights' size at each CPU precision: "weights 2.4 GB float32, 1.2 GB bfloat16, 1.1 GB int8"."""
        if self.parameters is None:
            return ""
        return "weights " + ", ".join(
            f"{size(weight_bytes(self.parameters, DTYPES[name]))} {name}" for name in AUTO_ORDER["cpu"]
        )


# Parameters of the Qwen3 shapes the chat models use, from each one's config.json: every layer's q, k, v, o and
# MLP projections are linear, and an untied lm_head too; the embedding and the norms are the rest; a tied output
# layer is the embedding (151,936 ids x hidden).
_QWEN3_0_6B = WeightCount(440_401_920, 155_648_000, 155_582_464)  # hidden 1024, 28 layers, tied
_QWEN3_1_7B = WeightCount(1_720_451_072, 311_288_832)  # hidden 2048, 28 layers, untied
_QWEN3_4B = WeightCount(3_633_315_840, 389_152_256, 388_956_160)  # hidden 2560, 36 layers, tied
_QWEN3_8B = WeightCount(7_568_097_280, 622_638_080)  # hidden 4096, 36 layers, untied

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
    CatalogEntry(
        "dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1", 32, 1_210_000_000,
        "chat: dLLM's Qwen3-0.6B turned into a BD3LM (block 32); a CPU writes a few tokens a second.",
        family="a2d-qwen3", parameters=_QWEN3_0_6B,
    ),
    CatalogEntry(
        "dllm-hub/Qwen3-0.6B-diffusion-mdlm-v0.1", 32, 1_210_000_000,
        "chat: the same Qwen3-0.6B trained as an MDLM (whole-sequence masking), sampled here in blocks of 32.",
        family="a2d-qwen3", parameters=_QWEN3_0_6B,
    ),
    CatalogEntry(
        "JetLM/SDAR-1.7B-Chat", 4, 4_080_000_000,
        "chat: JetLM's SDAR, Qwen3-1.7B with block-causal attention (block 4); best on a GPU.",
        family="sdar", parameters=_QWEN3_1_7B,
    ),
    CatalogEntry(
        "JetLM/SDAR-4B-Chat", 4, 8_060_000_000,
        "chat: SDAR at 4B parameters (block 4); a GPU with 10 GB, or a CPU with patience.",
        family="sdar", parameters=_QWEN3_4B,
    ),
    CatalogEntry(
        "JetLM/SDAR-8B-Chat", 4, 16_400_000_000,
        "chat: SDAR at 8B parameters (block 4); a GPU with 20 GB; on a 24 GB CPU machine bfloat16 or int8.",
        family="sdar", parameters=_QWEN3_8B,
    ),
)
