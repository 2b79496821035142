"""The engine thread's chat runs: a conversation rendered by the model's template, answered as `bd3lm chat` would."""

from __future__ import annotations

from pathlib import Path

from bd3lm_core import SamplerSettings, generate_chat, load_model, render_chat
from bd3lm_core.sampling import Finished

BACKBONE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "backbones" / "a2d-qwen3-bs4" / "checkpoint"


def test_a_chat_run_gives_the_template_prompt_and_the_reply_generate_chat_gives(window, qtbot):
    window.load_model_source(str(BACKBONE))
    qtbot.waitUntil(lambda: window.model is not None and window.model.path == str(BACKBONE), timeout=60_000)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "And then?"}]
    settings = SamplerSettings(tokens=8, seed=5, stop_at_eos=False, stop_on_repetition=False)
    ended = {}
    window.engine.worker.run_finished.connect(lambda run_id, finished: ended.setdefault(run_id, finished))
    started = {}
    window.engine.worker.run_started.connect(lambda run_id, trace: started.setdefault(run_id, trace))
    run_id = window.engine.run_chat(messages, settings)
    qtbot.waitUntil(lambda: run_id in ended, timeout=60_000)

    loaded = load_model(str(BACKBONE), device="cpu")
    prompt = render_chat(loaded, messages)
    assert started[run_id].prompt == prompt and "And then?" in prompt and "Hello." in prompt
    [done] = [e for e in generate_chat(loaded, messages, settings) if isinstance(e, Finished)]
    assert ended[run_id].token_ids == done.token_ids and len(done.token_ids) == 8
