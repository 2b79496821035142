"""The `bd3lm` command as a user runs it: output, JSON, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bd3lm_core import load_network
from bd3lm_core.cli import main
from model_factory import make_model_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("cli") / "tiny")


def test_generate_json(model: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["generate", "--model", str(model), "--prompt", "The cat", "--tokens", "21", "--seed", "3",
                 "--ignore-eos", "--json", "--steps", "2"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["token_ids"]) == 21
    assert out["nfe"] > 0 and out["seconds"] > 0
    assert out["tokens_per_second"] == pytest.approx(21 / out["seconds"])
    assert out["settings"] == {
        "tokens": 21, "block_size": 4, "steps": 2, "sampler": "threshold", "top_p": 0.8, "threshold": 0.9,
        "entropy_bound": 1.0, "temperature": 1.0,
        "seed": 3, "stop_at_eos": False, "stop_on_repetition": True,
    }


def test_generate_streams_the_same_text(model: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["generate", "--model", str(model), "--prompt", "A", "--tokens", "17", "--seed", "8", "--ignore-eos"]
    assert main(args + ["--json"]) == 0
    text = json.loads(capsys.readouterr().out)["text"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == "A" + text + "\n"
    assert "17 tokens" in captured.err


def test_a_folder_without_tokenizer_is_one_line_and_exit_2(tmp_path: Path, monkeypatch) -> None:
    """(Damaged weights and configs are rows of test_bad_inputs.py.)"""
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path / "home"))  # no GPT-2 tokenizer downloaded there
    folder = make_model_folder(tmp_path / "bad")
    (folder / "tokenizer.json").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "bd3lm_core.cli", "generate", "--model", str(folder), "--tokens", "4"],
        capture_output=True, text=True, env={**_env(), "BD3LM_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("bd3lm: ")
    assert "tokenizer" in result.stderr and "Traceback" not in result.stderr


def test_download_offline_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bd3lm_core.cli", "download", "kuleshov-group/bd3lm-owt-block_size4"],
        capture_output=True, text=True, env={**_env(), "BD3LM_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert "--model PATH" in result.stderr and "Traceback" not in result.stderr


def test_models_lists_the_catalog(capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for block in (4, 8, 16):
        assert f"kuleshov-group/bd3lm-owt-block_size{block} " in out
    assert str(tmp_path) in out


def _env() -> dict[str, str]:
    import os

    root = Path(__file__).resolve().parent.parent
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def test_convert_to_float16_keeps_the_model(model: Path, tmp_path: Path) -> None:
    assert main(["convert", str(model), str(tmp_path / "half"), "--dtype", "float16"]) == 0
    tensors = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    full, half = load_network(model), load_network(tmp_path / "half")
    for (name, a), b in zip(full.state_dict().items(), half.state_dict().values()):
        assert (a - b).abs().max() <= 1e-3 * max(1.0, a.abs().max().item()), name
    assert (tmp_path / "half" / "tokenizer.json").read_bytes() == (model / "tokenizer.json").read_bytes()


def test_an_unwritable_destination_is_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["convert", str(model), str(blocker / "half")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bd3lm: ") and str(blocker / "half") in err


def test_n_blocks_still_sets_the_layers_for_one_release_with_a_one_line_warning(capsys) -> None:
    from bd3lm_core.cli import build_parser

    train = ["train", "--data", "x.txt", "--out", "run"]
    assert build_parser().parse_args(train).n_layers != 3
    assert capsys.readouterr().err == ""
    assert build_parser().parse_args([*train, "--n-layers", "3"]).n_layers == 3
    assert capsys.readouterr().err == ""
    assert build_parser().parse_args([*train, "--n-blocks", "3"]).n_layers == 3
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("bd3lm: warning: --n-blocks is deprecated")
    assert "use --n-layers" in warning
