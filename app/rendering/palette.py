"""The colours and glyphs that show a run, shared by the live view and the exported pages.

There are two sets, for light and dark surroundings; the app picks one from
the system palette (`theme.py`) and the exported pages from the browser's
`prefers-color-scheme`.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

MASK_GLYPH = "\u2591\u2591\u2591"  # light-shade boxes: a position that is still masked
NEWLINE_GLYPH = "\u21b5"  # how a newline reads inside a cell of the current block (else the cell looks empty)
EOS_TEXT = " \u27e8end of text\u27e9 "  # how the end-of-text token reads
CELLS_PER_ROW = 8  # the current block's cells wrap after this many, each 1/8 of the width
COLUMN_CELLS_PER_ROW = 4  # in a comparison's narrow columns: wide enough cells that words stay whole
COLOURINGS = {"plain": "Plain", "step": "Tint by step", "confidence": "Model's confidence"}  # token backgrounds
CONFIDENCE_MARKS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the legend's swatches


def _hsv(hue: float, saturation: float, value: float) -> str:
    r, g, b = colorsys.hsv_to_rgb(hue / 360, saturation, value)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in (r, g, b)))


@dataclass(frozen=True)
class Colours:
    text: str
    page: str  # background of an exported page
    prompt: str  # the prompt's tokens
    latest: str  # background of the tokens revealed in the latest step
    block: str  # background of the block being denoised
    block_edge: str  # its frame
    mask_bg: str
    mask_fg: str
    tint_saturation: float  # tints behind text: pale on light backgrounds, deep on dark ones
    tint_value: float

    def step(self, step: int, steps: int) -> str:
        """Early steps cool (blue), late steps warm (orange): the order in which a block was unmasked."""
        f = 0.0 if steps <= 1 else min(1.0, (step - 1) / (steps - 1))
        return _hsv(210 - 185 * f, self.tint_saturation, self.tint_value)

    def confidence(self, p: float) -> str:
        """The model's probability of a token: the less sure, the redder; a sure token stays on the plain page.

        In steps of 0.01, so that the exported pages can carry the whole ramp as a table.
        """
        unsure = 1.0 - round(min(1.0, max(0.0, p)), 2)
        if self.tint_value >= 0.5:  # light: white to red
            return _hsv(355, 0.6 * unsure, 1.0)
        return _hsv(355, 0.75, 0.12 + 0.5 * unsure)  # dark: near-black to deep red

    def as_dict(self) -> dict[str, str | float]:
        return asdict(self)


LIGHT = Colours(
    text="#202124", page="#ffffff", prompt="#1d3557", latest="#8ce99a", block="#fff3bf", block_edge="#e0b400",
    mask_bg="#dee2e6", mask_fg="#868e96", tint_saturation=0.35, tint_value=1.0,
)
DARK = Colours(
    text="#e8eaed", page="#202124", prompt="#a5c8ff", latest="#2b8a3e", block="#4a3d00", block_edge="#c9a227",
    mask_bg="#495057", mask_fg="#ced4da", tint_saturation=0.6, tint_value=0.42,
)


def colours(dark: bool) -> Colours:
    return DARK if dark else LIGHT
