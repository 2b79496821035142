"""Our network computes the authors' logits, and both of its forwards agree.

Every parity fixture folder (a `fixture.json`, a checkpoint in the published
layout and the logits the authors' code computed for it) is checked: those
under tests/fixtures/, those in the project's shared fixtures folder beside
the checkout when there is one, and those listed in the colon-separated
BD3LM_PARITY_FIXTURES.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bd3lm_core import load_network
from bd3lm_core.model.kernels import FewRowsLinear, PackedLinear, packing_available
from bd3lm_core.model.network import BD3LM
from bd3lm_core.sampling.context import CachedContext
from model_factory import make_model_folder

TOLERANCE = 1e-4


SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def fixture_folders() -> list[Path]:
    """Every parity fixture, once by name (our own copy first)."""
    roots = [Path(__file__).parent / "fixtures", SHARED]
    found = [p for root in roots if root.is_dir() for p in sorted(root.iterdir()) if (p / "fixture.json").is_file()]
    found += [Path(p) for p in os.environ.get("BD3LM_PARITY_FIXTURES", "").split(":") if p]
    unique: dict[str, Path] = {}
    for folder in found:
        unique.setdefault(folder.name, folder)
    return list(unique.values())


def cached_block_logits(model: BD3LM, xt: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Logits of each noisy block of `xt`, computed the sampling way: clean earlier blocks in a KV cache."""
    block = model.config.block_size
    out = []
    for row_t, row_0 in zip(xt, x0):
        context = CachedContext(model, block)
        logits = []
        for start in range(0, xt.shape[1], block):
            rows = torch.arange(block)
            logits.append(context.logits(row_t[None, start : start + block], rows)[0])
            context.commit(row_0[None, start : start + block])
        out.append(torch.cat(logits))
    return torch.stack(out)


def test_the_adaln_off_fixture_is_among_them() -> None:
    assert {"parity-bs4", "parity-noadaln-bs4"} <= {p.name for p in fixture_folders()}


@pytest.mark.parametrize("folder", fixture_folders(), ids=lambda p: p.name)
def test_logits_match_the_authors(folder: Path) -> None:
    model = load_network(folder / "checkpoint")
    if packing_available():  # what a CPU sampling run computes with on an x86 machine
        assert isinstance(model.layers[0].attn_qkv, PackedLinear) and isinstance(model.layers[0].mlp[2], PackedLinear)
    expected = load_file(str(folder / "expected.safetensors"))
    with torch.no_grad():
        train = model.forward_train(expected["xt"], expected["x0"])
        cached = cached_block_logits(model, expected["xt"], expected["x0"])
    assert (train - expected["train_logits"]).abs().max() <= TOLERANCE
    assert (cached - expected["cached_logits"]).abs().max() <= TOLERANCE


@pytest.mark.parametrize(
    "block_size, model_length, adaln",
    [(1, 16, True), (2, 16, False), (4, 16, True), (16, 16, True), (8, 32, False)],
    ids=["ar", "bs2-no-adaln", "bs4", "bs-equals-length", "bs8-no-adaln"],
)
def test_training_and_cached_forwards_agree(tmp_path: Path, block_size: int, model_length: int, adaln: bool) -> None:
    model = load_network(make_model_folder(tmp_path, block_size=block_size, model_length=model_length, adaln=adaln))
    generator = torch.Generator().manual_seed(1)
    x0 = torch.randint(0, model.config.mask_id, (2, model_length), generator=generator)
    masked = torch.rand(x0.shape, generator=generator) < 0.5
    xt = torch.where(masked, torch.full_like(x0, model.config.mask_id), x0)
    with torch.no_grad():
        train = model.forward_train(xt, x0)
        cached = cached_block_logits(model, xt, x0)
    assert train.abs().max() > 1.0  # the model is not trivially zero
    assert (train - cached).abs().max() <= TOLERANCE


@pytest.mark.parametrize("rows", [1, 3, 20])
def test_column_major_linear_gives_the_same_products(rows: int) -> None:
    torch.manual_seed(0)
    layer = FewRowsLinear.taking_over(torch.nn.Linear(24, 40))
    x = torch.randn(1, rows, 24)
    with torch.no_grad():
        expected = x @ layer.weight.T + layer.bias
        assert (layer(x) - expected).abs().max() <= 1e-5  # row-major, few-rows path
        layer.store_column_major()
        assert layer.weight.stride(0) == 1 and layer.weight.shape == (40, 24)
        got = layer(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-5


@pytest.mark.skipif(not packing_available(), reason="oneDNN's packed linear needs an x86 CPU and a torch built with oneDNN")
@pytest.mark.parametrize("rows", [0, 1, 4, 33])
def test_packed_linear_gives_the_same_products_and_gradients(rows: int) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40)
    packed = PackedLinear(linear)
    x = torch.randn(2, rows, 24, requires_grad=True)
    expected = x @ linear.weight.T + linear.bias
    with torch.no_grad():
        got = packed(x)  # oneDNN's packed product: how sampling runs
    assert got.shape == (2, rows, 40) and torch.allclose(got, expected, rtol=0, atol=1e-5)
    saved = packed.state_dict()  # what `bd3lm convert` and `--init-from` read: the plain weight, unpacked
    assert torch.equal(saved["weight"], linear.weight) and torch.equal(saved["bias"], linear.bias)
    if rows:  # with gradients on (a caller without torch.no_grad), the same product, and a gradient for the input
        (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
        tracked = packed(x)
        assert torch.allclose(tracked, expected, rtol=0, atol=1e-5)
        (grad,) = torch.autograd.grad(tracked.square().sum(), x)
        assert torch.allclose(grad, expected_grad, rtol=0, atol=1e-4)
