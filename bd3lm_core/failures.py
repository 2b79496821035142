"""The one answer to an error that reached the top: a line for the user, the details in a report file.

The CLI and the app both end an exception that nobody below handled here, so
that every failure reads alike: `BD3LMError` is the user's to fix and its
message says how (status 2); a file or memory problem the code did not
foresee is also the user's (status 2), named with what was being done; any
other exception is our bug (status 1). Its traceback goes to a report file
in the user's state folder (under `BD3LM_HOME` when that is set, as the
models are), and the line says where, so nobody sees a bare traceback.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import BD3LMError, one_line

EXIT_USER_ERROR, EXIT_BUG = 2, 1


@dataclass(frozen=True)
class Failure:
    """What to tell the user about an exception: `message` (one line) and the exit `status`."""

    message: str
    status: int


def reports_dir() -> Path:
    """Where error reports are written: `$BD3LM_HOME/logs`, else the user's state folder."""
    home = os.environ.get("BD3LM_HOME")
    base = Path(home).expanduser() if home else platformdirs.user_state_path("bd3lm-studio")
    return base / "logs"


def write_report(error: BaseException, doing: str) -> Path | None:
    """The traceback of `error` in a new file of reports_dir(); None where nothing could be written."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = reports_dir() / f"error-{stamp}-{os.getpid()}.log"
    text = f"while {doing}\n\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", errors="replace")
    except OSError:
        return None
    return path


def describe(error: BaseException, doing: str) -> Failure:
    """The line and status for `error`, raised while `doing` (for example "running `bd3lm generate`")."""
    if isinstance(error, BD3LMError):
        return Failure(str(error), EXIT_USER_ERROR)
    report = write_report(error, doing)
    where = f" The full report is in {report}." if report else ""
    if isinstance(error, MemoryError):
        return Failure(f"not enough memory while {doing}; ask for less (fewer samples, a smaller model).{where}",
                       EXIT_USER_ERROR)
    if isinstance(error, OSError):
        named = error.filename if isinstance(error.filename, (str, bytes, os.PathLike)) else None  # not a descriptor
        what = f"{error.strerror}: {os.fsdecode(named)}" if error.strerror and named else one_line(error.strerror or error)
        return Failure(f"{what}, while {doing}. Check the path and the free space.{where}", EXIT_USER_ERROR)
    detail = one_line(f"{type(error).__name__}: {error}")
    return Failure(f"unexpected error while {doing} ({detail}); this is a bug in bd3lm, please report it.{where}",
                   EXIT_BUG)
