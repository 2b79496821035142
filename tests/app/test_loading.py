"""Loading: a load that downloads shows its progress and can be cancelled; closing never waits without end."""

from __future__ import annotations

import threading
import time

import bd3lm_studio.engine.worker as worker_module
from app_helpers import error_boxes
from bd3lm_core import installed_models, remove_model

REPO = "test-org/tiny-bd3lm"


def test_a_load_that_downloads_shows_progress_and_can_be_cancelled(window, qtbot, hub_as_default, bd3lm_home):
    hub_as_default.chunk_delay = 0.05  # the weights take over a second
    before = window.model
    window.load_model_source(REPO)
    status = window.status
    qtbot.waitUntil(lambda: status.download.isVisible() and "model.safetensors" in status.current_message(),
                    timeout=30_000)
    assert status.current_message().startswith(f"Downloading {REPO}: model.safetensors: ")
    assert status.cancel_download.isVisible() and window.stop_action.isEnabled()
    status.cancel_download.click()
    qtbot.waitUntil(lambda: not window.loading, timeout=10_000)
    assert window.model == before  # still the model it had
    assert "cancelled" in status.current_message() and f"Still using {before.name}" in status.current_message()
    assert not status.download.isVisible() and error_boxes(window) == []  # a cancel is no error
    assert installed_models() == []

    hub_as_default.chunk_delay = 0.0
    window.load_model_source(REPO)  # again: continues, then loads
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    assert window.model.name == REPO and not status.download.isVisible()


def test_removing_the_loaded_model_then_changing_precision_downloads_it_visibly(window, qtbot, hub_as_default,
                                                                                bd3lm_home):
    """Defect: the reload re-downloaded the removed model silently, with no progress and no cancel."""
    window.load_model_source(REPO)
    qtbot.waitUntil(lambda: not window.loading, timeout=30_000)
    remove_model(REPO)
    hub_as_default.chunk_delay = 0.05
    seen = []
    window.engine.worker.load_progressed.connect(lambda p: seen.append(p))
    dtype = window.controls.dtype
    dtype.setCurrentIndex(dtype.findData("float32"))  # a reload of the same source
    qtbot.waitUntil(lambda: window.status.download.isVisible(), timeout=30_000)
    window.stop_action.trigger()  # Esc stops a download too
    qtbot.waitUntil(lambda: not window.loading, timeout=10_000)
    assert seen and "cancelled" in window.status.current_message()


def test_closing_while_the_engine_is_stuck_does_not_wait_forever(window, qtbot, monkeypatch, qtlog):
    """A step that never returns (here: a load that ignores cancel) cannot keep the window from closing."""
    release = threading.Event()

    def stuck_load(*args, **kwargs):
        release.wait(60)
        raise worker_module.BD3LMError("released")

    monkeypatch.setattr(worker_module, "load_model", stuck_load)
    monkeypatch.setattr(worker_module, "SHUTDOWN_WAIT_MS", 300)
    window.load_model_source("anything")
    qtbot.wait(100)
    began = time.perf_counter()
    window.close()
    assert time.perf_counter() - began < 3
    assert window.engine.left_running
    release.set()  # let it end, so the test leaves no thread behind
    qtbot.waitUntil(lambda: not window.engine._thread.isRunning(), timeout=10_000)
    assert not [r.message for r in qtlog.records if "Destroyed while thread" in r.message]
