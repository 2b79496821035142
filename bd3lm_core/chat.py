"""Chatting with a chat model: the conversation rendered by its template, then answered by the sampler.

    from bd3lm_core import load_model, generate_chat, render_chat
    loaded = load_model("dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1")
    messages = [{"role": "user", "content": "Hello"}]
    prompt = render_chat(loaded, messages)          # exactly the text the model is given
    for event in generate_chat(loaded, messages):   # Step, BlockDone, then Finished
        ...

`loaded.chat_template` is a `ChatTemplate` (model/chat_template.py), or None
for a model without one (every BD3-LM of the paper).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from .errors import BD3LMError
from .loader import LoadedModel
from .model.chat_template import ChatTemplate, check_messages
from .sampling import Event, SamplerSettings, generate

__all__ = ["ChatTemplate", "check_messages", "generate_chat", "render_chat"]


def render_chat(loaded: LoadedModel, messages: list[dict], enable_thinking: bool | None = None) -> str:
    """The prompt text the model is given for `messages`: its template rendered with the generation prompt."""
    if loaded.chat_template is None:
        raise BD3LMError(
            f"{loaded.name} has no chat template, so it cannot chat; use `bd3lm generate` (or generate()) to continue a text."
        )
    return loaded.chat_template.render(messages, add_generation_prompt=True, enable_thinking=enable_thinking)


def generate_chat(
    loaded: LoadedModel,
    messages: list[dict],
    settings: SamplerSettings = SamplerSettings(),
    cancel: threading.Event | None = None,
    num_samples: int = 1,
    enable_thinking: bool | None = None,
) -> Iterator[Event]:
    """Stream the assistant's reply to `messages`, as `generate` streams a continuation (the template is rendered first)."""
    prompt = render_chat(loaded, messages, enable_thinking)
    return generate(loaded, prompt, settings, cancel=cancel, num_samples=num_samples)
