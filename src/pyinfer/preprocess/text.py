"""Text preprocessing: the pipeline from text to a model's token inputs.

:class:`TextPipeline` makes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when
asked). With a real tokenizer (a ``tokenizers.Tokenizer``, a ``tokenizer.json`` path or a folder
holding one, or a transformers tokenizer) the ids, mask and type ids are the tokenizer's own,
made by its batch encoding (:meth:`TextPipeline.encode_batch`): nothing is rebuilt, so a
tokenizer with fixed-length padding keeps its length and its mask. Any other callable returning
ids, an object with ``encode``, or the built-in word-level :class:`VocabTokenizer` (an offline
fallback for tests; its ids fit no pretrained model) still work: the mask is then built from the
ids' length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.backends.huggingface import TextEncoder, is_tokenizer
from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess.arguments import as_dtype, choice, flag, shown, whole_number
from pyinfer.preprocess.items import Casting, as_array, check_item

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

__all__ = ["MAX_SEQUENCE_LENGTH", "TextPipeline", "VocabTokenizer"]

#: The longest sequence a TextPipeline makes (padding allocates ``max_length`` ids per text).
MAX_SEQUENCE_LENGTH: int = 1 << 24


_WORD_PATTERN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class VocabTokenizer:
    """A word-level tokenizer with a fixed vocabulary; needs no download.

    Text is lower-cased (unless ``lowercase=False``) and split into words and single
    punctuation marks. Ids 0-3 are the special tokens ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``;
    unknown words map to ``[UNK]``.

    Args:
        vocab: The words, in id order after the special tokens (a sequence), or a word to id
            mapping that must give the special tokens their ids.
        lowercase: Lower-case the text first.

    Raises:
        InvalidArgumentError: If a word is not a str, an id not an int >= 0, or a mapping misses
            a special token or assigns it another id.
    """

    PAD = "[PAD]"
    UNK = "[UNK]"
    CLS = "[CLS]"
    SEP = "[SEP]"
    SPECIALS: tuple[str, ...] = (PAD, UNK, CLS, SEP)

    def __init__(self, vocab: Sequence[str] | Mapping[str, int], *, lowercase: bool = True):
        lowercase = flag(lowercase, "lowercase")
        if isinstance(vocab, Mapping):
            for word, index in vocab.items():
                if not isinstance(word, str):
                    raise InvalidArgumentError(
                        f"vocabulary words must be str, got {shown(word)} (id {shown(index)})"
                    )
                if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                    raise InvalidArgumentError(
                        f"vocabulary id of {word!r} must be an int, got {shown(index)}"
                    )
                if index < 0:
                    raise InvalidArgumentError(f"vocabulary id of {word!r} is negative: {index}")
            for i, tok in enumerate(self.SPECIALS):
                if vocab.get(tok) != i:
                    raise InvalidArgumentError(
                        f"vocabulary must map {tok} to {i} (the specials are "
                        f"{', '.join(self.SPECIALS)}), got {vocab.get(tok)}"
                    )
            self.vocab: dict[str, int] = {str(k): int(v) for k, v in vocab.items()}
        elif isinstance(vocab, (str, bytes)) or not isinstance(vocab, Iterable):
            raise InvalidArgumentError(
                f"vocab must be a sequence of words or a word to id mapping, not "
                f"{type(vocab).__name__}"
            )
        else:
            self.vocab = {tok: i for i, tok in enumerate(self.SPECIALS)}
            for i, word in enumerate(vocab):
                if not isinstance(word, str):
                    raise InvalidArgumentError(
                        f"vocabulary word {i} must be a str, got {type(word).__name__} "
                        f"{shown(word)}"
                    )
                self.vocab.setdefault(word.lower() if lowercase else word, len(self.vocab))
        self.lowercase = lowercase
        self.pad_token_id = 0
        self.unk_token_id = 1
        self.cls_token_id = 2
        self.sep_token_id = 3

    @classmethod
    def from_corpus(
        cls,
        texts: Iterable[str],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> VocabTokenizer:
        """Builds the vocabulary from texts: the most frequent words first (ties by first use).

        Args:
            texts: The corpus.
            min_count: Leave out words seen fewer times.
            max_size: At most this many words (special tokens not counted).
            lowercase: As for the constructor.

        Returns:
            The tokenizer.

        Raises:
            InvalidArgumentError: If a text is not a str, or ``min_count`` or ``max_size`` is
                not an int (``max_size`` >= 0).
        """
        lowercase = flag(lowercase, "lowercase")
        min_count = whole_number(min_count, "min_count", least=0)
        if max_size is not None:
            max_size = whole_number(max_size, "max_size", least=0)
        counts: dict[str, int] = {}
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgumentError(f"corpus text {i} is a {type(text).__name__}, not a str")
            for word in _WORD_PATTERN.findall(text.lower() if lowercase else text):
                counts[word] = counts.get(word, 0) + 1
        ordered = sorted(counts, key=lambda w: -counts[w])  # stable: ties keep first use
        words = [w for w in ordered if counts[w] >= min_count][:max_size]
        return cls(words, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Splits text into words and punctuation marks (lower-cased if set).

        Raises:
            InvalidInputError: If ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"VocabTokenizer takes a str, got {type(text).__name__}")
        return _WORD_PATTERN.findall(text.lower() if self.lowercase else text)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of a text: ``[CLS] words... [SEP]`` by default.

        Raises:
            InvalidInputError: If ``text`` is not a str.
        """
        ids = [self.vocab.get(w, self.unk_token_id) for w in self.tokenize(text)]
        if flag(add_special_tokens, "add_special_tokens"):
            ids = [self.cls_token_id, *ids, self.sep_token_id]
        return ids

    __call__ = encode


class TextPipeline:
    """Text to ``input_ids`` and ``attention_mask`` (and ``token_type_ids``) of one length.

    Args:
        tokenizer: A real tokenizer: a ``tokenizers.Tokenizer``, the path of a
            ``tokenizer.json`` or of a folder holding a tokenizer, or a transformers tokenizer;
            its own ids, attention mask and token type ids are kept. Or a
            :class:`VocabTokenizer`, an object with ``encode(text) -> ids``, or a callable
            returning ids (a list, an array, or a mapping with ``"input_ids"``).
        max_length: Length of every sequence (``padding="max_length"``), or the most tokens
            kept. A real tokenizer that pads to a fixed length itself keeps its length.
        padding: ``"max_length"``: pad each item to ``max_length``; ``"longest"``: each batch is
            padded to its longest item (by :meth:`collate`).
        truncation: Cut sequences longer than ``max_length`` (keeping a final separator token
            when the tokenizer has ``sep_token_id``); if ``False`` a longer text is an error.
        pad_id: Id used for padding (the tokenizer's ``pad_token_id`` when it has one, else 0).
        token_type_ids: Also give ``token_type_ids`` (all 0: one segment).
        attention_mask: Give ``attention_mask`` (``False`` for a model that takes only ids).
        dtype: Integer dtype of the arrays.
        names: Names of the outputs, to match a model's inputs:
            ``{"input_ids": ..., "attention_mask": ..., "token_type_ids": ...}``.

    Raises:
        InvalidArgumentError: On a bad ``max_length``, ``padding``, ``dtype`` (not an integer
            dtype), ``pad_id`` (not an int that fits ``dtype``) or ``names`` (not str, unknown
            keys, two outputs of one name), or a tokenizer that is neither callable nor has
            ``encode``.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int = 128,
        padding: Literal["max_length", "longest"] = "max_length",
        truncation: bool = True,
        pad_id: int | None = None,
        token_type_ids: bool = False,
        attention_mask: bool = True,
        dtype: Any = np.int64,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.max_length = whole_number(max_length, "max_length")
        if self.max_length > MAX_SEQUENCE_LENGTH:
            raise InvalidArgumentError(
                f"max_length {self.max_length} is over {MAX_SEQUENCE_LENGTH} tokens; no model "
                "takes sequences that long"
            )
        self.padding = choice(padding, ("max_length", "longest"), "padding")
        #: The real tokenizer behind the pipeline, ``None`` for a plain ids function.
        self.encoder: TextEncoder | None = None
        if is_tokenizer(tokenizer):
            self.encoder = TextEncoder(tokenizer)
            tokenizer = self.encoder.tokenizer
        elif not (callable(tokenizer) or callable(getattr(tokenizer, "encode", None))):
            raise InvalidArgumentError(
                f"tokenizer {type(tokenizer).__name__} is neither callable nor has encode()"
            )
        self.tokenizer = tokenizer
        self.truncation = flag(truncation, "truncation")
        self.token_type_ids = flag(token_type_ids, "token_type_ids")
        self.attention_mask = flag(attention_mask, "attention_mask")
        self.dtype = as_dtype(dtype, "TextPipeline dtype")
        if self.dtype.kind not in "iu":
            raise InvalidArgumentError(
                f"TextPipeline dtype must be an integer dtype (int64...), not {self.dtype.name}"
            )
        default_pad = (
            self.encoder.pad_id
            if self.encoder is not None
            else getattr(tokenizer, "pad_token_id", None)
        )
        pad = pad_id if pad_id is not None else (default_pad or 0)
        self.pad_id = whole_number(pad, "pad_id", least=int(np.iinfo(self.dtype).min))
        if self.pad_id > np.iinfo(self.dtype).max:
            raise InvalidArgumentError(f"pad_id {self.pad_id} does not fit {self.dtype.name}")
        self.names = {
            "input_ids": "input_ids",
            "attention_mask": "attention_mask",
            "token_type_ids": "token_type_ids",
        }
        if names is not None:
            if not isinstance(names, Mapping):
                raise InvalidArgumentError(f"names must be a dict, not {type(names).__name__}")
            for key, value in names.items():
                if key not in self.names or not isinstance(value, str):
                    raise InvalidArgumentError(
                        f"names maps {', '.join(self.names)} to str input names, got "
                        f"{shown(key)}: {shown(value)}"
                    )
            self.names.update(names)
        outputs = [self.names["input_ids"]]
        outputs += [self.names["attention_mask"]] if self.attention_mask else []
        outputs += [self.names["token_type_ids"]] if self.token_type_ids else []
        if len(set(outputs)) != len(outputs):
            raise InvalidArgumentError(f"names gives two outputs one name: {outputs}")

    @classmethod
    def for_model(cls, model: Model, tokenizer: Any = None, **kwargs: Any) -> TextPipeline:
        """A pipeline fitted to a model's text inputs.

        ``attention_mask`` and ``token_type_ids`` if the model takes them (under the names in
        ``names=`` when given), its ids' dtype, and its fixed sequence length if it has one, or
        else its ``sequence_length`` option (a Hugging Face folder's: 128, or fewer where its
        position embeddings end), longer texts truncated.

        Args:
            model: A text model taking ``input_ids`` (and ``attention_mask``...).
            tokenizer: As for the constructor; by default the tokenizer loaded with the model
                (``model.tokenizer``: a Hugging Face folder's, or the one beside its ONNX
                export).
            **kwargs: Other constructor arguments (they win over what is read from the model).

        Returns:
            The pipeline.

        Raises:
            InvalidArgumentError: If no tokenizer is given and the model has none.
        """
        if tokenizer is None:
            tokenizer = getattr(model, "tokenizer", None)
            if tokenizer is None:
                raise InvalidArgumentError(
                    f"model '{model.name}' was loaded without a tokenizer; pass one "
                    "(a tokenizers.Tokenizer, a tokenizer.json path or a transformers tokenizer)"
                )
        specs = {s.name: s for s in model.inputs}
        names = {key: key for key in ("input_ids", "attention_mask", "token_type_ids")}
        names.update(kwargs.get("names") or {})
        kwargs.setdefault("token_type_ids", names["token_type_ids"] in specs)
        kwargs.setdefault("attention_mask", names["attention_mask"] in specs)
        ids = specs.get(names["input_ids"])
        if ids is not None:
            kwargs.setdefault("dtype", ids.dtype)
            if ids.shape is not None and len(ids.shape) == 2 and isinstance(ids.shape[1], int):
                kwargs.setdefault("max_length", ids.shape[1])
                kwargs.setdefault("padding", "max_length")
        longest = model.options.get("sequence_length")  # a Hugging Face folder's default
        if isinstance(longest, int) and not isinstance(longest, bool) and longest > 0:
            kwargs.setdefault("max_length", longest)
        return cls(tokenizer, **kwargs)

    def encode_batch(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Encodes texts in one call of a real tokenizer's batch encoding.

        Args:
            texts: The texts.

        Returns:
            Output name to ``(len(texts), length)`` array: the tokenizer's own ids, mask and
            type ids (those asked for), padded to ``max_length`` (``padding="max_length"``), to
            the tokenizer's own fixed length, or to the longest text.

        Raises:
            InvalidInputError: If a text is not a str.
            InvalidArgumentError: If the pipeline has no real tokenizer (a plain ids function:
                encode each text with the pipeline and :meth:`collate` them).
        """
        if self.encoder is None:
            raise InvalidArgumentError(
                "encode_batch needs a real tokenizer (tokenizers.Tokenizer, tokenizer.json or a "
                "transformers tokenizer); with an ids function call the pipeline on each text "
                "and collate() the results"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"text {i} is a {type(text).__name__}, not a str")
        fixed = self.encoder.fixed_length
        length = self.max_length if self.padding == "max_length" and fixed is None else None
        encoded = self.encoder.encode(list(texts), max_length=length)
        if length is None and encoded["input_ids"].shape[1] > self.max_length and fixed is None:
            if not self.truncation:
                raise InvalidInputError(
                    f"text of {encoded['input_ids'].shape[1]} tokens is longer than "
                    f"max_length={self.max_length}; pass truncation=True or a larger max_length"
                )
            encoded = self.encoder.encode(list(texts), max_length=self.max_length)
        wanted = {"input_ids": True, "attention_mask": self.attention_mask}
        wanted["token_type_ids"] = self.token_type_ids
        out: dict[str, np.ndarray] = {}
        for key, on in wanted.items():
            if not on:
                continue
            if key not in encoded:
                raise InvalidArgumentError(
                    f"the tokenizer makes no {key} (it makes {', '.join(encoded)}); pass "
                    f"{key}=False"
                )
            out[self.names[key]] = encoded[key].astype(self.dtype)
        return out

    def _ids(self, text: str) -> list[int]:
        encode = getattr(self.tokenizer, "encode", None)
        result = encode(text) if callable(encode) else self.tokenizer(text)
        if isinstance(result, Mapping):
            if "input_ids" not in result:
                raise InvalidInputError(
                    f"the tokenizer returned a mapping without 'input_ids' (keys: "
                    f"{', '.join(map(str, result))})"
                )
            result = result["input_ids"]
        array = as_array(result, "what the tokenizer returned")
        if array.size and array.dtype.kind not in "iu":
            raise InvalidInputError(
                f"the tokenizer returned {array.dtype.name} values, not integer token ids "
                f"(shape {tuple(array.shape)})"
            )
        flat = array.reshape(-1)
        info = np.iinfo(self.dtype)
        if flat.size and not (info.min <= int(flat.min()) and int(flat.max()) <= info.max):
            bad = int(flat.max()) if int(flat.max()) > info.max else int(flat.min())
            raise InvalidInputError(
                f"token id {bad} does not fit the pipeline's dtype {self.dtype.name}; pass a "
                "wider dtype (int64)"
            )
        ids: list[int] = flat.tolist()
        if len(ids) > self.max_length:
            if not self.truncation:
                raise InvalidInputError(
                    f"text of {len(ids)} tokens is longer than max_length={self.max_length}; "
                    "pass truncation=True or a larger max_length"
                )
            sep = getattr(self.tokenizer, "sep_token_id", None)
            keep_last = sep is not None and ids[-1] == sep
            ids = [*ids[: self.max_length - 1], ids[-1]] if keep_last else ids[: self.max_length]
        return ids

    def __call__(self, text: Any) -> dict[str, np.ndarray]:
        """Encodes one text.

        Args:
            text: The text.

        Returns:
            Output name to 1-D array: ids padded with ``pad_id`` (to ``max_length`` with
            ``padding="max_length"``), a mask of 1 on tokens and 0 on padding (unless
            ``attention_mask=False``), and zeros for ``token_type_ids``; with a real tokenizer,
            the tokenizer's own (:meth:`encode_batch` of one text).

        Raises:
            InvalidInputError: If ``text`` is not a string, or is too long without truncation.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"TextPipeline takes a str, got {type(text).__name__}")
        if self.encoder is not None:
            return {k: v[0] for k, v in self.encode_batch([text]).items()}
        ids = self._ids(text)
        length = self.max_length if self.padding == "max_length" else len(ids)
        input_ids = np.full(length, self.pad_id, dtype=self.dtype)
        input_ids[: len(ids)] = ids
        out = {self.names["input_ids"]: input_ids}
        if self.attention_mask:
            mask = np.zeros(length, dtype=self.dtype)
            mask[: len(ids)] = 1
            out[self.names["attention_mask"]] = mask
        if self.token_type_ids:
            out[self.names["token_type_ids"]] = np.zeros(length, dtype=self.dtype)
        return out

    def collate(self, items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Stacks encoded items into a batch, padding each to the longest first.

        Args:
            items: Outputs of :meth:`__call__`.

        Returns:
            Name to ``(batch, length)`` array, each of its items' dtype (the model's, after the
            engine's ``cast_inputs``).

        Raises:
            InvalidInputError: If there are no items.
        """
        if not items:
            raise InvalidInputError("no items to collate into a batch")
        longest = max(len(next(iter(it.values()))) for it in items)
        out: dict[str, np.ndarray] = {}
        for name in items[0]:
            fill = self.pad_id if name == self.names["input_ids"] else 0
            batch = np.full((len(items), longest), fill, dtype=items[0][name].dtype)
            for row, it in zip(batch, items, strict=True):
                row[: len(it[name])] = it[name]
            out[name] = batch
        return out

    def example(self) -> str:
        """A text to check the pipeline with."""
        return "A short example sentence, to check the pipeline."

    def check(
        self, model: Model, example: Any = None, *, casting: Casting | None = None
    ) -> dict[str, np.ndarray]:
        """Encodes an example and checks it against the model's inputs (see Compose.check).

        Raises:
            InvalidInputError: If the output does not fit the model.
        """
        value = self(self.example() if example is None else example)
        try:
            return check_item(model, value, casting=casting)
        except InvalidInputError as exc:
            hint = ""
            takes = model.input_names()
            if self.names["token_type_ids"] in takes and not self.token_type_ids:
                hint = "; pass token_type_ids=True (or use TextPipeline.for_model)"
            elif self.attention_mask and self.names["attention_mask"] not in takes:
                hint = "; pass attention_mask=False (or use TextPipeline.for_model)"
            raise InvalidInputError(
                f"TextPipeline output does not fit model '{model.name}': {exc}{hint}"
            ) from exc

    def __repr__(self) -> str:
        return (
            f"TextPipeline(max_length={self.max_length}, padding={self.padding!r}, "
            f"truncation={self.truncation}, token_type_ids={self.token_type_ids}, "
            f"attention_mask={self.attention_mask})"
        )
