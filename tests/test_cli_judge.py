"""`bd3lm judge` and `bd3lm generate --judge`: the numbers the API gives, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from bd3lm_core import load_judge
from bd3lm_core.cli import main
from model_factory import CORPUS, make_model_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-judge")
    return {
        "judge": make_model_folder(root / "tiny-ar", block_size=1, model_length=32, seed=1),
        "model": make_model_folder(root / "tiny-bs4", block_size=4, model_length=32),
    }


@pytest.fixture
def texts(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "one.txt", tmp_path / "two.txt"]
    paths[0].write_text(CORPUS[0], encoding="utf-8")
    paths[1].write_text(CORPUS[1] + "\n" + CORPUS[2], encoding="utf-8")
    return paths


@pytest.fixture
def shipped_judge(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped judge's folder, stood in for by the tiny autoregressive model."""
    monkeypatch.setattr("bd3lm_core.quality.loading.default_judge_dir", lambda: models["judge"])
    return models["judge"]


def test_judge_json_prints_one_object_per_file_with_the_api_numbers(
    models: dict[str, Path], texts: list[Path], capsys: pytest.CaptureFixture
) -> None:
    assert main(["judge", "--judge", str(models["judge"]), "--json", "--device", "cpu", *map(str, texts)]) == 0
    lines = capsys.readouterr().out.splitlines()
    judge = load_judge(models["judge"])
    assert len(lines) == 2
    for line, path in zip(lines, texts):
        got = json.loads(line)
        expected = judge.score(path.read_text(encoding="utf-8"))
        assert got == {"file": str(path), "tokens": expected.tokens, "gen_ppl": expected.gen_ppl, "entropy": expected.entropy}
        assert got["tokens"] == len(judge.tokenizer.encode(path.read_text(encoding="utf-8")))


def test_judge_without_a_judge_uses_the_shipped_one(
    shipped_judge: Path, texts: list[Path], capsys: pytest.CaptureFixture
) -> None:
    assert main(["judge", texts[0].as_posix()]) == 0
    expected = load_judge(shipped_judge).score(texts[0].read_text(encoding="utf-8"))
    assert capsys.readouterr().out == (
        f"{texts[0]}: {expected.tokens} tokens, Gen PPL {expected.gen_ppl:.2f}, entropy {expected.entropy:.2f} nats\n"
    )


@pytest.mark.parametrize(
    "write, expected",
    [
        (None, "does not exist"),
        (lambda p: p.write_bytes(b"caf\xe9 au lait"), "is not UTF-8 text"),
        (lambda p: p.write_text(" \n\n"), "is empty"),
    ],
    ids=["missing", "latin-1", "empty"],
)
def test_judge_input_errors_are_one_line_with_exit_status_2(
    models: dict[str, Path], texts: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture, write, expected: str
) -> None:
    bad = tmp_path / "bad.txt"
    if write:
        write(bad)
    assert main(["judge", "--judge", str(models["judge"]), str(texts[0]), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing is scored before every file is read
    assert captured.err.startswith(f"bd3lm: {bad}") and expected in captured.err and captured.err.count("\n") == 1


def test_judge_with_a_model_that_is_not_autoregressive_is_one_line_with_exit_status_2(
    models: dict[str, Path], texts: list[Path], capsys: pytest.CaptureFixture
) -> None:
    assert main(["judge", "--judge", str(models["model"]), str(texts[0])]) == 2
    err = capsys.readouterr().err
    assert "block size 4, so it cannot judge" in err and err.count("\n") == 1


GENERATE = ["generate", "--prompt", "The cat", "--tokens", "24", "--seed", "5", "--ignore-eos", "--device", "cpu"]


def test_generate_judge_adds_gen_ppl_and_entropy_of_the_sample_to_the_json(
    models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    assert main([*GENERATE, "--model", str(models["model"]), "--judge", str(models["judge"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = load_judge(models["judge"]).score(out["text"], prompt="The cat")
    assert out["judge"] == "tiny-ar"
    assert out["gen_ppl"] == pytest.approx(expected.gen_ppl, rel=1e-12)
    counts = Counter(out["token_ids"]).values()  # the entropy is of the model's own 24 tokens
    assert out["entropy"] == pytest.approx(-sum(c / 24 * math.log(c / 24) for c in counts))


def test_generate_judge_default_picks_the_judge_for_the_models_tokenizer_and_prints_it_in_the_summary(
    shipped_judge: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    assert main([*GENERATE, "--model", str(models["model"]), "--judge", "default", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["judge"] == shipped_judge.name
    assert main([*GENERATE, "--model", str(models["model"]), "--judge", "default"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.endswith(f"seed 5, Gen PPL {out['gen_ppl']:.2f}, entropy {out['entropy']:.2f}]")


def test_generate_without_judge_reports_no_quality(models: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    assert main([*GENERATE, "--model", str(models["model"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "gen_ppl" not in out and "entropy" not in out
