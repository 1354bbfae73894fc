"""A tiny BERT folder and its WordPiece tokenizer, built in code (nothing is downloaded).

Shared by the Hugging Face tests and the Ray dataset tests: a ``tokenizers.Tokenizer`` with a
WordPiece model over a handful of words, transformers' fast tokenizer around it, and a
two-layer ``BertModel`` with random weights saved with ``save_pretrained`` beside the
tokenizer, as a folder users get from the Hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_tokenizer(words: Sequence[str]) -> Any:
    """A BERT-style WordPiece tokenizer: specials first, the letters, ``words``, 3 suffixes."""
    import tokenizers
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    vocab = [*SPECIALS, *"abcdefghijklmnopqrstuvwxyz", *words, "##s", "##es", "##ing"]
    ids = {w: i for i, w in enumerate(dict.fromkeys(vocab))}
    tok = tokenizers.Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return tok


def fast_tokenizer(tok: Any) -> Any:
    """transformers' ``PreTrainedTokenizerFast`` around ``tok``, with BERT's special tokens."""
    import transformers

    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def save_tiny_bert(folder: Path, words: Sequence[str], max_positions: int = 64) -> Path:
    """A two-layer BERT (hidden 32, seed 0) and its tokenizer saved in ``folder``."""
    import torch
    import transformers

    tok = wordpiece_tokenizer(words)
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).eval().save_pretrained(folder)
    fast_tokenizer(tok).save_pretrained(folder)
    return folder
