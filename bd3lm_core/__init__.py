"""bd3lm_core: the block diffusion LM engine. No Qt here.

The public API, used alike by the `bd3lm` CLI and the BD3-LM Studio app:

    from bd3lm_core import load_model, generate, SamplerSettings
    loaded = load_model()                       # the shipped default model
    for event in generate(loaded, "Once upon a time", SamplerSettings(tokens=64)):
        ...                                     # Step, BlockDone, then Finished

Models: `load_model` takes a folder, a hub repo id or None (the default);
`CATALOG`, `download_model`, `installed_models` (downloads and the Hugging
Face cache's checkpoints), `partial_bytes` and `remove_model` manage
downloads; `memory_fit_for` says, before either, whether a chat model will
fit in memory at a precision. Training and evaluation live in the `training` package.

Chat models (Qwen/Llama-backbone block diffusion models, `model/decoder.py`):
`render_chat(loaded, messages)` is the prompt their chat template makes of a
conversation, and `generate_chat(loaded, messages, settings)` streams the reply
as `generate` does; `loaded.chat_template` is a `ChatTemplate` or None.

Quality: `load_judge` loads an autoregressive judge (a GPT-2 or a BD3-LM
with block size 1; by default the one for the model's tokenizer), and
`Judge.score(text)` gives a `Judgement` with the Gen PPL and the entropy.

The packages, in the order a reader meets them: `model` (the network and its
files), `sampling` (the loop, its strategies, the KV cache), `hub` (the
catalog, the local store, downloads), `training` (objective, data, loop,
likelihoods), `quality` (the judge: Gen PPL and entropy); `loader.py` joins
the first three into `load_model`.
"""

from .chat import ChatTemplate, generate_chat, render_chat
from .devices import DEVICES, DTYPES, MemoryFit
from .errors import BD3LMError
from .hub import (
    CATALOG, CatalogEntry, DownloadCancelled, DownloadProgress, InstalledModel, download_model, installed_models,
    models_dir, partial_bytes, remove_model,
)
from .loader import LoadedModel, load_model, load_network, memory_fit_for
from .quality import Judge, Judgement, load_judge
from .resources import DEFAULT_JUDGE, DEFAULT_MODEL, default_judge_dir, default_model_dir, resource_path
from .sampling import (
    SAMPLERS, SEED_LIMIT, BlockDone, Event, Finished, Reveal, SamplerSettings, Step, encode_prompt, generate,
    random_seed,
)

__all__ = [
    "CATALOG", "CatalogEntry", "DEVICES", "DTYPES", "BD3LMError", "DownloadCancelled", "DownloadProgress",
    "InstalledModel", "download_model", "installed_models", "models_dir", "remove_model", "LoadedModel",
    "load_model", "load_network", "Judge", "Judgement", "load_judge", "DEFAULT_JUDGE", "DEFAULT_MODEL",
    "default_judge_dir", "default_model_dir", "resource_path", "SAMPLERS", "SEED_LIMIT",
    "BlockDone", "Event", "Finished", "Reveal", "SamplerSettings", "Step", "encode_prompt", "generate",
    "random_seed", "partial_bytes", "ChatTemplate", "generate_chat", "render_chat", "MemoryFit", "memory_fit_for",
]
