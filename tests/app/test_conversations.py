"""Conversations on disk (app/records/conversations.py): kept whole, read strictly, edited and regenerated as the
Chat view does."""

from __future__ import annotations

import json

import pytest

import bd3lm_core.files
from bd3lm_core import BD3LMError
from bd3lm_studio.records.conversations import (
    ConversationStore, Reply, Turn, new_conversation, read_conversation,
)


def chat_of_two_turns():
    c = new_conversation(system="Be brief.")
    c.turns.append(Turn("user", "Hi"))
    c.add_reply(Reply("Hello!", {"prompt": "first"}))
    c.turns.append(Turn("user", "How are you?"))
    c.add_reply(Reply("Fine.", {"prompt": "second"}))
    return c


def test_a_saved_conversation_comes_back_equal_with_every_reply_and_trace(tmp_path):
    store = ConversationStore(tmp_path / "chats")
    c = chat_of_two_turns()
    store.save(c)
    [back], notes = store.load_all()
    assert notes == [] and back == c
    assert back.messages() == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you?"},
        {"role": "assistant", "content": "Fine."},
    ]
    assert back.turns[1].replies[0].trace == {"prompt": "first"}


def test_regenerate_keeps_both_replies_and_either_can_be_shown():
    c = chat_of_two_turns()
    c.add_reply(Reply("Fine, thanks.", {"prompt": "second, again"}))
    last = c.turns[-1]
    assert [r.text for r in last.replies] == ["Fine.", "Fine, thanks."] and last.shown == 1
    assert c.messages()[-1]["content"] == "Fine, thanks."
    last.show(0)  # ◀
    assert c.messages()[-1]["content"] == "Fine." and len(c.turns) == 4


def test_taking_a_message_back_drops_it_and_the_turns_after_it():
    c = chat_of_two_turns()
    assert c.take_back(2) == "How are you?"
    assert [(t.role, t.text) for t in c.turns] == [("user", "Hi"), ("assistant", "Hello!")]
    with pytest.raises(ValueError):
        chat_of_two_turns().take_back(1)  # an assistant's turn


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    store = ConversationStore(tmp_path)
    c = chat_of_two_turns()
    store.save(c)
    before = (tmp_path / f"{c.id}.json").read_bytes()
    c.turns.append(Turn("user", "one more"))

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bd3lm_core.files.os, "replace", full_disk)
    with pytest.raises(BD3LMError, match="No space left on device"):
        store.save(c)
    assert (tmp_path / f"{c.id}.json").read_bytes() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("damage, says", [
    (lambda d: d.__setitem__("format", "other"), "not a BD3-LM Studio conversation"),
    (lambda d: d.__setitem__("version", 99), "newer BD3-LM Studio"),
    (lambda d: d["turns"][0].__setitem__("role", "root"), "a turn is"),
    (lambda d: d["turns"][1].__setitem__("shown", 5), "shown is 5"),
    (lambda d: d["turns"][1]["replies"][0].__setitem__("trace", []), r"trace is \[\]"),
    (lambda d: d.__setitem__("updated", float("inf")), "updated is"),
    (lambda d: d.__setitem__("title", None), "title is None"),
    (lambda d: d.__setitem__("id", "../../elsewhere"), "id is"),
], ids=["format", "version", "role", "shown", "trace", "updated", "title", "id-leaving-the-folder"])
def test_a_damaged_conversation_is_refused_in_one_line(damage, says):
    data = json.loads(json.dumps(chat_of_two_turns().to_json()))
    damage(data)
    with pytest.raises(BD3LMError, match=says) as caught:
        read_conversation(data)
    assert "\n" not in str(caught.value)


def test_one_damaged_file_is_skipped_with_a_note_and_the_others_load(tmp_path):
    store = ConversationStore(tmp_path)
    good = chat_of_two_turns()
    store.save(good)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    found, notes = store.load_all()
    assert [c.id for c in found] == [good.id]
    assert len(notes) == 2 and all(n.startswith("skipped ") and "\n" not in n for n in notes)
    store.delete(good.id)
    assert store.load_all() == ([], notes)
    with pytest.raises(BD3LMError):
        store.path("../escape")
