"""Gen PPL and entropy of each finished run, from the judge, computed in the engine thread."""

from __future__ import annotations

import json
import threading

import pytest

import bd3lm_studio.engine.worker as worker_module
from bd3lm_core import BD3LMError
from app_helpers import configure, install_fake_judge, run


def score_label_after_a_run(window, qtbot, says: str):
    """The Gen PPL label once an 8-token run has ended and the label says `says`."""
    configure(window, tokens=8)
    run(window, qtbot)
    label = window.status_labels["judgement"]
    qtbot.waitUntil(lambda: says in label.text(), timeout=30_000)
    return label


def test_each_finished_run_shows_gen_ppl_and_entropy_from_the_judge(window, qtbot, monkeypatch, tmp_path):
    judge = install_fake_judge(monkeypatch)
    configure(window, tokens=16)
    run(window, qtbot)
    qtbot.waitUntil(lambda: window.trace.judgement is not None, timeout=10_000)
    ids = window.trace.outcome.token_ids
    score = window.trace.judgement
    assert (score.tokens, score.gen_ppl, score.entropy, score.judge) == (16, 10.0 + len(set(ids)), len(set(ids)) / 10,
                                                                        "fake-judge")
    assert judge.texts == [window.trace.outcome.text] and judge.prompts == [window.trace.prompt]
    assert judge.threads[0] is not threading.main_thread()  # judged in the engine thread, not the UI's
    label = window.status_labels["judgement"]
    assert label.text() == f"Gen PPL {score.gen_ppl:.1f} · entropy {score.entropy:.2f}"
    assert "fake-judge" in label.toolTip()
    assert window.export_to(tmp_path / "run.json")
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["judgement"]["gen_ppl"] == score.gen_ppl


def test_without_a_judge_the_status_says_so_with_a_hint(window, qtbot, monkeypatch):
    missing = "the shipped judge (tinystories-ar-judge) is not installed; pass --judge with a judge folder."

    def no_judge(**kwargs):
        raise BD3LMError(missing)

    monkeypatch.setattr(worker_module, "load_judge", no_judge)
    label = score_label_after_a_run(window, qtbot, "no judge")
    assert label.text() == "Gen PPL: no judge installed"
    assert label.toolTip() == missing
    assert window.status.current_message().startswith("Generated 8 tokens")
    assert "pass --judge" in window.status.current_message()  # the hint, said once where it can be read
    assert window.trace.judgement is None


@pytest.mark.parametrize("failure", ["one-line", "bug"])
def test_a_judge_that_fails_leaves_the_run_whole(window, qtbot, monkeypatch, failure):
    judge = install_fake_judge(monkeypatch)

    def broken(text, token_ids=None, prompt=""):
        if failure == "bug":
            raise ZeroDivisionError("oops")
        raise BD3LMError("the judge ran out of context.")

    monkeypatch.setattr(judge, "score", broken)
    label = score_label_after_a_run(window, qtbot, "failed")
    assert label.text() == "Gen PPL: the judge failed"
    assert window.trace.outcome.stop_reason == "length" and window.export_action.isEnabled()


def test_a_model_with_no_default_judge_shows_the_engines_reason(window, qtbot):
    """The real `load_judge`: the tiny test model's tokenizer has no default judge, and the hint says why."""
    label = score_label_after_a_run(window, qtbot, "no judge")
    assert label.text() == "Gen PPL: no judge installed"
    assert "no default judge" in label.toolTip() and "tokenizer" in label.toolTip()
