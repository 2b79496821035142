"""Measuring samples: an autoregressive judge, generative perplexity (Gen PPL) and entropy.

`gpt2.py` is GPT-2 (the paper's judge), `windows.py` scores texts longer
than a judge's context, `judge.py` turns a text into a `Judgement`, and
`loading.py` finds the judge: a folder, a hub repo id, or the default for a
model.
"""

from .judge import Judge, Judgement
from .loading import GPT2_JUDGE, default_judge, load_judge

__all__ = ["Judge", "Judgement", "GPT2_JUDGE", "default_judge", "load_judge"]
