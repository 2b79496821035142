"""Checking single values that come from outside: flags, config.json, saved state, settings.

One vocabulary for every boundary, so the same mistake reads the same
wherever it is made. Values arrive as Python objects (from argparse or
`json.loads`), and JSON has its own traps: `true` is an int to Python,
`"false"` is a truthy string, and `NaN` and `1e999` parse as floats. Each
check takes the name to show (a flag, or a key of a file) and raises
`BD3LMError` with one line that says what is allowed.
"""

from __future__ import annotations

import json
import math

from .errors import BD3LMError

MAX_WHOLE = 2**63 - 1  # the largest count, size or seed any value may be


def whole(value: object, name: str, low: int, high: int | None = None) -> int:
    """`value` if it is an int (not a bool) in [low, high]; with no `high`, below 2**63 (a 5000-digit number is no count)."""
    if type(value) is not int or value < low or value > (high if high is not None else MAX_WHOLE):
        allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BD3LMError(f"{name} must be a whole number {allowed}, not {shown(value)}.")
    return value


def number(
    value: object,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """`value` as a float if it is a finite int or float (not a bool) in the interval from low to high."""
    ok = type(value) in (int, float) and (type(value) is float or abs(value) <= MAX_WHOLE) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        raise BD3LMError(f"{name} must be a finite number {_interval(low, high, open_low, open_high)}, not {shown(value)}.")
    return float(value)


def boolean(value: object, name: str) -> bool:
    """`value` if it is True or False (JSON true/false, not a string or a number)."""
    if type(value) is not bool:
        raise BD3LMError(f"{name} must be true or false, not {shown(value)}.")
    return value


def string(value: object, name: str) -> str:
    """`value` if it is a str (a path may hold any bytes the system allows, so nothing more is asked)."""
    if not isinstance(value, str):
        raise BD3LMError(f"{name} must be text, not {shown(value)}.")
    return value


def text(value: object, name: str) -> str:
    """`value` if it is a str that can be written as UTF-8 (command-line bytes that were not UTF-8 cannot)."""
    string(value, name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BD3LMError(f"{name} is not valid UTF-8 text; pass it in UTF-8.") from None
    return value


def shown(value: object) -> str:
    """The value as the user wrote it: JSON's `true`, `"false"` and `NaN` rather than Python's spelling."""
    if type(value) is int and abs(value) > MAX_WHOLE:  # str() of a 5000-digit int is refused by Python itself
        return f"a number of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    try:
        return json.dumps(value)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


def _interval(low: float, high: float, open_low: bool, open_high: bool) -> str:
    if high == math.inf:
        return f"above {low:g}" if open_low else f"of at least {low:g}"
    if low == -math.inf:
        return f"below {high:g}" if open_high else f"of at most {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
