"""Shared fixtures. Tests never reach the network: the hub client starts offline,
and download tests opt in with `online`, addressing only the local `hub` server.
Nor do they see the developer's Hugging Face cache: tests that need one build it (`hf_cache`)."""

from __future__ import annotations

import os
import signal
import tempfile

# Ctrl+C as a terminal delivers it. A run started in the background of a non-interactive shell (`.ci/run &`)
# inherits SIGINT ignored, and so would every process the tests start: the Ctrl+C tests would see nothing.
signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: it reads this once
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"  # never send a developer's hub token to test servers
_NO_HF_CACHE = tempfile.TemporaryDirectory(prefix="bd3lm-tests-hf-cache-")  # empty; removed at exit
os.environ["HF_HUB_CACHE"] = _NO_HF_CACHE.name  # read once at import too; subprocesses inherit it

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from huggingface_hub import constants  # noqa: E402

from cache_factory import HFCache  # noqa: E402
from hubserver import HubServer, tiny_checkpoint_files  # noqa: E402
from tiny import tiny_tokenizer_json  # noqa: E402

constants.HF_HUB_OFFLINE = True  # in case a plugin imported huggingface_hub before this file
constants.HF_HUB_CACHE = _NO_HF_CACHE.name


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make requests during one test (it checks this constant on every request)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A local hub with `test-org/tiny-bd3lm`, `test-org/no-tokenizer` (no tokenizer.json) and `gpt2`."""
    tiny = tiny_checkpoint_files()
    repos = {
        "test-org/tiny-bd3lm": tiny,
        "test-org/no-tokenizer": {name: tiny[name] for name in ("config.json", "model.safetensors")},
        "gpt2": {"tokenizer.json": tiny_tokenizer_json(100).encode()},  # fits the tiny model's vocab
    }
    with HubServer(repos) as server:
        yield server


@pytest.fixture
def bd3lm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Downloads go under tmp_path instead of the user's data folder."""
    monkeypatch.setenv("BD3LM_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HFCache:
    """An empty Hugging Face cache under tmp_path, in use for this test (and its subprocesses)."""
    root = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return HFCache(root)


@pytest.fixture
def hub_as_default(hub: HubServer, online: None, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The local hub in place of huggingface.co for calls that take no endpoint (load_model, the app)."""
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    return hub


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """A small random BD3-LM (block 4, context 32) loaded on the CPU; one per test module, so no state leaks."""
    from bd3lm_core import load_model
    from model_factory import make_model_folder

    return load_model(make_model_folder(tmp_path_factory.mktemp("tiny"), block_size=4, model_length=32), device="cpu")
