"""The app's thread rules: Python's cycle collector runs on the GUI thread only."""

from __future__ import annotations

import gc
import threading

import pytest

from bd3lm_studio.engine.threads import garbage_collected_on_gui_thread


class _Cycle:
    """An object in a reference cycle that records the thread that finally collects it."""

    def __init__(self, collected_on: list[int]) -> None:
        self.me = self
        self.collected_on = collected_on

    def __del__(self) -> None:
        self.collected_on.append(threading.get_ident())


def test_garbage_made_in_a_worker_thread_is_collected_on_the_gui_thread(qtbot):
    collected_on: list[int] = []
    count = 20 * gc.get_threshold()[0]  # enough to cross the young generation's threshold many times

    def make_garbage() -> None:
        for _ in range(count):
            _Cycle(collected_on)

    with garbage_collected_on_gui_thread(interval_ms=10):
        worker = threading.Thread(target=make_garbage)
        worker.start()
        worker.join()
        assert collected_on == [], "the worker thread collected garbage itself"
        qtbot.waitUntil(lambda: len(collected_on) > 0, timeout=5_000)  # the GUI thread's timer did
    assert len(collected_on) == count  # the rest on leaving
    assert set(collected_on) == {threading.get_ident()}


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_automatic_collection_is_off_inside_and_as_it_was_after(enabled: bool):
    before = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with garbage_collected_on_gui_thread():
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if before else gc.disable)()
