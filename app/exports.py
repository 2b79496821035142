"""Saving a run: plain text, Markdown with the settings, the full JSON trace, an HTML replay.

Every write is atomic (a temporary file next to the target, then a rename),
so a failed export never leaves half a file behind; failures are raised as
`BD3LMError` with a one-line message, and the run stays in the window.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bd3lm_core import BD3LMError

from .replay_page import replay_page
from .trace import Trace

FORMATS = {
    ".txt": "Plain text (*.txt)",
    ".md": "Markdown with the settings (*.md)",
    ".json": "Full trace, JSON (*.json)",
    ".html": "Replay page, HTML (*.html)",
}


def atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise BD3LMError(f"cannot write {path}: {err.strerror or err}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as err:
        Path(temporary).unlink(missing_ok=True)
        raise BD3LMError(f"cannot write {path}: {err.strerror or err}.") from None


def as_text(trace: Trace) -> str:
    return trace.full_text + "\n"


def as_markdown(trace: Trace) -> str:
    """The text under a YAML front matter holding every setting (JSON scalars are valid YAML)."""
    out = trace.outcome
    fields = {
        "model": trace.model, "device": trace.device, "dtype": trace.dtype, "prompt": trace.prompt,
        **trace.settings,
        "nfe": out.nfe if out else None,
        "seconds": round(out.seconds, 3) if out else None,
        "stop_reason": out.reason if out else None,
    }
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
    return f"---\n{front}\n---\n\n{trace.full_text}\n"


def as_json(trace: Trace) -> str:
    return json.dumps(trace.to_json(), ensure_ascii=False, indent=1) + "\n"


def as_html(trace: Trace) -> str:
    return replay_page(trace)


WRITERS = {".txt": as_text, ".md": as_markdown, ".json": as_json, ".html": as_html}


def export(trace: Trace, path: Path) -> Path:
    """Write `trace` in the format its suffix names; returns the path written."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise BD3LMError(f"cannot export to {path.name}: use a .txt, .md, .json or .html file name.")
    atomic_write(path, writer(trace))
    return path


def load_trace(path: Path) -> Trace:
    """Read back a JSON trace written by `export`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise BD3LMError(f"cannot read {path}: {err.strerror or err}.") from None
    except json.JSONDecodeError as err:
        raise BD3LMError(f"{path} is not valid JSON ({err}).") from None
    return Trace.from_json(data)
