"""The one way to get a model: `load_model(source, device, dtype)`.

`source` is a folder in the published layout (`config.json`,
`model.safetensors`, optionally `tokenizer.json`), a Hugging Face repo id
(taken from our models folder, else from the Hugging Face cache in place,
else downloaded once), or None for the model shipped with the project. The
CLI, the app and the trainer all come through here.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import checks, hub
from .devices import (
    MAX_THREADS, PRECISION_NAMES, MemoryFit, WeightCount, choose_precision, choose_threads, memory_fit, resolve_device, resolve_dtype,
)
from .errors import BD3LMError
from .model.checkpoints import build_network, read_header
from .model.config import BD3LMConfig, read_config_json
from .model import hf_layout
from .model.kernels import (int8_cache_dtype, pack_linear_layers, packing_available, quantize_linear_layers,
                            use_sampling_kernels)
from .model.denoiser import Denoiser
from .model.network import BD3LM
from .model.tokenizer import Tokenizer
from .resources import DEFAULT_MODEL, default_model_dir

if TYPE_CHECKING:
    from .model.chat_template import ChatTemplate
    from .model.decoder import DecoderConfig
    from .sampling.settings import SamplerSettings

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    model: Denoiser  # a BD3LM (DiT) or, for chat models, a Decoder
    tokenizer: Tokenizer
    config: BD3LMConfig | DecoderConfig  # both name the default block size and the context (model_length)
    name: str  # what to show the user: the repo id, or the folder's name
    path: Path
    device: torch.device
    dtype: torch.dtype  # torch.qint8 for the int8 precision (see devices.DTYPES)
    threads: int | None = None  # CPU threads torch uses for it; None on a GPU
    family: str = "bd3lm"  # config.json's model_type: bd3lm, mdlm, a2d-qwen3, a2d-qwen2, a2d-llama or sdar
    stop_ids: tuple[int, ...] = ()  # generation stops at any of these; () means the tokenizer's EOS
    chat_template: ChatTemplate | None = None  # chat models only
    add_bos: bool = True  # BD3-LMs start from BOS; chat models take their tokenizer's own encoding
    sampler_defaults: dict[str, object] = field(default_factory=dict)  # the authors' settings (hub/catalog.py)

    def __post_init__(self) -> None:
        if not self.stop_ids:
            self.stop_ids = (self.tokenizer.eos_id,)

    def require_dit(self, what: str) -> None:
        """Refuse a chat model for what only BD3-LMs and MDLMs do (training, evaluation, conversion)."""
        if not isinstance(self.model, BD3LM):
            raise BD3LMError(f"{self.name} is a chat model ({self.family}); {what} works on BD3-LM and MDLM checkpoints only.")

    def default_settings(self, **values: object) -> SamplerSettings:
        """SamplerSettings with this model's authors' defaults, then `values` (the user's choices) over them."""
        from .sampling.settings import SamplerSettings  # here: sampling builds on this module

        return SamplerSettings(**{**self.sampler_defaults, **values})

    @property
    def placement(self) -> tuple[str, str]:
        """Device and precision as the user names them: ("cuda", "bfloat16")."""
        return str(self.device), PRECISION_NAMES[self.dtype]


def load_network(folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> BD3LM:
    """The network of a published-layout folder, weights checked and loaded, in eval mode (`dtype` qint8: int8 linears)."""
    folder = Path(folder)
    config = BD3LMConfig.load(folder / "config.json")
    model = build_network(config, folder / "model.safetensors")
    int8 = dtype == torch.qint8
    model = model.to(device=device, dtype=torch.float32 if int8 else dtype).eval()
    if int8:
        quantize_linear_layers(model)
        model.cache_precision = int8_cache_dtype()
    elif torch.device(device).type == "cpu":
        if dtype == torch.float32 and packing_available():
            pack_linear_layers(model.layers)
        use_sampling_kernels(model, column_major=("output_layer.linear",))
    return model


def find_tokenizer(folder: Path) -> Tokenizer:
    """The folder's own tokenizer.json, else GPT-2's (what the published checkpoints use):
    from the Hugging Face cache, else our copy, downloaded once."""
    own = Path(folder) / "tokenizer.json"
    if own.exists():  # a folder, a pipe or a device there is refused by Tokenizer.load, not passed over
        return Tokenizer.load(own)
    try:
        return Tokenizer.load(hub.gpt2_tokenizer())
    except BD3LMError as err:
        raise BD3LMError(
            f"{folder} has no tokenizer.json and GPT-2's could not be fetched ({err}). "
            "Copy the model's tokenizer.json into the folder."
        ) from None


def resolve_source(
    source: str | Path | None, progress: Callable | None = None, cancel: threading.Event | None = None,
) -> tuple[Path, str]:
    """(folder, display name) for a folder, a repo id or None (the default model).

    A repo id goes to `hub.locate`: our models folder, then the Hugging Face cache, and a download only if in
    neither (`progress` hears of the download, `cancel` stops it).
    """
    if source is None:
        folder = default_model_dir()
        if not (folder / "config.json").is_file():
            raise BD3LMError(
                f"the default model ({DEFAULT_MODEL}) is not installed; pass --model with a folder or a hub repo id."
            )
        return folder, DEFAULT_MODEL
    path = Path(source).expanduser()
    if path.is_dir():
        return path, path.name
    text = str(source)
    if REPO_ID.match(text) and not path.exists():
        return hub.locate(text, progress=progress, cancel=cancel), text
    raise BD3LMError(f"{source} is neither a model folder nor a hub repo id (like kuleshov-group/bd3lm-owt-block_size4).")


def chat_parameters(
    source: str | Path | None, catalog: Sequence[hub.CatalogEntry] = hub.CATALOG,
) -> WeightCount | None:
    """The parameters of a chat model, known without loading or downloading it: from a folder's headers,
    a catalog entry, or the installed copy of a repo id. None for BD3-LMs and MDLMs (no precision question there)."""
    if source is None:
        return None
    path, text = Path(source).expanduser(), str(source)
    if not path.is_dir():
        entry = next((e for e in catalog if e.repo_id == text), None)
        if entry is not None:
            return entry.parameters
        if not REPO_ID.match(text):
            return None
        path = hub.locate(text, download=False)
        if path is None:
            return None
    if not hf_layout.is_chat_layout(read_config_json(path / "config.json")):
        return None
    return hf_layout.folder_weight_count(path)


def memory_fit_for(
    source: str | Path | None, device: str = "auto", dtype: str = "auto",
    catalog: Sequence[hub.CatalogEntry] = hub.CATALOG,
) -> MemoryFit | None:
    """How a chat model would fit, loaded with these choices: the loader's own numbers (devices.memory_fit), asked
    before a download or a load starts. None when the size is no question (BD3-LMs) or not known."""
    parameters = chat_parameters(source, catalog)
    return None if parameters is None else memory_fit(dtype, resolve_device(device), parameters)


def load_model(
    source: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    progress: Callable | None = None,
    threads: int | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """Load a model ready for sampling.

    A repo id that is not installed yet is downloaded first: `progress`
    receives its `DownloadProgress`, and setting `cancel` stops the download
    (raising `DownloadCancelled`; the partial file stays for the next try).
    On the CPU it also sets torch's thread count: `threads`, or one chosen for the model's size.
    """
    if threads is not None:
        checks.whole(threads, "the number of threads", 1, MAX_THREADS)
    folder, name = resolve_source(source, progress, cancel)
    torch_device = resolve_device(device)
    if hf_layout.is_chat_layout(read_config_json(folder / "config.json")):
        return load_chat_model(folder, name, torch_device, dtype, threads)
    torch_dtype = resolve_dtype(dtype, torch_device)
    model = load_network(folder, torch_device, torch_dtype)
    tokenizer = find_tokenizer(folder)
    config = model.config
    if tokenizer.size != config.mask_id:
        raise BD3LMError(
            f"{folder}: the tokenizer has {tokenizer.size} ids but the model expects {config.mask_id} "
            f"(vocab_size {config.vocab_size} minus the mask token); use the tokenizer.json made for this model."
        )
    used = None
    if torch_device.type == "cpu":
        # counted from the file: int8 linear layers no longer hold their weights as parameters
        weights = sum(math.prod(shape) for _, shape in read_header(folder / "model.safetensors").values())
        used = threads or choose_threads(weights)
        torch.set_num_threads(used)
    return LoadedModel(model, tokenizer, config, name, folder, torch_device, torch_dtype, used, family=config.model_type)


def load_chat_model(folder: Path, name: str, device: torch.device, dtype: str, threads: int | None) -> LoadedModel:
    """A Qwen/Llama-backbone chat model (model/hf_layout.py) in the precision `dtype` names, or the best that fits."""
    from .hub.catalog import chat_defaults

    chat = hf_layout.read_folder(folder)
    count = hf_layout.weight_count(chat)
    torch_dtype = choose_precision(dtype, device, count)
    model = hf_layout.build_decoder(chat, device, torch_dtype)
    used = None
    if device.type == "cpu":
        used = threads or choose_threads(count.linear + count.other)
        torch.set_num_threads(used)
    defaults = chat_defaults(chat.config.model_type)
    return LoadedModel(
        model, chat.tokenizer, chat.config, name, folder, device, torch_dtype, used, family=chat.config.model_type,
        stop_ids=chat.stop_ids, chat_template=chat.chat_template, add_bos=False,
        sampler_defaults=dict(defaults.settings) if defaults else {},
    )
