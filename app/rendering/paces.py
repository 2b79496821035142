"""The paces a replay can play at, in the window and in the exported page alike."""

from __future__ import annotations

PACES = (0, 2, 5, 10, 20, 30, 60)  # steps per second on screen; 0: as fast as the sampler goes
DEFAULT_PACE = 20


def pace_name(pace: int) -> str:
    return "Real time" if pace == 0 else f"{pace} steps/s"
