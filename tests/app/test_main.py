"""The `bd3lm-studio` command line: which model opens first."""

from __future__ import annotations

from bd3lm_studio.main import MODEL_ENV, parse_args


def test_model_option_env_and_qt_arguments(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    args, rest = parse_args([])
    assert args.model is None and rest == []  # the shipped model

    monkeypatch.setenv(MODEL_ENV, "/models/from-env")
    assert parse_args([])[0].model == "/models/from-env"
    args, rest = parse_args(["--model", "/models/mine", "-platform", "offscreen"])
    assert args.model == "/models/mine" and rest == ["-platform", "offscreen"]


def test_the_shipped_icon_has_every_size(qapp):
    from bd3lm_studio.main import ICON_SIZES, app_icon

    sizes = {(s.width(), s.height()) for s in app_icon().availableSizes()}
    assert sizes == {(n, n) for n in ICON_SIZES}
