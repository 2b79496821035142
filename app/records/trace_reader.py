"""Reading a saved trace back: the whole file is checked before anything is built from it.

A trace comes from disk, so it may be anything: not UTF-8, not JSON, nested
a thousand deep, a string where a probability belongs, a position outside
its block. Every value is checked for type and range here, and the frames
must add up to the token ids; any fault is one `BD3LMError` that names the
place, so File → Open trace can refuse the file and change nothing.
"""

from __future__ import annotations

import json
import math
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from bd3lm_core import BD3LMError
from bd3lm_core.errors import one_line

from .checks import checked_sampling, short
from .conversations import CHAT_FORMAT, last_reply_trace
from .trace import STOP_REASONS, TRACE_FORMAT, TRACE_VERSION, Frame, Judgement, Finished, Reveal, Trace, replay

MAX_TRACE_BYTES = 256 * 2**20  # a 1024-token run with alternatives is a few MB
MAX_ALTERNATIVES = 64
INT64 = 2**63 - 1


def load_trace(path: str | Path) -> Trace:
    """Read and check a JSON trace written by File → Export (or, from a chat exported as JSON, its last reply's)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise BD3LMError(f"{path} is not a regular file; open a .json trace saved by File → Export.")
        if info.st_size > MAX_TRACE_BYTES:
            raise BD3LMError(f"{path.name} is {info.st_size // 2**20} MB, too large for a trace; it is not one.")
        raw = path.read_bytes()
    except OSError as err:
        raise BD3LMError(f"cannot read {path}: {err.strerror or err}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BD3LMError(f"{path.name} is not UTF-8 text (bad byte at {err.start}), so it is not a trace.") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BD3LMError(f"{path.name} is nested too deeply to be a trace.") from None
    except MemoryError:
        raise BD3LMError(f"{path.name} holds more JSON values than fit in memory; it is not a trace.") from None
    except ValueError as err:  # JSONDecodeError, and a number of more digits than Python converts
        raise BD3LMError(f"{path.name} is not valid JSON ({one_line(err, 120)}).") from None
    if isinstance(data, dict) and data.get("format") == CHAT_FORMAT:  # an exported chat: its last reply's trace
        data = last_reply_trace(data)
    return read_trace(data)


def _no_constant(name: str) -> NoReturn:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _damaged(where: str, what: str, value: Any) -> NoReturn:
    raise BD3LMError(f"this trace is damaged: {where} should be {what}, not {short(value)}.")


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise BD3LMError(f"this trace is damaged: {where}{key} is missing.")
    return obj[key]


def _int(value: Any, where: str, low: int = 0, high: int = INT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _damaged(where, f"a whole number from {low} to {high}", value)
    return value


def _number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float:
    """A finite number in [low, high] (1e999 parses as infinity, which a trace can never hold)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok and isinstance(value, int):
        ok = abs(value) <= INT64
    if not ok or not math.isfinite(value) or not low <= value <= high:
        _damaged(where, f"a finite number from {low} to {high}", value)
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _damaged(where, "text", value)
    return value


def _list(value: Any, where: str, low: int = 0, high: int = INT64) -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        _damaged(where, f"a list of {low} to {high} items", value)
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _damaged(where, "an object", value)
    return value


def read_trace(data: Any) -> Trace:
    """A Trace from parsed JSON, every value checked; raises BD3LMError naming the first fault."""
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise BD3LMError("this file is not a BD3-LM Studio trace (its \"format\" is missing or different).")
    version = _int(_get(data, "version", ""), "version", 1)
    if version > TRACE_VERSION:
        raise BD3LMError(f"this trace was written by a newer BD3-LM Studio (version {version}); update the app.")
    settings = _settings(_dict(_get(data, "settings", ""), "settings"))
    block_size = settings["block_size"]
    eos_id = _int(_get(data, "eos_id", ""), "eos_id")
    prompt_tokens = tuple(
        Reveal(pos, _int(pair[0], f"prompt_tokens[{pos}] id"), _str(pair[1], f"prompt_tokens[{pos}] text"),
              -1, 0, 1.0, -1)
        for pos, pair in enumerate(_list(_get(data, "prompt_tokens", ""), "prompt_tokens", 1))
        if _list(pair, f"prompt_tokens[{pos}]", 2, 2)
    )
    n_tokens = len(_list(_get(data, "token_ids", ""), "token_ids"))
    last_block = (len(prompt_tokens) + n_tokens) // block_size + 1  # a frame past it would place tokens past the text
    frames = [
        _frame(_dict(f, f"frame {index}"), index, block_size, len(prompt_tokens), version, last_block)
        for index, f in enumerate(_list(_get(data, "frames", ""), "frames"))
    ]
    outcome = Finished(
        tuple(_int(t, "token_ids[]") for t in _list(_get(data, "token_ids", ""), "token_ids")),
        _str(_get(data, "text", ""), "text"),
        _int(_get(data, "nfe", ""), "nfe"),
        _number(_get(data, "seconds", ""), "seconds"),
        _get(data, "stop_reason" if version >= 3 else "reason", ""),  # version 2 and earlier called it "reason"
    )
    if outcome.stop_reason not in STOP_REASONS:
        _damaged("stop_reason", " or ".join(STOP_REASONS), outcome.stop_reason)
    trace = Trace(
        _str(_get(data, "prompt", ""), "prompt"), _str(_get(data, "model", ""), "model"),
        _str(_get(data, "device", ""), "device"), _str(_get(data, "dtype", ""), "dtype"),
        settings, eos_id, prompt_tokens, frames, outcome, _judgement(data.get("judgement")),
    )
    if replay(trace)[trace.n_prompt :] != list(outcome.token_ids):
        raise BD3LMError("this trace's steps do not add up to its token ids; the file was edited or damaged.")
    return trace


def _settings(saved: dict[str, Any]) -> dict[str, Any]:
    """The sampler settings the run used: each valid by the engine's rule, none left open."""
    sampling, notes = checked_sampling(saved)
    if notes:
        raise BD3LMError(f"this trace's settings are not valid: {notes[0].split(': using')[0]}.")
    for name in ("block_size", "steps", "seed"):
        if getattr(sampling, name) is None:
            raise BD3LMError(f"this trace is damaged: settings.{name} is missing.")
    return asdict(sampling)


def _frame(f: dict[str, Any], index: int, block_size: int, n_prompt: int, version: int, last_block: int) -> Frame:
    where = f"frame {index}"
    block = _int(_get(f, "block", where + " "), where + " block", 0, last_block)
    step = _int(_get(f, "step", where + " "), where + " step", 1)
    start = _get(f, "start", where + " ")
    if start != block * block_size:
        _damaged(where + " start", f"{block * block_size} (block {block} of size {block_size})", start)
    masked = tuple(
        m if isinstance(m, bool) else _damaged(f"{where} masked", "true or false", m)
        for m in _list(_get(f, "masked", where + " "), where + " masked", 1, block_size)
    )
    revealed = []
    for k, r in enumerate(_list(_get(f, "revealed", where + " "), where + " revealed", 0, block_size)):
        here = f"{where}, revealed token {k}"
        r = _list(r, here, 4 if version == 1 else 6, 4 if version == 1 else 6)
        position = _int(r[0], here + " position", max(1, start), start + len(masked) - 1)
        if position < n_prompt:
            _damaged(here + " position", f"after the prompt (position {n_prompt} or later)", position)
        confidence, alternatives = None, ()
        if version >= 2:
            confidence = None if r[4] is None else _number(r[4], here + " confidence", 0.0, 1.0)
            alternatives = tuple(
                (_int(a[0], here + " alternative id"), _str(a[1], here + " alternative text"),
                 _number(a[2], here + " alternative probability", 0.0, 1.0))
                for a in _list(r[5], here + " alternatives", 0, MAX_ALTERNATIVES) if _list(a, here + " alternative", 3, 3)
            )
        revealed.append(Reveal(
            position, _int(r[1], here + " id"), _str(r[2], here + " text"), block, step,
            _number(r[3], here + " probability", 0.0, 1.0), index, confidence, alternatives,
        ))
    return Frame(
        block, step, start, _number(_get(f, "t", where + " "), where + " t", 0.0, 1.0), tuple(revealed), masked,
        _int(_get(f, "nfe", where + " "), where + " nfe"), _number(_get(f, "elapsed", where + " "), where + " elapsed"),
    )


def _judgement(value: Any) -> Judgement | None:
    if value is None:
        return None
    s = _dict(value, "judgement")
    return Judgement(
        _int(_get(s, "tokens", "judgement."), "judgement.tokens"),
        _number(_get(s, "gen_ppl", "judgement."), "judgement.gen_ppl"),
        _number(_get(s, "entropy", "judgement."), "judgement.entropy"),
        _str(_get(s, "judge", "judgement."), "judgement.judge"),
    )
