"""Hugging Face model folders and tokenizers, whatever runtime runs the model.

A Hugging Face model folder (what ``save_pretrained`` writes) holds ``config.json`` and the
weights (``model.safetensors`` or ``pytorch_model.bin``, or their sharded index), and usually
the tokenizer (``tokenizer.json``, ``tokenizer_config.json``, ``vocab.txt``). A folder exported
to ONNX holds ``model.onnx`` beside ``config.json`` and the tokenizer. This module knows those
files (:func:`folder_kind`, :func:`read_config`, :func:`onnx_file`), loads the tokenizer
(:func:`load_tokenizer`) and turns any tokenizer into model inputs (:class:`TextEncoder`):
``input_ids``, ``attention_mask`` and ``token_type_ids`` exactly as the tokenizer makes them,
with batch encoding. :func:`text_example_inputs` makes example inputs of real token ids from a
tokenizer's own vocabulary, and :func:`attach_tokenizer` makes a loaded model use them.

``tokenizers`` and ``transformers`` are imported only when a tokenizer is loaded or used.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.errors import CorruptModelError, FrameworkNotInstalledError, InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

__all__ = [
    "DEFAULT_SEQUENCE_LENGTH",
    "TEXT_INPUTS",
    "TOKENIZER_FILES",
    "WEIGHT_FILES",
    "TextEncoder",
    "attach_tokenizer",
    "folder_kind",
    "has_tokenizer",
    "is_safetensors",
    "is_tokenizer",
    "load_tokenizer",
    "onnx_file",
    "read_config",
    "text_example_inputs",
]

logger = logging.getLogger(__name__)

#: The weight files of a Hugging Face folder, in the order ``from_pretrained`` prefers them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: The files that make a folder's tokenizer (any one of them is enough).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
#: Where an ONNX export of the folder's model may lie (Optimum writes ``model.onnx``).
_ONNX_FILES = ("model.onnx", "onnx/model.onnx")
#: The token inputs a tokenizer makes, in the order BERT-like models take them.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: The sequence length of example inputs when none is asked for (capped by the model's own).
DEFAULT_SEQUENCE_LENGTH = 128
#: Token markers that begin a word in byte-level BPE and SentencePiece vocabularies.
_WORD_MARKERS = "\u0120\u2581"


def folder_kind(path: Path) -> Literal["torch", "onnx"] | None:
    """Whether ``path`` is a Hugging Face model folder, and which runtime its model needs.

    Returns:
        ``"torch"`` for ``config.json`` with weights, ``"onnx"`` for ``config.json`` with a
        ``model.onnx`` (and no torch weights), ``None`` otherwise.
    """
    if not path.is_dir() or not (path / "config.json").is_file():
        return None
    if any((path / name).is_file() for name in WEIGHT_FILES):
        return "torch"
    if onnx_file(path) is not None:
        return "onnx"
    return None


def onnx_file(folder: Path) -> Path | None:
    """The ONNX model of an exported Hugging Face folder, ``None`` if it has none."""
    return next((folder / n for n in _ONNX_FILES if (folder / n).is_file()), None)


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict.

    Raises:
        CorruptModelError: If it is not a JSON object; the message names the file and the
            parser's cause.
    """
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(
            f"{path} is not a readable JSON file ({type(exc).__name__}: {exc}); a Hugging Face "
            "model folder needs the config.json that save_pretrained writes",
            path=path,
        ) from exc
    if not isinstance(config, dict):
        raise CorruptModelError(
            f"{path} holds a JSON {type(config).__name__}, not the object of a model's config",
            path=path,
        )
    return config


def is_safetensors(head: bytes, size: int) -> bool:
    """Whether a file's first bytes (at least 9) are a safetensors header.

    A safetensors file begins with the length of its JSON header (8 bytes, little-endian),
    then the header, which opens with ``{``; ``size`` is the file's size in bytes.
    """
    if len(head) < 9 or head[8:9] != b"{":
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8


def has_tokenizer(folder: Path) -> bool:
    """Whether the folder holds a tokenizer (one of :data:`TOKENIZER_FILES`)."""
    return any((folder / n).is_file() for n in TOKENIZER_FILES)


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            f"{what} needs the '{module}' package, which is not installed: pip install {module}"
        ) from exc


def load_tokenizer(folder: Path) -> Any | None:
    """The tokenizer saved in a model folder, ``None`` if the folder has none.

    With ``tokenizer_config.json`` (what ``save_pretrained`` writes) it is transformers'
    ``AutoTokenizer``, which knows the model's input names and special tokens; with only a
    ``tokenizer.json`` it is a ``tokenizers.Tokenizer``. Nothing is downloaded and no code from
    the folder is run (``trust_remote_code=False``).

    Raises:
        CorruptModelError: If the tokenizer files cannot be read; the message has the cause.
    """
    if not has_tokenizer(folder):
        return None
    try:
        if (folder / "tokenizer_config.json").is_file() or not (
            folder / "tokenizer.json"
        ).is_file():
            transformers = _import("transformers", "a Hugging Face tokenizer")
            return transformers.AutoTokenizer.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
        tokenizers = _import("tokenizers", "a tokenizer.json")
        return tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    except FrameworkNotInstalledError:
        raise
    except Exception as exc:
        lines = [x for x in str(exc).strip().splitlines() if x.strip()]
        raise CorruptModelError(
            f"the tokenizer in {folder} could not be loaded ({type(exc).__name__}: "
            f"{lines[-1][:300] if lines else ''}); check tokenizer.json / tokenizer_config.json",
            path=folder,
        ) from exc


def _is_fast_tokenizer(obj: Any) -> bool:
    """Whether ``obj`` is a ``tokenizers.Tokenizer`` (the Rust tokenizer itself)."""
    return type(obj).__module__.startswith("tokenizers") and hasattr(obj, "encode_batch")


def is_tokenizer(obj: Any) -> bool:
    """Whether ``obj`` is a real tokenizer :class:`TextEncoder` takes.

    A ``tokenizers.Tokenizer``, a transformers tokenizer (callable, with ``get_vocab`` and
    ``model_input_names``), or a path (``str`` or ``Path``) of a tokenizer file or folder.
    """
    if isinstance(obj, (str, Path, TextEncoder)):
        return True
    return _is_fast_tokenizer(obj) or (
        callable(obj) and hasattr(obj, "get_vocab") and hasattr(obj, "model_input_names")
    )


class TextEncoder:
    """Turns texts into a model's token inputs with a real tokenizer, in one batch call.

    The ids, attention mask and token type ids are the tokenizer's own: nothing is rebuilt, so
    a ``tokenizer.json`` with fixed-length padding gives its fixed length and its own mask.

    Args:
        tokenizer: A ``tokenizers.Tokenizer``, a transformers tokenizer (anything callable
            like ``PreTrainedTokenizerFast``), or the path of a ``tokenizer.json`` file or of a
            folder holding a tokenizer.

    Raises:
        InvalidArgumentError: If ``tokenizer`` is none of those.
    """

    tokenizer: Any
    """The tokenizer itself (a ``tokenizers.Tokenizer`` or a transformers tokenizer)."""

    def __init__(self, tokenizer: Any) -> None:
        if isinstance(tokenizer, TextEncoder):
            tokenizer = tokenizer.tokenizer
        if isinstance(tokenizer, (str, Path)):
            path = Path(tokenizer).expanduser()
            if path.is_dir():
                loaded = load_tokenizer(path)
                if loaded is None:
                    raise InvalidArgumentError(
                        f"{path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})"
                    )
                tokenizer = loaded
            elif path.is_file():
                tokenizers = _import("tokenizers", "a tokenizer.json")
                try:
                    tokenizer = tokenizers.Tokenizer.from_file(str(path))
                except Exception as exc:
                    raise InvalidArgumentError(
                        f"{path} is not a tokenizer.json the tokenizers library reads "
                        f"({type(exc).__name__}: {str(exc)[:200]})"
                    ) from exc
            else:
                raise InvalidArgumentError(f"tokenizer file {str(path)!r} does not exist")
        if not _is_fast_tokenizer(tokenizer) and not (
            callable(tokenizer) and hasattr(tokenizer, "get_vocab")
        ):
            raise InvalidArgumentError(
                "tokenizer must be a tokenizers.Tokenizer, a transformers tokenizer, or the path "
                f"of a tokenizer.json or of a folder with one, not {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer

    @property
    def is_transformers(self) -> bool:
        """Whether the tokenizer is a transformers tokenizer (else a ``tokenizers.Tokenizer``)."""
        return not _is_fast_tokenizer(self.tokenizer)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs the tokenizer makes (transformers: its ``model_input_names``)."""
        names = getattr(self.tokenizer, "model_input_names", None) if self.is_transformers else None
        return tuple(names) if names else TEXT_INPUTS

    @property
    def pad_id(self) -> int:
        """The id the tokenizer pads with."""
        if self.is_transformers:
            return int(getattr(self.tokenizer, "pad_token_id", None) or 0)
        padding = self.tokenizer.padding
        return int(padding["pad_id"]) if padding else _pad_token(self.tokenizer)[1]

    @property
    def fixed_length(self) -> int | None:
        """The length a ``tokenizers.Tokenizer`` with fixed padding pads every text to."""
        if self.is_transformers:
            return None
        padding = self.tokenizer.padding
        return None if not padding else padding.get("length")

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        pairs: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Encodes a batch of texts (and second segments) with the tokenizer.

        Args:
            texts: The texts.
            max_length: Truncate and pad every text to this many tokens; ``None`` keeps the
                tokenizer's own padding (its fixed length, else the longest text).
            pairs: Second segments, one per text (type id 1 in BERT-like tokenizers).

        Returns:
            ``input_ids``, ``attention_mask`` and (where the tokenizer makes them)
            ``token_type_ids``, each ``int64`` of shape ``(len(texts), length)``.
        """
        texts = list(texts)
        if pairs is not None and len(pairs) != len(texts):
            raise InvalidArgumentError(f"{len(pairs)} second segments for {len(texts)} texts")
        if self.is_transformers:
            encoded = self.tokenizer(
                texts,
                list(pairs) if pairs is not None else None,
                padding="max_length" if max_length else "longest",
                truncation=bool(max_length),
                max_length=max_length,
                return_tensors="np",
            )
            return {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
        tok = self.tokenizer
        if max_length is not None or tok.padding is None:
            tok = type(tok).from_str(tok.to_str())  # padding settings are the caller's
            pad = _pad_token(tok)
            if max_length is not None:
                tok.enable_truncation(max_length)
                tok.enable_padding(length=max_length, pad_id=pad[1], pad_token=pad[0])
            else:
                tok.enable_padding(pad_id=pad[1], pad_token=pad[0])
        inputs: list[Any] = texts if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = tok.encode_batch(inputs)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    @functools.cached_property
    def words(self) -> tuple[str, ...]:
        """Whole words of the tokenizer's vocabulary (no specials, no word pieces), by id."""
        vocab = self.tokenizer.get_vocab()
        words = []
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
            word = token.lstrip(_WORD_MARKERS)
            if word and word.isascii() and word.isalpha() and token[:1] not in "[<#":
                words.append(word)
        return tuple(dict.fromkeys(words)) or ("a",)


def _pad_token(tok: Any) -> tuple[str, int]:
    for token in ("[PAD]", "<pad>", "<|pad|>", "<unk>", "[UNK]"):
        index = tok.token_to_id(token)
        if index is not None:
            return token, int(index)
    return "[PAD]", 0


def text_example_inputs(
    encoder: TextEncoder,
    names: Sequence[str],
    batch_size: int,
    sequence_length: int,
    *,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Example token inputs of real ids: texts of the tokenizer's own words, encoded by it.

    Each text has between half and all of ``sequence_length`` words (drawn with ``seed``), so
    the attention mask has padding as real batches do; the tokenizer truncates and pads each to
    ``sequence_length`` tokens.

    Args:
        encoder: The tokenizer.
        names: The model's token inputs, in its order.
        batch_size: Texts in the batch.
        sequence_length: Tokens per text.
        seed: Seed of the word choice.

    Returns:
        Input name to ``int64`` array of shape ``(batch_size, sequence_length)``.
    """
    rng = np.random.default_rng(seed)
    words = encoder.words
    texts = []
    for _ in range(batch_size):
        count = int(rng.integers(max(1, sequence_length // 2), sequence_length + 1))
        texts.append(" ".join(words[i] for i in rng.integers(0, len(words), size=count)))
    encoded = encoder.encode(texts, max_length=sequence_length)
    missing = [n for n in names if n not in encoded]
    if missing:
        raise InvalidArgumentError(
            f"the tokenizer makes {', '.join(encoded)} but the model also takes "
            f"{', '.join(missing)}"
        )
    return {n: encoded[n] for n in names}


def attach_tokenizer(model: Model, encoder: TextEncoder, *, default_sequence: int) -> None:
    """Makes ``model``'s example inputs real token ids from ``encoder``.

    Sets ``model.tokenizer`` to the encoder and replaces ``model.example_inputs`` with one that
    encodes texts (:func:`text_example_inputs`) for its integer inputs named like token inputs
    (``input_ids``, ``attention_mask``, ``token_type_ids``) and keeps the model's own examples
    for any other input. The sequence length is ``dims["sequence"]`` (or the size of another
    dynamic dimension named in ``dims``) or ``default_sequence``, also recorded as the
    ``sequence_length`` option (where the loader did not set it).
    """
    original = model.example_inputs
    text_names = [s.name for s in model.inputs if s.name in TEXT_INPUTS and s.dtype.kind in "iu"]

    def example_inputs(
        batch_size: int = 1, *, seed: int = 0, dims: Mapping[str, int] | None = None
    ) -> dict[str, np.ndarray]:
        given = dict(dims or {})
        length = _sequence_length(model, text_names, given, default_sequence)
        others = [s for s in model.inputs if s.name not in text_names]
        out = text_example_inputs(encoder, text_names, batch_size, length, seed=seed)
        if others:
            dims_all = {**given, **_second_dims(model, text_names, length)}
            made = original(batch_size, seed=seed, dims=dims_all)
            out.update({s.name: made[s.name] for s in others})
        return {s.name: out[s.name] for s in model.inputs}

    model.tokenizer = encoder  # type: ignore[attr-defined]
    model.example_inputs = example_inputs  # type: ignore[method-assign]
    # Read by TextPipeline.for_model: a model whose sequence is dynamic still has a longest one.
    model.options.setdefault("sequence_length", default_sequence)
    model.default_dims.setdefault("sequence", default_sequence)


def _second_dims(model: Model, names: Sequence[str], length: int) -> dict[str, int]:
    dims: dict[str, int] = {}
    for spec in model.inputs:
        shape = spec.shape or ()
        if spec.name in names and len(shape) > 1 and isinstance(shape[1], str):
            dims[shape[1]] = length
    return dims


def _sequence_length(
    model: Model, names: Sequence[str], dims: Mapping[str, int], default: int
) -> int:
    for spec in model.inputs:
        if spec.name not in names or spec.shape is None or len(spec.shape) < 2:
            continue
        dim = spec.shape[1]
        if isinstance(dim, int):
            return dim
        if isinstance(dim, str) and dim in dims:
            return int(dims[dim])
    return int(dims.get("sequence", default))
