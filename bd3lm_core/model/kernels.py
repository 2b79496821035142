"""Matrix kernels for sampling on a CPU, applied to a loaded network from outside it.

A sampling step multiplies a handful of rows by every weight matrix. CPU BLAS
libraries handle `x @ W.T` with a tiny `x` poorly, far below the speed of
reading W, which is what bounds the step; `(W @ x.T).T` is the same product
and runs at memory speed, and one row against a column-major W is faster
still (benchmarks/README.md has the measurements, taken on an AMD EPYC; on
an Intel Xeon a plain product was faster at 4 rows, `linear_kernels.py`).
Training, and forwards of
many rows, keep PyTorch's default path. `use_sampling_kernels` (or, for the
int8 precision, `quantize_linear_layers`) is called by the loader for CPU
models, so the network file stays plain PyTorch. In float32 on an x86 CPU
the layers of both networks (the DiT's and a chat model's) take
`PackedLinear` instead (`pack_linear_layers`); the output layers keep the
kernels above. With int8 weights on a CPU with AMX the loader also keeps
the KV cache in bfloat16 (`int8_cache_dtype`).
"""

from __future__ import annotations

import platform
import warnings
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import per_channel_dynamic_qconfig


class FewRowsLinear(nn.Linear):
    """nn.Linear with the faster kernel for the few rows of a sampling step."""

    SMALL = 16  # at most this many rows take the few-rows path

    @classmethod
    def taking_over(cls, linear: nn.Linear) -> FewRowsLinear:
        """A FewRowsLinear holding `linear`'s own parameters (nothing is copied)."""
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > self.SMALL or torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        flat = x.reshape(rows, x.shape[-1])  # [rows, in]; rows may be 0 (a forward that only writes the cache)
        if self.weight.stride(0) == 1:  # column-major, see `store_column_major`
            y = F.linear(flat, self.weight, self.bias)  # one row: a fast GEMV; several: a GEMM with W.T row-major
        else:
            # both copies are a few rows; the kernel is only fast when x is row-major
            y = (self.weight @ flat.contiguous().T).T.contiguous()  # [rows, out]
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def store_column_major(self) -> None:
        """Keep the same weight (same values, same shape) in column-major memory.

        For one row MKL reads a column-major matrix faster than a row-major
        one; several rows (a batch of samples) multiply it as the row-major
        matrix W.T. So this suits a layer that sampling mostly runs on one row
        per sample: the output layer, under first-hitting and few-step DDPM.
        """
        self.weight.data = self.weight.data.T.contiguous().T


class PackedLinear(nn.Module):
    """A float32 linear layer whose weight oneDNN has laid out once, for sampling on an x86 CPU.

    A BLAS GEMM (MKL's, behind F.linear) packs the weight matrix into its
    own blocked layout at every call. For the 4 to a few hundred rows of a
    denoising step that repacking costs about as much as the multiply-adds;
    oneDNN's linear keeps the packed layout for good. Over Qwen3-0.6B's 28
    layers it takes 0.62-0.92x a plain product's time from 4 to 256 rows,
    1.2x for a single row and 1.09x for a 1,088-row prompt; a BD3-LM forward
    at block 4 takes a third less time (benchmarks/README.md).

    The packed weight is opaque. With gradients on (a caller that forgot
    `torch.no_grad`), the product is taken with the weight unpacked: slow,
    but right, and differentiable in its input. The state dict holds the
    plain weight too, so a loaded model can be saved or copied from as before.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach()))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.weight.to_dense()  # [out, in], as nn.Linear keeps it
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # oneDNN's op has no backward
            return F.linear(x, self.weight.to_dense(), self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def packing_available() -> bool:
    """Whether this torch has oneDNN's packed linear and runs on an x86 CPU (the only kind it was measured on)."""
    return (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def pack_linear_layers(part: nn.Module) -> None:
    """Turn every float32 nn.Linear under `part` into a PackedLinear, one matrix at a time (one extra at most)."""
    _swap_linears(part, lambda linear: PackedLinear(linear) if linear.weight.dtype == torch.float32 else linear)


def _swap_linears(part: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> nn.Module:
    """`part` with each plain nn.Linear in it (itself, or any under it) replaced by `make(linear)`, one at a time."""
    if type(part) is nn.Linear:
        return make(part)
    for module in list(part.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Linear:
                setattr(module, name, make(child))
    return part


def use_sampling_kernels(model: nn.Module, column_major: tuple[str, ...] = ()) -> None:
    """Give every nn.Linear of `model` the few-rows kernel, and the layers named in `column_major`
    (the output layer, say) column-major weights."""
    _swap_linears(model, FewRowsLinear.taking_over)
    for name in column_major:
        model.get_submodule(name).store_column_major()


def amx_available() -> bool:
    """Whether this CPU has AMX, Intel's matrix units for bfloat16 and int8 products (where some choices were measured)."""
    return getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def int8_cache_dtype() -> torch.dtype | None:
    """The KV cache's precision for int8 weights: bfloat16 on a CPU with AMX, else the activations' (None).

    With int8 weights, reading the cache is a quarter of a step at a
    1,000-token context; bfloat16 halves it and takes SDPA's bfloat16
    kernel, about 3x its float32 speed over a prompt on such a CPU
    (benchmarks/README.md). Without bfloat16 units the products would be
    slower, so float32 stays there.
    """
    return torch.bfloat16 if amx_available() else None


def quantize_linear_layers(model: nn.Module, parts: tuple[str, ...] = ("layers", "output_layer.linear")) -> None:
    """Keep the linear layers under `parts` in int8, one scale per output row (torch's dynamic quantization).

    A sampling forward on a CPU is bound by reading the weights; int8 reads a
    quarter of float32's bytes. Activations are quantized on the fly and the
    results come back in float32, so the rest of the network is unchanged.
    By default the DiT's layers and output layer: what every forward reads
    (the noise embedding runs once per run); a chat model's loader quantizes
    each layer as soon as it is filled.
    """
    for part in parts:
        parent, _, name = part.rpartition(".")
        setattr(model.get_submodule(parent), name, _swap_linears(model.get_submodule(part), int8_linear))


def int8_linear(linear: nn.Linear) -> nn.Module:
    """`linear` with int8 weights, one scale per output row: torch's dynamic quantization."""
    with warnings.catch_warnings():  # torch marks its eager quantization API deprecated; it is what 2.x ships
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        linear.qconfig = per_channel_dynamic_qconfig
        return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)


def int8_head(embedding: torch.Tensor) -> nn.Module:
    """An int8 output layer computing `x @ embedding.T`, for a model whose output layer is its token embedding.

    The tied output layer is the largest matrix such a model reads at every
    forward (a quarter of Qwen3-0.6B's weights); left in float32 it takes as
    long as all the int8 layers together. The embedding itself stays float32
    for its lookups, so this holds a second, int8 copy: a quarter of its size.
    """
    linear = nn.Linear(embedding.shape[1], embedding.shape[0], bias=False, device="meta")
    linear.weight = nn.Parameter(embedding.detach(), requires_grad=False)  # shared, not copied, until quantized
    return int8_linear(linear)
