"""Saving a run: plain text, Markdown with the settings, the full JSON trace, an HTML replay.

Every write goes through the engine's one atomic writer (`bd3lm_core.files`:
a temporary file next to the target, then a rename), so a failed export never
leaves half a file behind; failures are raised as `BD3LMError` with a one-line
message, and the run stays in the window. `RUN_FORMATS` and
`COMPARISON_FORMATS` are the one list of what can be exported: suffix, the
save dialog's label, and the writer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bd3lm_core import BD3LMError
from bd3lm_core.files import write_atomically

from ..records import comparison, samplers
from ..records.conversations import Conversation
from ..records.trace import Trace
from .replay_page import comparison_page, replay_page

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
        "stop_reason": out.stop_reason if out else None,
        **({"gen_ppl": trace.judgement.gen_ppl, "entropy": trace.judgement.entropy, "judge": trace.judgement.judge}
           if trace.judgement else {}),
    }
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
    return f"---\n{front}\n---\n\n{MARKDOWN_SEPARATOR.join(documents(trace))}\n"


def as_json(trace: Trace) -> str:
    return json.dumps(trace.to_json(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def as_html(trace: Trace) -> str:
    return replay_page(trace)


@dataclass(frozen=True)
class Format:
    suffix: str
    label: str  # as the save dialog lists it
    write: Callable[..., str]  # a run (or, for a comparison, its columns and which run each shows) as the file's text


RUN_FORMATS = (
    Format(".txt", "Plain text (*.txt)", as_text),
    Format(".md", "Markdown with the settings (*.md)", as_markdown),
    Format(".json", "Full trace, JSON (*.json)", as_json),
    Format(".html", "Replay page, HTML (*.html)", as_html),
)


def comparison_json(columns: Sequence[Sequence[Trace]], shown: Sequence[int] | None = None) -> str:
    return json.dumps(comparison.to_json(columns), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


COMPARISON_FORMATS = (
    Format(".html", "Comparison page, HTML (*.html)", comparison_page),
    Format(".json", "Every column's figures and every run's trace, JSON (*.json)", comparison_json),
)


def conversation_markdown(conversation: Conversation) -> str:
    """The conversation under a front matter with the model and the settings of its first reply."""
    first = next((t.replies[t.shown].trace for t in conversation.turns if t.replies), {})
    fields = {"title": conversation.title, "model": first.get("model"), "system": conversation.system,
              "settings": first.get("settings")}
    front = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
    turns = "\n\n".join(f"**{'You' if t.role == 'user' else 'Model'}:** {t.text}" for t in conversation.turns)
    return f"---\n{front}\n---\n\n{turns}\n"


def conversation_json(conversation: Conversation) -> str:
    return json.dumps(conversation.to_json(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


CHAT_FORMATS = (
    Format(".md", "Markdown with the settings (*.md)", conversation_markdown),
    Format(".json", "Every turn with each reply's trace, JSON (*.json)", conversation_json),
)


def labels(formats: Sequence[Format]) -> dict[str, str]:
    """Suffix -> label, as the save dialogs take them."""
    return {f.suffix: f.label for f in formats}


def _format(formats: Sequence[Format], path: Path, what: str) -> Format:
    found = next((f for f in formats if f.suffix == path.suffix.lower()), None)
    if found is None:
        names = ", ".join(f.suffix for f in formats)
        raise BD3LMError(f"cannot export {what} to {path.name}: use a file name ending in {names}.")
    return found


def _write(path: Path, text: str) -> Path:
    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as err:
        raise BD3LMError(f"cannot write {path}: {err.strerror or err}.") from None
    return path


def export(trace: Trace, path: Path) -> Path:
    """Write `trace` in the format its suffix names; returns the path written."""
    path = Path(path)
    return _write(path, _format(RUN_FORMATS, path, "a run").write(trace))


def export_conversation(conversation: Conversation, path: Path) -> Path:
    """Write a conversation as .md (the turns and the settings) or .json (every turn, each reply's full trace)."""
    path = Path(path)
    return _write(path, _format(CHAT_FORMATS, path, "a conversation").write(conversation))


def export_comparison(columns: Sequence[Sequence[Trace]], path: Path, shown: Sequence[int] | None = None) -> Path:
    """Write columns of runs compared side by side: .json (every column's and run's figures, every trace) or
    .html (one replay page, each column replaying its `shown` run)."""
    path = Path(path)
    if not any(columns):
        raise BD3LMError("there is no finished run to export yet.")
    return _write(path, _format(COMPARISON_FORMATS, path, "a comparison").write(columns, shown))
