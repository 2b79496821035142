"""Tiny stand-ins for big test inputs."""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

EOT = "<|endoftext|>"


def tiny_tokenizer_json(size: int) -> str:
    """A tokenizer.json with exactly `size` ids, `<|endoftext|>` last as in GPT-2.

    Words are `w1 … w{size-2}`, split on whitespace; anything else is `<unk>`
    (id 0). Pair it with a checkpoint whose vocab_size is size + 1 (the mask).
    """
    vocab = {"<unk>": 0, **{f"w{i}": i for i in range(1, size - 1)}, EOT: size - 1}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens([AddedToken(EOT, special=True)])
    return tokenizer.to_str()
