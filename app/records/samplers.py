"""The samplers as the app presents them: their names, what they do, and which settings each one reads.

All three come from the engine's strategy classes (`bd3lm_core.sampling.strategies`);
how many steps a block can take (the tint-by-step ramp) is the app's business.
"""

from __future__ import annotations

from bd3lm_core.sampling import STRATEGIES

NAMES = {key: strategy.title for key, strategy in STRATEGIES.items()}
DESCRIPTIONS = {key: strategy.description for key, strategy in STRATEGIES.items()}
PARAMETERS = {key: strategy.reads for key, strategy in STRATEGIES.items()}  # the settings only some samplers read


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
