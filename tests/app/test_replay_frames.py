"""The window and the exported page draw every frame of a run alike: the same text, cells, tooltips and colours.

The window is read from its widget (the player's timeline moved to each
frame, each colouring chosen in its Colour box); the page by running its own
script in node.
Neither reading goes through `rendering/frames.py`, which both follow.
"""

from __future__ import annotations

import json
import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QTextCursor

from app_helpers import configure, embedded, run, run_page_script
from bd3lm_studio.rendering.palette import COLOURINGS, LIGHT, MASK_GLYPH
from bd3lm_studio.rendering.replay_page import replay_page
from model_factory import make_mdlm_folder

# what each of the page's classes looks like in light colours, by its stylesheet and by the window's:
# bold, italic, underlined, text colour, background
CLASS_STYLE = {
    "": [False, False, False, "", ""], "prompt": [True, False, False, LIGHT.prompt, ""],
    "latest": [True, False, False, "", LIGHT.latest], "latest-tinted": [True, False, True, "", ""],
    "mask": [False, False, False, LIGHT.mask_fg, LIGHT.mask_bg], "eos": [False, True, False, LIGHT.mask_fg, ""],
}
NEWLINE = ("\n", None, None, None)  # Qt keeps no tooltip or colour on a line break: compared as text only

# every frame, in every colouring: a run of text is a list of characters (character, tooltip, background,
# font) and a cell is its fill and its characters
PAGE_PROBE = """
const STYLE = __STYLE__;
const chars = (span) => {
  const [bold, italic, underline, colour, background] = STYLE[span.className || ""];
  return [...span.textContent].map((ch) => ch === "\\n" ? ["\\n", null, null, null]
    : [ch, span.title, span.style.background || background, [bold, italic, underline, colour]]);
};
const frames = [];
for (let k = 0; k < D.labels.length; k++) {
  const colourings = {};
  for (const colouring of D.colourings) {
    document.getElementById("colour").value = colouring;
    render(k);
    const box = document.getElementById("text");
    const grid = box.children.find((e) => e.className === "blockbox");
    colourings[colouring] = {
      text: box.children.filter((e) => e !== grid).flatMap(chars),
      cells: grid ? grid.children.map((cell) => [cell.style.background, cell.children.flatMap(chars)]) : [],
      where: document.getElementById("where").textContent,
    };
  }
  frames.push(colourings);
}
console.log(JSON.stringify(frames));
""".replace("__STYLE__", json.dumps(CLASS_STYLE))


def _colour(brush) -> str:
    return "" if brush.style() == Qt.NoBrush else brush.color().name()


def _chars(fragment) -> list:
    fmt = fragment.charFormat()
    font = [fmt.fontWeight() >= QFont.DemiBold, fmt.fontItalic(), fmt.fontUnderline(), _colour(fmt.foreground())]
    return [[ch, fmt.toolTip(), _colour(fmt.background()), font] for ch in fragment.text()]


def _block_chars(block) -> list:
    out, it = [], block.begin()
    while not it.atEnd():
        out += _chars(it.fragment())
        it += 1
    return out


def window_shows(view) -> dict:
    """What the window's text widget shows, read from its document: the flowing text (its paragraphs
    joined by line breaks) and, cell by cell, the current block's fill and characters."""
    text, cells = [], []
    block = view.text.document().begin()
    while block.isValid():
        table = QTextCursor(block).currentTable()
        if table is not None:
            fill = table.cellAt(QTextCursor(block)).format().background()
            cells.append([fill.color().name(), _block_chars(block)])
        elif not cells:  # (the document's last paragraph, after the box, is always empty)
            text += ([list(NEWLINE)] if block.previous().isValid() else []) + _block_chars(block)
        block = block.next()
    return {"text": text, "cells": cells, "where": view.timeline_label.text()}


def page_shows(page: str) -> list[dict]:
    return run_page_script(page, PAGE_PROBE)


def assert_window_and_page_agree(window) -> list[dict]:
    """Every frame of the window's run, in every colouring, as the window shows it and as its page does."""
    trace, view = window.trace, window.view
    page = page_shows(replay_page(trace))
    assert len(page) == len(trace.frames) > 3
    for colouring in COLOURINGS:
        view.colouring.setCurrentIndex(view.colouring.findData(colouring))
        for k in range(len(trace.frames)):
            view.timeline.setValue(k)
            shown = window_shows(view)
            expected = page[k][colouring]
            assert shown["where"].endswith(expected["where"]), (k, colouring)
            assert shown["text"] == expected["text"], (k, colouring)
            assert shown["cells"] == expected["cells"], (k, colouring)
    return page


def tooltips(drawn: dict) -> set[str]:
    return {tip for _, tip, _, _ in drawn["text"] + [c for _, cell in drawn["cells"] for c in cell] if tip}


def test_every_frame_of_a_bd3lm_run_is_drawn_alike_in_the_window_and_on_its_page(open_window, settings, qtbot):
    """The shipped model, seed 26: a story ends at token 34, so the run shows end-of-text too."""
    window = open_window(None, settings)
    configure(window, tokens=64, seed=26)
    run(window, qtbot)
    trace = window.trace
    assert trace.eos_id in trace.outcome.token_ids
    page = assert_window_and_page_agree(window)
    shown = [frame["step"] for frame in page]
    assert any("".join(ch for ch, *_ in cell) == MASK_GLYPH for f in shown for _, cell in f["cells"])  # masks compared
    assert sum(len(f["cells"]) for f in shown) > len(trace.frames)  # and blocks in progress


@pytest.fixture(scope="module")
def tiny_mdlm(tmp_path_factory):
    return make_mdlm_folder(tmp_path_factory.mktemp("mdlm"), model_length=16)


def test_an_mdlm_run_past_one_and_a_half_contexts_is_drawn_alike_with_each_masks_own_block(
        open_window, settings, qtbot, tiny_mdlm):
    """An MDLM writes its whole context as block 0, then half a context per window. The paper's model
    (context 1024) puts position 1536 in block 2, where position // 1024 said 1; this one, with a context
    of 16, puts position 24 in block 2. A masked cell's tooltip names its frame's block, in both drawings."""
    window = open_window(str(tiny_mdlm), settings)
    assert window.model is not None
    window.prompt.setPlainText("One day.\n\nThe")  # new lines in the text, and in the cells of block 0
    configure(window, tokens=48, seed=3)
    run(window, qtbot)
    trace = window.trace
    assert trace.block_size == 16 and trace.end > 40 and trace.frames[0].start == 0
    page = assert_window_and_page_agree(window)
    checked = 0
    for k, frame in enumerate(trace.frames):
        for tip in tooltips(page[k]["plain"]):
            found = re.fullmatch(r"masked: position (\d+), block (\d+), not revealed yet", tip)
            if found:
                position, block = int(found[1]), int(found[2])
                assert block == frame.block and frame.start <= position < frame.start + len(frame.masked)
                checked += position // trace.block_size != block
    assert checked > 0  # some masks lie where position // block_size names the wrong block
    assert len(embedded(replay_page(trace))["runs"][0]["frames"]) == len(trace.frames)
