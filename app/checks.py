"""Checking what comes from files (saved settings, traces) before the app uses any of it.

A value read from disk may be of any JSON type, any size, or a number
Python's JSON reader lets through (NaN, Infinity). Sampler settings are
checked one by one the way the engine checks them (`SamplerSettings.resolved`,
the same rule the CLI applies), so that the app can keep every good value
and name each bad one.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any, get_type_hints

from bd3lm_core import SEED_LIMIT, BD3LMError, SamplerSettings

_ANY_BLOCK = 4  # `resolved` needs a checkpoint block size; a value's validity does not depend on it


def short(value: Any) -> str:
    """A value as it reads in a one-line message, cut if long."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def type_problem(value: Any, hint: Any) -> str | None:
    """Why a JSON value cannot stand for a field of type `hint` (an integer can stand for a float); None if it can."""
    allowed = hint.__args__ if hasattr(hint, "__args__") else (hint,)
    if value is None:
        return None if type(None) in allowed else "a value is needed"
    if isinstance(value, bool):
        return None if bool in allowed else "true/false is not a number"
    if isinstance(value, int) and (int in allowed or float in allowed):
        return None
    if isinstance(value, float) and float in allowed:
        return None if math.isfinite(value) else "not a finite number"
    if isinstance(value, str) and str in allowed:
        return None
    return f"should be {' or '.join(t.__name__ for t in allowed if t is not type(None))}"


def _range_problem(name: str, value: Any) -> str | None:
    """What `resolved` lets through but no run can use: a seed beyond 63 bits, and 0 for a block size or a step
    count (which it reads as "the default": a file that says 0 was damaged or hand-edited)."""
    if value is None:
        return None
    if name == "seed" and not 0 <= value < SEED_LIMIT:
        return f"seeds are 0 to {SEED_LIMIT - 1}"
    if name in ("block_size", "steps") and value < 1:
        return "must be at least 1"
    return None


def checked_sampling(saved: dict[str, Any]) -> tuple[SamplerSettings, list[str]]:
    """SamplerSettings from saved values; each bad one is left at its default, with a note that says so.

    Each value is checked alone (the others at their defaults) by the
    engine's own rule, so one bad value never costs the good ones.
    """
    hints = get_type_hints(SamplerSettings)
    defaults = SamplerSettings()
    accepted: dict[str, Any] = {}
    notes: list[str] = []
    for f in fields(SamplerSettings):
        if f.name not in saved:
            continue
        value = saved[f.name]
        problem = type_problem(value, hints[f.name]) or _range_problem(f.name, value)
        if problem is None:
            try:
                replace(defaults, **{f.name: value}).resolved(_ANY_BLOCK)
            except BD3LMError as err:
                problem = str(err).rstrip(".")
        if problem is None:
            accepted[f.name] = value
        else:
            default = getattr(defaults, f.name)
            notes.append(f"{f.name} {short(value)} ({problem}): using {'the default' if default is None else repr(default)}")
    return SamplerSettings(**accepted), notes
