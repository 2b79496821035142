"""Downloading BD3-LM checkpoints from the Hugging Face hub, resumably, into the store (`store.py`).

The published repos have no tokenizer, so GPT-2's is downloaded once and
copied in. Every file appears in the model folder only once it is complete.

Why not `hf_hub_download`: in huggingface_hub 2.4 it streams into a temporary
file with a per-call unique name and deletes it on any failure, so an
interrupted 680 MB download starts again from zero, and it retries cut
transfers by itself with sleeps that a cancel cannot interrupt. So we use the
hub client for what it knows (URLs, the HEAD metadata call and its error
classes, the shared HTTP session and auth headers) and stream the bytes
ourselves into `<file>.<etag>.incomplete`, which the next attempt continues
with a Range request. The ETag in the name keeps the bytes of a newer upload
from being appended to a partial file of an older one.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from filelock import FileLock, Timeout
from huggingface_hub import constants, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import (
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from ..errors import BD3LMError
from .store import CONFIG_FILE, GPT2_FOLDER, TOKENIZER_FILE, WEIGHTS_FILE, is_installed, model_folder, models_dir

GPT2_REPO = "gpt2"  # the tokenizer of every published BD3-LM
_REPORT_EVERY = 0.25  # seconds between progress reports during a transfer


class DownloadCancelled(BD3LMError):
    """The user stopped a download; its partial file stays for the next attempt to continue."""


@dataclass(frozen=True)
class DownloadProgress:
    """Where a model download stands, counted over all of its files."""

    filename: str  # the file being transferred
    downloaded: int  # bytes on disk, including what earlier attempts left
    total: int | None  # None when the hub did not say a file's size
    bytes_per_second: float  # average over this attempt
    eta_seconds: float | None


def download_model(
    repo_id: str,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download a hub model into model_folder(repo_id) and return that folder.

    Files finished earlier are kept and a partial one is continued, so calling
    this again after a failure or a cancel picks up where it stopped.
    `progress` is called on this (the downloading) thread; `endpoint` None
    means HF_ENDPOINT or huggingface.co.
    """
    folder = model_folder(repo_id)
    if is_installed(repo_id):
        return folder
    with _hub_errors(repo_id):
        files = _plan(repo_id, folder, endpoint)
    _fetch_all(repo_id, files, folder, progress, cancel)
    return folder


def gpt2_tokenizer(endpoint: str | None = None) -> Path:
    """GPT-2's tokenizer.json, downloaded once and then served from disk, so it works offline."""
    folder = models_dir() / GPT2_FOLDER
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        with _hub_errors(GPT2_REPO):
            file = _required(GPT2_REPO, TOKENIZER_FILE, None, folder, endpoint)
        _fetch_all(GPT2_REPO, [file], folder, None, None)
    return path


@dataclass(frozen=True)
class _RemoteFile:
    """One file to download: its URL pinned to a commit, and where it goes."""

    name: str
    url: str
    etag: str
    size: int | None
    commit: str
    dest: Path

    @property
    def partial(self) -> Path:
        return self.dest.with_name(f"{self.name}.{self.etag}.incomplete")

    def bytes_on_disk(self) -> int:
        """What earlier attempts left: the whole file, or the part to continue."""
        for path in (self.dest, self.partial):
            if path.is_file():
                return path.stat().st_size
        return 0


def _plan(repo_id: str, folder: Path, endpoint: str | None) -> list[_RemoteFile]:
    """The model's files, all from the commit config.json came from; GPT-2's tokenizer if the repo has none."""
    config = _required(repo_id, CONFIG_FILE, None, folder, endpoint)
    weights = _required(repo_id, WEIGHTS_FILE, config.commit, folder, endpoint)
    tokenizer = _remote(repo_id, TOKENIZER_FILE, config.commit, folder, endpoint) or _required(
        GPT2_REPO, TOKENIZER_FILE, None, models_dir() / GPT2_FOLDER, endpoint
    )
    files = [config, weights, tokenizer]
    for file in files:
        _drop_stale_partials(file)
    return files


def _remote(
    repo_id: str, filename: str, revision: str | None, folder: Path, endpoint: str | None
) -> _RemoteFile | None:
    """Ask the hub (HEAD) for one file's commit, ETag and size; None if the repo has no such file."""
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    except RemoteEntryNotFoundError:
        return None
    if meta.commit_hash is None or meta.etag is None:
        raise BD3LMError(
            f"{url} did not answer like the Hugging Face hub (no commit or ETag header); "
            "check HF_ENDPOINT and proxy settings."
        )
    pinned = hf_hub_url(repo_id, filename, revision=meta.commit_hash, endpoint=endpoint)
    return _RemoteFile(filename, pinned, meta.etag, meta.size, meta.commit_hash, folder / filename)


def _required(repo_id: str, filename: str, revision: str | None, folder: Path, endpoint: str | None) -> _RemoteFile:
    file = _remote(repo_id, filename, revision, folder, endpoint)
    if file is None:
        raise BD3LMError(
            f"{repo_id} on the hub has no {filename}, so it is not a BD3-LM checkpoint; "
            "run `bd3lm models` to see the catalog."
        )
    return file


def _drop_stale_partials(file: _RemoteFile) -> None:
    """Remove partial files of other versions of `file` (and an impossibly long one of this version)."""
    for path in file.dest.parent.glob(f"{file.name}.*.incomplete"):
        if path != file.partial or (file.size is not None and path.stat().st_size > file.size):
            path.unlink()


def _fetch_all(
    repo_id: str,
    files: list[_RemoteFile],
    folder: Path,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Download `files`, then copy into `folder` those kept elsewhere (the shared GPT-2 tokenizer)."""
    meter = _Meter(files, progress)
    try:
        with _hub_errors(repo_id):
            folder.mkdir(parents=True, exist_ok=True)
            if _missing_bytes(files) > shutil.disk_usage(folder).free:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            for file in files:
                _fetch(file, meter, cancel)
        for file in files:
            if file.dest.parent != folder:
                _copy_complete(file.dest, folder / file.name)
    except OSError as err:
        raise _disk_error(err, repo_id, files) from None
    meter.report(files[-1].name)


def _fetch(file: _RemoteFile, meter: _Meter, cancel: threading.Event | None) -> None:
    """Bring file.dest into place, continuing its partial file with a Range request."""
    _stop_if_cancelled(cancel)
    meter.report(file.name)
    file.dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(file.dest):
        if file.dest.is_file():
            return
        if file.size is None or not file.partial.is_file() or file.partial.stat().st_size < file.size:
            _transfer(file, meter, cancel)
        got = file.partial.stat().st_size
        if file.size is not None and got != file.size:
            file.partial.unlink()
            raise BD3LMError(f"{file.name} arrived with {got} bytes instead of {file.size}; download again.")
        os.replace(file.partial, file.dest)


def _transfer(file: _RemoteFile, meter: _Meter, cancel: threading.Event | None) -> None:
    """Append the rest of the file to file.partial, checking for cancel after every chunk."""
    offset = file.bytes_on_disk()
    # identity: a Range applies to the encoded bytes, so compression would break resuming.
    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={offset}-"} if offset else {})
    stream = get_session().stream(
        "GET", file.url, headers=build_hf_headers(headers=headers), timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
    )
    with stream as response:
        hf_raise_for_status(response)
        with file.partial.open("ab") as out:
            if response.status_code != 206:  # the whole file is coming: start over
                out.truncate(0)
                meter.downloaded -= offset
            for chunk in response.iter_bytes():
                out.write(chunk)
                meter.add(file.name, len(chunk))
                _stop_if_cancelled(cancel)


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled("download cancelled; start it again to continue where it stopped.")


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Lock `path` for this download, so two downloads never append to the same partial file."""
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BD3LMError(f"{path} is being downloaded by another window or process; wait for it to finish.") from None
    try:
        yield
    finally:
        lock.release()


def _copy_complete(src: Path, dest: Path) -> None:
    """Copy so that `dest` only ever exists complete (a complete folder is an installed model)."""
    tmp = dest.with_name(dest.name + ".incomplete")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _missing_bytes(files: list[_RemoteFile]) -> int:
    return sum(max(file.size - file.bytes_on_disk(), 0) for file in files if file.size is not None)


def _disk_error(err: OSError, repo_id: str, files: list[_RemoteFile]) -> BD3LMError:
    if err.errno == errno.ENOSPC:
        need_mb = _missing_bytes(files) / 1e6
        return BD3LMError(
            f"the disk is full: {repo_id} needs {need_mb:,.0f} MB more in {models_dir()}; "
            "free some space and download again to continue."
        )
    return BD3LMError(
        f"cannot write the download of {repo_id} ({err}); check that {models_dir()} is writable, "
        "or set BD3LM_HOME to another folder."
    )


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Turn huggingface_hub and HTTP failures into one-line BD3LMErrors."""
    try:
        yield
    except (OfflineModeIsEnabled, httpx2.ConnectError, httpx2.ConnectTimeout):
        raise BD3LMError(
            f"cannot reach the Hugging Face hub to download {repo_id} (offline, or HF_HUB_OFFLINE is set); "
            "load a model folder from this computer instead with --model PATH (or Open model folder… in the app)."
        ) from None
    except RepositoryNotFoundError:  # also private and gated repos
        raise BD3LMError(
            f"{repo_id} was not found on the Hugging Face hub; "
            "check the spelling, or run `bd3lm models` to see the catalog."
        ) from None
    except HfHubHTTPError as err:
        detail = " ".join((err.server_message or err.response.reason_phrase).split())
        raise BD3LMError(f"the hub answered HTTP {err.response.status_code} for {repo_id}: {detail}.") from None
    except httpx2.RequestError as err:  # a cut or stalled transfer, too many redirects, …
        raise BD3LMError(
            f"the download of {repo_id} was interrupted ({err}); download it again to continue where it stopped."
        ) from None


class _Meter:
    """Turns byte counts into DownloadProgress reports, a few per second at most."""

    def __init__(self, files: list[_RemoteFile], callback: Callable[[DownloadProgress], None] | None) -> None:
        sizes = [file.size for file in files]
        self.total = None if None in sizes else sum(sizes)
        self.downloaded = sum(file.bytes_on_disk() for file in files)
        self._callback = callback
        self._started = time.monotonic()
        self._transferred = 0
        self._last_report = self._started

    def add(self, filename: str, nbytes: int) -> None:
        self.downloaded += nbytes
        self._transferred += nbytes
        if time.monotonic() - self._last_report >= _REPORT_EVERY:
            self.report(filename)

    def report(self, filename: str) -> None:
        if self._callback is None:
            return
        self._last_report = now = time.monotonic()
        speed = self._transferred / (now - self._started) if now > self._started else 0.0
        left = None if self.total is None else self.total - self.downloaded
        if left == 0:
            eta = 0.0
        elif left is not None and speed > 0:
            eta = left / speed
        else:
            eta = None
        self._callback(DownloadProgress(filename, self.downloaded, self.total, speed, eta))
