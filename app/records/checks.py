"""Checking what comes from files (saved settings, traces) before the app uses any of it.

A value read from disk may be of any JSON type, any size, or a number
Python's JSON reader lets through (NaN, Infinity). Sampler settings are
checked one by one by the engine's own rule (`SamplerSettings.check`, which
the CLI applies to its flags), so that the app can keep every good value and
name each bad one.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from bd3lm_core import BD3LMError, SamplerSettings
from bd3lm_core.checks import shown


def short(value: Any) -> str:
    """A value as it reads in a one-line message, cut if long (a 5000-digit number by its length)."""
    text = shown(value) if type(value) is int else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_sampling(saved: dict[str, Any]) -> tuple[SamplerSettings, list[str]]:
    """SamplerSettings from saved values; each bad one is left at its default, with a note that says so.

    Each value is checked alone (the others at their defaults) by the
    engine's own rule, so one bad value never costs the good ones.
    """
    defaults = SamplerSettings()
    accepted: dict[str, Any] = {}
    notes: list[str] = []
    for f in fields(SamplerSettings):
        if f.name not in saved:
            continue
        value = saved[f.name]
        try:
            replace(defaults, **{f.name: value}).check()
        except BD3LMError as err:
            default = getattr(defaults, f.name)
            problem = str(err).rstrip(".")
            notes.append(f"{f.name} {short(value)} ({problem}): using {'the default' if default is None else repr(default)}")
        else:
            accepted[f.name] = value
    return SamplerSettings(**accepted), notes
