"""The colours and glyphs that show a run, shared by the live view and the exported replay page."""

from __future__ import annotations

import colorsys

MASK_GLYPH = "\u2591\u2591\u2591"  # light-shade boxes: a position that is still masked
TEXT = "#202124"
PROMPT = "#1d3557"  # the prompt's tokens
LATEST = "#8ce99a"  # background of the tokens revealed in the latest step
BLOCK = "#fff3bf"  # background of the block being denoised
MASK_BG, MASK_FG = "#dee2e6", "#868e96"


def step_colour(step: int, steps: int) -> str:
    """Early steps cool (blue), late steps warm (orange): the order in which a block was unmasked."""
    f = 0.0 if steps <= 1 else (step - 1) / (steps - 1)
    r, g, b = colorsys.hsv_to_rgb((210 - 185 * f) / 360, 0.35, 1.0)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in (r, g, b)))
