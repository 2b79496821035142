"""Our sampler beside the authors' own, on the same random weights, in one run.

    python benchmarks/versus_reference.py --reference PATH [--device cpu] [--dtype float32]
        [--threads N] [--tokens 128] [--repeats 3] [--quick]

PATH is a checkout of kuleshov-group/bd3lms. Their code is imported from it
at run time and never copied here: their hydra config (`configs/`, composed
with the overrides their sampling scripts use), their `Diffusion` class from
`diffusion.py` with their Hugging Face model class (`algo.backbone=hf_dit`,
`models/hf`), and their sampling loop as `Diffusion._sample` runs it:
`_semi_ar_sampler` -> `_ddpm_caching_update` -> `_nucleus_sample`, KV cache
on, batch 1. Both samplers get the same GPT-2-small-shaped random weights
(one `model.safetensors` in the published layout) and the same settings, and
they alternate run by run, so the ratios hold on a busy machine; absolute
speeds only mean something on an idle one.

Precision. On the CPU both run in float32 (their network only runs in
float32 there: it leans on CUDA autocast to mix dtypes). On CUDA theirs runs
as their main.py runs it: float32 weights under their own autocast, their
own bfloat16 cache, nothing patched; `--dtype` then sets ours only.

Their packages (hydra-core, lightning, transformers, ...) are not ours: run
this from the separate venv that benchmarks/README.md sets up.

What is changed around their code at run time, and why none of it can slow
theirs down:
- On the CPU only: their `BD3LM.reset_kv_cache` allocates the cache with
  device='cuda', dtype=bfloat16, so their sampler cannot start without a
  GPU. On the one model instance it is replaced by a method that allocates
  the same zero tensors (same shape) on the CPU in float32, the dtype of the
  weights (a bfloat16 cache beside float32 weights fails in their attention
  output layer without CUDA autocast). Ours keeps a float32 cache too.
- `AutoModelForMaskedLM.from_pretrained`, while their `Diffusion` is built:
  transformers 5 (the line that installs beside our huggingface_hub) no
  longer loads their class, which predates its `post_init` bookkeeping. A
  stand-in builds their class from the folder's config.json and loads the
  folder's tensors with plain torch: same class, same weights. A check of
  both networks' logits on one block follows.
- `timm.scheduler` (imported by their utils.py for a training-only learning
  rate schedule) is replaced by a placeholder when timm cannot be imported:
  timm needs torchvision, whose PyPI wheels do not load beside a CPU-only
  torch. Sampling never uses it.
- Their tqdm progress bar is off (TQDM_DISABLE), which only saves them time.
Their forwards are counted by a forward pre-hook on their model (one integer
increment per call).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

os.environ.setdefault("TQDM_DISABLE", "1")  # their progress bar; tqdm reads it when first imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from sampler import GPT2_TOKENIZER, make_checkpoint, timed  # noqa: E402  (benchmarks/sampler.py; puts the repository on sys.path)

from bd3lm_core import SamplerSettings, load_model  # noqa: E402
from bd3lm_core.model.config import BD3LMConfig  # noqa: E402
from bd3lm_core.sampling.context import FullContext  # noqa: E402

SEED = 0
TOP_P = 0.9
FIRST_HITTING_T = 5000  # their sampling scripts' algo.T; first-hitting leaves a block as soon as it has no mask
RUNS = [("first-hitting", 4), ("ddpm", 4), ("first-hitting", 16), ("ddpm", 16)]  # DDPM with T = the block size


@dataclass
class Run:
    seconds: float
    forwards: int


def import_reference(path: Path) -> types.SimpleNamespace:
    """Their modules, imported from the checkout at `path`."""
    if not (path / "diffusion.py").is_file() or not (path / "configs" / "config.yaml").is_file():
        raise SystemExit(f"--reference {path}: not a checkout of kuleshov-group/bd3lms (no diffusion.py or configs/config.yaml)")
    sys.path.insert(0, str(path))
    warnings.filterwarnings("ignore", message=".*autocast")  # their CUDA autocast contexts, inert (and so reported) off CUDA
    try:
        import timm.scheduler  # noqa: F401
    except Exception:  # missing, or torchvision built for another torch: see the module docstring
        for name in [n for n in sys.modules if n.split(".")[0] in ("timm", "torchvision")]:
            del sys.modules[name]
        timm, scheduler = types.ModuleType("timm"), types.ModuleType("timm.scheduler")
        scheduler.CosineLRScheduler = type("CosineLRScheduler", (), {})
        timm.scheduler = scheduler
        sys.modules.update({"timm": timm, "timm.scheduler": scheduler})
    try:
        import dataloader
        import diffusion
        import hydra
        import main  # noqa: F401  (importing it registers the resolvers their config uses: cwd, eval, div_up, ...)
        import models.hf
        import transformers
    except ImportError as err:
        raise SystemExit(f"their code needs {err.name!r}: run this from the venv of benchmarks/README.md") from None
    transformers.logging.set_verbosity_error()  # newer transformers say, once, that their forward reads a renamed config field
    return types.SimpleNamespace(path=path, dataloader=dataloader, diffusion=diffusion, hydra=hydra, hf=models.hf,
                                 transformers=transformers)


def write_tokenizer(ref: types.SimpleNamespace, tokenizer_json: Path, folder: Path) -> None:
    """GPT-2's tokenizer as a local `transformers` folder, for their `get_tokenizer` and metrics (which would download it)."""
    eot = "<|endoftext|>"
    tokenizer = ref.transformers.PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), bos_token=eot, eos_token=eot, unk_token=eot)
    tokenizer.save_pretrained(str(folder))


def write_reference_checkpoint(ours: Path, folder: Path, block: int) -> None:
    """Our published-layout checkpoint for their HF class: the same weights, this block size (their cache uses it)."""
    folder.mkdir()
    config = BD3LMConfig.load(ours / "config.json").to_dict()
    config.update(block_size=block, return_dict=False)  # return_dict false as in the published files
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "model.safetensors").symlink_to(ours / "model.safetensors")


def load_their_model(ref: types.SimpleNamespace, folder: str | Path, **_ignored):
    """Their HF class (`models/hf`) with the weights in `folder`: the stand-in for `from_pretrained` (module docstring)."""
    folder = Path(folder)
    model = ref.hf.BD3LM(ref.hf.BD3LMConfig.from_pretrained(str(folder)))
    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    computed = {"backbone.rotary_emb.inv_freq", "sampling_eps_min", "sampling_eps_max"}  # buffers their __init__ fills in
    if unexpected or set(missing) - computed:
        raise SystemExit(f"their model does not take our checkpoint: missing {missing}, unexpected {unexpected}")
    return model.eval()


def reset_kv_cache_on_cpu(self, eval_batch_size: int = 1) -> None:
    """Stand-in for their `BD3LM.reset_kv_cache` on the CPU: the same zero caches, in the weights' dtype."""
    weight = self.backbone.vocab_embed.embedding
    shape = (eval_batch_size, self.config.model_length, 3 * self.config.hidden_dim)  # [batch, positions, q|k|v]
    for layer in self.backbone.blocks:
        layer.kv_cache = torch.zeros(shape, device=weight.device, dtype=weight.dtype)
        layer.cache_idx = 0


class Reference:
    """Their `Diffusion` for one block size, with a counter on their model's forward."""

    def __init__(self, ref: types.SimpleNamespace, checkpoint: Path, tokenizer: Path, block: int, seqlen: int,
                 device: torch.device) -> None:
        self.block, self.seqlen, self.device = block, seqlen, device
        overrides = [
            "mode=sample_eval", "algo=bd3lm", "algo.backbone=hf_dit", "model=small", "model.attn_backend=sdpa",
            f"model.length={seqlen}", f"block_size={block}", f"eval.checkpoint_path={checkpoint}",
            "loader.eval_batch_size=1", "loader.batch_size=1", "trainer.devices=1",
            f"sampling.nucleus_p={TOP_P}", "sampling.kv_cache=true", "sampling.first_hitting=true",
            f"data.tokenizer_name_or_path={tokenizer}", f"eval.gen_ppl_eval_model_name_or_path={tokenizer}",
            "training.ema=0",  # no EMA copy of the weights: it would only put other values in the same tensors
            "wandb=null", f"seed={SEED}",
        ]
        with ref.hydra.initialize_config_dir(config_dir=str(ref.path / "configs"), version_base=None):
            self.config = ref.hydra.compose(config_name="config", overrides=overrides)
        tokenizer = ref.dataloader.get_tokenizer(self.config)
        with mock.patch.object(ref.transformers.AutoModelForMaskedLM, "from_pretrained", functools.partial(load_their_model, ref)):
            self.model = ref.diffusion.Diffusion(self.config, tokenizer=tokenizer)
        self.model = self.model.to(device)  # as their main.py: float32 weights
        self.model.eval()
        backbone = self.model.backbone
        if device.type == "cpu":
            backbone.reset_kv_cache = types.MethodType(reset_kv_cache_on_cpu, backbone)
        self.forwards = 0
        backbone.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.forwards += 1

    def logits(self, block: torch.Tensor) -> torch.Tensor:
        """Raw logits `[1, L, V]` of a first block, without a cache (their block-causal mask path)."""
        backbone = self.model.backbone
        for layer in backbone.backbone.blocks:
            layer.kv_cache = None
        with torch.no_grad():
            return backbone(block.to(self.device), torch.zeros(1, device=self.device), sample_mode=True).float().cpu()

    def run(self, first_hitting: bool, steps: int, seqlen: int | None = None) -> Run:
        """One generation of `seqlen` positions (BOS first), timed; checks that every position was filled."""
        seqlen = seqlen or self.seqlen
        self.config.sampling.first_hitting = first_hitting
        np.random.seed(SEED)  # first-hitting draws its times from numpy's global RNG
        torch.manual_seed(SEED)
        self.forwards = 0
        synchronize(self.device)
        began = time.perf_counter()
        x, _ = self.model._semi_ar_sampler(n_samples=1, num_steps=steps, num_strides=seqlen // self.block, seqlen=seqlen)
        synchronize(self.device)
        seconds = time.perf_counter() - began
        if x is None:
            raise SystemExit("their sampler stopped early (their low-entropy stop rule); use fewer --tokens")
        if x.shape != (1, seqlen) or bool((x == self.model.mask_index).any()):
            raise SystemExit(f"their sampler returned {tuple(x.shape)} with masks left; expected (1, {seqlen}) and none")
        return Run(seconds, self.forwards)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_same_network(loaded, theirs: Reference, block: int) -> float:
    """Max |difference| between our and their logits for a first block [BOS, mask, ...], relative to the largest logit."""
    ids = torch.tensor([[loaded.tokenizer.bos_id] + [loaded.config.mask_id] * (block - 1)], device=loaded.device)
    with torch.no_grad():
        ours = FullContext(loaded.model, block).logits(ids, torch.arange(block, device=loaded.device)).float().cpu()
    diff = ((ours - theirs.logits(ids)).abs().max() / ours.abs().max()).item()
    tolerance = 1e-4 if loaded.dtype == torch.float32 else 5e-2
    if not diff <= tolerance:
        raise SystemExit(f"our and their logits differ by {diff:.3g} of the largest (more than {tolerance}): the weights did not load the same")
    return diff


def median_run(runs: list[Run]) -> Run:
    """The run of median time, with its own forward count."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of kuleshov-group/bd3lms")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="ours; theirs: see the docstring")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads, for both (default: the count our loader chooses for the model's size)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each sampler per setting; the median counts")
    parser.add_argument("--quick", action="store_true", help="one timed run of each (a smoke test)")
    parser.add_argument("--tokenizer", type=Path, default=GPT2_TOKENIZER)
    args = parser.parse_args()
    if args.device == "cpu" and args.dtype != "float32":
        raise SystemExit("on the CPU their network runs only in float32 (it needs CUDA autocast to mix dtypes): use --dtype float32")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here: use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    device = torch.device(args.device)
    ref = import_reference(args.reference.resolve())

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ours").mkdir()
        make_checkpoint(tmp / "ours", args.tokenizer)
        write_tokenizer(ref, args.tokenizer, tmp / "tokenizer")
        loaded = load_model(tmp / "ours", device=args.device, dtype=args.dtype, threads=args.threads)  # sets torch's threads on the CPU
        theirs_precision = ("float32 weights and cache (cache allocation moved off CUDA)" if device.type == "cpu"
                            else "float32 weights under their autocast, their bfloat16 cache (unpatched)")
        print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, batch 1, {args.tokens} tokens, "
              f"top-p {TOP_P}, {'1 run' if repeats == 1 else f'median of {repeats} runs'} each; "
              f"ours {args.dtype}, theirs {theirs_precision}\n")
        rows, checks = [], []
        for block in sorted({b for _, b in RUNS}):
            seqlen = block * math.ceil((args.tokens + 1) / block)  # both denoise these positions (BOS first); both count `tokens`
            write_reference_checkpoint(tmp / "ours", tmp / f"theirs-{block}", block)
            theirs = Reference(ref, tmp / f"theirs-{block}", tmp / "tokenizer", block, seqlen, device)
            checks.append(f"block {block}: {check_same_network(loaded, theirs, block):.1e}")
            for sampler in [s for s, b in RUNS if b == block]:
                first_hitting = sampler == "first-hitting"
                steps = FIRST_HITTING_T if first_hitting else block
                settings = SamplerSettings(tokens=args.tokens, block_size=block, steps=None if first_hitting else steps,
                                           sampler=sampler, top_p=TOP_P, seed=SEED, stop_at_eos=False, stop_on_repetition=False)
                timed(loaded, replace(settings, tokens=2 * block - 1))  # warm-up: two blocks each
                theirs.run(first_hitting, steps, seqlen=2 * block)
                ours_runs, their_runs = [], []
                for _ in range(repeats):  # alternating, so that load from elsewhere falls on both
                    finished = timed(loaded, settings)
                    if len(finished.token_ids) != args.tokens:
                        raise SystemExit(f"ours made {len(finished.token_ids)} tokens, not {args.tokens}")
                    ours_runs.append(Run(finished.seconds, finished.nfe))
                    their_runs.append(theirs.run(first_hitting, steps))
                rows.append((sampler, block, "-" if first_hitting else steps, median_run(ours_runs), median_run(their_runs)))
            del theirs

    print("| sampler | block | T | ours tokens/s | theirs tokens/s | ours/theirs | ours NFE | theirs NFE | ours ms/forward | theirs ms/forward |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sampler, block, steps, ours, theirs in rows:
        print(f"| {sampler} | {block} | {steps} | {args.tokens / ours.seconds:.1f} | {args.tokens / theirs.seconds:.1f} | "
              f"**{theirs.seconds / ours.seconds:.2f}x** | {ours.forwards} | {theirs.forwards} | "
              f"{1000 * ours.seconds / ours.forwards:.1f} | {1000 * theirs.seconds / theirs.forwards:.1f} |")
    print(f"\nBoth denoise the same positions; tokens/s counts the {args.tokens} asked for. Their NFE includes the forward "
          "that writes each finished block into their cache; ours writes it during the next block's first forward.")
    print("Same network (largest |difference| of a first block's logits, relative to the largest logit): " + "; ".join(checks))


if __name__ == "__main__":
    main()
