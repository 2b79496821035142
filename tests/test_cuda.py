"""The GPU path, on a machine with CUDA (skipped elsewhere; benchmarks/gpu_check.sh runs these on a lent GPU).

The model, the KV cache, the random streams and the draws all live on the
device: the logits of a step never come back to the host, only its tokens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bd3lm_core import Finished, SamplerSettings, generate, load_model, load_network
from bd3lm_core.sampling import draws
from model_factory import make_model_folder
from test_parity import cached_block_logits, fixture_folders

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("folder", fixture_folders(), ids=lambda p: p.name)
def test_logits_match_the_authors_on_the_gpu(folder: Path) -> None:
    from safetensors.torch import load_file

    model = load_network(folder / "checkpoint", device="cuda")
    expected = load_file(str(folder / "expected.safetensors"))
    xt, x0 = expected["xt"].cuda(), expected["x0"].cuda()
    with torch.no_grad():
        train = model.forward_train(xt, x0).cpu()
        cached = cached_block_logits(model, xt, x0).cpu()
    assert (train - expected["train_logits"]).abs().max() <= 1e-3  # TF32 matmuls may be on
    assert (cached - expected["cached_logits"]).abs().max() <= 1e-3


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_sampling_on_the_gpu_keeps_logits_on_the_device(tmp_path: Path, monkeypatch, dtype: str) -> None:
    loaded = load_model(make_model_folder(tmp_path, block_size=4, model_length=32), device="cuda", dtype=dtype)
    seen = []
    real = draws.draft_tokens

    def watched(logits, *args, **kwargs):
        seen.append(logits.device.type)
        return real(logits, *args, **kwargs)

    monkeypatch.setattr("bd3lm_core.sampling.loop.draft_tokens", watched)
    events = list(generate(loaded, "A cat", SamplerSettings(tokens=50, seed=1, stop_at_eos=False), num_samples=3))
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 3 and all(len(f.token_ids) == 50 for f in finished)
    assert all(loaded.config.mask_id not in f.token_ids for f in finished)
    assert seen and set(seen) == {"cuda"}
    assert loaded.placement == ("cuda", dtype)


def test_auto_precision_is_bfloat16_on_a_cuda_card_that_has_it(tmp_path: Path) -> None:
    loaded = load_model(make_model_folder(tmp_path), device="cuda")
    assert loaded.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    assert loaded.threads is None


def test_training_on_the_gpu_in_bfloat16_autocast_learns_and_keeps_float32_weights(tmp_path: Path) -> None:
    from bd3lm_core.training import Trainer, nelbo
    from bd3lm_core.training.group import Group
    from model_factory import toy_settings

    trainer = Trainer(toy_settings(tmp_path), report=lambda _: None, group=Group(device=torch.device("cuda")))
    before = nelbo(trainer.model, trainer.held_rows, samples=2).nelbo_per_token
    trainer.run()
    after = nelbo(trainer.ema, trainer.held_rows, samples=2).nelbo_per_token
    assert after < 0.8 * before
    assert {p.device.type for p in trainer.model.parameters()} == {"cuda"}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}  # autocast computes in bf16, stores fp32
    reloaded = load_network(Path(trainer.settings.out))  # the run folder is a model, as on the CPU
    assert all(torch.equal(a, b.cpu()) for a, b in zip(reloaded.state_dict().values(), trainer.ema.state_dict().values()))


# bfloat16 keeps 8 significant bits: every rounding is up to 2**-8 = 0.4% of the value, and a logit is the end of
# a few layers of matmuls, norms and softmaxes, each rounding its inputs and outputs. On these random-weight
# fixtures that is a few percent of the logits' range; 3% of the largest |logit| allows for it and still fails
# on a wrong wiring (a missing adaLN shift or a swapped head moves logits by the whole range).
BF16_TOLERANCE = 0.03


@pytest.mark.parametrize("folder", fixture_folders(), ids=lambda p: p.name)
def test_logits_in_bfloat16_on_the_gpu_are_the_authors_within_bfloat16s_precision(folder: Path) -> None:
    from safetensors.torch import load_file

    model = load_network(folder / "checkpoint", device="cuda", dtype=torch.bfloat16)
    expected = load_file(str(folder / "expected.safetensors"))
    xt, x0 = expected["xt"].cuda(), expected["x0"].cuda()
    with torch.no_grad():
        train = model.forward_train(xt, x0).float().cpu()
        cached = cached_block_logits(model, xt, x0).float().cpu()
    scale = expected["train_logits"].abs().max()
    assert (train - expected["train_logits"]).abs().max() <= BF16_TOLERANCE * scale
    assert (cached - expected["cached_logits"]).abs().max() <= BF16_TOLERANCE * scale


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_one_ddpm_step_on_the_gpu_has_the_analytic_distribution(tmp_path: Path, top_p: float) -> None:
    from test_sampler import check_one_ddpm_step

    check_one_ddpm_step(tmp_path, top_p, "cuda")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL refuses two ranks on one GPU ('Duplicate GPU detected')")
def test_two_processes_train_on_cuda_with_nccl(tmp_path: Path) -> None:
    """torchrun's way: two ranks, each on the GPU of its LOCAL_RANK, gradients summed by NCCL."""
    from model_factory import toy_settings
    from test_group_training import assert_statuses, run_group

    ended = run_group(toy_settings(tmp_path, batch_size=4, steps=4, eval_every=2, dropout=0.0), "--device", "cuda")
    assert_statuses(ended, [0, 0])
    assert "saved to" in ended[0][1]
    reloaded = load_network(Path(toy_settings(tmp_path).out), device="cuda")
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())
