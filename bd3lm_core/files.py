"""Files we read from users and files we write for them.

Reading: a path we are given may be a FIFO (opening it waits for a writer
forever), a device such as /dev/zero (reading it never ends) or just far
larger than the file it claims to be. `read_limited` opens without blocking,
checks on the open file that it is a regular file within a size limit, and
never reads past the limit.

Writing: a save cut short by a full disk, a crash or a signal must leave the
previous version whole. `write_atomically` writes a hidden sibling, flushes
it to the disk and renames it over the target in one step; `new_folder`
does the same for a whole folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import BD3LMError
from .formatting import size


def check_regular(path: Path, limit: int | None = None, what: str = "file") -> int:
    """The size of `path` if it is a regular file (symlinks followed) no larger than `limit`.

    Raises FileNotFoundError when it does not exist, so callers can say what is missing.
    """
    return _checked_size(Path(path), os.stat(path), limit, what)


def read_limited(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes (FileNotFoundError if missing)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:  # checked before open() wraps it: a folder there would fail as "Is a directory: 3" (the descriptor)
        _checked_size(path, os.fstat(fd), limit, what)  # a FIFO opens at once with O_NONBLOCK, and is refused here
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb", closefd=True) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while we read it
        raise BD3LMError(f"{path} is larger than {size(limit)}, too large for a {what}; check that it is the right file.")
    return data


def _checked_size(path: Path, info: os.stat_result, limit: int | None, what: str) -> int:
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, a device or a socket"
        raise BD3LMError(f"{path} is {kind}, not a regular file; pass a {what} that is a plain file.")
    if limit is not None and info.st_size > limit:
        raise BD3LMError(
            f"{path} is {size(info.st_size)}, more than the {size(limit)} a {what} can be; check that it is the right file."
        )
    return info.st_size


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: a reader (or the next run) sees the old file or the new, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # created, never opened if it exists (a link planted at the name is not followed); mode 0666 less the umask,
    # as any program's new file, not a temporary file's private 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a full disk can surface only here
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the names a rename changed) to the disk, where the system allows it."""
    if os.name == "nt":  # folders cannot be opened for fsync there; NTFS journals renames itself
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def new_folder(dest: Path) -> Iterator[Path]:
    """A hidden sibling of `dest` to fill, renamed to `dest` when the block succeeds and deleted when it fails.

    `dest` must not exist yet, or be an empty folder: nothing the user had is
    replaced, and nothing half-written ever appears under its name.
    """
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise BD3LMError(f"{dest} already exists and is not an empty folder; pass a new folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.incomplete")
    tmp.mkdir()
    try:
        yield tmp
        if dest.is_dir():
            dest.rmdir()  # empty (checked above); os.replace cannot replace a folder everywhere
        os.replace(tmp, dest)
        sync_folder(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
