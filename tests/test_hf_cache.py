"""Checkpoints already in the Hugging Face cache: found, used in place, preferred over a download,
never deleted; incomplete or damaged snapshots skipped with a one-line note."""

from __future__ import annotations

import json
import os
import time

import pytest
from huggingface_hub import constants

from bd3lm_core import BD3LMError, InstalledModel, installed_models, load_model, models_dir, remove_model
from bd3lm_core.cli import main
from bd3lm_core.hub import model_folder
from bd3lm_core.hub.hf_cache import find_model, scan
from bd3lm_core.loader import resolve_source
from hubserver import tiny_checkpoint_files

REPO = "test-org/tiny-bd3lm"
TINY = tiny_checkpoint_files()
NO_WEIGHTS = {name: TINY[name] for name in ("config.json", "tokenizer.json")}  # an interrupted download
NO_TOKENIZER = {name: TINY[name] for name in ("config.json", "model.safetensors")}  # as published


@pytest.fixture
def hub_default(hub, online, monkeypatch: pytest.MonkeyPatch):
    """The local hub, online, as the endpoint a repo id downloads from (HF_ENDPOINT, read at import)."""
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    return hub


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bd3lm_core.hub.hf_cache"]


def test_a_cached_snapshot_loads_offline_in_place_and_is_not_changed(hf_cache, bd3lm_home) -> None:
    snapshot = hf_cache.add(REPO, TINY)
    before = hf_cache.files()
    loaded = load_model(REPO, device="cpu")
    assert loaded.path == snapshot and loaded.name == REPO
    assert loaded.tokenizer.size == loaded.config.mask_id
    assert hf_cache.files() == before  # read only
    assert not models_dir().exists()  # nothing copied into our folder


def test_generate_with_a_cached_repo_id_works_offline(hf_cache, bd3lm_home, capsys) -> None:
    hf_cache.add(REPO, TINY)
    assert main(["generate", "--model", REPO, "--tokens", "8", "--seed", "1", "--ignore-eos", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["token_ids"]) == 8


def test_a_cached_snapshot_is_preferred_over_a_download(hf_cache, bd3lm_home, hub_default) -> None:
    snapshot = hf_cache.add(REPO, TINY)
    assert resolve_source(REPO) == (snapshot, REPO)
    assert hub_default.requests == []


def test_without_a_cached_snapshot_the_repo_is_downloaded(hf_cache, bd3lm_home, hub_default) -> None:
    assert resolve_source(REPO) == (model_folder(REPO), REPO)
    assert hub_default.gets_of("model.safetensors")


def test_our_own_download_is_preferred_when_both_exist(hf_cache, bd3lm_home) -> None:
    hf_cache.add(REPO, TINY)
    ours = model_folder(REPO)
    ours.mkdir(parents=True)
    for name, content in TINY.items():
        (ours / name).write_bytes(content)
    assert resolve_source(REPO) == (ours, REPO)
    assert [(m.path, m.in_hf_cache) for m in installed_models()] == [(ours, False)]


def test_an_incomplete_snapshot_is_skipped_with_a_one_line_note(hf_cache, bd3lm_home, caplog) -> None:
    hf_cache.add(REPO, NO_WEIGHTS)
    with pytest.raises(BD3LMError, match="cannot reach the Hugging Face hub"):
        load_model(REPO)  # offline, with nothing else to fall back on
    [note] = notes(caplog)
    assert note.startswith(f"note: skipped {REPO} in the Hugging Face cache") and "model.safetensors" in note
    assert "\n" not in note
    assert installed_models() == []


def test_an_incomplete_snapshot_is_downloaded_again_when_online(hf_cache, bd3lm_home, hub_default) -> None:
    hf_cache.add(REPO, NO_WEIGHTS)
    assert resolve_source(REPO) == (model_folder(REPO), REPO)
    assert hub_default.gets_of("model.safetensors")


def test_a_dangling_blob_link_is_skipped_never_loaded(hf_cache, bd3lm_home, caplog, capsys) -> None:
    hf_cache.add(REPO, TINY, missing_blobs=("model.safetensors",))
    assert find_model(REPO) is None
    [note] = notes(caplog)
    assert f"skipped {REPO} in the Hugging Face cache, which is damaged" in note and "broken symlink" in note
    assert main(["models"]) == 0
    assert f"note: skipped {REPO}" in capsys.readouterr().out


def test_offline_the_newest_complete_snapshot_stands_in_for_an_incomplete_main(
    hf_cache, bd3lm_home, monkeypatch
) -> None:
    complete = hf_cache.add(REPO, TINY, commit="a" * 40, main=False)
    hf_cache.add(REPO, NO_WEIGHTS, commit="b" * 40)  # refs/main: an interrupted update
    assert find_model(REPO) == complete
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert find_model(REPO) is None  # online, main's snapshot is the one that counts: download it instead


def test_cached_checkpoints_are_listed_as_installed_and_other_models_are_not(hf_cache, bd3lm_home, capsys) -> None:
    snapshot = hf_cache.add(REPO, TINY)
    other = {"config.json": b'{"model_type": "gpt2", "n_layer": 12}', "model.safetensors": b"weights"}
    hf_cache.add("openai-community/gpt2", other | {"tokenizer.json": b"{}"})
    size = sum(len(content) for content in TINY.values())
    assert installed_models() == [InstalledModel(REPO, snapshot, size, in_hf_cache=True)]
    assert scan().skipped == {}
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{REPO:48s} " in out and f"in the Hugging Face cache: {snapshot}" in out
    assert "gpt2 " not in out


def test_removing_never_deletes_from_the_hugging_face_cache(hf_cache, bd3lm_home) -> None:
    snapshot = hf_cache.add(REPO, TINY)
    before = hf_cache.files()
    with pytest.raises(BD3LMError, match="hf cache rm"):
        remove_model(REPO)
    ours = model_folder(REPO)
    ours.mkdir(parents=True)
    for name, content in TINY.items():
        (ours / name).write_bytes(content)
    remove_model(REPO)  # our copy goes; the cached one is used from then on
    assert not ours.exists() and resolve_source(REPO) == (snapshot, REPO)
    assert hf_cache.files() == before


@pytest.mark.parametrize("gpt2_repo", ["openai-community/gpt2", "gpt2"])
def test_the_gpt2_tokenizer_comes_from_the_cache_when_the_snapshot_has_none(hf_cache, bd3lm_home, gpt2_repo) -> None:
    snapshot = hf_cache.add(REPO, NO_TOKENIZER)
    with pytest.raises(BD3LMError, match="no tokenizer.json and GPT-2's could not be fetched"):
        load_model(REPO)  # offline, and GPT-2's tokenizer is nowhere yet
    hf_cache.add(gpt2_repo, {"tokenizer.json": TINY["tokenizer.json"]})
    loaded = load_model(REPO)
    assert loaded.path == snapshot and loaded.tokenizer.size == loaded.config.mask_id
    assert not models_dir().exists()


# --- one bad entry in another repo (issue 21): the good repo is still found, at once -----------------------------
def fifo_ref(repo) -> None:
    (repo / "refs" / "main").unlink()
    os.mkfifo(repo / "refs" / "main")  # reading it would wait for a writer for ever


def dev_zero_ref(repo) -> None:
    (repo / "refs" / "main").unlink()
    (repo / "refs" / "main").symlink_to("/dev/zero")  # reading it would never end


def non_utf8_ref(repo) -> None:
    (repo / "refs" / "main").write_bytes(b"\xff" * 40)


def looping_link(repo) -> None:
    [snapshot] = (repo / "snapshots").iterdir()
    (snapshot / "model.safetensors").unlink()
    (snapshot / "model.safetensors").symlink_to("model.safetensors")  # a link to itself


def long_ref(repo) -> None:
    (repo / "refs" / "main").write_text("a" * 40 + "\n" * 10_000_000)


@pytest.mark.parametrize("damage", [fifo_ref, dev_zero_ref, non_utf8_ref, looping_link, long_ref])
def test_a_damaged_repo_costs_only_itself_a_note(hf_cache, bd3lm_home, capsys, damage) -> None:
    good = hf_cache.add(REPO, TINY)
    hf_cache.add("other-org/broken", TINY)
    damage(hf_cache.root / "models--other-org--broken")

    started = time.monotonic()
    assert find_model(REPO) == good
    assert resolve_source(REPO) == (good, REPO)
    assert time.monotonic() - started < 1.0
    found = scan()
    assert list(found.models) == [REPO]
    [note] = found.skipped.values()
    assert note.startswith("skipped other-org/broken in the Hugging Face cache, which is damaged: ") and "\n" not in note
    assert find_model("other-org/broken") is None

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"in the Hugging Face cache: {good}" in out and out.count("note: skipped other-org/broken") == 1
