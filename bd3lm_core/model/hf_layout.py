"""Chat models in the layout their authors publish: dLLM's A2D models and JetLM's SDAR.

A folder holds:
- `config.json`: transformers' Qwen3 / Qwen2 / Llama keys, `model_type`
  `a2d-qwen3`, `a2d-qwen2`, `a2d-llama` (dLLM) or `sdar` (the Qwen3 network);
  dLLM's also name `mask_token_id`;
- `model.safetensors`, or shards listed by `model.safetensors.index.json`
  (its `weight_map`: tensor name -> shard file), in bfloat16;
- `tokenizer.json`, and `tokenizer_config.json` with the eos, pad and mask
  tokens and usually the `chat_template` (which may instead be a separate
  `chat_template.jinja`);
- `generation_config.json`, whose `eos_token_id` (an int or a list) are the
  tokens a reply stops at.

The mask id is config.json's `mask_token_id`, else the id of
tokenizer_config.json's `mask_token`. Features the decoder does not implement
(a rope scaling, mixture of experts, sliding windows) are refused in one line
naming the field.

Weights are never held twice: the network is built on the `meta` device
(nothing allocated), each part is then given memory in the target precision
and filled tensor by tensor from the files; for int8 each layer is quantized
as soon as it is filled, so a float32 copy of the whole model never exists.
"""

from __future__ import annotations

import json
import math
import os
import struct
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checks
from ..devices import WeightCount
from ..errors import BD3LMError, one_line
from ..files import read_limited
from .chat_template import ChatTemplate
from .checkpoints import WEIGHT_DTYPES, check_tensors, read_header
from .config import MAX_CONFIG_BYTES, read_config_json
from .decoder import Decoder, DecoderConfig
from .kernels import (int8_cache_dtype, int8_head, pack_linear_layers, packing_available, quantize_linear_layers,
                      use_sampling_kernels)
from .tokenizer import Tokenizer

MODEL_TYPES = ("a2d-qwen3", "a2d-qwen2", "a2d-llama", "sdar")
# the block size each family was trained with, when config.json does not say (dLLM's and SDAR's samplers' default)
DEFAULT_BLOCK = {"a2d": 32, "sdar": 4}
INDEX_FILE = "model.safetensors.index.json"
MAX_POSITIONS = 1 << 20  # a context beyond a million positions is a typo, not a model
TIED_EXTRA = {"lm_head.weight"}  # a tied checkpoint may still store the output matrix; it is the embedding


def is_chat_layout(raw: dict) -> bool:
    """Whether a config.json dict is one of the chat model families loaded here."""
    return raw.get("model_type") in MODEL_TYPES


@dataclass
class ChatFolder:
    """Everything a chat model folder says besides its weights."""

    path: Path
    config: DecoderConfig
    tokenizer: Tokenizer
    stop_ids: tuple[int, ...]
    chat_template: ChatTemplate | None
    shards: dict[str, Path]  # tensor name -> the file that holds it


def read_folder(folder: Path) -> ChatFolder:
    """Read and check a chat model folder's config, tokenizer, stop tokens, template and weight index."""
    folder = Path(folder)
    raw = read_config_json(folder / "config.json")
    tok_config = _optional_json(folder / "tokenizer_config.json")
    if not (folder / "tokenizer.json").is_file():
        raise BD3LMError(f"{folder} has no tokenizer.json; a chat model folder needs the tokenizer it was trained with.")
    stops = _configured_stop_ids(folder, raw)
    eos = _token_text(tok_config.get("eos_token")) or (stops[0] if stops else None)
    if eos is None:
        raise BD3LMError(
            f"{folder}: no eos_token_id in generation_config.json or config.json, nor an eos_token, "
            "so replies could not stop; use the checkpoint's own files."
        )
    tokenizer = Tokenizer.load(folder / "tokenizer.json", eos_token=eos)
    config = decoder_config(raw, _mask_id(raw, tok_config, tokenizer, folder), where=str(folder / "config.json"))
    if tokenizer.size > config.vocab_size:
        raise BD3LMError(
            f"{folder}: the tokenizer has {tokenizer.size} ids but the model only {config.vocab_size}; "
            "use the tokenizer.json made for this model."
        )
    stop_ids = tuple(checks.whole(i, f"{folder}: eos_token_id", 0, config.vocab_size - 1) for i in stops) or (tokenizer.eos_id,)
    return ChatFolder(folder, config, tokenizer, stop_ids, _chat_template(folder, tok_config), _shards(folder))


def decoder_config(raw: dict, mask_id: int, where: str = "config.json") -> DecoderConfig:
    """The DecoderConfig of a chat model's config.json, every value checked, unsupported features refused by name."""
    model_type = raw["model_type"]
    _refuse_unsupported(raw, where)
    needed = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [k for k in needed if k not in raw]
    if missing:
        raise BD3LMError(f"{where} lacks {', '.join(missing)}; use the config.json that came with the checkpoint.")
    n_heads = checks.whole(raw["num_attention_heads"], f"{where}: num_attention_heads", 1, 4096)
    hidden = checks.whole(raw["hidden_size"], f"{where}: hidden_size", 1, 1 << 17)
    n_kv = checks.whole(raw.get("num_key_value_heads") or n_heads, f"{where}: num_key_value_heads", 1, n_heads)
    if n_heads % n_kv:
        raise BD3LMError(f"{where}: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}.")
    head_dim = checks.whole(raw.get("head_dim") or hidden // n_heads, f"{where}: head_dim", 2, 4096)
    if head_dim % 2:
        raise BD3LMError(f"{where}: head_dim {head_dim} must be even for rotary embeddings.")
    vocab = checks.whole(raw["vocab_size"], f"{where}: vocab_size", 2, 1 << 22)
    if not 0 <= mask_id < vocab:
        raise BD3LMError(f"{where}: the mask id {mask_id} is outside the vocabulary of {vocab} ids.")
    family = "sdar" if model_type == "sdar" else "a2d"
    block = raw.get("block_size", DEFAULT_BLOCK[family])
    qwen3, qwen2 = model_type in ("a2d-qwen3", "sdar"), model_type == "a2d-qwen2"
    bias = checks.boolean(raw.get("attention_bias", False), f"{where}: attention_bias")
    return DecoderConfig(
        model_type=model_type,
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=checks.whole(raw["intermediate_size"], f"{where}: intermediate_size", 1, 1 << 19),
        n_layers=checks.whole(raw["num_hidden_layers"], f"{where}: num_hidden_layers", 1, 1024),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        rms_norm_eps=checks.number(raw.get("rms_norm_eps", 1e-6), f"{where}: rms_norm_eps", 0.0, 1.0),
        rope_theta=checks.number(raw.get("rope_theta", 10000.0), f"{where}: rope_theta", 1.0, open_low=True),
        tie_word_embeddings=checks.boolean(raw.get("tie_word_embeddings", False), f"{where}: tie_word_embeddings"),
        qk_norm=qwen3,
        qkv_bias=True if qwen2 else bias,
        o_bias=False if qwen2 else bias,
        mlp_bias=checks.boolean(raw.get("mlp_bias", False), f"{where}: mlp_bias"),
        mask_id=mask_id,
        model_length=checks.whole(
            raw.get("max_position_embeddings", 4096), f"{where}: max_position_embeddings", 1, MAX_POSITIONS
        ),
        block_size=checks.whole(block, f"{where}: block_size", 1, MAX_POSITIONS),
    )


def _refuse_unsupported(raw: dict, where: str) -> None:
    """One line naming the first field that asks for something the decoder does not do."""
    scaling = raw.get("rope_scaling")
    kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else scaling
    if scaling not in (None, {}) and kind != "default":
        raise BD3LMError(
            f"{where}: rope_scaling {one_line(json.dumps(scaling), 80)} is not implemented; only plain rotary embeddings are."
        )
    for key in ("num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size"):
        if raw.get(key):
            raise BD3LMError(f"{where}: {key} {raw[key]} means a mixture of experts, which is not supported.")
    if raw.get("use_sliding_window") or ("use_sliding_window" not in raw and raw.get("sliding_window")):
        raise BD3LMError(f"{where}: sliding_window attention is not supported (use_sliding_window / sliding_window).")
    if any(kind != "full_attention" for kind in raw.get("layer_types") or []):
        raise BD3LMError(f"{where}: layer_types has layers other than full_attention, which are not supported.")


def _mask_id(raw: dict, tok_config: dict, tokenizer: Tokenizer, folder: Path) -> int:
    if "mask_token_id" in raw and raw["mask_token_id"] is not None:
        return checks.whole(raw["mask_token_id"], f"{folder / 'config.json'}: mask_token_id", 0)
    name = _token_text(tok_config.get("mask_token"))
    found = tokenizer.inner.token_to_id(name) if name else None
    if found is None:
        where = (
            f"mask_token {name!r} is not in tokenizer.json" if name
            else "neither config.json's mask_token_id nor tokenizer_config.json's mask_token is set"
        )
        raise BD3LMError(f"{folder}: {where}, so the model's mask token is unknown; this is not a diffusion checkpoint.")
    return found


def _configured_stop_ids(folder: Path, raw: dict) -> list:
    """generation_config.json's eos_token_id (an int or a list), else config.json's; [] when neither says."""
    value = _optional_json(folder / "generation_config.json").get("eos_token_id", raw.get("eos_token_id"))
    return value if isinstance(value, list) else [] if value is None else [value]


def _chat_template(folder: Path, tok_config: dict) -> ChatTemplate | None:
    """chat_template.jinja if there is one, else tokenizer_config.json's (a string, or named templates: 'default')."""
    special = {
        "bos_token": _token_text(tok_config.get("bos_token")) or "", "eos_token": _token_text(tok_config.get("eos_token")) or "",
    }
    path = folder / "chat_template.jinja"
    if os.path.lexists(path):  # a folder, a pipe or a dangling link there is refused, not silently passed over
        try:
            text = read_limited(path, MAX_CONFIG_BYTES, "chat_template.jinja").decode("utf-8")
        except UnicodeDecodeError:
            raise BD3LMError(f"{path} is not valid UTF-8 text; download the model again.") from None
        return ChatTemplate(text, where=str(path), **special)
    source = tok_config.get("chat_template")
    if isinstance(source, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        source = next((t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None)
    if source is None:
        return None
    if not isinstance(source, str):
        raise BD3LMError(f"{folder / 'tokenizer_config.json'}: chat_template is {type(source).__name__}, "
                         "not a template's text; download the model again.")
    return ChatTemplate(source, where=f"the chat template in {folder / 'tokenizer_config.json'}", **special)


def _shards(folder: Path) -> dict[str, Path]:
    """Tensor name -> file: one model.safetensors, or the shards its index names."""
    single = folder / "model.safetensors"
    if single.is_file():
        return {name: single for name in read_header(single)}
    index = folder / INDEX_FILE
    if not index.is_file():
        raise BD3LMError(f"{folder} has neither model.safetensors nor {INDEX_FILE}; download the model again.")
    shards = {name: folder / file for name, file in read_weight_map(index).items()}
    for file in sorted(set(shards.values())):
        names = set(read_header(file))  # a missing shard is refused here, before anything is allocated
        absent = [n for n, f in shards.items() if f == file and n not in names]
        if absent:
            raise BD3LMError(f"{file} lacks {', '.join(absent[:3])}, which {INDEX_FILE} puts there; download the model again.")
    return shards


def read_weight_map(index: Path) -> dict[str, str]:
    """model.safetensors.index.json's `weight_map`: tensor name -> shard file, a plain name in the same folder."""
    weight_map = _optional_json(index).get("weight_map")
    plain = lambda v: isinstance(v, str) and "/" not in v and "\\" not in v and v not in ("", ".", "..")  # noqa: E731
    if not isinstance(weight_map, dict) or not weight_map or not all(plain(v) for v in weight_map.values()):
        raise BD3LMError(f"{index} has no valid weight_map (tensor name -> shard file in the folder); download the model again.")
    return weight_map


def weight_count(folder: ChatFolder) -> WeightCount:
    """The parameters by how each precision stores them, counted from the files' headers."""
    return _count(_header(folder.shards), folder.config.tie_word_embeddings)


def folder_weight_count(folder: Path) -> WeightCount:
    """weight_count of a chat model folder from its config.json and headers alone (no tokenizer read): what the
    app asks before a load, to say whether the model will fit."""
    raw = read_config_json(Path(folder) / "config.json")
    tied = checks.boolean(raw.get("tie_word_embeddings", False), f"{folder}: tie_word_embeddings")
    return _count(_header(_shards(Path(folder))), tied)


def _count(header: dict[str, tuple[str, tuple[int, ...]]], tied: bool) -> WeightCount:
    linear = other = 0
    for name, (_, shape) in header.items():
        if name in TIED_EXTRA and tied:
            continue
        n = math.prod(shape)
        if (name.startswith("model.layers.") and name.endswith("proj.weight")) or name == "lm_head.weight":
            linear += n
        else:
            other += n
    embedding = header.get("model.embed_tokens.weight")  # missing: refused later, when the tensors are checked
    tied_output = math.prod(embedding[1]) if tied and embedding else 0
    return WeightCount(linear, other, tied_output)


def _header(shards: dict[str, Path]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor the index places, each read from its own shard's header."""
    found = {}
    for file in sorted(set(shards.values())):
        found.update((name, info) for name, info in read_header(file).items() if shards.get(name) == file)
    return found


def build_decoder(folder: ChatFolder, device: torch.device, dtype: torch.dtype) -> Decoder:
    """The network filled from the folder's files in `dtype` (torch.qint8: int8 linear layers), never two copies."""
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = Decoder(folder.config)
    _check_tensors(folder, model)
    int8 = dtype == torch.qint8
    compute = torch.float32 if int8 else dtype
    pack = dtype == torch.float32 and device.type == "cpu" and packing_available()
    with ExitStack() as stack:
        files = {p: stack.enter_context(TensorFile(p)) for p in sorted(set(folder.shards.values()))}
        parts = [("model.embed_tokens", model.model.embed_tokens), ("model.norm", model.model.norm)]
        parts += [(f"model.layers.{i}", layer) for i, layer in enumerate(model.model.layers)]
        if not folder.config.tie_word_embeddings:
            parts.append(("lm_head", model.lm_head))
        for prefix, part in parts:
            part.to_empty(device=device).to(compute)
            for name, tensor in part.named_parameters():
                _fill(tensor, files, f"{prefix}.{name}", folder.shards)
            if int8 and prefix not in ("model.embed_tokens", "model.norm"):
                quantize_linear_layers(model, (prefix,))  # now, so a float32 copy of the whole model never exists
            if pack and prefix.startswith("model.layers."):
                pack_linear_layers(part)  # now, each layer's plain weights freed before the next layer's are read
    if int8 and folder.config.tie_word_embeddings:
        model.lm_head = int8_head(model.model.embed_tokens.weight)
    if int8:
        model.cache_precision = int8_cache_dtype()
    model.eval()
    if not int8 and device.type == "cpu":
        use_sampling_kernels(model)  # what is left: an untied output layer, or every layer where packing is not there
    return model


def _check_tensors(folder: ChatFolder, model: Decoder) -> None:
    """Every tensor the network needs is in the files, with its shape and a float dtype, before anything is allocated."""
    header = _header(folder.shards)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    optional = TIED_EXTRA if folder.config.tie_word_embeddings else set()
    check_tensors(folder.path, {name: shape for name, (_, shape) in header.items()}, expected, optional)
    wrong = [f"{name} {header[name][0]}" for name in expected if header[name][0] not in WEIGHT_DTYPES]
    if wrong:
        raise BD3LMError(f"{folder.path} stores weights that are not floats ({', '.join(wrong[:3])}); use the checkpoint's files.")


class TensorFile:
    """One tensor at a time from a safetensors file, read with plain reads.

    safetensors' own reader maps the file into memory, and every page of it it
    touches counts in the process's resident memory until the file is closed:
    loading a model would then show its weights twice. Plain reads leave the
    file's pages to the OS's cache. The header was checked by `read_header`.
    """

    DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        (length,) = struct.unpack("<Q", self.file.read(8))
        self.header = json.loads(self.file.read(length))
        self.data_start = 8 + length

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def get_tensor(self, name: str) -> torch.Tensor:
        entry = self.header[name]
        begin, end = entry["data_offsets"]
        dtype = self.DTYPES[entry["dtype"]]
        if end == begin:
            return torch.empty(entry["shape"], dtype=dtype)
        self.file.seek(self.data_start + begin)
        data = bytearray(end - begin)  # read straight into it: one copy of the tensor in memory, not two
        if self.file.readinto(data) != end - begin:
            raise BD3LMError(f"{self.path} ends inside {name}; the file is cut short. Download the model again.")
        return torch.frombuffer(data, dtype=dtype).reshape(entry["shape"])


def _fill(param: torch.Tensor, files: dict, name: str, shards: dict[str, Path]) -> None:
    """Copy one tensor from its file into `param` (cast on the way, no second full-size copy), refusing NaN/inf."""
    source = files[shards[name]].get_tensor(name)
    if not bool(torch.isfinite(source).all()):
        raise BD3LMError(f"{shards[name]}: {name} holds NaN or infinite values; the file is damaged. Download the model again.")
    with torch.no_grad():
        param.copy_(source)


def _optional_json(path: Path) -> dict:
    """A small JSON object file, or {} when it is absent; a damaged one is refused."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(read_limited(path, 8 * MAX_CONFIG_BYTES, path.name).decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise BD3LMError(f"{path} is not valid JSON ({one_line(err)}); download the model again.") from None
    if not isinstance(raw, dict):
        raise BD3LMError(f"{path} is not a JSON object; download the model again.")
    return raw


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None
