"""The offline WordPiece tokenizer gives BERT's ids: the same as ``tokenizers``' BertWordPiece.

The vocabulary is the BERT-sized one the benchmark builds in code, written as a ``vocab.txt``;
the text is English prose (docstrings of the standard library and a paragraph with accents,
quotes, punctuation, numbers and Chinese characters).
"""

from __future__ import annotations

import argparse
import json
import logging
import unittest
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")

import pyinfer  # noqa: E402
from pyinfer.errors import InvalidArgumentError, InvalidInputError  # noqa: E402
from pyinfer.preprocess import WordPieceTokenizer  # noqa: E402
from pyinfer.suite.wordpiece import bert_vocabulary  # noqa: E402

PARAGRAPH = (
    "Café naïve résumé — “quoted” words, e-mail: someone@example.com costs $5.00; don't stop! "
    "東京 is Tokyo.\tTabs\nand newlines, (brackets) [square] {curly} 3.14159 and " + "x" * 120
)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(bert_vocabulary()) + "\n", encoding="utf-8")
    return path


def _english() -> list[str]:
    texts = [PARAGRAPH]
    for module in (argparse, json, logging, unittest):
        texts += [line for line in (module.__doc__ or "").splitlines() if line.strip()]
    return texts


def test_ids_equal_tokenizers_bert_wordpiece_on_english(vocab_file: Path) -> None:
    ours = WordPieceTokenizer(vocab_file)
    theirs = tokenizers.BertWordPieceTokenizer(str(vocab_file), lowercase=True)
    texts = _english()
    assert len(texts) > 40
    for text in texts:
        assert ours.encode(text) == theirs.encode(text).ids, text
    ids = ours.encode("The people know.")
    assert ids[0] == ours.cls_token_id == 101
    assert ids[-1] == ours.sep_token_id == 102
    assert ours.tokenize("x" * 120) == ["[UNK]"]  # a word over 100 characters


def test_it_feeds_the_text_pipeline(vocab_file: Path) -> None:
    pipeline = pyinfer.TextPipeline(WordPieceTokenizer(vocab_file), max_length=8)
    item = pipeline("The people know it well, and more.")
    assert item["input_ids"].tolist() == [
        101,
        *WordPieceTokenizer(vocab_file).encode(
            "The people know it well,", add_special_tokens=False
        ),
        102,
    ]
    assert item["attention_mask"].tolist() == [1] * 8


def test_bad_vocabularies_and_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"has no \[CLS\], \[SEP\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "the"])
    with pytest.raises(InvalidArgumentError, match=r"cannot read the vocabulary"):
        WordPieceTokenizer(tmp_path / "missing.txt")
    with pytest.raises(InvalidInputError, match=r"takes a str, got int"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"]).encode(3)  # type: ignore[arg-type]
