"""What a client asked for: an OpenAI request body read into a `Job`, every value checked as the CLI checks flags.

Standard fields map onto `SamplerSettings` (`max_tokens`, `temperature`,
`top_p`, `seed`) or onto the run (`n` samples in one batch, `stop` strings,
`stream`). Block diffusion's own settings travel in one extra object,
`"bd3lm": {...}`, whose keys are checked strictly; other unknown top-level
fields (`user`, `presence_penalty`, ...) are ignored, as OpenAI-compatible
servers do, so that existing clients work unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import checks
from ..errors import BD3LMError
from ..model.chat_template import check_messages
from ..sampling.loop import MAX_SAMPLES

MAX_BODY_BYTES = 4 * 1024 * 1024  # a long conversation is well under this; more is refused before parsing
MAX_STOPS = 4  # as OpenAI's API allows

# "bd3lm" keys that are SamplerSettings fields (checked by SamplerSettings.check), and the switches
BD3LM_SETTINGS = {
    "sampler": "sampler", "block_size": "block_size", "steps": "steps", "threshold": "threshold",
    "entropy_bound": "entropy_bound",
}
BD3LM_SWITCHES = ("ignore_eos", "no_repetition_stop", "step_events")


class RequestError(Exception):
    """A request the server answers with an OpenAI error object: `status`, one-line `message`, the field (`param`)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass
class Job:
    """One request, ready for the engine: a prompt or a conversation, the sampler values it sets, how to answer."""

    chat: bool
    prompt: str = ""
    messages: list[dict] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)  # SamplerSettings fields the request sets
    n: int = 1
    stops: tuple[str, ...] = ()
    stream: bool = False
    step_events: bool = False
    model: str = ""


def parse_body(raw: bytes) -> dict:
    """The request's JSON object, or a 400."""
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, f"the request body is over {MAX_BODY_BYTES // 2**20} MiB.")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise RequestError(400, f"the request body is not valid JSON ({str(err)[:80]}).") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object.")
    return body


def read_job(body: dict, chat: bool) -> Job:
    """A checked `Job` from a /v1/chat/completions (`chat`) or /v1/completions body."""
    job = Job(chat=chat)
    job.model = _field(body, "model", lambda v, name: checks.string(v, name), required=True)
    if chat:
        job.messages = _field(body, "messages", _messages, required=True)
    else:
        job.prompt = _field(body, "prompt", _prompt, required=True)
    tokens = _field(body, "max_completion_tokens", _positive) or _field(body, "max_tokens", _positive)
    if tokens is not None:
        job.settings["tokens"] = tokens
    for key in ("temperature", "top_p", "seed"):
        value = body.get(key)
        if value is not None:
            job.settings[key] = value
    job.n = _field(body, "n", lambda v, name: checks.whole(v, name, 1, MAX_SAMPLES)) or 1
    job.stops = _field(body, "stop", _stops) or ()
    job.stream = bool(_field(body, "stream", checks.boolean))
    extra = body.get("bd3lm")
    if extra is not None:
        _read_extra(extra, job)
    return job


def _read_extra(extra: object, job: Job) -> None:
    if not isinstance(extra, dict):
        raise RequestError(400, "bd3lm must be an object of block diffusion settings.", "bd3lm")
    unknown = sorted(set(extra) - set(BD3LM_SETTINGS) - set(BD3LM_SWITCHES))
    if unknown:
        known = ", ".join([*BD3LM_SETTINGS, *BD3LM_SWITCHES])
        raise RequestError(400, f"bd3lm has no setting {unknown[0]!r}; the settings are {known}.", f"bd3lm.{unknown[0]}")
    for key, setting in BD3LM_SETTINGS.items():
        if extra.get(key) is not None:
            job.settings[setting] = extra[key]
    switches = {key: _field(extra, key, checks.boolean, prefix="bd3lm.") for key in BD3LM_SWITCHES}
    if switches["ignore_eos"]:
        job.settings["stop_at_eos"] = False
    if switches["no_repetition_stop"]:
        job.settings["stop_on_repetition"] = False
    job.step_events = bool(switches["step_events"])


def _field(body: dict, key: str, check, required: bool = False, prefix: str = ""):
    """body[key] checked by `check(value, name)`; None when absent (or a 400 when `required`)."""
    value = body.get(key)
    if value is None:
        if required:
            raise RequestError(400, f"{prefix}{key} is required.", prefix + key)
        return None
    try:
        return check(value, prefix + key)
    except BD3LMError as err:
        raise RequestError(400, str(err), prefix + key) from None


def _positive(value: object, name: str) -> int:
    return checks.whole(value, name, 1)


def _prompt(value: object, name: str) -> str:
    """A prompt is text, or a list holding one text (the form some clients send)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return checks.text(value, name)


def _messages(value: object, name: str) -> list[dict]:
    """OpenAI messages as {"role", "content"} dicts of text; a content given as text parts is joined."""
    if not isinstance(value, list):
        raise BD3LMError(f"{name} must be a list of messages.")
    out = []
    for message in value:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            parts = message["content"]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in parts):
                raise BD3LMError(f"{name}: only text content parts are supported.")
            message = {**message, "content": "".join(p["text"] for p in parts)}
        out.append(message)
    check_messages(out)
    for message in out:
        checks.text(message["content"], f"{name} content")
    return [{"role": m["role"], "content": m["content"]} for m in out]


def _stops(value: object, name: str) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not 1 <= len(stops) <= MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise BD3LMError(f"{name} must be a non-empty text or a list of 1 to {MAX_STOPS} non-empty texts.")
    return tuple(stops)
