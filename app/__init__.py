"""BD3-LM Studio, the desktop app: watch blocks unmask live, steer the sampler, download models, export.

Installed as the package `bd3lm_studio` (the repository's `app/` folder). It
talks to the engine only through `bd3lm_core`'s public API, from one worker
thread; see `worker.py`.
"""
