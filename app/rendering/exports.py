"""Saving a run: plain text, Markdown with the settings, the full JSON trace, an HTML replay.

Every write is atomic (a temporary file next to the target, then a rename),
so a failed export never leaves half a file behind; failures are raised as
`BD3LMError` with a one-line message, and the run stays in the window. The
file gets the permissions any program's new file gets (0666 less the umask),
not the private 0600 of a temporary file.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from bd3lm_core import BD3LMError

from ..records import comparison, samplers
from ..records.trace import Trace
from .replay_page import comparison_page, replay_page

FORMATS = {
    ".txt": "Plain text (*.txt)",
    ".md": "Markdown with the settings (*.md)",
    ".json": "Full trace, JSON (*.json)",
    ".html": "Replay page, HTML (*.html)",
}


def atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:  # mode 0666: the kernel applies the umask, as for any new file (mkstemp would give 0600)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


TEXT_SEPARATOR = "\n<|endoftext|>\n"  # where a document ends: `bd3lm train --separator marker:<|endoftext|>` reads it
MARKDOWN_SEPARATOR = "\n\n---\n\n"  # a rule between stories


def documents(trace: Trace) -> list[str]:
    """The prompt and the text cut where the model wrote end-of-text (which the decoded text leaves out,
    so stories would run together). Each piece is found in the decoded text by its tokens' own texts;
    where those differ from it (a character split between tokens), the rest stays one piece."""
    text = trace.outcome.text if trace.outcome else ""
    pieces, piece, at = [], [], 0
    for position in range(trace.n_prompt, trace.end):
        token = trace.tokens.get(position)
        if token is None or token.id != trace.eos_id:
            piece.append(token.text if token is not None else "")
            continue
        found = "".join(piece)
        if not text.startswith(found, at):
            break
        pieces.append(found)
        at, piece = at + len(found), []
    pieces.append(text[at:])
    pieces[0] = trace.prompt + pieces[0]
    return [p for p in pieces if p] or [""]


def as_text(trace: Trace) -> str:
    return TEXT_SEPARATOR.join(documents(trace)) + "\n"


def as_markdown(trace: Trace) -> str:
    """The text under a YAML front matter holding the settings the sampler read (JSON scalars are valid YAML)."""
    out = trace.outcome
    sampler = trace.settings.get("sampler", "")
    fields = {
        "model": trace.model, "device": trace.device, "dtype": trace.dtype, "prompt": trace.prompt,
        **{k: v for k, v in trace.settings.items() if k not in samplers.OPTIONAL or samplers.uses(sampler, k)},
        "nfe": out.nfe if out else None,
        "seconds": round(out.seconds, 3) if out else None,
        "stop_reason": out.reason if out else None,
        **({"gen_ppl": trace.score.gen_ppl, "entropy": trace.score.entropy, "judge": trace.score.judge}
           if trace.score else {}),
    }
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
    return f"---\n{front}\n---\n\n{MARKDOWN_SEPARATOR.join(documents(trace))}\n"


def as_json(trace: Trace) -> str:
    return json.dumps(trace.to_json(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


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



def export_comparison(columns: Sequence[Sequence[Trace]], path: Path, shown: Sequence[int] | None = None) -> Path:
    """Write columns of runs compared side by side: .json (every column's and run's figures, every trace) or
    .html (one replay page, each column replaying its `shown` run)."""
    path = Path(path)
    if not any(columns):
        raise BD3LMError("there is no finished run to export yet.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(comparison.to_json(columns), ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    elif suffix == ".html":
        text = comparison_page(columns, shown)
    else:
        raise BD3LMError(f"cannot export a comparison to {path.name}: use a .json or .html file name.")
    atomic_write(path, text)
    return path
