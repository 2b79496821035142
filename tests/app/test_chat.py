"""The Chat view, used as a person does: type, Enter, Esc; on the shared chat fixture (random weights, so the
replies are nonsense of a known length)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_helpers import fragments
from PySide6.QtCore import Qt

from bd3lm_core import load_model, render_chat
from bd3lm_studio.records.conversations import chats_dir

BACKBONE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "backbones" / "a2d-qwen3-bs4" / "checkpoint"


@pytest.fixture
def chat_window(open_window, settings):
    w = open_window(str(BACKBONE), settings)
    assert w.model is not None and w.model.chat
    c = w.controls
    c.tokens.set_value(6)
    c.stop_at_eos.setChecked(False)
    c.stop_on_repetition.setChecked(False)
    c.seed.setValue(11)
    return w


def say(window, qtbot, text: str) -> None:
    """Type a message in the Chat view and press Enter; wait for the reply."""
    chat = window.chat
    qtbot.keyClicks(chat.input, text)
    qtbot.keyClick(chat.input, Qt.Key_Return)
    qtbot.waitUntil(lambda: not chat.running, timeout=60_000)


def test_a_chat_model_opens_in_chat_and_the_second_turn_is_given_the_first_and_its_reply(chat_window, qtbot):
    chat = chat_window.chat
    assert chat_window.tabs.currentWidget() is chat and chat.input.isEnabled()
    say(chat_window, qtbot, "Hi")
    say(chat_window, qtbot, "And then?")
    turns = chat.conversation.turns
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert [t.text for t in turns[::2]] == ["Hi", "And then?"]
    first, second = turns[1].replies[0], turns[3].replies[0]
    assert len(first.trace["token_ids"]) == len(second.trace["token_ids"]) == 6
    loaded = load_model(str(BACKBONE), device="cpu")
    expected = render_chat(loaded, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": first.text},
                                    {"role": "user", "content": "And then?"}])
    assert second.trace["prompt"] == expected and "Hi" in expected
    assert chat.live.trace.prompt == expected  # the reply unmasked in the cells, as Write shows a run
    assert "And then?" in chat.transcript.toPlainText()


def test_shift_enter_makes_a_new_line_and_does_not_send(chat_window, qtbot):
    chat = chat_window.chat
    qtbot.keyClicks(chat.input, "line one")
    qtbot.keyClick(chat.input, Qt.Key_Return, Qt.ShiftModifier)
    qtbot.keyClicks(chat.input, "line two")
    assert chat.input.toPlainText() == "line one\nline two" and chat.conversation.turns == []


def test_esc_stops_a_reply_and_keeps_what_it_wrote(chat_window, qtbot):
    chat = chat_window.chat
    chat_window.controls.tokens.set_value(1000)
    qtbot.keyClicks(chat.input, "Tell me a long story")
    qtbot.keyClick(chat.input, Qt.Key_Return)
    # a reply keeps its finished blocks (the first ends where the prompt's last block does): wait for one
    qtbot.waitUntil(lambda: chat.run.trace is not None and len({f.block for f in chat.run.trace.frames}) >= 2, timeout=60_000)
    qtbot.keyClick(chat.input, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not chat.running, timeout=60_000)
    reply = chat.conversation.turns[-1]
    assert reply.role == "assistant" and reply.replies[0].trace["stop_reason"] == "cancelled"
    assert 0 < len(reply.replies[0].trace["token_ids"]) < 1000 and reply.text


def test_a_conversation_comes_back_after_the_window_is_closed_and_opened_again(chat_window, qtbot, open_window,
                                                                                 settings):
    say(chat_window, qtbot, "Remember me")
    before = chat_window.chat.conversation
    chat_window.close()
    [path] = chats_dir().glob("*.json")
    assert json.loads(path.read_text(encoding="utf-8"))["turns"][0]["text"] == "Remember me"
    again = open_window(str(BACKBONE), settings)
    as_saved = json.loads(json.dumps(before.to_json()))  # the trace's tuples come back as lists
    assert again.chat.conversation.to_json() == as_saved
    assert "Remember me" in again.chat.transcript.toPlainText()


def test_a_model_without_a_chat_template_opens_in_write_and_chat_says_why(window):
    assert window.tabs.currentIndex() == 0 and window.tabs.tabText(0) == "Write"
    assert "has no chat template" in window.chat.notice.text() and "Download models" in window.chat.notice.text()
    assert not window.chat.input.isEnabled()


def test_regenerate_keeps_both_replies_and_the_arrows_choose_which_the_chat_goes_on_from(chat_window, qtbot):
    chat = chat_window.chat
    say(chat_window, qtbot, "Hi")
    first = chat.conversation.turns[-1].text
    qtbot.mouseClick(chat.regenerate_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not chat.running, timeout=60_000)
    last = chat.conversation.turns[-1]
    assert len(chat.conversation.turns) == 2 and len(last.replies) == 2 and last.shown == 1
    assert last.replies[0].text == first and last.replies[1].trace["prompt"] == last.replies[0].trace["prompt"]
    assert last.replies[1].trace["settings"]["seed"] != last.replies[0].trace["settings"]["seed"]  # a new seed
    assert "Model (2/2)" in chat.transcript.toPlainText()
    qtbot.mouseClick(chat.older, Qt.LeftButton)  # ◀
    assert last.shown == 0 and chat.conversation.messages()[-1]["content"] == first
    assert not chat.older.isEnabled() and chat.newer.isEnabled()
    [saved] = chats_dir().glob("*.json")
    assert json.loads(saved.read_text(encoding="utf-8"))["turns"][1]["shown"] == 0


def test_editing_a_message_drops_the_later_turns_and_enter_resends_it(chat_window, qtbot):
    from PySide6.QtCore import QUrl

    chat = chat_window.chat
    say(chat_window, qtbot, "Hi")
    say(chat_window, qtbot, "Second")
    chat.transcript.anchorClicked.emit(QUrl("edit:0"))  # the "edit" link under the first message
    assert chat.conversation.turns == [] and chat.input.toPlainText() == "Hi"
    qtbot.keyClicks(chat.input, " again")
    qtbot.keyClick(chat.input, Qt.Key_Return)
    qtbot.waitUntil(lambda: not chat.running, timeout=60_000)
    assert [t.text for t in chat.conversation.turns[::2]] == ["Hi again"] and len(chat.conversation.turns) == 2


def test_a_finished_reply_puts_its_figures_in_the_status_bar(chat_window, qtbot):
    say(chat_window, qtbot, "Hi")
    line = chat_window.status.current_message()
    trace = chat_window.chat.run.trace
    n = len(trace.outcome.token_ids)
    assert line.startswith(f"Reply: {n} tokens, ") and f"{trace.outcome.nfe / n:.2f} forwards per token" in line
    assert f"{n / len(trace.frames):.2f} tokens per step" in line
    first_block_done = [f for f in trace.frames if f.block == trace.frames[0].block][-1].elapsed  # its last step
    assert f"first block in {first_block_done:.2f} s" in line


def test_rename_and_delete_which_asks_first(chat_window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    chat = chat_window.chat
    say(chat_window, qtbot, "Hi")
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("Greetings", True))
    qtbot.mouseClick(chat.rename_button, Qt.LeftButton)
    assert chat.picker.currentText() == "Greetings"
    [path] = chats_dir().glob("*.json")
    assert json.loads(path.read_text(encoding="utf-8"))["title"] == "Greetings"
    def question() -> QMessageBox:
        qtbot.mouseClick(chat.delete_button, Qt.LeftButton)  # Delete…, as a user presses it
        [box] = [b for b in chat.findChildren(QMessageBox) if b.isVisible()]
        return box

    question().button(QMessageBox.No).click()
    assert path.exists()
    with monkeypatch.context() as m:  # a file that cannot be removed (read-only folder, another owner)
        def refused(self, missing_ok=False):
            raise PermissionError(13, "Permission denied")

        m.setattr(Path, "unlink", refused)
        question().button(QMessageBox.Yes).click()
    assert path.exists() and chat.picker.currentText() == "Greetings" and len(chat.conversation.turns) == 2
    line = chat_window.status.current_message()
    assert line.startswith("cannot delete ") and line.endswith("Permission denied; the conversation is kept.")
    question().button(QMessageBox.Yes).click()
    assert not path.exists() and chat.conversation.turns == []


def test_the_exported_chat_holds_every_turns_trace_and_opens_with_open_trace(chat_window, qtbot, tmp_path):
    from bd3lm_studio.records.trace_reader import read_trace

    chat = chat_window.chat
    say(chat_window, qtbot, "Hi")
    say(chat_window, qtbot, "And then?")
    assert chat.export_to(tmp_path / "chat.json") and chat.export_to(tmp_path / "chat.md")
    data = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    replies = [t["replies"][0]["trace"] for t in data["turns"] if t["role"] == "assistant"]
    assert len(replies) == 2
    for reply, turn in zip(replies, chat.conversation.turns[1::2]):
        back = read_trace(reply)  # every reply's whole trace, readable as a saved run
        assert list(back.outcome.token_ids) == turn.replies[0].trace["token_ids"]
    chat_window.tabs.setCurrentIndex(0)
    assert chat_window.open_trace(tmp_path / "chat.json")  # File → Open trace: the last reply's run
    assert chat_window.trace.prompt == chat.conversation.turns[-1].replies[0].trace["prompt"]
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert markdown.startswith("---\ntitle: \"Hi\"") and "**You:** And then?" in markdown and '"top_p"' in markdown


def test_thinking_is_shown_apart_from_the_answer_folded_and_a_click_unfolds_it(chat_window):
    from PySide6.QtCore import QUrl

    from bd3lm_studio.records.conversations import Reply, Turn
    from bd3lm_studio.views.chat_view import split_thinking

    assert split_thinking("<think>\nLet me see.\n</think>\n\nYes.") == ("Let me see.", "Yes.")
    chat = chat_window.chat
    chat.conversation.turns.append(Turn("user", "Well?"))
    chat.conversation.add_reply(Reply("<think>weighing it up carefully</think>Yes.", {}))
    chat._show_conversation()
    text = chat.transcript.toPlainText()
    assert "thinking (4 words)" in text and "weighing" not in text and text.rstrip().endswith("Yes.")
    chat.transcript.anchorClicked.emit(QUrl("think:1"))  # the fold's link
    assert "weighing it up carefully" in chat.transcript.toPlainText()


@pytest.mark.slow  # a child process loads the app and the model
def test_killed_mid_reply_the_app_comes_back_with_every_completed_message_and_valid_files(tmp_path, open_window):
    """SIGKILL while a reply is written: no handler runs. Every completed message was saved when it completed."""
    import os
    import signal
    import subprocess
    import sys

    from PySide6.QtCore import QSettings

    from bd3lm_studio.settings import Settings

    ini = tmp_path / "crash.ini"
    child = Path(__file__).with_name("chat_crash_child.py")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"}  # BD3LM_HOME: this test's
    process = subprocess.Popen([sys.executable, str(child), str(BACKBONE), str(ini)], stdout=subprocess.PIPE,
                               text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "REPLYING"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    [path] = chats_dir().glob("*.json")
    saved = json.loads(path.read_text(encoding="utf-8"))  # valid JSON, written whole
    assert [(t["role"], t["text"]) for t in saved["turns"]][::2] == [("user", "First message"),
                                                                     ("user", "Second message, never answered")]
    assert len(saved["turns"]) == 3 and len(saved["turns"][1]["replies"][0]["trace"]["token_ids"]) == 6
    settings = Settings(QSettings(str(ini), QSettings.IniFormat))
    assert settings.notes == []  # the settings file reads back with nothing reset
    again = open_window(str(BACKBONE), settings)
    assert [t.text for t in again.chat.conversation.turns[::2]] == ["First message", "Second message, never answered"]


def test_a_past_reply_replays_in_the_cells_with_its_tooltips(chat_window, qtbot):
    from PySide6.QtCore import QUrl

    chat = chat_window.chat
    say(chat_window, qtbot, "Hi")
    say(chat_window, qtbot, "Again")
    first = chat.conversation.turns[1].replies[0].trace
    chat.transcript.anchorClicked.emit(QUrl("replay:1"))  # the "replay" link beside the first reply
    assert chat.live.trace.prompt == first["prompt"] and list(chat.live.trace.outcome.token_ids) == first["token_ids"]
    assert chat.live.player.count == len(first["frames"])
    tips = [tip for _, tip, _ in fragments(chat.live) if tip]
    assert any("step" in tip for tip in tips)  # its tokens keep their tooltips


def test_the_thinking_switch_shows_only_for_a_template_that_reads_enable_thinking(open_window, settings, tmp_path):
    import shutil

    folder = tmp_path / "thinking-model"
    shutil.copytree(BACKBONE, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                               "{% endfor %}<|im_start|>assistant\n{% if enable_thinking is false %}"
                               "<think>\n\n</think>\n\n{% endif %}")
    config_path.write_text(json.dumps(config), encoding="utf-8")
    thinking = open_window(str(folder), settings)
    assert thinking.chat.thinking.isVisibleTo(thinking)
    plain = open_window(str(BACKBONE), settings)
    assert not plain.chat.thinking.isVisibleTo(plain)
