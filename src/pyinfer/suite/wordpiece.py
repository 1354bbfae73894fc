"""A WordPiece tokenizer of BERT's size and layout, built offline and deterministically.

The suite's BERT is measured on real token ids with an attention mask: texts are encoded by
this tokenizer, never drawn as random ids (which would be padding and unused tokens). The
vocabulary is made in code, the same everywhere (no download, no file): BERT's layout
(``[PAD]`` 0, ``[unused0-98]`` 1-99, ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103,
more ``[unused]`` to 998), then the printable ASCII characters and their ``##`` continuations,
common English words and suffixes, then words made of syllables until the vocabulary has
``size`` entries (30,522, BERT's, by default). The tokenizer is the ``tokenizers`` library's
WordPiece with BERT's normaliser (lower case, accents stripped), pre-tokeniser and
``[CLS] ... [SEP]`` template.
"""

from __future__ import annotations

import itertools
import string
from typing import Any

from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError

__all__ = ["BERT_VOCAB_SIZE", "bert_tokenizer", "bert_vocabulary"]

#: BERT-base's vocabulary size (``bert-base-uncased``).
BERT_VOCAB_SIZE = 30_522
#: BERT's special tokens and their ids.
_SPECIALS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
_FIRST_WORD_ID = 999  # BERT's [unused993] is 998
_COMMON_TEXT = (
    "the of and to in is was for on that with as by he it at from his an were are which this "
    "be or has had first one their its new after but who not they have her she two been other "
    "when there all during into school time may years more most only over city some world "
    "would where later up such used many can state about national out known university united "
    "then made age people under early country through system year also house music between "
    "number team both government three part while before several well since each because "
    "water light model data image text word language small large great long high low good "
    "work play run read write make take give find think see look come go say tell know"
)
_COMMON = tuple(_COMMON_TEXT.split())
_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "est", "ion", "al", "ness", "ment", "able")
_ONSETS = (*"bcdfghjklmnprstvw", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gr", "pl", "pr")
_ONSETS += ("sh", "st", "th", "tr")
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou")
_CODAS = ("", "n", "r", "s", "t", "l", "m", "nd", "st")


def _syllables() -> list[str]:
    return [o + n + c for o in _ONSETS for n in _NUCLEI for c in _CODAS]


def bert_vocabulary(size: int = BERT_VOCAB_SIZE) -> list[str]:
    """The vocabulary, in id order: BERT's layout, characters, words, then made-up words.

    Args:
        size: Number of entries, at least 1,200 (room for BERT's specials and characters).

    Returns:
        ``size`` distinct tokens; the same list on every machine.

    Raises:
        InvalidArgumentError: If ``size`` is under 1,200.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1200:
        raise InvalidArgumentError(
            f"a BERT-layout vocabulary needs at least 1200 entries, not {size!r}"
        )
    vocab: list[str] = []
    unused = (f"[unused{i}]" for i in itertools.count())
    by_id = {v: k for k, v in _SPECIALS.items()}
    for i in range(_FIRST_WORD_ID):
        vocab.append(by_id.get(i) or next(unused))
    seen = set(vocab)

    def add(token: str) -> None:
        if token not in seen and len(vocab) < size:
            seen.add(token)
            vocab.append(token)

    characters = [c for c in string.printable if not c.isspace() and not c.isupper()]
    for c in characters:
        add(c)
    for c in characters:
        add("##" + c)
    for word in _COMMON:
        add(word)
    for suffix in _SUFFIXES:
        add("##" + suffix)
    syllables = _syllables()
    for first in syllables:
        add(first)
        add("##" + first)
    for first, second in itertools.product(syllables, repeat=2):
        if len(vocab) >= size:
            break
        add(first + second)
    return vocab


def bert_tokenizer(size: int = BERT_VOCAB_SIZE) -> Any:
    """A ``tokenizers.Tokenizer``: WordPiece over :func:`bert_vocabulary`, BERT's pipeline.

    Raises:
        FrameworkNotInstalledError: If the ``tokenizers`` package is missing.
    """
    try:
        from tokenizers import (
            Tokenizer,
            decoders,
            models,
            normalizers,
            pre_tokenizers,
            processors,
        )
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            "the BERT benchmark's tokenizer needs the tokenizers package: pip install tokenizers"
        ) from exc
    vocab = {token: i for i, token in enumerate(bert_vocabulary(size))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", _SPECIALS["[CLS]"]), ("[SEP]", _SPECIALS["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(list(_SPECIALS))  # kept whole; decode() leaves them out
    return tokenizer
