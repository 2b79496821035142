"""Model downloads through the real huggingface_hub client, against the local `hub` server."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

from bd3lm_core.errors import BD3LMError
from bd3lm_core.hub import download
from bd3lm_core.hub import (
    DownloadCancelled,
    DownloadProgress,
    InstalledModel,
    download_model,
    installed_models,
    is_installed,
    model_folder,
    models_dir,
    remove_model,
)
from bd3lm_core.hub.layout import VERIFIED_MARKER
from bd3lm_core.model.tokenizer import Tokenizer

REPO = "test-org/tiny-bd3lm"


def partial_files(repo_id: str, filename: str) -> list[Path]:
    return list(model_folder(repo_id).glob(f"{filename}.*.incomplete"))


def test_download_places_the_served_files_and_lists_the_model(hub, online, bd3lm_home):
    folder = download_model(REPO, endpoint=hub.url)

    assert folder == bd3lm_home / "models" / "test-org--tiny-bd3lm"
    served = hub.repos[REPO]
    for name, content in served.items():
        assert (folder / name).read_bytes() == content
    assert list(folder.glob("*.incomplete")) == []
    assert installed_models() == [InstalledModel(REPO, folder, sum(len(c) for c in served.values()))]
    assert is_installed(REPO)
    vocab_size = json.loads(served["config.json"])["vocab_size"]
    assert Tokenizer.load(folder / "tokenizer.json").size == vocab_size - 1  # the tiny repo is a loadable pair

    asked = len(hub.requests)
    assert download_model(REPO, endpoint=hub.url) == folder
    assert len(hub.requests) == asked  # installed: no hub round trip


def test_progress_counts_up_to_the_sum_of_the_file_sizes(hub, online, bd3lm_home):
    events: list[DownloadProgress] = []
    download_model(REPO, progress=events.append, endpoint=hub.url)

    sizes = sum(len(content) for content in hub.repos[REPO].values())
    counts = [event.downloaded for event in events]
    assert counts == sorted(counts)
    assert all(event.total == sizes for event in events)
    assert (events[-1].downloaded, events[-1].eta_seconds) == (sizes, 0.0)
    assert {event.filename for event in events} == {"config.json", "model.safetensors", "tokenizer.json"}
    assert events[-1].bytes_per_second > 0


def test_interrupted_transfer_resumes_with_a_range_request(hub, online, bd3lm_home):
    weights = hub.repos[REPO]["model.safetensors"]
    hub.cut_next_get("model.safetensors", 100_000)

    with pytest.raises(BD3LMError, match="interrupted"):
        download_model(REPO, endpoint=hub.url)
    [partial] = partial_files(REPO, "model.safetensors")
    assert partial.stat().st_size == 100_000
    assert not is_installed(REPO)

    folder = download_model(REPO, endpoint=hub.url)
    assert hub.gets_of("model.safetensors")[-1].range == "bytes=100000-"
    assert (folder / "model.safetensors").read_bytes() == weights
    assert len(hub.gets_of("config.json")) == 1  # finished files are not fetched again
    assert partial_files(REPO, "model.safetensors") == []


def test_cancel_stops_promptly_and_the_partial_file_resumes(hub, online, bd3lm_home):
    weights = hub.repos[REPO]["model.safetensors"]
    config_size = len(hub.repos[REPO]["config.json"])
    hub.chunk_delay = 0.05  # the weights take ~1.7 s, so the cancel lands mid-file
    cancel = threading.Event()
    cancelled_at = []

    def on_progress(event: DownloadProgress) -> None:
        if event.filename == "model.safetensors" and event.downloaded > config_size and not cancel.is_set():
            cancel.set()
            cancelled_at.append(time.monotonic())

    with pytest.raises(DownloadCancelled):
        download_model(REPO, progress=on_progress, cancel=cancel, endpoint=hub.url)
    assert time.monotonic() - cancelled_at[0] < 0.5
    [partial] = partial_files(REPO, "model.safetensors")
    kept = partial.stat().st_size
    assert 0 < kept < len(weights)
    assert partial.read_bytes() == weights[:kept]

    hub.chunk_delay = 0.0
    folder = download_model(REPO, endpoint=hub.url)
    assert hub.gets_of("model.safetensors")[-1].range == f"bytes={kept}-"
    assert (folder / "model.safetensors").read_bytes() == weights


def test_missing_repo_is_named_in_the_error(hub, online, bd3lm_home):
    with pytest.raises(BD3LMError) as err:
        download_model("test-org/no-such-model", endpoint=hub.url)
    message = str(err.value)
    assert "test-org/no-such-model" in message and "bd3lm models" in message
    assert "\n" not in message
    assert not model_folder("test-org/no-such-model").exists()


def test_offline_mode_points_to_a_local_folder(hub, bd3lm_home):
    with pytest.raises(BD3LMError) as err:
        download_model(REPO, endpoint=hub.url)
    assert "--model PATH" in str(err.value) and "folder" in str(err.value)
    assert hub.requests == []


def test_unreachable_hub_points_to_a_local_folder(online, bd3lm_home):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BD3LMError, match="cannot reach the Hugging Face hub.*--model PATH"):
        download_model(REPO, endpoint=f"http://127.0.0.1:{port}")


def test_not_enough_disk_space_is_reported_before_downloading(hub, online, bd3lm_home, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    need = sum(len(content) for content in hub.repos[REPO].values())
    with pytest.raises(BD3LMError, match=rf"the disk is full: test-org/tiny-bd3lm needs {need / 1000:.1f} kB more"):
        download_model(REPO, endpoint=hub.url)
    assert hub.gets_of("model.safetensors") == []


def test_repo_without_tokenizer_gets_gpt2s(hub, online, bd3lm_home, monkeypatch):
    folder = download_model("test-org/no-tokenizer", endpoint=hub.url)

    gpt2 = hub.repos["gpt2"]["tokenizer.json"]
    assert (folder / "tokenizer.json").read_bytes() == gpt2
    assert [r.path.split("/resolve/")[0] for r in hub.gets_of("tokenizer.json")] == ["/gpt2"]
    assert [m.repo_id for m in installed_models()] == ["test-org/no-tokenizer"]  # not the gpt2 folder

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(hub.requests)
    assert download.download_gpt2_tokenizer(endpoint=hub.url).read_bytes() == gpt2  # kept, so it works offline
    assert len(hub.requests) == asked


def test_remove_model_deletes_the_folder(hub, online, bd3lm_home):
    folder = download_model(REPO, endpoint=hub.url)
    remove_model(REPO)

    assert not folder.exists()
    assert installed_models() == []
    assert not is_installed(REPO)
    with pytest.raises(BD3LMError, match="not downloaded"):
        remove_model(REPO)


def test_ids_that_are_not_hub_ids_are_refused(bd3lm_home):
    models_dir().mkdir(parents=True)
    with pytest.raises(BD3LMError, match="not a hub repo id"):
        remove_model("..")
    assert models_dir().is_dir()


# --- what the server sends is verified, not trusted ----------------------------
def test_a_resume_answered_from_byte_0_is_refused_and_the_next_download_starts_clean(hub, online, bd3lm_home):
    weights = hub.repos[REPO]["model.safetensors"]
    hub.cut_next_get("model.safetensors", 100_000)
    with pytest.raises(BD3LMError, match="interrupted"):
        download_model(REPO, endpoint=hub.url)
    hub.range_from_zero.add("model.safetensors")

    with pytest.raises(BD3LMError) as err:
        download_model(REPO, endpoint=hub.url)
    assert "Content-Range 'bytes 0-" in str(err.value) and "bytes 100000- were asked for" in str(err.value)
    assert "partial file was deleted" in str(err.value) and "\n" not in str(err.value)
    assert partial_files(REPO, "model.safetensors") == []
    assert not (model_folder(REPO) / "model.safetensors").exists() and not is_installed(REPO)

    hub.range_from_zero.clear()
    folder = download_model(REPO, endpoint=hub.url)
    assert hub.gets_of("model.safetensors")[-1].range is None  # started clean
    assert (folder / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize("filename, hash_name", [("model.safetensors", "sha256"), ("config.json", "git sha1")])
def test_changed_bytes_are_deleted_before_they_are_installed(hub, online, bd3lm_home, filename, hash_name):
    real = hub.repos[REPO][filename]
    hub.served_instead[filename] = real[:-1] + bytes([real[-1] ^ 1])  # same size, one bit off

    with pytest.raises(BD3LMError) as err:
        download_model(REPO, endpoint=hub.url)
    assert f"its {hash_name} is not the" in str(err.value) and filename in str(err.value)
    folder = model_folder(REPO)
    assert not (folder / filename).exists() and partial_files(REPO, filename) == []
    assert not is_installed(REPO) and installed_models() == []

    del hub.served_instead[filename]
    assert (download_model(REPO, endpoint=hub.url) / filename).read_bytes() == real


@pytest.mark.parametrize("etag", ['"../../../escaped"', '"not-a-hash"', '"' + "a" * 63 + '"'])
def test_an_etag_that_is_not_a_hash_is_a_clear_error(hub, online, bd3lm_home, etag):
    hub.etags["config.json"] = etag
    with pytest.raises(BD3LMError) as err:
        download_model(REPO, endpoint=hub.url)
    assert "not a hash" in str(err.value) and etag.strip('"') in str(err.value) and "\n" not in str(err.value)
    assert [p for p in bd3lm_home.rglob("*") if p.is_file()] == []  # nothing written anywhere


def test_a_folder_from_before_verification_is_verified_without_downloading_it_again(hub, online, bd3lm_home):
    folder = download_model(REPO, endpoint=hub.url)
    (folder / VERIFIED_MARKER).unlink()  # as an earlier version left it
    assert is_installed(REPO) and [m.repo_id for m in installed_models()] == [REPO]
    gets = len([r for r in hub.requests if r.method == "GET"])

    assert download_model(REPO, endpoint=hub.url) == folder
    assert len([r for r in hub.requests if r.method == "GET"]) == gets  # hashed here, not fetched again
    record = json.loads((folder / VERIFIED_MARKER).read_text())
    assert record["files"]["model.safetensors"]["etag"] == hashlib.sha256(hub.repos[REPO]["model.safetensors"]).hexdigest()


def test_a_damaged_file_of_an_old_folder_is_fetched_again_and_only_it(hub, online, bd3lm_home):
    folder = download_model(REPO, endpoint=hub.url)
    (folder / VERIFIED_MARKER).unlink()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)  # what an unverified resume could install

    download_model(REPO, endpoint=hub.url)
    assert weights.read_bytes() == hub.repos[REPO]["model.safetensors"]
    assert len(hub.gets_of("model.safetensors")) == 2 and len(hub.gets_of("config.json")) == 1
    assert (folder / VERIFIED_MARKER).is_file()


def test_an_old_folder_is_used_as_it_is_while_the_hub_cannot_be_asked(hub, online, bd3lm_home, monkeypatch):
    folder = download_model(REPO, endpoint=hub.url)
    (folder / VERIFIED_MARKER).unlink()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert download_model(REPO, endpoint=hub.url) == folder
    assert [m.repo_id for m in installed_models()] == [REPO]
    assert not (folder / VERIFIED_MARKER).exists()  # verified once the hub answers


def test_a_disk_that_fills_up_after_the_transfers_says_what_is_still_needed(hub, online, bd3lm_home, monkeypatch):
    def full(src, dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "_copy_complete", full)  # the GPT-2 tokenizer's copy into the model folder
    with pytest.raises(BD3LMError) as err:
        download_model("test-org/no-tokenizer", endpoint=hub.url)
    need = len(hub.repos["gpt2"]["tokenizer.json"])
    assert f"needs {need / 1000:.1f} kB more" in str(err.value)
    assert not is_installed("test-org/no-tokenizer")


# --- a hub that never stops, trickles, or finds a link planted (issue 21) ---------------------------------------
def test_an_endless_body_without_a_length_is_refused_at_once(hub, online, bd3lm_home):
    hub.endless.add("model.safetensors")
    started = time.monotonic()
    with pytest.raises(BD3LMError, match="sent it without a length, where the hub gave"):
        download_model(REPO, endpoint=hub.url)
    assert time.monotonic() - started < 10
    assert partial_files(REPO, "model.safetensors") == [] and not is_installed(REPO)


def test_a_hub_sending_1_byte_per_second_is_given_up_after_the_window(hub, online, bd3lm_home, monkeypatch):
    monkeypatch.setenv("BD3LM_DOWNLOAD_SPEED_WINDOW", "2")
    monkeypatch.setenv("BD3LM_DOWNLOAD_MIN_SPEED", "100")
    hub.chunk, hub.chunk_delay = 1, 0.5
    started = time.monotonic()
    with pytest.raises(BD3LMError, match=r"slower than 100 B/s for 2 s"):
        download_model(REPO, endpoint=hub.url)
    assert 2 <= time.monotonic() - started < 10


def test_a_download_past_the_overall_timeout_is_given_up(hub, online, bd3lm_home, monkeypatch):
    monkeypatch.setenv("BD3LM_DOWNLOAD_TIMEOUT", "1")
    hub.chunk_delay = 0.1  # 16 kB every 0.1 s: fast enough for the speed check, too slow for 1 s in all
    with pytest.raises(BD3LMError, match=r"took longer than 1 s \(BD3LM_DOWNLOAD_TIMEOUT\)"):
        download_model(REPO, endpoint=hub.url)


@pytest.mark.parametrize("value", ["0", "ten", "1e3", "١٢", "9" * 5000])
def test_download_limits_from_the_environment_are_strict(hub, online, bd3lm_home, monkeypatch, value):
    monkeypatch.setenv("BD3LM_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(BD3LMError, match="BD3LM_DOWNLOAD_TIMEOUT must be a whole number from 1 to 1000000000"):
        download_model(REPO, endpoint=hub.url)


def test_a_link_planted_at_the_partial_name_is_never_followed(hub, online, bd3lm_home, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    folder = model_folder(REPO)
    folder.mkdir(parents=True)
    sha = hashlib.sha256(hub.repos[REPO]["model.safetensors"]).hexdigest()
    (folder / f"model.safetensors.{sha}.incomplete").symlink_to(victim)

    download_model(REPO, endpoint=hub.url)
    assert victim.read_bytes() == b"precious"
    assert (folder / "model.safetensors").read_bytes() == hub.repos[REPO]["model.safetensors"]
    assert not (folder / "model.safetensors").is_symlink()


def test_a_new_version_cut_midway_leaves_the_installed_model_working(hub, online, bd3lm_home, monkeypatch):
    from bd3lm_core import generate, load_model
    from bd3lm_core.sampling import Finished, SamplerSettings

    folder = download_model(REPO, endpoint=hub.url)
    (folder / VERIFIED_MARKER).unlink()  # as a version before verification left it
    old = (folder / "model.safetensors").read_bytes()
    hub.repos[REPO]["model.safetensors"] = old[:-1] + bytes([old[-1] ^ 1])  # the hub now has another hash
    hub.cut_next_get("model.safetensors", 100_000)
    with pytest.raises(BD3LMError, match="interrupted"):
        download_model(REPO, endpoint=hub.url)
    assert (folder / "model.safetensors").read_bytes() == old

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline, the model generates as before
    loaded = load_model(REPO, device="cpu")
    events = list(generate(loaded, "", SamplerSettings(tokens=8, seed=1, stop_at_eos=False)))
    assert isinstance(events[-1], Finished) and len(events[-1].token_ids) == 8


def test_a_repo_id_without_an_organisation_cannot_take_the_gpt2_tokenizer_folder(hub, online, bd3lm_home):
    download_model("test-org/no-tokenizer", endpoint=hub.url)  # puts GPT-2's tokenizer in its shared folder
    shared = download.download_gpt2_tokenizer(endpoint=hub.url)
    assert model_folder("gpt2-tokenizer") != shared.parent
    assert not str(model_folder("gpt2-tokenizer")).startswith(str(shared.parent))


def test_a_file_without_a_size_is_read_no_further_than_we_would_read_it(hub, online, bd3lm_home):
    hub.unsized.add("config.json")
    hub.endless.add("config.json")  # and its body never ends
    with pytest.raises(BD3LMError, match=r"config.json was not the file .* sent more than 1.0 MB"):
        download_model(REPO, endpoint=hub.url)
    assert partial_files(REPO, "config.json") == []


def test_a_file_without_a_size_downloads_when_it_is_whole(hub, online, bd3lm_home):
    hub.unsized.add("config.json")
    folder = download_model(REPO, endpoint=hub.url)
    assert (folder / "config.json").read_bytes() == hub.repos[REPO]["config.json"]
