"""Defect 13 of the new users' report, each fixed and checked here: the title, the seed box, counts, the
legend, long messages, newline cells, no sideways scrolling; and tokens per forward in the status bar."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QApplication

from app_helpers import configure, page_meta, run, view_parts
from bd3lm_studio.rendering.palette import NEWLINE_GLYPH


def test_cosmetics(window, qtbot, tmp_path):
    # the title does not repeat the app's name, which Qt adds itself (" — BD3-LM Studio")
    QApplication.setApplicationDisplayName("BD3-LM Studio")
    try:
        assert window.windowTitle() == window.model.name and "BD3-LM Studio" not in window.windowTitle()
    finally:
        QApplication.setApplicationDisplayName("")

    # the seed box shows all 19 digits, in the default window and the narrowest one
    seed = window.controls.seed
    for width in (window.width(), window.minimumSizeHint().width()):
        window.resize(width, 700)
        qtbot.wait(20)
        seed.setValue(9223372036854775807)
        assert seed.contentsRect().width() - 8 >= seed.fontMetrics().horizontalAdvance(seed.text())

    # "1 token", "1 step", "1 forward": a one-token run, its block in one step
    configure(window, tokens=1, sampler="ddpm")
    window.controls.steps.set_value(1)
    run(window, qtbot)
    assert window.status.current_message().startswith("Generated 1 token (")
    assert window.status_labels["progress"].text().startswith("1 of 1 token,")
    window.export_to(tmp_path / "one.html")
    meta = page_meta((tmp_path / "one.html").read_text(encoding="utf-8"))
    assert "· 1 step, 1 forward, " in meta, meta

    # the colour legend stays on one line at 1400 px in every colouring
    window.resize(1400, 900)
    configure(window, tokens=24)
    window.controls.steps.set_value(32)
    run(window, qtbot)
    legend = window.view.legend
    assert not legend.wordWrap()
    for key in ("plain", "step", "confidence"):
        window.view.colouring.setCurrentIndex(window.view.colouring.findData(key))
        qtbot.wait(20)
        assert legend.sizeHint().width() <= legend.width(), key

    # a long status message is cut with "…", and its whole text is its tooltip
    long = "Saved /home/someone/Documents/a/very/long/folder/name/that/goes/on/and/on/bd3lm-run.html. " * 3
    window.status.show_message(long)
    qtbot.wait(20)
    assert window.status.message.shown_text().endswith("\u2026") and window.status.message.toolTip() == long


def test_tokens_per_forward_in_the_status_bar(window, qtbot):
    configure(window, tokens=16, sampler="first-hitting")  # one token a forward
    run(window, qtbot)
    assert window.status_labels["nfe"].text() == f"NFE {window.trace.outcome.nfe} · 1.00 tokens/forward"
    configure(window, tokens=16, sampler="ddpm")
    window.controls.steps.set_value(1)  # the whole block in one step: 4 tokens a forward
    run(window, qtbot)
    nfe = window.trace.outcome.nfe
    assert window.status_labels["nfe"].text() == f"NFE {nfe} · {16 / nfe:.2f} tokens/forward" and 16 / nfe > 2


def test_newline_cells_are_drawn_visibly_and_16_cell_blocks_do_not_scroll_sideways(window, qtbot):
    configure(window, tokens=32)
    window.controls.block_size.set_value(16)
    window.controls.steps.set_value(4)
    run(window, qtbot)
    trace, view = window.trace, window.view
    window.resize(1200, 760)
    index = next(i for i, f in enumerate(trace.frames) if f.revealed and any(f.masked))
    view.timeline.setValue(index)
    qtbot.wait(20)
    text = view.text
    assert len(view_parts(view)["cells"]) == 16
    assert text.document().size().width() <= text.viewport().width()
    assert not text.horizontalScrollBar().isVisible()

    # a token that is a newline: its cell shows the glyph, not an empty box
    frame = trace.frames[index]
    revealed = frame.revealed[0]
    trace.tokens[revealed.position] = replace(revealed, text="\n")
    text.redraw()
    cells = view_parts(view)["cells"]
    assert cells[revealed.position - frame.start] == NEWLINE_GLYPH
