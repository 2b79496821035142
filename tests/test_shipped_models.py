"""The two shipped models work offline together: the default model writes, the shipped judge scores."""

from __future__ import annotations

import json
import math
import random

from bd3lm_core import default_judge_dir, default_model_dir, load_judge, load_model
from bd3lm_core.cli import main

STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play in the park with her dog. "
    "One day, she saw a big red ball under a tree. She ran to the ball and picked it up. "
    "Lily was very happy and she played with the ball all day."
)


def test_the_shipped_folders_stay_under_16_mb_together() -> None:
    files = [f for folder in (default_model_dir(), default_judge_dir()) for f in folder.iterdir()]
    assert sum(f.stat().st_size for f in files) < 16_000_000


def test_the_shipped_judge_is_the_default_for_the_shipped_model_and_prefers_stories_to_shuffled_words() -> None:
    judge = load_judge(None, model=load_model(None, device="cpu"), device="cpu")
    assert judge.name == default_judge_dir().name
    words = STORY.split()
    random.Random(0).shuffle(words)
    real, shuffled = judge.score(STORY), judge.score(" ".join(words))
    assert real.tokens == shuffled.tokens or abs(real.tokens - shuffled.tokens) < 10
    assert real.gen_ppl < 20 and shuffled.gen_ppl > 50 * real.gen_ppl  # a plain story is easy for it; word salad is not


def test_generate_reports_gen_ppl_of_the_shipped_model_offline(capsys) -> None:
    assert main(["generate", "--prompt", "Once upon a time", "--tokens", "48", "--seed", "2", "--ignore-eos",
                 "--judge", "default", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["judge"] == default_judge_dir().name
    assert 1.0 < out["gen_ppl"] < 1000.0
    assert 0.0 < out["entropy"] <= math.log(48) + 1e-9  # at most 48 distinct tokens
