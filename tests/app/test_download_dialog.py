"""Model → Download models… against the local fake hub: progress, cancel, resume, offline, remove, load."""

from __future__ import annotations

import re

import pytest

from bd3lm_core import CatalogEntry, installed_models, models_dir
from bd3lm_studio.download_dialog import DownloadDialog

REPO = "test-org/tiny-bd3lm"


@pytest.fixture
def dialog(qtbot, hub, bd3lm_home):
    size = sum(len(content) for content in hub.repos[REPO].values())
    d = DownloadDialog(catalog=[CatalogEntry(REPO, 4, size, "a tiny test model")], endpoint=hub.url)
    qtbot.addWidget(d)
    d.show()
    d.table.selectRow(0)
    return d


def status_of(dialog, repo_id: str) -> str:
    for row in range(dialog.table.rowCount()):
        if dialog.table.item(row, 0).text() == repo_id:
            return dialog.table.item(row, 3).text()
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
    assert status_of(dialog, REPO) == "not installed"
    [partial] = (models_dir() / "test-org--tiny-bd3lm").glob("model.safetensors.*.incomplete")
    kept = partial.stat().st_size
    assert kept > 0

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
