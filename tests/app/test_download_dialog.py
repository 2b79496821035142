"""Model → Download models… against the local fake hub: progress, cancel, resume, offline, remove, load,
closing during a download, and models in the Hugging Face cache."""

from __future__ import annotations

import re

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from bd3lm_core import CatalogEntry, devices, formatting, installed_models, models_dir
from bd3lm_core.devices import WeightCount, memory_fit, memory_needed
from bd3lm_studio.views.download_dialog import COLUMNS, DownloadDialog
from hubserver import tiny_checkpoint_files

REPO = "test-org/tiny-bd3lm"


def catalog(hub) -> list[CatalogEntry]:
    return [CatalogEntry(REPO, 4, repo_size(hub), "a tiny test model")]


def repo_size(hub) -> int:
    return sum(len(content) for content in hub.repos[REPO].values())


@pytest.fixture
def dialog(qtbot, hub, bd3lm_home):
    d = DownloadDialog(catalog=catalog(hub), endpoint=hub.url)
    qtbot.addWidget(d)
    d.show()
    d.table.selectRow(0)
    return d


@pytest.fixture
def child_dialog(window, hub, bd3lm_home):
    """A download dialog of the main window, as Model → Download models… opens it, on the local hub."""
    d = DownloadDialog(window, catalog=catalog(hub), endpoint=hub.url)
    d.setAttribute(Qt.WA_DeleteOnClose)
    d.show()
    return d


def question(parent) -> QMessageBox:
    [box] = [b for b in parent.findChildren(QMessageBox) if b.isVisible()]
    return box


def answer(box: QMessageBox, label: str) -> None:
    [button] = [b for b in box.buttons() if b.text() == label]
    button.click()


def select(dialog, repo_id: str) -> None:
    [row] = [r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 0).text() == repo_id]
    dialog.table.selectRow(row)


def status_of(dialog, repo_id: str) -> str:
    for row in range(dialog.table.rowCount()):
        if dialog.table.item(row, 0).text() == repo_id:
            return dialog.table.item(row, COLUMNS.index("Status")).text()
    raise KeyError(repo_id)


def test_catalog_lists_name_block_size_size_and_status(dialog):
    assert [dialog.table.item(0, c).text() for c in range(4)][:2] == [REPO, "4"]
    assert dialog.table.item(0, 2).text().endswith("kB")
    assert status_of(dialog, REPO) == "not installed"
    assert str(models_dir()) in dialog.message.text()


def test_download_shows_progress_and_installs(dialog, qtbot, online, hub):
    hub.chunk_delay = 0.02  # slow enough to report progress on the way
    dialog.download_button.click()
    assert status_of(dialog, REPO) == "downloading…" and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: "left" in dialog.progress_label.text(), timeout=30_000)
    text = dialog.progress_label.text()  # like "model.safetensors: 213.0 kB of 532.8 kB at 650.2 kB/s, 1 s left"
    assert re.fullmatch(r"\S+: [\d.]+ k?B of [\d.]+ kB at [\d.]+ k?B/s, \d+ s left", text), text
    assert 0 < dialog.progress.value() < dialog.progress.maximum()
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=30_000)

    assert status_of(dialog, REPO) == "installed"
    assert dialog.progress.value() == dialog.progress.maximum()
    assert dialog.progress_label.text() == f"Downloaded {formatting.size(repo_size(hub))}"  # the total, no file name
    assert "installed" in dialog.message.text()
    assert [m.repo_id for m in installed_models()] == [REPO]
    assert dialog.load_button.isEnabled() and dialog.remove_button.isEnabled()


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes(dialog, qtbot, online, hub):
    hub.chunk_delay = 0.05  # the weights take a couple of seconds
    dialog.download(REPO)
    qtbot.waitUntil(lambda: "model.safetensors" in dialog.progress_label.text(), timeout=30_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=10_000)
    assert "cancelled" in dialog.message.text().lower()
    folder = models_dir() / "test-org--tiny-bd3lm"
    [partial] = folder.glob("model.safetensors.*.incomplete")
    kept = partial.stat().st_size
    assert kept > 0
    # config.json arrived whole and verified: it waits beside the weights, to replace nothing before they are whole
    on_disk = sum(p.stat().st_size for p in folder.glob("*.incomplete"))
    assert on_disk > kept and status_of(dialog, REPO) == f"partial ({formatting.size(on_disk)} kept, resumes)"
    assert dialog.download_button.isEnabled() and dialog.remove_button.isEnabled()  # resume, or reclaim the space

    hub.chunk_delay = 0.0
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=30_000)
    assert status_of(dialog, REPO) == "installed"
    assert hub.gets_of("model.safetensors")[-1].range == f"bytes={kept}-"  # resumed, not restarted


def test_offline_gives_a_clear_message(dialog, qtbot, hub):
    dialog.download(REPO)  # no `online` fixture: the hub client is in offline mode
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=30_000)
    text = dialog.message.text()
    assert "cannot reach the hugging face hub" in text.lower() and "Open model folder" in text
    assert "Traceback" not in text
    assert not dialog.progress.isVisible()
    assert hub.requests == []


def test_remove_and_load_an_installed_model(dialog, qtbot, online, window):
    dialog.download(REPO)
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=30_000)
    dialog.model_chosen.connect(window.load_model_source)
    dialog.load_button.click()
    qtbot.waitUntil(lambda: not window.loading and window.model.name == REPO, timeout=30_000)

    dialog.remove(REPO)
    assert status_of(dialog, REPO) == "not installed"
    assert installed_models() == []
    assert not dialog.load_button.isEnabled()


def test_window_opens_the_dialog_and_closing_it_ends_its_thread(window, qtbot):
    dialog = window.show_downloads()
    assert dialog.isVisible() and dialog.table.rowCount() >= 4  # the published catalog
    window.close()
    assert not dialog._thread.isRunning()


def test_closing_during_a_download_asks_and_keeping_it_hides_the_dialog_until_it_ends(
    child_dialog, window, qtbot, online, hub
):
    d = child_dialog
    hub.chunk_delay = 0.05  # the weights take a couple of seconds
    d.download(REPO)
    qtbot.waitUntil(lambda: "model.safetensors" in d.progress_label.text(), timeout=30_000)
    d.close()
    box = question(d)
    assert "still downloading" in box.text() and "Model \u2192 Download models\u2026 shows its progress" in box.text()
    assert d.isVisible() and d._downloading == REPO  # nothing decided yet
    answer(box, "Keep downloading")
    assert d.isHidden() and d._downloading == REPO and d._thread.isRunning()

    assert window.show_downloads() is d and d.isVisible()  # the same dialog comes back, with its progress
    assert d._downloading == REPO
    d.close()
    answer(question(d), "Keep downloading")
    hub.chunk_delay = 0.0
    qtbot.waitUntil(lambda: d._downloading is None, timeout=30_000)
    assert d.isVisible()  # it came back by itself when the download ended
    assert status_of(d, REPO) == "installed" and [m.repo_id for m in installed_models()] == [REPO]
    assert d.progress_label.text() == f"Downloaded {formatting.size(repo_size(hub))}"
    d.close()  # nothing running: closes without asking
    assert not d._thread.isRunning() and not [b for b in d.findChildren(QMessageBox) if b.isVisible()]


def test_closing_during_a_download_with_esc_and_cancelling_keeps_the_partial_file(
    child_dialog, qtbot, online, hub
):
    d = child_dialog
    hub.chunk_delay = 0.05
    d.download(REPO)
    qtbot.waitUntil(lambda: "model.safetensors" in d.progress_label.text(), timeout=30_000)
    qtbot.keyClick(d, Qt.Key_Escape)
    answer(question(d), "Cancel download")
    assert not d.isVisible() and not d._thread.isRunning()  # closed for good, its thread ended
    assert list((models_dir() / "test-org--tiny-bd3lm").glob("model.safetensors.*.incomplete"))
    assert installed_models() == []


def test_the_window_closing_ends_a_download_kept_in_the_background(child_dialog, window, qtbot, online, hub):
    d = child_dialog
    hub.chunk_delay = 0.05
    d.download(REPO)
    qtbot.waitUntil(lambda: "model.safetensors" in d.progress_label.text(), timeout=30_000)
    d.close()
    answer(question(d), "Keep downloading")
    window.close()
    assert not d._thread.isRunning()  # cancelled and waited for: no thread is left running
    assert list((models_dir() / "test-org--tiny-bd3lm").glob("model.safetensors.*.incomplete"))


def test_the_remove_confirmation_says_when_it_is_the_loaded_model(dialog, qtbot, online):
    dialog.download(REPO)
    qtbot.waitUntil(lambda: dialog._downloading is None, timeout=30_000)
    dialog.set_loaded_repo(REPO)
    dialog.remove_button.click()
    box = question(dialog)
    assert f"Delete the downloaded files of {REPO}" in box.text() and "is the model loaded now" in box.text()
    answer(box, "Keep")
    assert status_of(dialog, REPO) == "installed"

    dialog.set_loaded_repo("test-org/another-model")
    dialog.remove_button.click()
    box = question(dialog)
    assert "loaded now" not in box.text()
    answer(box, "Remove")
    assert status_of(dialog, REPO) == "not installed" and installed_models() == []


def test_a_model_in_the_hugging_face_cache_shows_as_installed_there_and_is_never_removed(
    open_window, settings, hf_cache, bd3lm_home
):
    snapshot = hf_cache.add(REPO, tiny_checkpoint_files())
    window = open_window(REPO, settings)  # offline: loaded from the cache in place
    assert window.model is not None and window.model.path == str(snapshot)
    dialog = window.show_downloads()
    assert dialog.loaded_repo == REPO  # the window says which model is in use
    assert status_of(dialog, REPO) == "installed, in the Hugging Face cache"
    select(dialog, REPO)
    assert dialog.load_button.isEnabled() and not dialog.download_button.isEnabled()
    assert not dialog.remove_button.isEnabled()
    assert "never deletes files from the Hugging Face cache" in dialog.remove_button.toolTip()
    assert "never deletes files from the Hugging Face cache" in dialog.message.text()
    assert str(snapshot) in dialog.table.item(dialog.table.currentRow(), 0).toolTip()



CHAT = "test-org/tiny-chat"
QWEN3_0_6B = WeightCount(440_401_920, 155_648_000, 155_582_464)  # as the catalog's dLLM entries count them
CPU = torch.device("cpu")


@pytest.fixture
def chat_dialog(qtbot, hub, bd3lm_home, monkeypatch):
    """The dialog with a chat model of Qwen3-0.6B's size in its catalog, counted on the CPU in float32, on a machine
    with 8 GiB free."""
    monkeypatch.setattr(devices, "free_bytes", lambda device: 8 * 2**30)
    hub.repos[CHAT] = tiny_checkpoint_files()  # what is served does not matter: the catalog entry says the size
    entries = [*catalog(hub), CatalogEntry(CHAT, 32, 1_210_000_000, "a chat model", "a2d-qwen3", QWEN3_0_6B)]
    d = DownloadDialog(catalog=entries, endpoint=hub.url, placement=("cpu", "float32"))
    qtbot.addWidget(d)
    d.show()
    select(d, CHAT)
    return d


def cell(dialog, repo_id: str, column: str) -> str:
    [row] = [r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 0).text() == repo_id]
    return dialog.table.item(row, COLUMNS.index(column)).text()


def test_chat_models_show_their_size_and_the_memory_they_need_at_the_chosen_precision(chat_dialog):
    assert cell(chat_dialog, CHAT, "Size") == "1.2 GB"
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("int8", torch.qint8)):
        chat_dialog.set_placement("cpu", precision)
        needed = memory_needed(QWEN3_0_6B, dtype)  # the loader's own estimate, by which it refuses a load
        assert needed == memory_fit(precision, CPU, QWEN3_0_6B).needed
        assert cell(chat_dialog, CHAT, "Memory") == f"{formatting.size(needed)} {precision}"
    assert cell(chat_dialog, CHAT, "Memory") == "1.3 GB int8"  # the int8 output layer (a copy of the embedding) counted
    chat_dialog.set_placement("cpu", "float32")
    assert cell(chat_dialog, CHAT, "Memory") == "2.6 GB float32"  # 2.4 GB of weights, and room to work
    chat_dialog.set_placement("cpu", "auto")  # auto: what the loader would choose here, named
    assert cell(chat_dialog, CHAT, "Memory") == "2.6 GB float32"
    assert cell(chat_dialog, REPO, "Memory") == "\u2013"  # a BD3-LM: its size is no question


def test_a_download_that_will_not_fit_asks_first_and_no_starts_nothing(chat_dialog, qtbot, online, hub, monkeypatch):
    monkeypatch.setenv("BD3LM_MEMORY_LIMIT", "2G")  # float32 (2.6 GB) does not fit, bfloat16 (1.3 GB) does
    chat_dialog.refresh()
    needed = memory_needed(QWEN3_0_6B, torch.float32)
    short = formatting.size(needed - 2**31)
    assert cell(chat_dialog, CHAT, "Memory") == f"2.6 GB float32 ({short} short)"
    chat_dialog.download_button.click()
    box = question(chat_dialog)
    text = box.text()
    assert "needs about 2.6 GB of memory in float32, but 2.1 GB is BD3LM_MEMORY_LIMIT" in text
    assert f"{short} is missing" in text and short == "475.1 MB"
    assert "In bfloat16 it needs 1.3 GB, which fits" in text and "Download it anyway?" in text
    answer(box, "No")
    assert chat_dialog._downloading is None and hub.requests == [] and status_of(chat_dialog, CHAT) == "not installed"

    chat_dialog.download_button.click()
    answer(question(chat_dialog), "Yes")
    qtbot.waitUntil(lambda: chat_dialog._downloading is None, timeout=30_000)
    assert status_of(chat_dialog, CHAT) == "installed" and hub.gets_of("model.safetensors")


def test_a_download_that_fits_starts_without_asking(chat_dialog, qtbot, online):
    chat_dialog.download_button.click()
    assert chat_dialog._downloading == CHAT
    assert not [b for b in chat_dialog.findChildren(QMessageBox) if b.isVisible()]
    qtbot.waitUntil(lambda: chat_dialog._downloading is None, timeout=30_000)
    assert status_of(chat_dialog, CHAT) == "installed"
