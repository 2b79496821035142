"""From raw text files to training rows.

Text files differ in how they mark the end of a document (a blank line, a
single newline, a marker string) and in their defects (quotes that went
through the wrong encoding). Both are options here, so the data stays as it
was downloaded. Rows follow the paper: documents joined with EOS into one
stream, cut into `model_length`-token rows that each start with BOS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ..errors import BD3LMError
from ..files import read_limited
from ..model.tokenizer import Tokenizer, train_bpe

class DataSettings(Protocol):
    """What `prepare_data` reads of `TrainSettings` (named here, not imported: settings.py imports this module)."""

    data: list[str]
    separators: list[str]
    tokenizer: str | None
    fix_mojibake: bool
    ascii_punctuation: bool
    holdout_bytes: int | None
    model_length: int
    vocab_size: int

SEPARATORS = {
    "blank": re.compile(r"\n\s*\n"),  # paragraphs or documents separated by an empty line
    "newline": re.compile(r"(?<!\n)\n(?!\n)"),  # one newline ends a document; blank lines stay inside it
    "line": re.compile(r"\n"),  # every line is a document
}

# UTF-8 punctuation that was decoded as Windows-1252 ("â€œ" for an opening quote).
# The closing quote's last byte (0x9D) has no cp1252 character and is often lost.
MOJIBAKE = {
    "â€œ": "\u201c", "â€\x9d": "\u201d", "â€™": "\u2019", "â€˜": "\u2018", "â€“": "\u2013",
    "â€”": "\u2014", "â€¦": "\u2026", "â€Š": " ", "â€": "\u201d",
}
MAX_TEXT_BYTES = 2**31  # 2.1 GB: the text is read into memory whole, then tokenized
ASCII_PUNCTUATION = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-", "\u2026": "..."}


@dataclass(frozen=True)
class TextOptions:
    """How to read a corpus: where documents end and which repairs to make."""

    separator: str = "blank"  # "blank", "newline", "line", or "marker:<string>"
    fix_mojibake: bool = False
    ascii_punctuation: bool = False

    def __post_init__(self) -> None:
        check_separator(self.separator)


def check_separator(separator: str) -> None:
    """A document rule is one of SEPARATORS' names or `marker:` followed by the marker."""
    if separator == "marker:":
        raise BD3LMError("the separator marker: needs the marker after the colon, for example marker:<|endoftext|>.")
    if not separator.startswith("marker:") and separator not in SEPARATORS:
        raise BD3LMError(f"unknown document separator {separator!r}; use blank, newline, line or marker:<string>.")


def clean_text(text: str, options: TextOptions) -> str:
    if options.fix_mojibake:
        for bad in sorted(MOJIBAKE, key=len, reverse=True):
            text = text.replace(bad, MOJIBAKE[bad])
    if options.ascii_punctuation:
        for fancy, plain in ASCII_PUNCTUATION.items():
            text = text.replace(fancy, plain)
    return text


def split_documents(text: str, separator: str) -> list[str]:
    check_separator(separator)
    if separator.startswith("marker:"):
        parts = text.split(separator[len("marker:"):])
    else:
        parts = SEPARATORS[separator].split(text)
    return [p.strip() for p in parts if p.strip()]


def read_documents(path: Path, options: TextOptions) -> list[str]:
    return split_documents(clean_text(read_text(path), options), options.separator)


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """A UTF-8 text file's contents, with one clear error if it is missing, not a plain file, too large or not UTF-8."""
    try:
        return read_limited(Path(path), limit, "text file").decode("utf-8")
    except FileNotFoundError:
        raise BD3LMError(f"{path} does not exist; pass a plain-text file.") from None
    except UnicodeDecodeError:
        raise BD3LMError(f"{path} is not UTF-8 text; convert it to UTF-8 first.") from None


def split_tail(documents: Sequence[str], tail_bytes: int) -> tuple[list[str], list[str]]:
    """Split off whole documents from the end totalling about `tail_bytes` (UTF-8)."""
    size, cut = 0, len(documents)
    while cut > 0 and size < tail_bytes:
        cut -= 1
        size += len(documents[cut].encode("utf-8")) + 1
    return list(documents[:cut]), list(documents[cut:])


def make_rows(token_docs: Iterable[list[int]], length: int, bos_id: int, eos_id: int) -> torch.Tensor:
    """Join documents with EOS and cut the stream into rows `[BOS, ...]` of `length` tokens.

    The final partial row is dropped, so every row is real text.
    """
    stream: list[int] = []
    for ids in token_docs:
        stream.extend(ids)
        stream.append(eos_id)
    per_row = length - 1
    count = len(stream) // per_row
    if count == 0:
        raise BD3LMError(
            f"the text has {len(stream)} tokens, fewer than one row of {length}; give more text or a shorter context."
        )
    body = torch.tensor(stream[: count * per_row], dtype=torch.long).view(count, per_row)
    return torch.cat([torch.full((count, 1), bos_id, dtype=torch.long), body], dim=1)


def prepare_data(settings: DataSettings, tokenizer: Tokenizer | None) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """Read, clean and split the corpus; train the tokenizer if none is given. Returns (tokenizer, train rows, held-out rows)."""
    separators = settings.separators  # checked, with every other setting, by TrainSettings.check
    if tokenizer is None and settings.tokenizer:  # first: a wrong path fails before the text is read
        if not Path(settings.tokenizer).exists():  # a pipe or a folder there is refused by Tokenizer.load
            raise BD3LMError(
                f"--tokenizer {settings.tokenizer} does not exist; pass a tokenizer.json, or leave it out to train a BPE."
            )
        tokenizer = Tokenizer.load(Path(settings.tokenizer))
    docs_per_file = []
    for i, path in enumerate(settings.data):
        options = TextOptions(separators[i if len(separators) > 1 else 0], settings.fix_mojibake, settings.ascii_punctuation)
        docs_per_file.append(read_documents(Path(path), options))
    last = docs_per_file[-1]
    tail = settings.holdout_bytes
    if tail is None:
        tail = sum(len(d.encode("utf-8")) + 1 for d in last) // 20
    docs_per_file[-1], held_out = split_tail(last, tail)
    train_docs = [d for docs in docs_per_file for d in docs]
    if not held_out or not train_docs:
        raise BD3LMError("the data is too small to hold some out for evaluation; give more text or a smaller --holdout-bytes.")
    if tokenizer is None:
        tokenizer = train_bpe(train_docs, settings.vocab_size)
    n = settings.model_length
    train_rows = make_rows(tokenizer.encode_batch(train_docs), n, tokenizer.bos_id, tokenizer.eos_id)
    held_rows = make_rows(tokenizer.encode_batch(held_out), n, tokenizer.bos_id, tokenizer.eos_id)
    return tokenizer, train_rows, held_rows
