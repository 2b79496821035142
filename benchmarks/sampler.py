"""Sampler speed on a GPT-2-small-shaped BD3-LM (random weights), batch 1.

    python benchmarks/sampler.py [--device cpu] [--threads 2] [--long 2048]

Prints markdown tables: tokens/s and forwards (NFE) for block sizes 4 and 16
at a few step counts, ms per forward, the naive sampler (which recomputes
the prefix at every forward) beside the cached one, and the cost per token
at 256, 1024 and 2048 tokens of one long generation. Random weights make
the nucleus wide (top-p 0.9 keeps most of the vocabulary), which is the
worst case for the top-p step. Ratios come from the same run, so they hold
on a busy machine; absolute times only mean something on an idle one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bd3lm_core import BlockDone, Finished, SamplerSettings, encode_prompt, generate, load_model  # noqa: E402
from bd3lm_core.model.checkpoints import save_weights  # noqa: E402
from bd3lm_core.model.config import BD3LMConfig  # noqa: E402
from bd3lm_core.model.kernels import FewRowsLinear as Linear  # noqa: E402
from bd3lm_core.model.network import BD3LM, apply_rotary  # noqa: E402
from bd3lm_core.sampling import sample  # noqa: E402
from bd3lm_core.sampling.context import FullContext  # noqa: E402
from bd3lm_core.sampling.kv_cache import KVCache  # noqa: E402

GPT2_TOKENIZER = ROOT.parent / "shared" / "data" / "gpt2" / "tokenizer.json"


def make_checkpoint(folder: Path, tokenizer: Path) -> None:
    config = BD3LMConfig(block_size=4, cond_dim=128, hidden_dim=768, model_length=1024, n_layers=12, n_heads=12, vocab_size=50258)
    torch.manual_seed(0)
    model = BD3LM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    config.save(folder / "config.json")
    save_weights(model, folder / "model.safetensors")
    shutil.copy(tokenizer, folder / "tokenizer.json")


def timed(loaded, settings: SamplerSettings, naive: bool = False) -> Finished:
    if naive:
        s = settings.resolved(loaded.config.block_size)
        events = sample(loaded, encode_prompt(loaded, ""), s, FullContext(loaded.model, s.block_size))
    else:
        events = generate(loaded, "", settings)
    for event in events:
        pass
    return event


@torch.no_grad()
def reference_style(loaded, tokens: int, block: int, top_p: float, seed: int) -> tuple[float, int]:
    """(tokens/s, NFE) of a first-hitting loop doing the per-step work of the authors'
    sampler as spec section 5 describes it, run with our network: logits for every
    position of the block at every step; softmax and a full-vocabulary sort for top-p
    in float64 on all of them; before every forward, a copy of the cached queries, keys
    and values and rotary applied again to the cached queries and keys; and a separate
    forward (with logits) to commit each finished block.
    """
    model, config = loaded.model, loaded.config
    mask, window = config.mask_id, config.model_length
    if tokens + 2 * block > window:
        raise SystemExit("the reference-style loop does not slide its window: use --tokens below the context")
    mods = model.modulations(None)
    cache = KVCache(config.n_layers, 1, config.n_heads, config.head_dim, window, loaded.device, loaded.dtype)
    generator = torch.Generator().manual_seed(seed)

    def forward(x: torch.Tensor, start: int) -> torch.Tensor:
        """Logits of every row of block `x` (kept on the CPU, like the loop's other state)."""
        device = loaded.device
        if start > 0:
            cos, sin = model.rotary_emb.tables(torch.arange(start, device=device))
            for layer in range(config.n_layers):  # the reference's per-step cache work; results unused
                k, v = cache.k[layer, :, :, :start].clone(), cache.v[layer, :, :, :start].clone()
                q = k.clone()  # it caches queries too: same size as the keys
                apply_rotary(q, cos, sin)
                apply_rotary(k, cos, sin)
        span = cache.span(start, start + block, 0)
        positions = torch.arange(start, start + block, device=device)
        return model(x.to(device), positions, None, mods=mods, cache=span)[0].cpu()

    # the reference keeps its output layer row-major, the best layout for a whole block of rows
    output = model.output_layer.linear
    our_layout = output.weight.data
    output.weight.data = our_layout.contiguous()
    began, nfe, start = time.perf_counter(), 0, 0
    while start < tokens + 1:
        x = torch.full((1, block), mask)
        if start == 0:
            x[0, 0] = loaded.tokenizer.bos_id
        while (x == mask).any():
            logits = forward(x, start).double()
            nfe += 1
            logits[:, mask] = -torch.inf
            probs = logits.softmax(-1)
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            keep = sorted_probs.cumsum(-1) <= top_p
            keep[:, 0] = True
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs * keep)
            masked = (x[0] == mask).nonzero()[:, 0]
            i = masked[torch.randint(len(masked), (1,), generator=generator)]
            x[0, i] = torch.multinomial(probs[i], 1, generator=generator)[0]
        forward(x, start)
        nfe += 1
        start += block
    seconds = time.perf_counter() - began
    output.weight.data = our_layout
    return tokens / seconds, nfe


def cost_per_token(loaded, settings: SamplerSettings, marks: list[int]) -> dict[int, float]:
    """ms per token over the 256 tokens that end at each mark, from one long generation.

    Each figure is the median over the blocks committed in that span, so that a
    burst of load from elsewhere on a shared machine does not move it.
    """
    per_block: list[tuple[int, float]] = []  # (end position, ms per token of this block)
    last = time.perf_counter()
    for event in generate(loaded, "", settings):
        if isinstance(event, BlockDone):
            now = time.perf_counter()
            per_block.append((event.start + len(event.tokens), 1000 * (now - last) / len(event.tokens)))
            last = now
    return {mark: statistics.median(ms for end, ms in per_block if mark - 256 < end <= mark) for mark in marks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per speed run (default %(default)s)")
    parser.add_argument("--long", type=int, default=2048, help="length of the cost-per-token run (default %(default)s)")
    parser.add_argument("--tokenizer", type=Path, default=GPT2_TOKENIZER)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        make_checkpoint(Path(tmp), args.tokenizer)
        loaded = load_model(tmp, device=args.device, dtype=args.dtype)
    base = dict(tokens=args.tokens, top_p=0.9, seed=0, stop_at_eos=False, stop_on_repetition=False)
    timed(loaded, SamplerSettings(**base, sampler="first-hitting"))  # warm-up: caches, allocator, thread pool

    print(f"device {loaded.device}, {loaded.dtype}, {torch.get_num_threads()} threads, batch 1, {args.tokens} tokens, top-p 0.9\n")
    print("| sampler | block | steps | tokens/s | NFE | ms/forward |")
    print("|---|---|---|---|---|---|")
    runs = [("first-hitting", 4, None), ("ddpm", 4, 4), ("ddpm", 4, 8), ("first-hitting", 16, None), ("ddpm", 16, 8), ("ddpm", 16, 16)]
    results = {}
    for sampler, block, steps in runs:
        f = timed(loaded, SamplerSettings(**base, sampler=sampler, block_size=block, steps=steps))
        results[(sampler, block, steps)] = f
        print(f"| {sampler} | {block} | {steps or block} | {f.tokens_per_second:.1f} | {f.nfe} | {1000 * f.seconds / f.nfe:.1f} |")

    print("\nNaive (prefix recomputed every forward) beside cached, first-hitting, block 4:\n")
    print("| sampler | tokens/s | NFE | ms/forward | cached speed-up |")
    print("|---|---|---|---|---|")
    cached = results[("first-hitting", 4, None)]
    naive = timed(loaded, SamplerSettings(**base, sampler="first-hitting", block_size=4), naive=True)
    for name, f in (("cached", cached), ("naive", naive)):
        print(f"| {name} | {f.tokens_per_second:.1f} | {f.nfe} | {1000 * f.seconds / f.nfe:.1f} | "
              f"{naive.seconds / f.seconds:.2f}x |")

    ref_speed, ref_nfe = reference_style(loaded, args.tokens, 4, 0.9, 0)
    print("\nThe same run against a loop doing the reference sampler's per-step work (first-hitting, block 4):\n")
    print("| sampler | tokens/s | NFE | our speed-up |")
    print("|---|---|---|---|")
    print(f"| reference-style | {ref_speed:.1f} | {ref_nfe} | 1.00x |")
    print(f"| ours (cached) | {cached.tokens_per_second:.1f} | {cached.nfe} | {cached.tokens_per_second / ref_speed:.2f}x |")

    # Both loops above run our network. The authors' runs nn.Linear's default kernel, which
    # is slower for the few rows of a sampling step; measure that too, in this same run.
    small = Linear.SMALL
    Linear.SMALL = 0
    plain_speed, _ = reference_style(loaded, args.tokens, 4, 0.9, 0)
    Linear.SMALL = small
    print(f"| reference-style, default nn.Linear kernel | {plain_speed:.1f} | {ref_nfe} | "
          f"{cached.tokens_per_second / plain_speed:.2f}x |")

    marks = [m for m in (256, 1024, 2048) if m <= args.long]
    costs = cost_per_token(loaded, SamplerSettings(**{**base, "tokens": args.long}, sampler="first-hitting", block_size=4), marks)
    print(f"\nCost per token in one {args.long}-token generation (first-hitting, block 4; context window 1024):\n")
    print("| at token | ms/token | relative to 256 |")
    print("|---|---|---|")
    for mark, ms in costs.items():
        print(f"| {mark} | {ms:.1f} | {ms / costs[marks[0]]:.2f} |")


if __name__ == "__main__":
    main()
