"""An offline WordPiece tokenizer: BERT's ids from a ``vocab.txt``, in pure Python.

:class:`WordPieceTokenizer` is the fallback where the ``tokenizers`` library is missing: it
reads a BERT ``vocab.txt`` (one token a line, the line number is the id) and tokenizes as BERT's
reference tokenizer does: text cleaned (control characters dropped, whitespace unified), Chinese
characters split apart, lower-cased with accents stripped (``lowercase=True``), split on
whitespace and punctuation, then each word cut greedily into the longest vocabulary pieces
(``##`` marks a piece inside a word; a word with no cut is ``[UNK]``). Its ids are the
vocabulary's, ``[CLS]`` 101 in BERT's, and equal those of ``tokenizers``' ``BertWordPiece`` (the
tests compare them on English text). It is slower than the Rust tokenizers: use those where
they are installed (:class:`~pyinfer.preprocess.text.TextPipeline` takes them directly).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from pyinfer.errors import InvalidArgumentError, InvalidInputError

__all__ = ["WordPieceTokenizer"]

_MAX_WORD_CHARS = 100  # BERT's: a longer word is [UNK]


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _clean(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if code in (0, 0xFFFD):
            continue
        category = unicodedata.category(char)
        if char in "\t\n\r" or category == "Zs":
            out.append(" ")
        elif category.startswith("C"):
            continue
        elif _is_chinese(code):
            out.append(f" {char} ")
        else:
            out.append(char)
    return "".join(out)


class WordPieceTokenizer:
    """BERT's WordPiece tokenization from a vocabulary, with no dependency.

    Args:
        vocab: The path of a ``vocab.txt`` (one token a line), or the tokens in id order.
        lowercase: Lower-case and strip accents first (``bert-base-uncased``); ``False`` for
            cased vocabularies.

    Raises:
        InvalidArgumentError: If the file cannot be read, or the vocabulary lacks one of
            ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``.
    """

    def __init__(self, vocab: str | Path | list[str], *, lowercase: bool = True) -> None:
        if isinstance(vocab, (str, Path)):
            try:
                tokens = Path(vocab).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidArgumentError(f"cannot read the vocabulary {vocab}: {exc}") from exc
        else:
            tokens = [str(t) for t in vocab]
        self.vocab: dict[str, int] = {}
        for index, token in enumerate(tokens):
            self.vocab.setdefault(token.rstrip("\n"), index)
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in self.vocab]
        if missing:
            raise InvalidArgumentError(
                f"the vocabulary has no {', '.join(missing)}: a BERT vocab.txt has them"
            )
        self.lowercase = bool(lowercase)
        self.pad_token_id = self.vocab["[PAD]"]
        self.unk_token_id = self.vocab["[UNK]"]
        self.cls_token_id = self.vocab["[CLS]"]
        self.sep_token_id = self.vocab["[SEP]"]

    def __len__(self) -> int:
        return len(self.vocab)

    def _words(self, text: str) -> list[str]:
        text = _clean(text)
        words: list[str] = []
        for raw in text.split():
            token = raw
            if self.lowercase:
                token = unicodedata.normalize("NFD", raw.lower())
                token = "".join(c for c in token if unicodedata.category(c) != "Mn")
            current = ""
            for char in token:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                    words.append(char)
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of a text (no ``[CLS]``/``[SEP]``).

        Raises:
            InvalidInputError: If ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"WordPieceTokenizer takes a str, got {type(text).__name__}")
        pieces: list[str] = []
        for word in self._words(text):
            if len(word) > _MAX_WORD_CHARS:
                pieces.append("[UNK]")
                continue
            start, found = 0, []
            while start < len(word):
                end = len(word)
                piece = None
                while start < end:
                    candidate = word[start:end] if start == 0 else "##" + word[start:end]
                    if candidate in self.vocab:
                        piece = candidate
                        break
                    end -= 1
                if piece is None:
                    found = ["[UNK]"]
                    break
                found.append(piece)
                start = end
            pieces.extend(found)
        return pieces

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of a text: ``[CLS] pieces... [SEP]`` by default.

        Raises:
            InvalidInputError: If ``text`` is not a str.
        """
        ids = [self.vocab[p] for p in self.tokenize(text)]
        if add_special_tokens:
            ids = [self.cls_token_id, *ids, self.sep_token_id]
        return ids

    __call__ = encode

    def __repr__(self) -> str:
        return f"WordPieceTokenizer({len(self.vocab)} tokens, lowercase={self.lowercase})"
