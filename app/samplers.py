"""The samplers as the app presents them: their names, what they do, and which settings each one reads.

The engine's `SAMPLERS` lists the names; which knob applies to which
sampler is the app's business (a control is shown only when it matters),
and so is how many steps a block can take (the tint-by-step ramp).
"""

from __future__ import annotations

NAMES = {
    "ddpm": "DDPM",
    "first-hitting": "First-hitting",
    "low-confidence": "Low-confidence (LLaDA)",
    "threshold": "Confidence threshold",
    "entropy-bounded": "Entropy-bounded (EB)",
}
DESCRIPTIONS = {
    "ddpm": "each step, every masked position is revealed with the same probability (the paper's sampler)",
    "first-hitting": "each step reveals exactly one position, chosen at random",
    "low-confidence": "each step keeps the drawn tokens the model is surest of, the same number every step",
    "threshold": "each step keeps every drawn token the model gives at least the threshold probability",
    "entropy-bounded": "each step keeps the surest positions while their summed entropy stays within the bound",
}
# the SamplerSettings fields that only some samplers read
PARAMETERS = {
    "ddpm": ("steps",),
    "first-hitting": (),
    "low-confidence": ("steps",),
    "threshold": ("threshold",),
    "entropy-bounded": ("entropy_bound",),
}


OPTIONAL = {name for names in PARAMETERS.values() for name in names}  # settings only some samplers read


def uses(sampler: str, parameter: str) -> bool:
    """Whether `sampler` reads the setting `parameter` (steps, threshold, entropy_bound)."""
    return parameter in PARAMETERS.get(sampler, ())


def most_steps(sampler: str, block_size: int, steps: int) -> int:
    """The most denoising steps a block can take: DDPM takes all `steps` (some may reveal nothing);
    low-confidence reveals at least one token a step, so never more than the block size; the
    others reveal at least one token a step and have no step count."""
    if sampler == "ddpm":
        return steps
    if sampler == "low-confidence":
        return min(steps, block_size)
    return block_size
