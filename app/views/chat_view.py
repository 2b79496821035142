"""The Chat view: a conversation with a chat model, each reply unmasking block by block as the Write view shows.

The conversation lives in `records/conversations.py` and is saved as each message completes; the model runs on
the engine thread (`Engine.run_chat`), which renders the conversation with the model's own template.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QPushButton,
    QTextBrowser, QToolButton, QVBoxLayout, QWidget,
)

from bd3lm_core import BD3LMError, SamplerSettings, random_seed
from bd3lm_core.formatting import counted

from ..engine.requests import ModelInfo
from ..engine.worker import Engine
from ..records.conversations import Conversation, ConversationStore, Reply, Turn, new_conversation
from ..records.trace import Trace
from ..records.trace_reader import read_trace
from ..rendering import exports
from .file_dialogs import chosen_path, save_dialog
from .live_view import FollowedRun, LiveView

THINKING = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)  # Qwen3's reasoning; unclosed while still written
NO_TEMPLATE = ("{name} has no chat template, so it writes rather than chats: use Write, or download a chat model "
               "(Model → Download models…).")


class _EnterSends(QObject):
    """Enter sends the message; Shift+Enter makes a new line, as in every chat app."""

    def __init__(self, send: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self.send = send

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (event.type() == QEvent.KeyPress and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier):
            self.send()
            return True
        return False


class ChatView(QWidget):
    """Turns above, the reply being written as cells below them, the message box at the bottom."""

    message = Signal(str)  # a line for the status bar

    def __init__(self, engine: Engine, store: ConversationStore, settings: Callable[[], SamplerSettings],
                 colouring: str, pace: int, export_folder: Callable[[], Path]) -> None:
        super().__init__()
        self.engine, self.store, self.next_settings, self.export_folder = engine, store, settings, export_folder
        self.model: ModelInfo | None = None
        self._unfolded: set[int] = set()  # the turns whose thinking is shown
        conversations, notes = store.load_all()
        self.conversations: list[Conversation] = conversations or [new_conversation()]
        self.conversation = self.conversations[0]

        self.picker = QComboBox()
        self.picker.setToolTip("Your conversations, the latest first; each is saved as every message completes.")
        self.picker.currentIndexChanged.connect(self._pick)
        self.new_button = QPushButton("New chat")
        self.new_button.clicked.connect(self.new_chat)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self.ask_rename)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.ask_delete)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._ask_export)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Write the last reply again with a new seed; the earlier one stays (◀ ▶).")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.older = QToolButton()
        self.older.setText("\u25c0")
        self.older.setToolTip("The previous version of the last reply")
        self.older.clicked.connect(lambda: self.show_version(-1))
        self.newer = QToolButton()
        self.newer.setText("\u25b6")
        self.newer.setToolTip("The next version of the last reply")
        self.newer.clicked.connect(lambda: self.show_version(+1))
        self.system = QLineEdit(self.conversation.system)
        self.system.setPlaceholderText("System prompt (optional): how the model should answer")
        self.thinking = QCheckBox("Thinking")
        self.thinking.setToolTip("Let the model reason before it answers (its template reads enable_thinking).")
        self.thinking.hide()
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._on_link)  # "edit" under a message of yours
        self.transcript.setPlaceholderText("Type a message below and press Enter.")
        self.live = LiveView(colouring, pace)
        self.live.hide()
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Message (Enter sends, Shift+Enter makes a new line, Esc stops a reply)")
        self.input.setFixedHeight(self.input.fontMetrics().lineSpacing() * 3 + 12)
        self.input.installEventFilter(_EnterSends(self.send, self))
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.stop, context=Qt.WidgetWithChildrenShortcut)

        top = QHBoxLayout()
        top.addWidget(self.picker, 1)
        top.addWidget(self.new_button)
        top.addWidget(self.export_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        versions = QHBoxLayout()
        versions.addWidget(self.older)
        versions.addWidget(self.regenerate_button)
        versions.addWidget(self.newer)
        versions.addStretch(1)
        for widget in (self.rename_button, self.delete_button):
            versions.addWidget(widget)
        bottom.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.system)
        layout.addWidget(self.thinking)
        layout.addWidget(self.notice)
        layout.addWidget(self.transcript, 2)
        layout.addWidget(self.live, 1)
        layout.addLayout(versions)
        layout.addLayout(bottom)

        self.run = FollowedRun(engine.worker, self.live, self)  # the reply being written
        self.run.started.connect(lambda trace: self.live.show())
        self.run.finished.connect(self._on_finished)
        self.run.failed.connect(self._on_failed)
        self._fill_picker()
        self._show_conversation()
        self._update()
        if notes:
            self.notice.setText("; ".join(notes))

    # --- the model and the conversations ------------------------------------------
    def set_model(self, model: ModelInfo | None) -> None:
        self.model = model
        self.thinking.setVisible(bool(model and model.reads_thinking))
        self.notice.setText("" if model is None or model.chat else NO_TEMPLATE.format(name=model.name))
        self._update()

    def new_chat(self) -> None:
        if self.running:
            return
        self.conversation = new_conversation(self.system.text())
        self.conversations.insert(0, self.conversation)
        self._fill_picker()
        self._show_conversation()

    def ask_rename(self) -> None:
        title, ok = QInputDialog.getText(self, "Rename the chat", "Name", text=self.conversation.title)
        if ok and title.strip():
            self.conversation.title = title.strip()[:120]
            self._save()
            self._fill_picker()

    def ask_delete(self) -> QMessageBox | None:
        """Asks first; Yes deletes the file and shows the next conversation (or a new one)."""
        if self.running:
            return None
        box = QMessageBox(QMessageBox.Question, "Delete the chat",
                          f"Delete “{self.conversation.title}” and every reply in it? This cannot be undone.",
                          QMessageBox.Yes | QMessageBox.No, self)
        box.setDefaultButton(QMessageBox.No)

        def answered(button) -> None:
            if box.standardButton(button) == QMessageBox.Yes:
                try:
                    self.store.delete(self.conversation.id)
                except BD3LMError as err:  # the file stays, so the conversation stays on screen too
                    self.message.emit(str(err))
                    return
                self.conversations.remove(self.conversation)
                self.conversations = self.conversations or [new_conversation()]
                self.conversation = self.conversations[0]
                self._fill_picker()
                self._show_conversation()

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        return box

    def export_to(self, path: str | Path) -> bool:
        try:
            written = exports.export_conversation(self.conversation, Path(path))
        except BD3LMError as err:
            QMessageBox.warning(self, "Export failed", str(err))
            return False
        self.message.emit(f"Saved {written}.")
        return True

    def _ask_export(self) -> None:
        formats = exports.labels(exports.CHAT_FORMATS)
        dialog = save_dialog(self, "Export the chat", self.export_folder(), formats, "bd3lm-chat.md")
        path = chosen_path(dialog, formats)
        if path is not None:
            self.export_to(path)

    def _pick(self, index: int) -> None:
        if 0 <= index < len(self.conversations) and not self.running:
            self.conversation = self.conversations[index]
            self.system.setText(self.conversation.system)
            self._show_conversation()

    def _fill_picker(self) -> None:
        self.picker.blockSignals(True)
        self.picker.clear()
        for c in self.conversations:
            self.picker.addItem(c.title)
        self.picker.setCurrentIndex(self.conversations.index(self.conversation))
        self.picker.blockSignals(False)

    # --- sending and the reply ---------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run.running

    def send(self) -> None:
        """Send the message box's text as the next user turn (saved at once) and start the reply."""
        text = self.input.toPlainText().strip()
        if not text or self.running or not self._can_chat:
            return
        self.conversation.system = self.system.text()
        self.conversation.turns.append(Turn("user", text))
        if self.conversation.title == "New chat":
            self.conversation.title = text.splitlines()[0][:48]
            self._fill_picker()
        self._save()
        self.input.clear()
        self._reply_to(self.conversation.messages())

    def regenerate(self) -> None:
        """The last reply again, with the next seed's luck; the earlier versions stay reachable with ◀ ▶."""
        if self.running or not self._can_chat or not self._last_reply():
            return
        self._reply_to(self.conversation.messages()[:-1], new_seed=True)

    def show_version(self, step: int) -> None:
        """◀ ▶: continue the conversation from another version of the last reply."""
        last = self._last_reply()
        if last is not None and not self.running:
            last.show(last.shown + step)
            self._save()
            self._show_conversation()
            self._update()

    def edit(self, index: int) -> None:
        """Put user message `index` back in the message box and drop it and every later turn: Enter resends it."""
        turns = self.conversation.turns
        if self.running or not 0 <= index < len(turns) or turns[index].role != "user":
            return
        text = self.conversation.take_back(index)
        self._save()
        self.input.setPlainText(text)
        self.input.moveCursor(QTextCursor.End)
        self.input.setFocus()
        self._show_conversation()
        self._update()

    def _on_link(self, url: QUrl) -> None:
        if not url.path().isdigit():
            return
        if url.scheme() == "edit":
            self.edit(int(url.path()))
        elif url.scheme() == "replay":  # a past reply's run, back in the cells to replay
            turn = self.conversation.turns[int(url.path())]
            try:
                trace = read_trace(turn.replies[turn.shown].trace)
            except BD3LMError as err:
                self.message.emit(str(err))
                return
            self.live.show()
            self.live.open(trace)
        elif url.scheme() == "think":  # fold or unfold a reply's thinking
            self._unfolded ^= {int(url.path())}
            self._show_conversation()

    def _last_reply(self) -> Turn | None:
        turns = self.conversation.turns
        return turns[-1] if turns and turns[-1].role == "assistant" and turns[-1].replies else None

    @property
    def _can_chat(self) -> bool:
        return self.model is not None and self.model.chat

    def _reply_to(self, messages: list[dict[str, str]], new_seed: bool = False) -> None:
        thinking = self.thinking.isChecked() if self.thinking.isVisible() else None
        settings = self.next_settings()
        if new_seed:  # another version of a reply: the same seed would write the same one
            settings = replace(settings, seed=random_seed())
        self.run.follow(self.engine.run_chat(messages, settings, thinking))
        self._show_conversation()
        self._update()

    def stop(self) -> None:
        """Esc: the reply ends after its current step and keeps what it wrote."""
        if self.running:
            self.engine.stop()

    def _on_finished(self, trace: Trace) -> None:
        self.live.finish(skip=True)
        self.conversation.add_reply(Reply(trace.outcome.text, trace.to_json()))
        self._save()
        self._show_conversation()
        self._update()
        self.message.emit(reply_figures(trace))

    def _on_failed(self, message: str) -> None:
        self.notice.setText(message[:1].upper() + message[1:])
        self._update()

    def _save(self) -> None:
        try:
            self.store.save(self.conversation)
        except BD3LMError as err:  # the conversation stays on screen; the next message tries again
            self.message.emit(str(err))

    # --- drawing -------------------------------------------------------------------
    def _show_conversation(self) -> None:
        """Every turn as a paragraph: who, then the text (selectable, copyable)."""
        parts = []
        for i, turn in enumerate(self.conversation.turns):
            who = "You" if turn.role == "user" else "Model"
            versions = f" ({turn.shown + 1}/{len(turn.replies)})" if len(turn.replies) > 1 else ""
            edit = f' <a href="edit:{i}">edit</a>' if turn.role == "user" else f' <a href="replay:{i}">replay</a>'
            if turn.role == "assistant" and not turn.replies:
                edit = ""
            thought, answer = split_thinking(turn.text) if turn.role == "assistant" else ("", turn.text)
            fold = ""
            if thought:
                shown = i in self._unfolded
                arrow = "\u25be" if shown else "\u25b8"
                fold = f'<br><a href="think:{i}">{arrow} thinking ({counted(len(thought.split()), "word")})</a>'
                if shown:
                    fold += f'<br><span style="color:gray">{_html(thought)}</span>'
            parts.append(f"<p><b>{who}{versions}</b>{edit}{fold}<br>{_html(answer)}</p>")
        self.transcript.setHtml("".join(parts))
        self.transcript.verticalScrollBar().setValue(self.transcript.verticalScrollBar().maximum())

    def _update(self) -> None:
        chat = self.model is not None and self.model.chat
        self.input.setEnabled(chat)
        self.send_button.setEnabled(chat and not self.running)
        self.stop_button.setEnabled(self.running)
        last = self._last_reply()
        for widget in (self.new_button, self.picker, self.rename_button, self.delete_button, self.export_button):
            widget.setEnabled(not self.running)
        self.regenerate_button.setEnabled(chat and not self.running and last is not None)
        self.older.setEnabled(not self.running and last is not None and last.shown > 0)
        self.newer.setEnabled(not self.running and last is not None and last.shown < len(last.replies) - 1)


def reply_figures(trace: Trace) -> str:
    """The status bar's line for a finished reply: speed, forwards per token, tokens per step (what block diffusion
    buys) and how long the first block took."""
    out = trace.outcome
    n = len(out.token_ids)
    if not n:
        return "The reply is empty."
    first_block = [f.elapsed for f in trace.frames if f.block == trace.frames[0].block][-1] if trace.frames else None
    parts = [f"Reply: {counted(n, 'token')}"]
    if trace.tokens_per_second:
        parts.append(f"{trace.tokens_per_second:.1f} tokens/s")
    parts.append(f"{out.nfe / n:.2f} forwards per token")
    if trace.frames:
        parts.append(f"{n / len(trace.frames):.2f} tokens per step")
    if first_block is not None:
        parts.append(f"first block in {first_block:.2f} s")
    return ", ".join(parts) + "."


def split_thinking(text: str) -> tuple[str, str]:
    """(the model's thinking, the answer): what Qwen3-style models write between <think> and </think> is shown
    apart from the answer, folded."""
    thoughts = " ".join(m.strip() for m in THINKING.findall(text))
    return thoughts, THINKING.sub("", text).strip()


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
