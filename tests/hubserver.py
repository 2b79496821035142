"""A stand-in for the Hugging Face hub on 127.0.0.1, for download tests.

It answers `HEAD` and `GET /{repo_id}/resolve/{revision}/{filename}` the way
huggingface.co does. Small files come back directly with an ETag and
X-Repo-Commit. `*.safetensors` files are LFS files: the resolve URL redirects
(302) to a content address on another host name (`localhost` instead of
`127.0.0.1`, standing in for the CDN), and the redirect itself carries
X-Linked-Etag and X-Linked-Size, as on the real hub. Bodies honour
`Range: bytes=N-` with 206. Missing repos, revisions and files get 404 with
the X-Error-Code that huggingface_hub turns into its exception types. ETags
are what the hub sends: git's blob sha1 for small files, the sha256 of the
content for LFS files.

Switches make it misbehave the ways a broken proxy or mirror does:
`range_from_zero` answers a Range request with 206 but the bytes from 0,
`served_instead` sends other bytes than the ones the headers describe,
`etags` sends a given ETag instead of the real one, `endless` sends a body
without a length that never stops, `unsized` leaves the size out of HEAD, and `chunk` with `chunk_delay` trickles.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tiny import tiny_tokenizer_json

CHUNK = 16 * 1024  # bytes written between delays and cut checks
FIXTURE = Path(__file__).parent / "fixtures" / "parity-bs4" / "checkpoint"


def tiny_checkpoint_files() -> dict[str, bytes]:
    """config.json, model.safetensors and a matching tokenizer.json of a tiny valid BD3-LM."""
    config = (FIXTURE / "config.json").read_bytes()
    vocab_size = json.loads(config)["vocab_size"]  # tokenizer ids + the mask id
    return {
        "config.json": config,
        "model.safetensors": (FIXTURE / "model.safetensors").read_bytes(),
        "tokenizer.json": tiny_tokenizer_json(vocab_size - 1).encode(),
    }


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    range: str | None


class HubServer:
    """Serves `repos` ({repo_id: {filename: bytes}}); use as a context manager."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[LoggedRequest] = []
        self.chunk_delay = 0.0  # seconds to sleep after each chunk of a body
        self.chunk = CHUNK  # bytes written at a time (1 with chunk_delay 1.0: a body trickling at 1 byte/s)
        self.endless: set[str] = set()  # filenames whose GET body has no Content-Length and never ends
        self.unsized: set[str] = set()  # filenames whose HEAD has no Content-Length (the hub gives no size)
        self.range_from_zero: set[str] = set()  # filenames whose Range requests get 206 with the bytes from 0
        self.served_instead: dict[str, bytes] = {}  # filename -> bytes sent while the headers describe the real file
        self.etags: dict[str, str] = {}  # filename -> ETag header sent instead of the real one
        self._cuts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def cut_next_get(self, filename: str, after_bytes: int) -> None:
        """Drop the connection after `after_bytes` of the body of the next GET of `filename`."""
        with self._lock:
            self._cuts[filename] = after_bytes

    def gets_of(self, filename: str) -> list[LoggedRequest]:
        """The GET requests for `filename`'s resolve URL, in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(f"/{filename}")]

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _take_cut(self, filename: str) -> int | None:
        with self._lock:
            return self._cuts.pop(filename, None)

    def _blob(self, sha: str) -> tuple[str, bytes] | None:
        for files in self.repos.values():
            for filename, content in files.items():
                if hashlib.sha256(content).hexdigest() == sha:
                    return filename, content
        return None


def git_blob_sha1(content: bytes) -> str:
    """The hash git (and so the hub's ETag) gives a small file: sha1 of a `blob <size>` header and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def commit_of(repo_id: str) -> str:
    """The (fixed, made-up) commit hash each repo is at."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read `HubServer.requests` instead."""

    def _answer(self, send_body: bool) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        hub.requests.append(LoggedRequest(self.command, self.path, self.headers.get("Range")))
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/lfs/"):
            blob = hub._blob(path.removeprefix("/lfs/"))
            if blob is None:
                return self._error(404, "EntryNotFound", "Blob not found")
            return self._content(hub, *blob, {}, send_body)
        repo_id, found, rest = path.removeprefix("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        files = hub.repos.get(repo_id)
        if not found or files is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        commit = commit_of(repo_id)
        if revision not in ("main", commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id", commit)
        if filename not in files:
            return self._error(404, "EntryNotFound", "Entry not found", commit)
        content = files[filename]
        if filename.endswith(".safetensors"):
            return self._lfs_redirect(hub, filename, content, commit)
        etag = hub.etags.get(filename, f'"{git_blob_sha1(content)}"')
        self._content(hub, filename, content, {"ETag": etag, "X-Repo-Commit": commit}, send_body)

    def _lfs_redirect(self, hub: HubServer, filename: str, content: bytes, commit: str) -> None:
        sha = hashlib.sha256(content).hexdigest()
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{hub.port}/lfs/{sha}")
        self.send_header("X-Repo-Commit", commit)
        self.send_header("X-Linked-Etag", hub.etags.get(filename, f'"{sha}"'))
        self.send_header("X-Linked-Size", str(len(content)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, hub: HubServer, filename: str, content: bytes, headers: dict[str, str], send_body: bool) -> None:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(match[1]) if match else 0
        if match and filename in hub.range_from_zero:
            start = 0  # a 206 all the same, with a Content-Range that says so
        if match and start >= len(content):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(content)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if match else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.send_header("Accept-Ranges", "bytes")
        if send_body and filename in hub.endless:
            self.send_header("Connection", "close")  # the body ends when the connection does: never
            self.end_headers()
            self.close_connection = True
            return self._endless_body()
        if send_body or filename not in hub.unsized:  # a HEAD has no body, so it may leave the length out
            self.send_header("Content-Length", str(len(content) - start))
        self.end_headers()
        if send_body:
            self._body(hub, filename, hub.served_instead.get(filename, content)[start:])

    def _body(self, hub: HubServer, filename: str, body: bytes) -> None:
        cut = hub._take_cut(filename)
        if cut is not None:
            body = body[:cut]
            self.close_connection = True  # the client sees a short body: a cut transfer
        try:
            for i in range(0, len(body), hub.chunk):
                self.wfile.write(body[i : i + hub.chunk])
                self.wfile.flush()
                if hub.chunk_delay:
                    time.sleep(hub.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (a cancel)
            self.close_connection = True

    def _endless_body(self) -> None:
        try:
            while True:
                self.wfile.write(b"\0" * CHUNK)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up, as it should
            pass

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
