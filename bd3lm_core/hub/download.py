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

Nothing the server sends is trusted. The ETag is the file's hash (sha256 of
the content for LFS files, git's blob sha1 for small files), so it must look
like one; a resumed transfer must answer with the Content-Range asked for;
every file is checked against the size and hash the hub gave before it is
renamed into place, and a mismatch deletes the partial file (the next attempt
starts clean). Nothing past the declared size is read, a body without a
length is refused, and a transfer that trickles or runs too long is given up
(`TransferLimits`). The partial file is opened without following links. The
old files of a model are replaced only once every new file is verified, so a
download that fails never costs a working model. A model counts as verified
once every file has passed: the marker (`store.VERIFIED_MARKER`) is written last.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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

from ..errors import BD3LMError, one_line
from ..files import sync_folder, write_atomically
from ..formatting import size
from ..model.config import MAX_CONFIG_BYTES
from ..model.tokenizer import MAX_TOKENIZER_BYTES
from .layout import (
    CHAT_FILES, CONFIG_FILE, GPT2_FOLDER, TOKENIZER_FILE, VERIFIED_MARKER, WEIGHTS_FILE, WEIGHTS_INDEX, shard_names,
)
from .store import is_installed, is_verified, model_folder, models_dir

GPT2_REPO = "gpt2"  # the tokenizer of every published BD3-LM
_REPORT_EVERY = 0.25  # seconds between progress reports during a transfer
_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # ETags and commits: git sha1, or sha256 for LFS files
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class TransferLimits:
    """When a transfer is given up: slower than `min_speed` bytes/s over `window` seconds, or longer than `total` seconds.

    As curl's --speed-limit/--speed-time and git's http.lowSpeedLimit do, so a
    hub that trickles a byte a second is not waited on for ever. The
    environment variables move them (tests use seconds, not minutes).
    """

    min_speed: int = 1024
    window: int = 60
    total: int = 24 * 3600

    @classmethod
    def from_env(cls) -> TransferLimits:
        return cls(*(
            _env_whole_number(name, default)
            for name, default in (
                ("BD3LM_DOWNLOAD_MIN_SPEED", cls.min_speed), ("BD3LM_DOWNLOAD_SPEED_WINDOW", cls.window),
                ("BD3LM_DOWNLOAD_TIMEOUT", cls.total),
            )
        ))


def _env_whole_number(name: str, default: int) -> int:
    """`$name` as a whole number from 1 to 10**9 written in ASCII digits, else `default` when it is unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= 10**9):
        raise BD3LMError(f"{name} must be a whole number from 1 to 1000000000, not {one_line(text, 40)!r}; fix or unset it.")
    return int(text)


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

    A folder installed by a version of bd3lm that did not verify downloads
    (all three files, no marker) is verified here without downloading it
    again: its files are hashed against the hub's, only a file that differs
    is fetched anew, and the marker is written. While the hub cannot be
    reached such a folder is used as it is, as it was before, so nobody has
    to download 680 MB again or lose a model that works offline.
    """
    folder = model_folder(repo_id)
    if is_verified(repo_id):
        return folder
    try:
        with _hub_errors(repo_id):
            files = _plan(repo_id, folder, endpoint)
    except BD3LMError:
        if is_installed(repo_id):  # an unverified folder from an earlier version: keep using it until the hub answers
            return folder
        raise
    _fetch_all(repo_id, files, folder, progress, cancel)
    _mark_verified(repo_id, folder, files)
    return folder


def download_gpt2_tokenizer(endpoint: str | None = None) -> Path:
    """Our copy of GPT-2's tokenizer.json, downloaded once and then served from disk, so it works offline."""
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

    def partial_bytes(self) -> int:
        """What earlier attempts left of this version to continue (a link or a folder at that name counts nothing)."""
        info = _lstat(self.partial)
        return info.st_size if info is not None and stat.S_ISREG(info.st_mode) else 0

    def is_current(self) -> bool:
        """Whether `dest` is already this file (hashed, so a folder from an earlier version is checked too)."""
        info = _lstat(self.dest)
        return info is not None and stat.S_ISREG(info.st_mode) and _matches(self, self.dest)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _plan(repo_id: str, folder: Path, endpoint: str | None) -> list[_RemoteFile]:
    """The model's files, all from the commit config.json came from; GPT-2's tokenizer if the repo has none.

    The weights are one model.safetensors, or (larger chat models) model.safetensors.index.json and every
    shard it names: the index, a few kB, is fetched and verified here to learn their names. A chat
    model's tokenizer_config.json, generation_config.json and chat_template.jinja come along when the
    repo has them.
    """
    config = _required(repo_id, CONFIG_FILE, None, folder, endpoint)
    weights = [_remote(repo_id, WEIGHTS_FILE, config.commit, folder, endpoint)]
    if weights[0] is None:
        index = _remote(repo_id, WEIGHTS_INDEX, config.commit, folder, endpoint)
        if index is None:
            _required(repo_id, WEIGHTS_FILE, config.commit, folder, endpoint)  # says the repo has no weights
        _fetch_all(repo_id, [index], folder, None, None)
        shards = shard_names(index.dest)
        if not shards:
            raise BD3LMError(f"{repo_id}'s {WEIGHTS_INDEX} names no shards; it is not a model we can download.")
        weights = [index] + [_required(repo_id, name, config.commit, folder, endpoint) for name in shards]
    tokenizer = _remote(repo_id, TOKENIZER_FILE, config.commit, folder, endpoint) or _required(
        GPT2_REPO, TOKENIZER_FILE, None, models_dir() / GPT2_FOLDER, endpoint
    )
    extras = [_remote(repo_id, name, config.commit, folder, endpoint) for name in CHAT_FILES]
    files = [config, *weights, tokenizer, *(f for f in extras if f is not None)]
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
    etag, commit = meta.etag.lower(), meta.commit_hash.lower()
    if not _HASH.fullmatch(etag) or not _HASH.fullmatch(commit):  # they become file names and are what we verify against
        shown = one_line(meta.etag if not _HASH.fullmatch(etag) else meta.commit_hash, 80)
        raise BD3LMError(
            f"{url} answered with an ETag or commit that is not a hash ({shown!r}), so the download cannot be "
            "verified; check HF_ENDPOINT and proxy settings."
        )
    pinned = hf_hub_url(repo_id, filename, revision=commit, endpoint=endpoint)
    return _RemoteFile(filename, pinned, etag, meta.size, commit, folder / filename)


def _required(repo_id: str, filename: str, revision: str | None, folder: Path, endpoint: str | None) -> _RemoteFile:
    file = _remote(repo_id, filename, revision, folder, endpoint)
    if file is None:
        raise BD3LMError(
            f"{repo_id} on the hub has no {filename}, so it is not a BD3-LM checkpoint; "
            "run `bd3lm models` to see the catalog."
        )
    return file


def _drop_stale_partials(file: _RemoteFile) -> None:
    """Remove partial files of other versions of `file`, an impossibly long one, and anything not a plain file there."""
    for path in file.dest.parent.glob(f"{file.name}.*.incomplete"):
        info = path.lstat()
        if path != file.partial or not stat.S_ISREG(info.st_mode) or (file.size is not None and info.st_size > file.size):
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()  # a link planted at the predictable name goes, never what it points to


def _fetch_all(
    repo_id: str,
    files: list[_RemoteFile],
    folder: Path,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Download `files`, then copy into `folder` those kept elsewhere (the shared GPT-2 tokenizer).

    Every new file is downloaded and verified beside the old one first; only
    then are the old ones replaced, so a cut or a refused download leaves a
    working model as it was.
    """
    todo = [file for file in files if not file.is_current()]
    limits = TransferLimits.from_env()
    try:
        meter = _Meter(files, todo, progress)
        with _hub_errors(repo_id), ExitStack() as locks:
            folder.mkdir(parents=True, exist_ok=True)
            if _bytes_needed(todo, files, folder) > shutil.disk_usage(folder).free:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            deadline = time.monotonic() + limits.total
            for file in todo:
                file.dest.parent.mkdir(parents=True, exist_ok=True)
                locks.enter_context(_exclusive(file.dest))
                _fetch(file, meter, cancel, limits, deadline)
            for file in todo:  # all verified: now, and only now, the old files go
                os.replace(file.partial, file.dest)
            for parent in {file.dest.parent for file in todo}:
                sync_folder(parent)
            todo = []  # nothing left to download, should the copies below fill the disk
        for file in files:
            if file.dest.parent != folder:
                _copy_complete(file.dest, folder / file.name)
    except OSError as err:
        raise _disk_error(err, repo_id, todo, files, folder) from None
    meter.report(files[-1].name)


def _fetch(
    file: _RemoteFile, meter: _Meter, cancel: threading.Event | None, limits: TransferLimits, deadline: float,
) -> None:
    """Bring file.partial to the whole, verified file, continuing it with a Range request."""
    _stop_if_cancelled(cancel)
    meter.report(file.name)
    if file.size is None or file.partial_bytes() < file.size:
        _transfer(file, meter, cancel, limits, deadline)
    got = file.partial_bytes()
    if file.size is not None and got != file.size:
        _reject(file, f"it arrived with {got} bytes instead of {file.size}")
    if not _matches(file, file.partial):
        _reject(file, f"its {_hash_name(file.etag)} is not the {file.etag} the hub gave")


def _transfer(
    file: _RemoteFile, meter: _Meter, cancel: threading.Event | None, limits: TransferLimits, deadline: float,
) -> None:
    """Append the rest of the file to file.partial, checking sizes, speed and cancel after every chunk."""
    offset = file.partial_bytes()
    # identity: a Range applies to the encoded bytes, so compression would break resuming.
    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={offset}-"} if offset else {})
    timeout = min(constants.HF_HUB_DOWNLOAD_TIMEOUT, limits.window)
    stream = get_session().stream("GET", file.url, headers=build_hf_headers(headers=headers), timeout=timeout)
    with stream as response:
        hf_raise_for_status(response)
        if response.status_code == 206:
            _check_range(file, response.headers.get("Content-Range"), offset)
        else:  # the whole file is coming: start over
            meter.downloaded -= offset
            offset = 0
        if file.size is not None and response.headers.get("Content-Length") is None:
            _reject(file, f"the server sent it without a length, where the hub gave {file.size} bytes")
        limit = file.size if file.size is not None else _unsized_limit(file)
        room = limit - offset
        speed = _SpeedCheck(limits, deadline)
        with _open_partial(file, keep=response.status_code == 206) as out:
            for chunk in response.iter_bytes():
                if len(chunk) > room:
                    said = f"the {file.size} bytes the hub gave" if file.size is not None else size(limit)
                    _reject(file, f"the server sent more than {said}")
                room -= len(chunk)
                out.write(chunk)
                meter.add(file.name, len(chunk))
                _stop_if_cancelled(cancel)
                speed.check(len(chunk), file.name)


def _unsized_limit(file: _RemoteFile) -> int:
    """The most bytes a file the hub gave no size for may have: what we would read of it; weights must have a size."""
    limits = {CONFIG_FILE: MAX_CONFIG_BYTES, TOKENIZER_FILE: MAX_TOKENIZER_BYTES}
    if file.name not in limits:
        _reject(file, "the hub gave no size for it")
    return limits[file.name]


@contextmanager
def _open_partial(file: _RemoteFile, keep: bool) -> Iterator:
    """file.partial for appending, never through a link: created anew (exclusively) unless `keep` continues it."""
    if not keep:
        file.partial.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | _NOFOLLOW | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(file.partial, flags | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        fd = os.open(file.partial, flags)  # a link planted since fails here (ELOOP) instead of being followed
    with open(fd, "ab", closefd=True) as out:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BD3LMError(f"{file.partial} is not a plain file; delete it and download again.")
        yield out


class _SpeedCheck:
    """Gives up a transfer that is too slow over a window of seconds, or has run past the overall deadline."""

    def __init__(self, limits: TransferLimits, deadline: float) -> None:
        self.limits, self.deadline = limits, deadline
        self.window_start, self.window_bytes = time.monotonic(), 0

    def check(self, nbytes: int, name: str) -> None:
        now = time.monotonic()
        self.window_bytes += nbytes
        if now > self.deadline:
            raise BD3LMError(
                f"the download of {name} took longer than {self.limits.total} s (BD3LM_DOWNLOAD_TIMEOUT); "
                "download again to continue where it stopped."
            )
        if now - self.window_start < self.limits.window:
            return
        if self.window_bytes < self.limits.min_speed * self.limits.window:
            raise BD3LMError(
                f"the download of {name} was slower than {size(self.limits.min_speed)}/s for {self.limits.window} s "
                "(BD3LM_DOWNLOAD_MIN_SPEED, BD3LM_DOWNLOAD_SPEED_WINDOW); download again to continue where it stopped."
            )
        self.window_start, self.window_bytes = now, 0


def _check_range(file: _RemoteFile, content_range: str | None, offset: int) -> None:
    """A 206 must carry the bytes asked for: from `offset` to the end of the file the hub described."""
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    ok = match is not None and int(match[1]) == offset and int(match[2]) + 1 == int(match[3])
    if ok and file.size is not None:
        ok = int(match[3]) == file.size
    if not ok:
        _reject(file, f"the server resumed it with Content-Range {content_range!r} where bytes {offset}- were asked for")


def _matches(file: _RemoteFile, path: Path) -> bool:
    """Whether `path` has the size and hash the hub gave for `file` (sha256 for LFS files, git's blob sha1 otherwise)."""
    length = path.stat().st_size
    if file.size is not None and length != file.size:
        return False
    digest = hashlib.sha256() if len(file.etag) == 64 else hashlib.sha1(b"blob %d\0" % length)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == file.etag


def _hash_name(etag: str) -> str:
    return "sha256" if len(etag) == 64 else "git sha1"


def _reject(file: _RemoteFile, why: str) -> None:
    """Delete the partial download of `file` (the next attempt starts clean) and say why."""
    file.partial.unlink(missing_ok=True)
    raise BD3LMError(
        f"the download of {file.name} was not the file the hub described ({why}); the partial file was deleted "
        "and any earlier version kept, download again to start over."
    )


def _mark_verified(repo_id: str, folder: Path, files: list[_RemoteFile]) -> None:
    """Record that every file of `folder` matched the hub: written last, so its presence means the model is whole."""
    record = {"commit": files[0].commit, "files": {f.name: {"etag": f.etag, "size": f.size} for f in files}}
    try:
        write_atomically(folder / VERIFIED_MARKER, (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    except OSError as err:
        raise _disk_error(err, repo_id, [], files, folder) from None


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


def _bytes_needed(todo: list[_RemoteFile], files: list[_RemoteFile], folder: Path) -> int:
    """What is still to be written: the rest of every download in `todo`, and the copies of shared files into `folder`."""
    missing = sum(max(file.size - file.partial_bytes(), 0) for file in todo if file.size is not None)
    copies = sum(
        file.size for file in files
        if file.size is not None and file.dest.parent != folder and not (folder / file.name).is_file()
    )
    return missing + copies


def _disk_error(
    err: OSError, repo_id: str, todo: list[_RemoteFile], files: list[_RemoteFile], folder: Path,
) -> BD3LMError:
    if err.errno == errno.ENOSPC:
        need = _bytes_needed(todo, files, folder)
        more = f"{repo_id} needs {size(need)} more" if need else f"{repo_id} needs a little more space"
        return BD3LMError(
            f"the disk is full: {more} in {models_dir()}; free some space and download again to continue."
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
        detail = one_line(err.server_message or err.response.reason_phrase)
        raise BD3LMError(f"the hub answered HTTP {err.response.status_code} for {repo_id}: {detail}.") from None
    except httpx2.RequestError as err:  # a cut or stalled transfer, too many redirects, …
        raise BD3LMError(
            f"the download of {repo_id} was interrupted ({one_line(err)}); download it again to continue where it stopped."
        ) from None


class _Meter:
    """Turns byte counts into DownloadProgress reports, a few per second at most."""

    def __init__(
        self, files: list[_RemoteFile], todo: list[_RemoteFile], callback: Callable[[DownloadProgress], None] | None,
    ) -> None:
        sizes = [file.size for file in files]
        self.total = None if None in sizes else sum(sizes)
        self.downloaded = sum(file.partial_bytes() if file in todo else file.dest.stat().st_size for file in files)
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
