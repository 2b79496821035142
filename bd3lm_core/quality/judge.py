"""Scoring a text with an autoregressive judge: generative perplexity (Gen PPL) and entropy.

Gen PPL as the paper computes it: decode the sample, re-tokenize the text
with the judge's own tokenizer, put BOS first, and take exp of the mean
negative log-likelihood of every token after BOS given all the tokens before
it (in windows when the text is longer than the judge's context, see
`windows.py`). A low Gen PPL can be faked by repeating a few tokens, so it
is always reported with the entropy (nats) of the sample's own token
histogram: of the ids the generating model produced when they are given,
else of the judge's tokens of the text.

A judge is a GPT-2 or a BD3-LM with block size 1, which is exact
autoregression: its training forward over all-mask x_t and clean x_0 gives
at position i the distribution of x_0[i] given x_0[:i].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import BD3LMError
from ..model.network import BD3LM
from ..model.tokenizer import Tokenizer
from ..sampling.stop_rules import histogram_entropy
from .gpt2 import GPT2
from .windows import WindowScorer, windowed_nll


@dataclass(frozen=True)
class Judgement:
    tokens: int  # the sample's tokens: the ids its entropy is over
    scored_tokens: int  # the judge's tokens whose likelihood makes the Gen PPL
    gen_ppl: float
    entropy: float  # nats, of the sample's token histogram
    judge: str  # the judge's name: a repo id or a folder name


MAX_LOG_PPL = 700.0  # exp() of more is beyond a float64: no real text and judge come near (GPT-2: ~3 to 6 nats)


class Judge:
    """An autoregressive model with its tokenizer; `score` turns a text into a Judgement."""

    def __init__(self, name: str, tokenizer: Tokenizer, context: int, scorer: WindowScorer) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.context = context  # the most tokens one forward sees; longer texts are scored in windows
        self._scorer = scorer

    @torch.inference_mode()
    def score(self, text: str, token_ids: Sequence[int] | None = None, prompt: str = "") -> Judgement:
        """Gen PPL of `text` and the entropy of its tokens (`token_ids` when the generating model's are known).

        A `prompt` is the text the sample continues: the judge reads it but
        does not score it, so only the model's own tokens count.
        """
        bos = self.tokenizer.bos_id
        before = [bos] + self.tokenizer.encode(prompt)
        sample = self.tokenizer.encode(text)
        if not sample:
            raise BD3LMError("there is no text to judge (it is empty); give the judge a non-empty text.")
        ids = torch.tensor(before + sample)
        nll = windowed_nll(ids, self.context, self._scorer)[len(before) - 1 :]  # the sample's tokens only
        own = list(token_ids) if token_ids is not None else sample
        mean = float(nll.double().mean())
        if not math.isfinite(mean) or mean > MAX_LOG_PPL:
            raise BD3LMError(f"the judge {self.name} gives this text a mean negative log-likelihood of {mean:g} nats, "
                             "which no trained judge gives; its weights are damaged, use another judge.")
        return Judgement(
            tokens=len(own), scored_tokens=len(nll), gen_ppl=math.exp(mean),
            entropy=histogram_entropy(own), judge=self.name,
        )


def gpt2_scorer(model: GPT2) -> WindowScorer:
    """NLL of ids[1:] under a GPT-2: its row i predicts token i + 1."""
    device = model.wte.weight.device

    def score(ids: torch.Tensor) -> torch.Tensor:
        logits = model(ids[None].to(device))[0, :-1]  # [S-1, V]: row i predicts ids[i + 1]
        return _nll(logits, ids[1:])

    return score


def bd3lm_scorer(model: BD3LM) -> WindowScorer:
    """NLL of ids[1:] under a block-size-1 BD3-LM: with x_t all masks, its row i predicts token i from ids[:i]."""
    mask_id = model.config.mask_id

    def score(ids: torch.Tensor) -> torch.Tensor:
        x0 = ids[None].to(model.device)  # [1, S]
        logits = model.forward_train(torch.full_like(x0, mask_id), x0)[0, 1:]  # [S-1, V]: row i predicts ids[i + 1]
        logits[:, mask_id] = -math.inf  # the mask is never a token of a text
        return _nll(logits, ids[1:])

    return score


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] per row, on the CPU: `[S-1, V]`, `[S-1]` -> `[S-1]`."""
    return F.cross_entropy(logits.float(), targets.to(logits.device), reduction="none").cpu()
