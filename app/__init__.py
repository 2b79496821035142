"""BD3-LM Studio, the desktop app: watch blocks unmask at any pace, see the model's confidence, compare settings
side by side, keep writing, download models, export.

Installed as the package `bd3lm_studio` (the repository's `app/` folder). It
talks to the engine only through `bd3lm_core`'s public API, from one worker
thread (`engine/worker.py`). The packages say what they hold: `engine/` (that
thread and its requests), `records/` (runs as data, no Qt), `rendering/` (how
a run looks in a file, no widgets) and `views/` (the windows, with
`views/main_window.py` wiring the parts).
"""
