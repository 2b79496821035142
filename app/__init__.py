"""BD3-LM Studio, the desktop app: watch blocks unmask at any pace, see the model's confidence, compare settings
side by side, keep writing, download models, export.

Installed as the package `bd3lm_studio` (the repository's `app/` folder). It
talks to the engine only through `bd3lm_core`'s public API, from one worker
thread; see `worker.py`. `main_window.py` wires the parts, each in its own
module (the README's layout table lists them).
"""
