"""Run → Compare: one prompt and seed under 2-4 settings or models, side by side, figures compared and exported."""

from __future__ import annotations

import html
import json
import re
import shutil

from app_helpers import embedded, install_fake_judge, run_page_script, view_parts
from PySide6.QtCore import Qt

from bd3lm_core import DEFAULT_MODEL, models_dir
from bd3lm_studio.records import comparison
from bd3lm_studio.rendering import palette, replay_page
from bd3lm_studio.views.compare import DEFAULT_WIDTH
from bd3lm_studio.records.trace_reader import read_trace


def open_compare(window, tokens: int = 16):
    window.controls.tokens.set_value(tokens)
    window.controls.stop_at_eos.setChecked(False)
    window.controls.seed.setValue(21)
    return window.show_compare()


def wait_done(compare, qtbot) -> None:
    qtbot.waitUntil(lambda: not compare.running, timeout=60_000)


def test_one_click_compares_block_sizes_with_figures_and_the_best_marked(window, qtbot, monkeypatch):
    install_fake_judge(monkeypatch)
    compare = open_compare(window)
    compare.preset_buttons["Block sizes"].click()  # fills the columns and runs them
    assert compare.running
    wait_done(compare, qtbot)
    qtbot.waitUntil(lambda: all(c.trace.judgement is not None for c in compare.columns), timeout=10_000)
    traces = [c.trace for c in compare.columns]
    assert [t.settings["block_size"] for t in traces] == [4, 8, 16]  # native 4, and larger blocks
    assert {t.settings["seed"] for t in traces} == {21} and {t.prompt for t in traces} == {"Once upon a time"}
    assert all(len(t.outcome.token_ids) == 16 for t in traces)
    marks = comparison.best(traces)
    for f in comparison.FIGURES:
        values = [f.value(t) for t in traces]
        shown = [round(v, f.digits) for v in values]
        winner = (max if f.higher_is_better else min)(shown)
        assert marks[f.key] == ({i for i, v in enumerate(shown) if v == winner} if f.starred else set())
        for i, column in enumerate(compare.columns):
            row = next(r for r in column.figures.text().split("<tr>") if f">{f.name}<" in r)
            assert ("\u2605" in row) == (i in marks[f.key])
            assert f"{values[i]:.{f.digits}f}" in row
    assert marks["entropy"] == set()  # shown, never called best
    assert [comparison.figures(t)["tokens_per_forward"] for t in traces] == [16 / t.outcome.nfe for t in traces]
    assert "block 16" in compare.columns[2].title.text()


def test_the_columns_replay_together_after_the_runs(window, qtbot):
    compare = open_compare(window)
    compare.preset("Steps", run=True)  # 4, 2 and 1 steps a block on the tiny model
    wait_done(compare, qtbot)
    steps = [c.trace.settings["steps"] for c in compare.columns]
    assert steps == [4, 2, 1]
    lengths = [len(c.trace.frames) for c in compare.columns]
    assert compare.player.count == max(lengths)
    compare.player.step(-10_000)  # the shared timeline at the first step
    assert all(c.view.shown == 0 and view_parts(c.view)["cells"] for c in compare.columns)
    compare.player.timeline.setValue(lengths[-1] - 1)  # the one-step column is done there, the others are not
    assert compare.columns[2].view.final and not compare.columns[0].view.final


def test_a_column_can_run_another_installed_model(window, qtbot, other_model, bd3lm_home):
    shutil.copytree(other_model, models_dir() / "test-org--other")  # as a download installs it
    compare = open_compare(window, tokens=8)
    assert compare.preset("Models", run=True)
    wait_done(compare, qtbot)
    models = [c.trace.model for c in compare.columns]
    assert models == [window.model.name, DEFAULT_MODEL, "test-org/other"]
    assert [c.trace.settings["block_size"] for c in compare.columns] == [4, 2, 8]  # each model's own
    assert window.model.name.startswith("tiny-model")  # the loaded model is still the loaded one


def test_models_cannot_be_compared_without_another_model(open_window, settings, qtbot, bd3lm_home):
    window = open_window(None, settings)  # the shipped model, nothing downloaded
    compare = window.show_compare()
    assert not compare.preset("Models")
    assert "no other model" in compare.message.text()


def test_stop_ends_the_comparison_and_says_which_runs_did_not_run(window, qtbot):
    compare = open_compare(window, tokens=1000)
    compare.run()
    qtbot.waitUntil(lambda: compare.columns[0].trace is not None and len(compare.columns[0].trace.frames) > 3,
                    timeout=30_000)
    compare.stop_button.click()
    wait_done(compare, qtbot)
    first, second = compare.columns
    assert first.trace.outcome.stop_reason == "cancelled"
    assert second.trace is None and "not run" in second.view.placeholderText().lower()


def test_the_comparison_exports_as_json_and_as_one_html_page(window, qtbot, monkeypatch, tmp_path):
    install_fake_judge(monkeypatch)
    compare = open_compare(window, tokens=8)
    compare.preset("Top-p", run=True)
    wait_done(compare, qtbot)
    qtbot.waitUntil(lambda: all(c.trace.judgement is not None for c in compare.columns), timeout=10_000)
    traces = [c.trace for c in compare.columns]

    assert compare.export_to(tmp_path / "comparison.json")
    data = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    assert data["format"] == "bd3lm-studio-comparison" and len(data["runs"]) == 3
    marks = comparison.best(traces)
    for i, (run, trace) in enumerate(zip(data["runs"], traces)):
        back = read_trace(run["trace"])  # every run's whole trace, readable like a saved one
        assert back.outcome == trace.outcome and back.judgement == trace.judgement
        assert run["figures"] == comparison.figures(trace)
        assert run["best"] == sorted(k for k, columns in marks.items() if i in columns)
        assert f"top-p {trace.settings['top_p']:g}" in run["label"]

    assert compare.export_to(tmp_path / "comparison.html")
    page = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count('class="best"') == sum(len(m) for m in marks.values())
    result = run_page_script(page, """
console.log(JSON.stringify([0, 1, 2].map((i) => shown(`text${i}`))));
""")
    compare.player.step(10_000)  # the app's columns at their end, as the page opens
    assert result == [view_parts(c.view) for c in compare.columns]  # each column's page shows what the app shows
    assert all(r["cells"] == [] and r["text"].startswith("Once upon a time") for r in result)


def test_compare_stars_gen_ppl_only_among_runs_of_equal_length_and_ties_alike(window, qtbot, monkeypatch):
    """A run that stopped early is judged on fewer tokens: it gets no Gen PPL star, however low its figure;
    equal figures as shown share the star."""
    from dataclasses import replace as changed

    install_fake_judge(monkeypatch)
    compare = open_compare(window)
    compare.preset_buttons["Top-p"].click()
    wait_done(compare, qtbot)
    qtbot.waitUntil(lambda: all(c.trace.judgement is not None for c in compare.columns), timeout=10_000)
    full, other, short = (c.trace for c in compare.columns)
    short.outcome = changed(short.outcome, token_ids=short.outcome.token_ids[:5], stop_reason="eos")
    short.judgement = changed(short.judgement, gen_ppl=1.01)  # the lowest, but on 5 tokens
    full.judgement = changed(full.judgement, gen_ppl=7.04)
    other.judgement = changed(other.judgement, gen_ppl=7.0)  # 7.0 as shown, like 7.04: a tie
    marks = comparison.best([full, other, short])
    assert marks["gen_ppl"] == {0, 1}
    compare._show_figures()
    stars = ["\u2605" in next(r for r in c.figures.text().split("<tr>") if ">Gen PPL<" in r) for c in compare.columns]
    assert stars == [True, True, False]


def test_compare_window_fits_the_screen_and_its_columns_scroll(window, qtbot):
    compare = open_compare(window)
    screen = compare.screen().availableGeometry()
    compare.preset("Samplers")  # four columns
    assert len(compare.columns) == 4
    assert compare.frameGeometry().width() <= screen.width()
    bar = compare.scroll.horizontalScrollBar()
    needed = compare.scroll.widget().sizeHint().width()
    if needed > compare.scroll.viewport().width():  # the last column is reached by scrolling
        assert bar.maximum() >= needed - compare.scroll.viewport().width() - 2
    for column in list(compare.columns[2:]):
        qtbot.mouseClick(column.remove, Qt.LeftButton)
    assert len(compare.columns) == 2
    two_wanted = compare.scroll.widget().sizeHint().width() + 2 * compare.layout().contentsMargins().left() + 4
    frame = compare.frameGeometry().width() - compare.width()
    assert compare.width() == min(max(two_wanted, DEFAULT_WIDTH), screen.width() - frame)  # shrunk back
    assert compare.prompt.width() >= compare.prompt.minimumWidth() > 0  # the prompt keeps a readable width


def test_html_comparison_keeps_words_whole_in_narrow_columns(window, qtbot, tmp_path):
    """Block-16 columns used to draw 8 cells a row in a quarter of the page, with `overflow-wrap: anywhere`:
    each cell was a letter wide and 'mommy' read 'm o m m y'. The page now draws the compare window's
    4 cells a row in its columns, and a cell breaks a word only when the word alone is wider than the cell."""
    compare = open_compare(window, tokens=16)
    compare.preset("Block sizes", run=True)
    wait_done(compare, qtbot)
    assert compare.export_to(tmp_path / "comparison.html")
    page = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert palette.COLUMN_CELLS_PER_ROW == compare.columns[0].view.cells_per_row
    columns = [min(palette.COLUMN_CELLS_PER_ROW, c.trace.block_size) for c in compare.columns]
    assert [run["columns"] for run in embedded(page)["runs"]] == columns and max(columns) == 4
    cell_rule = re.search(r"\.cell \{[^}]*\}", page)[0]
    assert "overflow-wrap: break-word" in cell_rule and "anywhere" not in cell_rule and "break-all" not in page
    block_16 = next(c.trace for c in compare.columns if c.trace.block_size == 16)
    assert embedded(replay_page.replay_page(block_16))["runs"][0]["columns"] == palette.CELLS_PER_ROW


def test_three_seeds_per_column_run_as_one_batch_and_each_is_generate_at_its_seed(window, qtbot, tiny_model):
    """Seeds per column 3: each column holds the runs of seeds S, S+1, S+2, each the text `generate` writes."""
    from bd3lm_core import SamplerSettings, generate, load_model
    from bd3lm_core.sampling import Finished

    compare = open_compare(window, tokens=12)
    compare.seeds.setValue(3)
    compare.preset_buttons["Top-p"].click()
    wait_done(compare, qtbot)
    loaded = load_model(str(tiny_model))
    for column in compare.columns:
        runs = column.finished_runs()
        assert [t.settings["seed"] for t in runs] == [21, 22, 23]
        assert column.seed_choice.isVisible() and column.seed_choice.count() == 3
        for trace in runs:
            [done] = [e for e in generate(loaded, trace.prompt, SamplerSettings(**trace.settings))
                      if isinstance(e, Finished)]
            assert trace.outcome.token_ids == done.token_ids
    column = compare.columns[0]
    column.seed_choice.setCurrentIndex(2)  # show the third seed's run
    assert column.trace is column.finished_runs()[2] and column.view.trace is column.trace


def seeded_columns(compare, gen_ppls: list[list[float]]) -> None:
    """Give each column's finished runs these Gen PPLs (one list per column, one value per seed)."""
    from dataclasses import replace as changed

    from bd3lm_studio.records.trace import Judgement

    for column, values in zip(compare.columns, gen_ppls):
        for trace, value in zip(column.finished_runs(), values):
            trace.judgement = changed(trace.judgement, gen_ppl=value) if trace.judgement else Judgement(12, value, 2.0, "fake")
    compare._show_figures()


def gen_ppl_row(column) -> str:
    return next(r for r in column.figures.text().split("<tr>") if ">Gen PPL<" in r)


def test_a_column_of_seeds_shows_mean_and_spread_and_a_star_only_beyond_the_spread(window, qtbot, monkeypatch):
    install_fake_judge(monkeypatch)
    compare = open_compare(window, tokens=8)
    compare.seeds.setValue(2)
    compare.preset("Top-p", run=True)
    wait_done(compare, qtbot)
    assert all(len(c.finished_runs()) == 2 for c in compare.columns)

    seeded_columns(compare, [[5.0, 9.0], [8.0, 8.2], [8.4, 8.6]])  # A's mean 7.0 is lowest, but its spread is wide
    spread = comparison.summary(compare.columns[0].finished_runs())["gen_ppl"]
    assert (spread.mean, round(spread.sd, 6), spread.n) == (7.0, round(2 ** 1.5, 6), 2)
    assert "7.0 \u00b1 2.8" in gen_ppl_row(compare.columns[0]) and "over 2 seeds" in compare.columns[0].figures.text()
    assert comparison.best([c.finished_runs() for c in compare.columns])["gen_ppl"] == set()
    assert not any("\u2605" in gen_ppl_row(c) for c in compare.columns)

    seeded_columns(compare, [[5.0, 5.2], [8.0, 8.2], [8.4, 8.6]])  # now A is apart from the others by more
    assert comparison.best([c.finished_runs() for c in compare.columns])["gen_ppl"] == {0}
    assert ["\u2605" in gen_ppl_row(c) for c in compare.columns] == [True, False, False]


def test_the_exported_comparison_holds_every_seeds_run_and_each_loads_back(window, qtbot, monkeypatch, tmp_path):
    install_fake_judge(monkeypatch)
    compare = open_compare(window, tokens=8)
    compare.seeds.setValue(2)
    compare.preset("Top-p", run=True)
    wait_done(compare, qtbot)
    qtbot.waitUntil(lambda: all(t.judgement is not None for c in compare.columns for t in c.finished_runs()),
                     timeout=10_000)

    assert compare.export_to(tmp_path / "seeds.json")
    data = json.loads((tmp_path / "seeds.json").read_text(encoding="utf-8"))
    assert data["version"] == 2 and len(data["columns"]) == 3 and len(data["runs"]) == 6
    for i, (column, entry) in enumerate(zip(compare.columns, data["columns"])):
        runs = column.finished_runs()
        assert entry["seeds"] == [21, 22]
        assert entry["figures"]["gen_ppl"] == comparison.summary(runs)["gen_ppl"].to_json()
        mine = [r for r in data["runs"] if r["column"] == i]
        assert [r["seed"] for r in mine] == [21, 22]
        for run, trace in zip(mine, runs):
            back = read_trace(run["trace"])
            assert back.outcome == trace.outcome and back.settings["seed"] == run["seed"]

    assert compare.export_to(tmp_path / "seeds.html")
    page = (tmp_path / "seeds.html").read_text(encoding="utf-8")
    assert page.count("2 seeds, mean &plusmn; sd") == 3 and "seed 21" in page
    # the page replays one run a column, and lists every seed's run with its figures and whole text
    assert "seeds 21 to 22 in every column" in page and "the same seed for every run" not in page
    assert page.count("Every seed's run (2)") == 3
    for column in compare.columns:
        for trace in column.finished_runs():
            assert html.escape(trace.outcome.text) in page
    assert page.count("<b>seed 22</b>: tokens/s") == 3


def test_exporting_an_empty_comparison_is_one_line_and_writes_nothing(tmp_path):
    """It was checked only after `max()` had already raised on the empty list."""
    import pytest

    from bd3lm_core import BD3LMError
    from bd3lm_studio.rendering import exports

    for columns in ([], [[], []]):
        for name in ("c.json", "c.html"):
            with pytest.raises(BD3LMError, match="no finished run to export yet"):
                exports.export_comparison(columns, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_comparison_too_large_for_memory_is_refused_in_each_column_and_the_window_goes_on(window, qtbot, monkeypatch):
    """Eight seeds per column of 1000 tokens under a 1 kB BD3LM_MEMORY_LIMIT: the engine refuses each column's
    batch before allocating its cache, each column says so in one line, and Run all works again once the limit goes."""
    compare = open_compare(window, tokens=1000)
    compare.seeds.setValue(8)
    monkeypatch.setenv("BD3LM_MEMORY_LIMIT", "1K")
    qtbot.mouseClick(compare.run_button, Qt.LeftButton)
    wait_done(compare, qtbot)
    for column in compare.columns:
        message = column.view.placeholderText()
        assert message.startswith("Sampling 8 rows at once needs at least") and "1.0 kB is BD3LM_MEMORY_LIMIT" in message
        assert "\n" not in message and column.trace is None and column.finished_runs() == []
    monkeypatch.delenv("BD3LM_MEMORY_LIMIT")
    compare.seeds.setValue(1)
    qtbot.mouseClick(compare.run_button, Qt.LeftButton)
    wait_done(compare, qtbot)
    assert all(len(column.finished_runs()) == 1 for column in compare.columns)
