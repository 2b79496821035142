"""The text <-> token id mapping, and training a new byte-level BPE.

BD3-LMs reserve one id past the tokenizer's vocabulary for the mask token,
so `config.vocab_size == tokenizer size + 1`. BOS and EOS are both the
tokenizer's `<|endoftext|>` (as in GPT-2). Chat models (`hf_layout.py`) keep
their mask token inside the tokenizer and name their own EOS.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from ..errors import BD3LMError, one_line
from ..files import read_limited, write_atomically

EOT = "<|endoftext|>"
MAX_TOKENIZER_BYTES = 100_000_000  # GPT-2's is 1.4 MB; the largest published tokenizer.json files are ~35 MB


class Tokenizer:
    def __init__(self, inner: HFTokenizer, source: str = "", eos_token: str | int = EOT) -> None:
        """`eos_token` (text or id): BD3-LMs use GPT-2's <|endoftext|> as BOS and EOS; a chat model names its own."""
        self.inner = inner
        self.source = source
        eot = eos_token if isinstance(eos_token, int) else inner.token_to_id(eos_token)
        if eot is None:
            what = "which BD3-LMs use as BOS and EOS" if eos_token == EOT else "its tokenizer_config.json's eos_token"
            raise BD3LMError(f"tokenizer {source} has no {eos_token} token, {what}.")
        self.bos_id = self.eos_id = eot
        ids = inner.get_vocab(with_added_tokens=True).values()
        if max(ids) >= self.size:  # the model's embedding has `size` rows: a larger id would index past them
            raise BD3LMError(f"tokenizer {source} has ids up to {max(ids)} for only {self.size} tokens; it is damaged.")

    @classmethod
    def load(cls, path: Path, eos_token: str | int = EOT) -> "Tokenizer":
        path = Path(path)
        try:
            text = read_limited(path, MAX_TOKENIZER_BYTES, "tokenizer.json").decode("utf-8")
        except FileNotFoundError:
            raise BD3LMError(f"tokenizer file {path} is missing; put a tokenizer.json in the model folder.") from None
        except UnicodeDecodeError:
            raise BD3LMError(f"{path} is not a valid tokenizer.json (it is not UTF-8 text).") from None
        return cls.from_json(text, str(path), eos_token)

    @classmethod
    def from_json(cls, text: str, source: str, eos_token: str | int = EOT) -> "Tokenizer":
        """The tokenizer whose tokenizer.json is `text` (`source` names it in messages)."""
        try:
            inner = HFTokenizer.from_str(text)
        except Exception as err:  # the tokenizers library raises a bare Exception on bad files
            raise BD3LMError(f"{source} is not a valid tokenizer.json ({one_line(err)}).") from None
        return cls(inner, source=source, eos_token=eos_token)

    def to_json(self) -> str:
        return self.inner.to_str()

    @property
    def size(self) -> int:
        return self.inner.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The ids of `text`; `add_special_tokens` lets the tokenizer's post-processor add its own (a BOS, say)."""
        return self.encode_batch([text], add_special_tokens)[0]

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        """The ids of each text; a tokenizer.json that cannot encode them (an unknown word, a regex that panics) is a BD3LMError."""
        with _library_failure(self.source, "cannot encode the text"), _rust_stderr_held():
            return [e.ids for e in self.inner.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: Iterable[int]) -> str:
        with _library_failure(self.source, "cannot decode the ids"):
            return self.inner.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        """How one token reads on its own (for showing tokens one at a time)."""
        with _library_failure(self.source, "cannot decode the ids"):
            return self.inner.decode([token_id], skip_special_tokens=False)

    def save(self, path: Path) -> None:
        write_atomically(Path(path), self.to_json().encode("utf-8"))

    def same_as(self, other: Tokenizer) -> bool:
        """Whether both split and join text alike, whatever files they came from.

        Compares everything in tokenizer.json that encoding and decoding use
        (vocabulary, merges, special tokens, pre-tokenizer, decoder, ...), not
        the truncation and padding settings.
        """
        return _content(self) == _content(other)


@contextmanager
def _library_failure(source: str, what: str) -> Iterator[None]:
    """Any error of the tokenizers library as a BD3LMError, its Rust panics too (a BaseException, not an Exception)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - pyo3's PanicException, e.g. a regex that backtracks without end
        raise BD3LMError(f"tokenizer {source} {what} ({one_line(err)}); check its tokenizer.json.") from None


@contextmanager
def _rust_stderr_held() -> Iterator[None]:
    """Within the block, what is written to file descriptor 2 is held back, and shown after it unless Rust panicked.

    A Rust panic prints its own lines on stderr before Python sees the exception;
    the one line the user gets is our BD3LMError's.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    panicked = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException as err:
            panicked = type(err).__name__ == "PanicException"
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not panicked:
                held.seek(0)
                with suppress(OSError):
                    os.write(2, held.read())


def _content(tokenizer: Tokenizer) -> dict:
    raw = json.loads(tokenizer.inner.to_str())
    return {key: value for key, value in raw.items() if key not in ("truncation", "padding")}


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE of `vocab_size` ids (the EOT token included) learned from `texts`."""
    inner = HFTokenizer(models.BPE())
    inner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    inner.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    inner.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(inner, source="trained")
