"""The current block is drawn as a block (a box of fixed cells), the text does not jump, Stop agrees everywhere."""

from __future__ import annotations

import json

from PySide6.QtGui import QTextCursor

from app_helpers import configure, fragments, run, view_parts
from bd3lm_studio.rendering.palette import LIGHT, MASK_GLYPH


def cell_lefts(view) -> list[int]:
    """The x position of each cell of the current block's box, in order."""
    doc = view.text.document()
    lefts = []
    block = doc.begin()
    while block.isValid():
        if QTextCursor(block).currentTable() is not None:
            lefts.append(view.text.cursorRect(QTextCursor(block)).left())
        block = block.next()
    return lefts


def block_frames(trace, block: int) -> list[int]:
    return [i for i, f in enumerate(trace.frames) if f.block == block]


def test_the_current_block_is_one_box_with_a_cell_per_position(window, qtbot):
    configure(window, tokens=24)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    trace, view = window.trace, window.view
    index = next(i for i, f in enumerate(trace.frames) if f.revealed and any(f.masked))
    view.timeline.setValue(index)
    frame = trace.frames[index]
    parts = view_parts(view)
    assert len(parts["cells"]) == len(frame.masked) == trace.block_size  # every position of the block, one cell each
    for offset, (masked, cell) in enumerate(zip(frame.masked, parts["cells"])):
        token = trace.tokens.get(frame.start + offset)
        assert cell == (MASK_GLYPH if masked else token.text)
    # the text above the box is exactly the committed text: everything before the block
    assert parts["text"] == "".join(trace.tokens[p].text for p in range(1, frame.start))
    backgrounds = {bg for text, _, bg in fragments(view) if text == MASK_GLYPH}
    assert backgrounds == {LIGHT.mask_bg}


def test_the_text_does_not_jump_while_a_block_fills_in(window, qtbot):
    """Within a block, the cells keep their places and the text above stays as it is, step after step."""
    configure(window, tokens=40)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    trace, view = window.trace, window.view
    block = trace.frames[len(trace.frames) // 2].block
    frames = block_frames(trace, block)
    assert len(frames) >= 2
    seen = []
    for index in frames[:-1]:  # the last step of a block hands its text to the flowing text
        view.timeline.setValue(index)
        seen.append((view_parts(view)["text"], cell_lefts(view)))
    assert len({text for text, _ in seen}) == 1
    assert len({tuple(lefts) for _, lefts in seen}) == 1
    assert len(set(seen[0][1])) == trace.block_size  # four cells side by side, none wrapped or collapsed


def test_after_stop_the_view_the_counts_and_the_export_agree(window, qtbot, tmp_path):
    """Defect: after Stop the view kept the unfinished block and the counts differed from the message and export."""
    configure(window, tokens=1000)
    window.generate()
    qtbot.waitUntil(lambda: window.trace is not None and len(window.trace.frames) > 6, timeout=30_000)
    window.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=10_000)
    trace = window.trace
    n = len(trace.outcome.token_ids)
    assert trace.outcome.stop_reason == "cancelled"
    parts = view_parts(window.view)
    assert parts["cells"] == []  # no block left half-done
    assert trace.end == trace.n_prompt + n
    assert parts["text"] == "".join(trace.tokens[p].text for p in range(1, trace.end))  # exactly the tokens returned
    assert window.status_labels["progress"].text().startswith(f"{n} of {n} tokens")
    assert window.status.current_message().startswith(f"Generated {n} tokens")
    assert trace.generated_count() == n
    assert window.export_to(tmp_path / "run.txt") and window.export_to(tmp_path / "run.json")
    assert (tmp_path / "run.txt").read_text(encoding="utf-8") == trace.prompt + trace.outcome.text + "\n"
    assert len(json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["tokens"]) == n


def test_tooltips_are_hit_tested_on_cells(window, qtbot):
    """Over the blank part of a cell, right or left of its glyphs, the tip is that cell's token's
    (it used to be the next cell's)."""
    from PySide6.QtCore import QPoint

    configure(window, tokens=24)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    trace, view = window.trace, window.view
    view.timeline.setValue(next(i for i, f in enumerate(trace.frames) if f.revealed and any(f.masked)))
    text = view.text
    cells = []  # (first cursor position, end cursor position) of each cell's content
    block = text.document().begin()
    while block.isValid():
        if QTextCursor(block).currentTable() is not None:
            cells.append((block.position(), block.position() + block.length() - 1))
        block = block.next()
    assert len(cells) == trace.block_size
    checked = 0
    for (first, end), (next_first, _) in zip(cells, cells[1:]):
        cursor = QTextCursor(text.document())
        cursor.setPosition(first)
        cursor.movePosition(QTextCursor.NextCharacter, QTextCursor.KeepAnchor)
        expected = cursor.charFormat().toolTip()
        assert expected
        cursor.setPosition(end)
        glyphs_end = text.cursorRect(cursor)
        cursor.setPosition(next_first)
        next_left = text.cursorRect(cursor).left()
        assert next_left - glyphs_end.right() > 12  # a blank part to hover
        y = glyphs_end.center().y()
        assert text.tooltip_at(QPoint(glyphs_end.right() + 3, y)) == expected  # just right of the glyphs
        assert text.tooltip_at(QPoint((glyphs_end.right() + next_left) // 2, y)) == expected  # mid-blank
        checked += 1
    assert checked == trace.block_size - 1
