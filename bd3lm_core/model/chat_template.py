"""A model's chat template: a Jinja template from a downloaded file, rendered in jinja2's immutable sandbox.

A chat model ships its prompt format as a Jinja template (in
tokenizer_config.json's `chat_template`, or in `chat_template.jinja`). It
comes from a downloaded file, so it is rendered in the sandbox: it can loop
and format, but cannot call into Python, change what it is given or read
files. A template that is broken, or that raises (many refuse a conversation
they do not support), is reported in one line quoting its own message.
"""

from __future__ import annotations

import json
from datetime import datetime

from jinja2 import TemplateError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import BD3LMError, one_line


# The most characters a template may render, or build in one expression: far above any real conversation's prompt
# (which the model's context bounds anyway), far below what `{{ 'a' * 10**10 }}` in a downloaded file would take.
MAX_RENDERED = 16 * 2**20


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox whose `*` and `**` cannot ask for gigabytes: the sandbox already bounds range()."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator: str, left: object, right: object) -> object:
        if operator == "*":
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                if len(sequence) * times > MAX_RENDERED:
                    raise SecurityError(f"the template repeats a value {times} times, more than it may build")
        elif isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right * abs(left).bit_length() > 8 * MAX_RENDERED:  # the power's bits
                raise SecurityError(f"the template raises {left} to the power {right}, a number larger than it may build")
        return super().call_binop(context, operator, left, right)


class ChatTemplate:
    """A model's chat template, compiled once; `where` names its file in messages."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "", where: str = "the chat template") -> None:
        self.where = where
        self._special = {"bos_token": bos_token, "eos_token": eos_token}
        env = _BoundedSandbox(trim_blocks=True, lstrip_blocks=True)  # as transformers renders them
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_from_template
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            parsed = env.parse(source)
            self._template = env.from_string(parsed)
        except TemplateError as err:
            raise BD3LMError(f"{where} is broken: {one_line(err)}; download the model again or fix the template.") from None
        self._reads = meta.find_undeclared_variables(parsed)

    @property
    def reads_enable_thinking(self) -> bool:
        """Whether the template looks at `enable_thinking` (Qwen3's switches its reasoning block with it)."""
        return "enable_thinking" in self._reads

    def render(
        self, messages: list[dict], *, add_generation_prompt: bool = True, enable_thinking: bool | None = None
    ) -> str:
        """The conversation as prompt text; with `add_generation_prompt` it ends where the assistant's reply begins."""
        check_messages(messages)
        extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
        try:
            rendered, length = [], 0
            for piece in self._template.generate(
                messages=messages, add_generation_prompt=add_generation_prompt, **self._special, **extra
            ):
                length += len(piece)
                if length > MAX_RENDERED:
                    raise SecurityError(f"its prompt grew past {MAX_RENDERED} characters")
                rendered.append(piece)
            return "".join(rendered)
        except TemplateError as err:
            raise BD3LMError(f"{self.where} refused the conversation: {one_line(err)}") from None
        except Exception as err:  # noqa: BLE001 - a template can raise anything its expressions do (1/0, a bad index)
            raise BD3LMError(f"{self.where} failed: {type(err).__name__}: {one_line(err)}") from None


def check_messages(messages: object) -> None:
    """A conversation is a list of {"role": text, "content": text} dicts; anything else is refused in one line."""
    if not isinstance(messages, list) or not messages:
        raise BD3LMError("a conversation is a non-empty list of messages, each {'role': ..., 'content': ...}.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BD3LMError(f"message {i + 1} must be a dict with text 'role' and 'content', not {one_line(repr(m), 80)}.")


def _tojson(value: object, indent: int | None = None) -> str:
    """transformers' `tojson`: plain JSON, non-ASCII kept (jinja2's own escapes HTML characters)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _raise_from_template(message: str) -> None:
    raise TemplateError(message)
