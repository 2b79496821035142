"""Conversations with a chat model, kept on disk: one JSON file per conversation, rewritten atomically as each
message completes, so a crash or a power cut loses at most the reply being written.

Plain data, no Qt. A reply keeps every version drawn for it (Regenerate adds one, 1/2 ◀ ▶ picks which is
shown) and each version keeps its full trace, so it can be replayed and its tokens keep their tooltips.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bd3lm_core import BD3LMError, models_dir
from bd3lm_core.files import read_limited, write_atomically

from .checks import short

CHAT_FORMAT = "bd3lm-studio-chat"
CHAT_VERSION = 1
MAX_CHAT_BYTES = 256 * 2**20  # every reply's trace included; a file larger than this is not one of ours
ROLES = ("user", "assistant")
ID = re.compile(r"[0-9A-Za-z-]{1,64}")  # what new_conversation makes: a file name that cannot leave the folder


@dataclass
class Reply:
    """One version of an assistant turn: its text and its trace (`Trace.to_json()`, opened as File → Open trace)."""

    text: str
    trace: dict[str, Any]


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    text: str  # a user's message; for the assistant, the text of the reply shown
    replies: list[Reply] = field(default_factory=list)  # the assistant's versions, oldest first
    shown: int = 0  # which version the conversation continues from

    def show(self, index: int) -> None:
        """Continue from another version of this reply (◀ ▶)."""
        self.shown = min(max(0, index), len(self.replies) - 1)
        self.text = self.replies[self.shown].text


@dataclass
class Conversation:
    id: str
    title: str = "New chat"
    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    updated: float = field(default_factory=time.time)

    def messages(self) -> list[dict[str, str]]:
        """What the chat template reads: the system prompt (if any), then every turn as shown."""
        head = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return head + [{"role": t.role, "content": t.text} for t in self.turns]

    def take_back(self, index: int) -> str:
        """Remove user message `index` and every turn after it, and give its text back to be edited and resent."""
        if self.turns[index].role != "user":
            raise ValueError("only a user's message can be taken back")
        text = self.turns[index].text
        del self.turns[index:]
        return text

    def add_reply(self, reply: Reply) -> None:
        """Answer the last user turn, or add another version of the last reply (Regenerate), shown from now on."""
        if self.turns and self.turns[-1].role == "assistant":
            last = self.turns[-1]
        else:
            last = Turn("assistant", "")
            self.turns.append(last)
        last.replies.append(reply)
        last.show(len(last.replies) - 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CHAT_FORMAT, "version": CHAT_VERSION, "id": self.id, "title": self.title,
            "system": self.system, "updated": self.updated,
            "turns": [{"role": t.role, "text": t.text, "shown": t.shown,
                       "replies": [{"text": r.text, "trace": r.trace} for r in t.replies]} for t in self.turns],
        }


def last_reply_trace(data: Any) -> dict[str, Any]:
    """The trace of the reply a conversation file goes on from (its last reply, the version shown): what File →
    Open trace opens from an exported conversation."""
    conversation = read_conversation(data)
    replies = [t for t in conversation.turns if t.role == "assistant" and t.replies]
    if not replies:
        raise BD3LMError("this conversation has no reply yet, so there is no trace to open.")
    return replies[-1].replies[replies[-1].shown].trace


def chats_dir() -> Path:
    """Where conversations are kept: beside the models, in the user data folder (BD3LM_HOME moves both)."""
    return models_dir().parent / "chats"


def new_conversation(system: str = "") -> Conversation:
    return Conversation(f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}", system=system)


def read_conversation(data: Any) -> Conversation:
    """A conversation from its JSON, every value checked (a damaged file is refused whole, in one line)."""
    if not isinstance(data, dict) or data.get("format") != CHAT_FORMAT:
        raise BD3LMError("this is not a BD3-LM Studio conversation.")
    if not isinstance(data.get("version"), int) or data["version"] > CHAT_VERSION:
        raise BD3LMError(f"this conversation was written by a newer BD3-LM Studio (version {short(data.get('version'))}).")
    turns = []
    for raw in _typed(data, "turns", list):
        if not isinstance(raw, dict) or raw.get("role") not in ROLES:
            raise BD3LMError(f"this conversation is damaged: a turn is {short(raw)}.")
        replies = [Reply(_typed(r, "text", str), _typed(r, "trace", dict)) if isinstance(r, dict)
                   else _damaged("a reply", r) for r in _typed(raw, "replies", list)]
        shown = _typed(raw, "shown", int)
        if replies and not 0 <= shown < len(replies):
            _damaged("shown", shown)
        turns.append(Turn(raw["role"], _typed(raw, "text", str), replies, shown))
    updated = _typed(data, "updated", (int, float))
    if isinstance(updated, bool) or not math.isfinite(updated):
        _damaged("updated", updated)
    if not ID.fullmatch(_typed(data, "id", str)):
        _damaged("id", data["id"])
    return Conversation(data["id"], _typed(data, "title", str), _typed(data, "system", str), turns,
                        float(updated))


class ConversationStore:
    """The conversations folder: one `<id>.json` per conversation."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, conversation_id: str) -> Path:
        if not ID.fullmatch(conversation_id):
            raise BD3LMError(f"{short(conversation_id)} is not a conversation id.")
        return self.folder / f"{conversation_id}.json"

    def save(self, conversation: Conversation) -> None:
        """Write the whole conversation atomically (the old file stays whole if the disk is full)."""
        conversation.updated = time.time()
        text = json.dumps(conversation.to_json(), ensure_ascii=False, allow_nan=False) + "\n"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path(conversation.id), text.encode("utf-8"))
        except OSError as err:
            raise BD3LMError(f"cannot save the conversation in {self.folder}: {err.strerror or err}.") from None

    def load_all(self) -> tuple[list[Conversation], list[str]]:
        """Every conversation, the latest first, and one note per file that could not be read (it is left alone)."""
        found, notes = [], []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                found.append(read_conversation(json.loads(read_limited(path, MAX_CHAT_BYTES, "conversation"))))
            except (OSError, ValueError, RecursionError, BD3LMError) as err:
                notes.append(f"skipped {path.name}: {str(err) or type(err).__name__}")
        return sorted(found, key=lambda c: c.updated, reverse=True), notes

    def delete(self, conversation_id: str) -> None:
        path = self.path(conversation_id)
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise BD3LMError(f"cannot delete {path}: {err.strerror or err}; the conversation is kept.") from None


def _typed(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        _damaged(key, value)
    return value


def _damaged(what: str, value: Any) -> Any:
    raise BD3LMError(f"this conversation is damaged: {what} is {short(value)}.")
