"""What a replay frame shows, worked out once, without Qt: the window and the exported page only paint it.

A run as of frame `index` is the text committed before the current block,
flowing, then the block being denoised as a row of fixed cells: a mask
glyph where a position is still masked, the token where it is revealed, the
tokens of this very step marked as the latest. Every piece carries the
tooltip hovering it tells, and `look` says how it is coloured in each
colouring. The window (`views/trace_view.py`) turns pieces into Qt rich
text; the page (`replay_page.py`) embeds them for `replay.js` to paint.
Keeping the rule here is what keeps the two drawings from drifting apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..records.trace import Reveal, Trace
from .palette import EOS_TEXT, MASK_GLYPH, NEWLINE_GLYPH, Colours

PROMPT, TOKEN, EOS, MASK = "prompt", "token", "eos", "mask"  # what a piece is


@dataclass(frozen=True)
class Piece:
    """One position as drawn: a token in the flowing text, or a cell of the current block."""

    position: int
    text: str  # as shown: the end-of-text mark for EOS, a glyph for a newline in a cell, the mask glyph
    kind: str  # PROMPT, TOKEN, EOS or MASK
    tooltip: str
    in_cell: bool = False
    latest: bool = False  # revealed by the frame on screen
    step: int = 0  # the step of its block that revealed it (0: not revealed by a step)
    steps: int = 1  # the most steps its block could take, for the step ramp
    confidence: float | None = None  # the model's own probability of it; None: not recorded


@dataclass(frozen=True)
class Look:
    """How a piece is coloured: its class (the stylesheet's), its own background, its cell's fill."""

    css_class: str  # "", "prompt", "eos", "mask", "latest" or "latest-tinted"
    background: str  # "" for none
    fill: str  # the cell's background; "" outside a cell


# how each class of `Look` is drawn, by the window's stylesheet and the page's alike ({name}: a `Colours` field)
CLASS_STYLES = {
    "prompt": "font-weight: bold; color: {prompt};",
    "latest": "background: {latest}; font-weight: bold;",
    "latest-tinted": "font-weight: bold; text-decoration: underline;",
    "mask": "background: {mask_bg}; color: {mask_fg};",
    "eos": "color: {mask_fg}; font-style: italic;",
}


def class_rules(colour: Callable[[str], str]) -> str:
    """The CSS rules of the classes, each colour written as `colour(field name)` gives it."""
    def written(style: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: colour(m[1]), style)

    return "".join(f".{name} {{ {written(style)} }}\n" for name, style in CLASS_STYLES.items())


def mask_tooltip(position: int, block: int) -> str:
    return f"masked: position {position}, block {block}, not revealed yet"


def tooltip_text(token: Reveal, trace: Trace) -> str:
    """What hovering a token tells: every number says what it is; texts quoted with newlines escaped."""
    if token.frame < 0:
        return f"prompt token {token.id} {token.text!r}"
    s = trace.settings
    lines = [
        f"{token.text!r}  (token {token.id}, position {token.position})",
        f"revealed at block {token.block}, step {token.step} of at most {trace.steps_per_block}",
        "model's probability: "
        + ("not recorded (a trace from an older version)" if token.confidence is None else f"{token.confidence:.3f}")
        + " (its confidence: temperature 1, before top-p)",
        f"drawn with probability: {token.probability:.3f} (after temperature {s['temperature']:g} and top-p {s['top_p']:g})",
    ]
    if token.alternatives:
        lines.append(f"the model's top {len(token.alternatives)} here:")
        lines += [f"  {p:.3f}  {text!r}" for _, text, p in token.alternatives]
    return "\n".join(lines)


def token_piece(trace: Trace, token: Reveal, latest: bool = False, in_cell: bool = False) -> Piece:
    """A token as drawn (in a cell, a newline shows as a glyph, else the cell would look empty)."""
    tooltip = tooltip_text(token, trace)
    text = token.text.replace("\n", NEWLINE_GLYPH) if in_cell else token.text
    if token.frame < 0:
        return Piece(token.position, text, PROMPT, tooltip, in_cell)
    kind = TOKEN
    if token.id == trace.eos_id:
        text, kind = EOS_TEXT, EOS
    return Piece(token.position, text, kind, tooltip, in_cell, latest, token.step, trace.steps_per_block, token.confidence)


def current_block(trace: Trace, index: int, final: bool = False) -> bool:
    """Whether frame `index` is drawn with a block in progress (else as text only: before the first
    step, at the end state of a finished run, or past the end of what the run kept)."""
    final = final and trace.outcome is not None  # a run still going has no end state yet
    return 0 <= index < len(trace.frames) and not final and trace.frames[index].start < trace.end


def text_end(trace: Trace, index: int, final: bool = False) -> int:
    """One past the last position of the flowing text: the current block's start, else where the run ends
    (the prompt's end before the first step)."""
    if current_block(trace, index, final):
        return trace.frames[index].start
    return trace.end if index >= 0 else min(trace.n_prompt, trace.end)


def text_pieces(trace: Trace, start: int, stop: int) -> list[Piece]:
    """The flowing text's pieces for positions [start, stop): every token with text. (Before `text_end`
    every token is final, revealed by an earlier frame, so the frame on screen does not matter.)"""
    tokens = (trace.tokens.get(position) for position in range(start, stop))
    return [token_piece(trace, token) for token in tokens if token is not None and token.text]


def _cell(trace: Trace, index: int, offset: int) -> Piece:
    frame = trace.frames[index]
    position = frame.start + offset
    token = None if frame.masked[offset] else trace.tokens.get(position)
    if token is None or token.frame > index:
        return Piece(position, MASK_GLYPH, MASK, mask_tooltip(position, frame.block), in_cell=True)
    return token_piece(trace, token, latest=token.frame == index, in_cell=True)


def cells(trace: Trace, index: int) -> list[Piece]:
    """The current block's cells as of frame `index`, one per position the run keeps. A masked cell's
    block is the frame's (a position's block is not position // block_size where blocks differ in size,
    as an MDLM's windows do)."""
    frame = trace.frames[index]
    return [_cell(trace, index, offset) for offset in range(min(len(frame.masked), trace.end - frame.start))]


def cell_changes(trace: Trace, index: int, final: bool = False) -> dict[int, Piece] | None:
    """The cells of frame `index` that may differ from frame `index - 1`'s, by their place in the row (those
    unmasked, revealed, or no longer the latest); None where the two frames do not draw the same block.
    A long block is drawn step by step at the cost of its changes, not of its length."""
    if index < 1 or not current_block(trace, index, final) or not current_block(trace, index - 1):
        return None
    frame, before = trace.frames[index], trace.frames[index - 1]
    if (frame.start, len(frame.masked)) != (before.start, len(before.masked)):
        return None
    offsets = {offset for offset, (now, then) in enumerate(zip(frame.masked, before.masked)) if now != then}
    offsets |= {token.position - frame.start for f in (frame, before) for token in f.revealed}
    count = min(len(frame.masked), trace.end - frame.start)
    return {offset: _cell(trace, index, offset) for offset in sorted(offsets) if 0 <= offset < count}


def columns(trace: Trace, cells_per_row: int) -> int:
    """How many cells a row of the current block holds: the same for every block, so cells never move."""
    return min(cells_per_row, trace.block_size)


def look(piece: Piece, colouring: str, colours: Colours) -> Look:
    """How `piece` is coloured in `colouring` ("plain", "step" or "confidence"): the latest tokens green in
    plain, underlined in the others; tokens tinted by their step or by the model's confidence."""
    if piece.kind == MASK:
        return Look("mask", "", colours.mask_bg)
    tint = ""
    if piece.kind != PROMPT:
        if colouring == "step":
            tint = colours.step(piece.step, piece.steps)
        elif colouring == "confidence" and piece.confidence is not None:
            tint = colours.confidence(piece.confidence)
    if piece.kind in (PROMPT, EOS):
        css_class, background = piece.kind, ""
    elif colouring == "plain":
        css_class, background = ("latest" if piece.latest else ""), ""
    else:
        css_class, background = ("latest-tinted" if piece.latest else ""), tint
    fill = ""
    if piece.in_cell:
        fill = colours.latest if piece.latest and colouring == "plain" else (tint or colours.block)
    return Look(css_class, background, fill)


def where(trace: Trace, index: int) -> str:
    """Where frame `index` lies in the run, as the player's label says it."""
    if index < 0:
        return "waiting for the first step" if trace.outcome is None else "no steps"
    frame = trace.frames[index]
    return f"step {index + 1} of {len(trace.frames)}: block {frame.block}, step {frame.step}"
