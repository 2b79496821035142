"""A Hugging Face cache in a temporary folder, in the layout huggingface_hub writes.

    models--ORG--NAME/blobs/<hash>                   the bytes of each file, once
    models--ORG--NAME/snapshots/<commit>/<file>      relative symlinks to the blobs
    models--ORG--NAME/refs/main                      the commit `main` is at
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class HFCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add(
        self, repo_id: str, files: dict[str, bytes], commit: str | None = None, main: bool = True,
        missing_blobs: tuple[str, ...] = (),
    ) -> Path:
        """Put a snapshot of `repo_id` holding `files` in the cache and return its folder.

        `main`: point refs/main at it. `missing_blobs`: files whose link is left dangling,
        as when a blob was deleted by hand or a copy of the cache was cut short.
        """
        repo = self.root / ("models--" + repo_id.replace("/", "--"))
        commit = commit or hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (repo / "blobs").mkdir(exist_ok=True)
        for name, content in files.items():
            blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
            if name not in missing_blobs:
                blob.write_bytes(content)
            (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
        if main:
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / "main").write_text(commit)
        return snapshot

    def files(self) -> dict[str, bytes]:
        """Every file under the cache with its bytes (links read through): to show nothing was changed."""
        return {
            str(path.relative_to(self.root)): path.read_bytes() if path.exists() else b"<dangling>"
            for path in sorted(self.root.rglob("*"))
            if path.is_symlink() or path.is_file()
        }
