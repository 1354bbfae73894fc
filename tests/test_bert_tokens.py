"""The BERT benchmark's inputs: real token ids and masks from a WordPiece tokenizer of BERT's size.

The vocabulary is built in code (no download), in BERT's layout, the same on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from pyinfer.errors import InvalidArgumentError  # noqa: E402
from pyinfer.suite.models import bert_base  # noqa: E402
from pyinfer.suite.wordpiece import BERT_VOCAB_SIZE, bert_tokenizer, bert_vocabulary  # noqa: E402

TINY_BERT = {
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}


def test_the_vocabulary_has_berts_size_and_layout() -> None:
    vocab = bert_vocabulary()
    assert len(vocab) == BERT_VOCAB_SIZE == 30_522
    assert len(set(vocab)) == len(vocab)
    assert [vocab[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert vocab[1] == "[unused0]"
    assert vocab[998] == "[unused993]"
    assert vocab[999:1009] == list("0123456789")
    # Built in code: the same list every time (and on every machine).
    digest = hashlib.sha256("\n".join(vocab).encode()).hexdigest()
    assert digest == hashlib.sha256("\n".join(bert_vocabulary()).encode()).hexdigest()
    assert digest.startswith("c3669a340ee1e5eb")


def test_a_small_vocabulary_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"needs at least 1200 entries, not 100"):
        bert_vocabulary(100)


def test_the_tokenizer_encodes_english_like_bert() -> None:
    encoding = bert_tokenizer().encode("The model reads the text, and the people know it!")
    assert encoding.tokens == [
        "[CLS]",
        "the",
        "model",
        "read",
        "##s",
        "the",
        "text",
        ",",
        "and",
        "the",
        "people",
        "know",
        "it",
        "!",
        "[SEP]",
    ]
    assert encoding.ids[0] == 101
    assert encoding.ids[-1] == 102
    assert 100 not in encoding.ids  # no [UNK]


@pytest.mark.parametrize("length", [8, 64, 128])
def test_the_bert_entry_runs_on_the_tokenizers_ids_and_mask(length: int) -> None:
    model = bert_base(0, TINY_BERT, "cpu")
    assert [s.name for s in model.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    example = model.example_inputs(4, seed=0, dims={"sequence": length})
    ids, mask = example["input_ids"], example["attention_mask"]
    assert ids.shape == mask.shape == (4, length)
    assert (ids[:, 0] == 101).all()
    assert (ids >= 999).sum() > ids.size // 2  # words, not specials or unused tokens
    assert 100 not in ids
    np.testing.assert_array_equal(mask, (ids != 0).astype(np.int64))
    # The tokenizer's own encoding of the texts the ids spell.
    tokenizer = bert_tokenizer()
    tokenizer.enable_truncation(length)
    tokenizer.enable_padding(length=length, pad_id=0, pad_token="[PAD]")
    texts = [tokenizer.decode(row.tolist()) for row in ids]
    again = tokenizer.encode_batch(texts)
    np.testing.assert_array_equal(ids, [e.ids for e in again])
    np.testing.assert_array_equal(mask, [e.attention_mask for e in again])
    out = model(example)
    assert out["last_hidden_state"].shape == (4, length, 32)
