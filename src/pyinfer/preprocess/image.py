"""Preprocessing pipelines: raw items (image files, text) to the arrays a model takes.

A pipeline is a callable that turns one raw item into one model input *without* the batch
dimension: an array for a one-input model, or a dict of input name to array. Pipelines are made
of small steps (each a class with ``__call__``) chained by :class:`Compose`:

* image: :class:`Decode` (Pillow: a path, bytes, a PIL image or an array, to RGB),
  :class:`ResizeShorter`, :class:`CenterCrop`, :class:`ToFloat` (scale 1/255),
  :class:`Normalize` (mean, std), :class:`ToLayout` (``"CHW"`` or ``"HWC"``), :class:`ToDtype`;
  :meth:`ImagePipeline.imagenet` is the usual preset and :meth:`ImagePipeline.for_model` fits
  size, layout and dtype to a model's input;
* text: :class:`TextPipeline` makes ``input_ids`` and ``attention_mask`` (and
  ``token_type_ids`` when asked) from any tokenizer (a callable returning ids, or an object with
  ``encode``, as Hugging Face tokenizers have) or the built-in :class:`VocabTokenizer`.

Every pipeline offers ``check(model)``: it runs on an example and compares its output with the
model's input specs (names, ranks, fixed dimensions, dtypes), so a mismatch is found before the
first batch, with a message saying what to change. The inference engine calls it.

Work is vectorised: Pillow resizes in C (and releases the GIL, so the engine's worker threads
run in parallel) and numpy does the arithmetic on whole arrays. Pillow is imported at first use
(``pip install "pyinfer[image]"``).
"""

from __future__ import annotations

import io
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.backends.base import name_mismatch
from pyinfer.errors import (
    FrameworkNotInstalledError,
    InvalidArgumentError,
    InvalidInputError,
    OutOfMemoryError,
    PyinferError,
)

if TYPE_CHECKING:
    from pyinfer.backends.base import Model, TensorSpec

__all__ = [
    "IMAGENET_GREY_MEAN",
    "IMAGENET_GREY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_SEQUENCE_LENGTH",
    "CenterCrop",
    "Compose",
    "Decode",
    "ImagePipeline",
    "Normalize",
    "NormalizeImage",
    "ResizeCenterCrop",
    "ResizeShorter",
    "TextPipeline",
    "ToDtype",
    "ToFloat",
    "ToLayout",
    "VocabTokenizer",
    "cast_arrays",
    "check_item",
    "image_layout",
]

logger = logging.getLogger(__name__)

#: Per-channel mean and standard deviation of ImageNet (RGB, on values scaled to [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Their averages, for grey (one-channel) images.
IMAGENET_GREY_MEAN: float = 0.449
IMAGENET_GREY_STD: float = 0.226

#: File extensions (lower case) read as images from a folder.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
)

#: The longest sequence a TextPipeline makes (padding allocates ``max_length`` ids per text).
MAX_SEQUENCE_LENGTH: int = 1 << 24

#: The most pixels an image may have, decoded or resized (Pillow's own warning limit: a bigger
#: file is likely a decompression bomb, a few bytes that would take gigabytes once decoded).
MAX_IMAGE_PIXELS: int = 89_478_485

Casting = Literal["safe", "same_kind"]
Layout = Literal["CHW", "HWC"]


# -- checking arguments ------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """``repr(value)`` cut to a length a message can hold."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value: Any, what: str, *, least: int = 1) -> int:
    """``value`` as an ``int`` of at least ``least`` (an integral float too), else an error."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{what} must be an integer >= {least}, got {_shown(value)}")
    if value < least:
        raise InvalidArgumentError(f"{what} must be >= {least}, got {value}")
    return int(value)


def _size_pair(size: Any, what: str) -> tuple[int, int]:
    """``(height, width)`` from an int (a square) or a pair of ints, else an error."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise InvalidArgumentError(
                f"{what} must be an int or (height, width), got {_shown(size)}"
            )
        return _whole(size[0], what), _whole(size[1], what)
    side = _whole(size, what)
    return side, side


def _flag(value: Any, what: str) -> bool:
    """``value`` if it is a bool, else an error (an array or a string is no switch)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{what} must be True or False, got {_shown(value)}")
    return bool(value)


def _choice(value: Any, choices: Sequence[str], what: str) -> Any:
    """``value`` if it is one of the strings ``choices``, else an error listing them."""
    if not (isinstance(value, str) and value in choices):
        names = " or ".join(repr(c) for c in choices)
        raise InvalidArgumentError(f"{what} must be {names}, not {_shown(value)}")
    return value


def _dtype(value: Any, what: str) -> np.dtype[Any]:
    """``np.dtype(value)``, with ``None``, a structured dtype or a non-dtype as an error."""
    try:
        dtype: np.dtype[Any] | None = np.dtype(value) if value is not None else None
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} is no numpy dtype: {_shown(value)} ({exc})") from exc
    if dtype is None or dtype.kind == "V":
        raise InvalidArgumentError(f"{what} is no numpy dtype of values: {_shown(value)}")
    return dtype


def _finite(value: Any, what: str) -> float:
    """``value`` as a finite ``float``, else an error."""
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentError(f"{what} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"{what} must be a number, got {_shown(value)}") from exc
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{what} must be finite, got {number}")
    return number


def _import_pil() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            'image preprocessing needs Pillow: pip install "pyinfer[image]"'
        ) from exc
    return Image


# -- checking one item against a model ---------------------------------------------------------


def cast_arrays(
    arrays: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    casting: Casting,
) -> dict[str, np.ndarray]:
    """Casts arrays to their specs' dtypes where numpy's casting rule allows it.

    Args:
        arrays: Input name to array (names not in ``specs`` pass through unchanged).
        specs: The model's input specs.
        casting: ``"safe"`` (no value can change: ``uint8`` to ``float32``, ``int32`` to
            ``int64``) or ``"same_kind"`` (also ``float64`` to ``float32``).

    Returns:
        Input name to array of the spec's dtype.

    Raises:
        InvalidArgumentError: If ``casting`` is neither rule.
        InvalidInputError: If an array's dtype cannot be cast under the rule; the message names
            the input and both dtypes.
    """
    if not (isinstance(casting, str) and casting in ("safe", "same_kind")):
        raise InvalidArgumentError(f"casting must be 'safe' or 'same_kind', not {_shown(casting)}")
    if not isinstance(arrays, Mapping):
        raise InvalidInputError(
            f"inputs must be a dict of input name to array, not {type(arrays).__name__}"
        )
    by_name = {s.name: s for s in specs}
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        spec = by_name.get(name)
        array = as_array(value, f"input '{name}'")
        if spec is None or array.dtype == spec.dtype:
            out[name] = array
            continue
        if not np.can_cast(array.dtype, spec.dtype, casting=casting):
            raise InvalidInputError(
                f"input '{name}' is {array.dtype.name} and cannot be cast to "
                f"{spec.dtype.name} with casting={casting!r}"
            )
        out[name] = array.astype(spec.dtype)
    return out


def check_item(
    model: Model,
    item: Mapping[str, Any],
    *,
    casting: Casting | None = None,
    where: str = "",
) -> dict[str, np.ndarray]:
    """Checks one input *without* its batch dimension against a model's input specs.

    Args:
        model: The model the item is for.
        item: Input name to array, each without the batch dimension.
        casting: Cast dtypes under this numpy rule (``"safe"`` or ``"same_kind"``); ``None``
            (default) casts nothing, and a dtype mismatch is an error naming the option.
        where: Said in messages after the input's name (``" (item 7, cat.jpg)"``).

    Returns:
        Input name to contiguous array in the model's input order, dtypes as the specs say.

    Raises:
        InvalidInputError: On a missing or unexpected input, a wrong rank, a wrong fixed
            dimension or a wrong dtype; the message names the input, what was expected and what
            was given.
    """
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"an item for model '{model.name}'{where} must be a dict of input name to array, "
            f"not {type(item).__name__}"
        )
    names = model.input_names()
    mismatch = name_mismatch(model.name, names, item, where)
    if mismatch:
        raise InvalidInputError(mismatch)
    arrays = {n: as_array(item[n], f"input '{n}' of model '{model.name}'{where}") for n in names}
    if casting is not None:
        arrays = cast_arrays(arrays, model.inputs, casting)
    out: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        value = arrays[spec.name]
        if value.dtype != spec.dtype:
            rule = "safe" if np.can_cast(value.dtype, spec.dtype, casting="safe") else "same_kind"
            hint = (
                f"; pass cast_inputs={rule!r} to the engine to cast it"
                if np.can_cast(value.dtype, spec.dtype, casting="same_kind")
                else f"; convert it to {spec.dtype.name} yourself"
            )
            raise InvalidInputError(
                f"input '{spec.name}' of model '{model.name}'{where} must be {spec.dtype.name}, "
                f"got {value.dtype.name}{hint}"
            )
        if spec.shape is not None:
            per_item = spec.shape[1:]
            if value.ndim != len(per_item) or any(
                isinstance(d, int) and d != s for d, s in zip(per_item, value.shape, strict=False)
            ):
                dims = ", ".join(str(d) if isinstance(d, int) else "?" for d in per_item)
                expected = f"({dims},)" if len(per_item) == 1 else f"({dims})"
                raise InvalidInputError(
                    f"input '{spec.name}' of model '{model.name}'{where} must have shape "
                    f"{expected} per item (the model takes {spec.shape_text()} with the batch "
                    f"first), got {tuple(value.shape)}"
                )
        # ascontiguousarray would make a 0-d array 1-d (a scalar input would gain an axis).
        out[spec.name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
    return out


def as_item(model: Model, value: Any) -> dict[str, Any]:
    """One input as a dict of name to value: an array becomes the one input of the model.

    Args:
        model: The model the input is for.
        value: A mapping of input name to array, or one array (for a one-input model): a numpy
            array or anything numpy converts through ``__array__`` (a CPU torch tensor, a
            TensorFlow eager tensor).

    Returns:
        Input name to value.

    Raises:
        InvalidInputError: If ``value`` is neither, cannot be converted, or an array is given to
            a model with several inputs.
    """
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, np.ndarray) and hasattr(value, "__array__"):
        value = as_array(value, f"an input of model '{model.name}'")
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float)):
        names = model.input_names()
        if len(names) != 1:
            raise InvalidInputError(
                f"model '{model.name}' takes {len(names)} inputs ({', '.join(names)}); "
                "pass a dict of name to array"
            )
        return {names[0]: as_array(value, f"an input of model '{model.name}'")}
    raise InvalidInputError(
        f"an input of model '{model.name}' must be a numpy array or a dict of name to array, "
        f"not {type(value).__name__}; give the engine a preprocessor for other items"
    )


def as_array(value: Any, what: str) -> np.ndarray:
    """``np.asarray(value)``, with a conversion failure as a typed error.

    Args:
        value: An array-like (a CPU torch tensor, a TensorFlow eager tensor...).
        what: What the value is, for the message.

    Returns:
        The numpy array.

    Raises:
        InvalidInputError: If numpy cannot convert it (a CUDA tensor, a tensor that requires
            grad); the message says what to do.
    """
    try:
        return np.asarray(value)
    except (TypeError, RuntimeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(
            f"{what} is a {type(value).__name__} numpy cannot read ({exc}); give a numpy array "
            "(a list of equal-length rows; for torch: tensor.detach().cpu().numpy())"
        ) from exc


def stack_items(items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks per-item arrays along a new first (batch) axis.

    Args:
        items: One dict per item, all with the same names.

    Returns:
        Name to stacked array.

    Raises:
        InvalidInputError: If there are no items, they are not dicts of the same names, or their
            shapes differ (a dynamic dimension of different sizes) or dtypes do not mix.
    """
    if not items:
        raise InvalidInputError("no items to stack into a batch")
    names = list(items[0]) if isinstance(items[0], Mapping) else None
    for i, it in enumerate(items):
        if not isinstance(it, Mapping) or names is None or set(it) != set(names):
            got = sorted(map(str, it)) if isinstance(it, Mapping) else type(it).__name__
            raise InvalidInputError(
                f"item {i} of the batch has inputs {got}, not those of item 0 ({names}); every "
                "item must be a dict of the same input names"
            )
    out: dict[str, np.ndarray] = {}
    for name in names:
        arrays = [as_array(it[name], f"input '{name}' of item {i}") for i, it in enumerate(items)]
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) > 1:
            raise InvalidInputError(
                f"input '{name}' has different shapes within one batch ({sorted(shapes)}); "
                "pad them to one size (TextPipeline pads; use padding='max_length') or use "
                "batch_size=1"
            )
        try:
            out[name] = np.stack(arrays)
        except (TypeError, ValueError) as exc:  # dtypes that do not mix (str and float)
            dtypes = sorted({a.dtype.name for a in arrays})
            raise InvalidInputError(
                f"input '{name}' mixes dtypes {dtypes} within one batch ({exc})"
            ) from exc
    return out


class Compose:
    """Steps applied one after the other: ``Compose([a, b, c])(x) == c(b(a(x)))``.

    Args:
        steps: Callables, each taking the previous one's output.
        input_name: If given, the result is ``{input_name: array}`` instead of the array.

    Attributes:
        steps: The steps, in order.
        input_name: As given.
    """

    def __init__(self, steps: Iterable[Callable[[Any], Any]], *, input_name: str | None = None):
        self.steps = list(steps)
        if input_name is not None and not isinstance(input_name, str):
            raise InvalidArgumentError(
                f"input_name must be a str or None, not {_shown(input_name)}"
            )
        self.input_name = input_name
        for step in self.steps:
            if not callable(step):
                raise InvalidArgumentError(f"pipeline step {step!r} is not callable")

    def __call__(self, item: Any) -> Any:
        """Applies the steps to one item.

        Args:
            item: A raw item (what the first step takes).

        Returns:
            The last step's output, or ``{input_name: output}``.
        """
        value = item
        for step in self.steps:
            value = step(value)
        return value if self.input_name is None else {self.input_name: value}

    def example(self) -> Any:
        """A raw item to check the pipeline with (a 64x48 gradient image, RGB uint8 array)."""
        ramp = np.linspace(0, 255, 64 * 48 * 3, dtype=np.float64).reshape(48, 64, 3)
        return ramp.astype(np.uint8)

    def check(
        self, model: Model, example: Any = None, *, casting: Casting | None = None
    ) -> dict[str, np.ndarray]:
        """Runs the pipeline on an example and checks the output against the model's inputs.

        Args:
            model: The model the pipeline feeds.
            example: A raw item; :meth:`example` when ``None``.
            casting: The dtype cast the engine will apply (its ``cast_inputs``), if any.

        Returns:
            The checked output, input name to array (without batch dimension).

        Raises:
            InvalidInputError: If the output does not fit the model; the message names the input
                and says what the pipeline gives and what the model takes.
        """
        value = self(self.example() if example is None else example)
        try:
            return check_item(model, as_item(model, value), casting=casting)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{type(self).__name__} output does not fit model '{model.name}': {exc}"
            ) from exc

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.steps)
        return f"{type(self).__name__}([{inner}])"


# -- image steps -------------------------------------------------------------------------------


def _source_name(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return str(item) or "''"
    return f"<{type(item).__name__}>"


class Decode:
    """Decodes an image to an RGB (or ``mode``) PIL image.

    Takes a path, encoded bytes, a PIL image, or a uint8 array (``HxW`` or ``HxWxC`` with 1 to 4
    channels).

    Args:
        mode: Pillow mode to convert to (``"RGB"``, ``"L"``...).
        draft_size: For JPEG, let the decoder shrink by 1/2, 1/4 or 1/8 while the image stays
            at least this ``(width, height)`` (DCT scaling: much faster decoding of large
            photos, slightly different pixels). ``None`` (default) decodes at full size.
        exif_transpose: Turn a file (or PIL image) upright as its EXIF orientation tag says,
            as photo viewers show phone pictures. Off by default, as torchvision's loaders
            (which most models were trained with) leave the pixels as stored.
        max_pixels: A file declaring more pixels is refused before it is decoded (a
            decompression bomb); :data:`MAX_IMAGE_PIXELS` by default.

    Raises:
        InvalidArgumentError: On a mode Pillow does not know, a bad ``draft_size`` or
            ``max_pixels``.
    """

    def __init__(
        self,
        mode: str = "RGB",
        *,
        draft_size: tuple[int, int] | None = None,
        exif_transpose: bool = False,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        _import_pil()
        from PIL import ImageMode

        try:
            ImageMode.getmode(mode)
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(
                f"Decode mode must be a Pillow mode ('RGB', 'L', 'RGBA'...), not {_shown(mode)}"
            ) from exc
        if draft_size is not None:
            if not (isinstance(draft_size, (tuple, list)) and len(draft_size) == 2):
                raise InvalidArgumentError(
                    f"draft_size must be None or (width, height), got {_shown(draft_size)}"
                )
            draft_size = (_whole(draft_size[0], "draft_size"), _whole(draft_size[1], "draft_size"))
        self.mode = mode
        self.draft_size = draft_size
        self.exif_transpose = _flag(exif_transpose, "exif_transpose")
        self.max_pixels = _whole(max_pixels, "max_pixels")

    def __call__(self, item: Any) -> Any:
        """Decodes one item.

        Args:
            item: A path, bytes, a PIL image or a uint8 array.

        Returns:
            The decoded PIL image in :attr:`mode`.

        Raises:
            InvalidInputError: If the file is missing, a folder, cannot be decoded, declares
                more than ``max_pixels`` pixels or holds an empty image, or the array is not an
                image; the message names the file.
        """
        image_mod = _import_pil()
        name = _source_name(item)
        if isinstance(item, image_mod.Image):
            return self._finish(image_mod, item, name)
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3):
                raise InvalidInputError(
                    f"an image array must be uint8 of shape HxW or HxWxC, got {item.dtype.name} "
                    f"{tuple(item.shape)}"
                )
            if item.size == 0:
                raise InvalidInputError(f"an image array is empty: shape {tuple(item.shape)}")
            return self._finish(image_mod, _to_pil(image_mod, item, "Decode"), name)
        if isinstance(item, (bytes, bytearray, memoryview)):
            fp: Any = io.BytesIO(bytes(item))
            head = fp.getvalue()[:32]
        elif isinstance(item, (str, Path)):
            fp = Path(item)
        else:
            raise InvalidInputError(
                f"cannot decode a {type(item).__name__} as an image: give a path, bytes, a PIL "
                "image or a uint8 array"
            )
        try:
            if isinstance(fp, Path):
                with fp.open("rb") as file:
                    head = file.read(32)
            declared = _webp_size(head)
            if declared is not None:  # its decoder allocates the canvas before Pillow's check
                self._check_size(declared[0], declared[1], name)
            with image_mod.open(fp) as img:
                if self.draft_size is not None and img.format == "JPEG":
                    img.draft(self.mode, self.draft_size)  # before the check: it shrinks
                self._check_pixels(img, name)
                img.load()
                return self._finish(image_mod, img, name, copy=True)
        except PyinferError:
            raise
        except FileNotFoundError as exc:
            raise InvalidInputError(f"image {name} does not exist") from exc
        except IsADirectoryError as exc:
            raise InvalidInputError(f"image {name} is a folder, not an image file") from exc
        except (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning) as exc:
            raise InvalidInputError(
                f"image {name} declares more than {self.max_pixels} pixels (Decode's "
                f"max_pixels), too many to decode: {exc}"
            ) from exc
        except MemoryError as exc:
            raise OutOfMemoryError(f"decoding image {name} ran out of memory") from exc
        except (OSError, ValueError, SyntaxError) as exc:  # UnidentifiedImageError is an OSError
            raise InvalidInputError(
                f"cannot decode image {name}: {type(exc).__name__}: {exc}"
            ) from exc

    def _check_pixels(self, img: Any, name: str, *, bound: bool = True) -> None:
        width, height = img.size
        self._check_size(width, height, name, bound=bound)

    def _check_size(self, width: int, height: int, name: str, *, bound: bool = True) -> None:
        if width < 1 or height < 1:
            raise InvalidInputError(f"image {name} is empty: {width}x{height}")
        if bound and width * height > self.max_pixels:
            raise InvalidInputError(
                f"image {name} declares {width}x{height} = {width * height} pixels, more than "
                f"max_pixels={self.max_pixels}: refused before decoding (a decompression bomb?)"
            )

    def _finish(self, image_mod: ModuleType, img: Any, name: str, copy: bool = False) -> Any:
        """``img`` upright (if asked) in :attr:`mode`; a copy that outlives the file if asked."""
        self._check_pixels(img, name, bound=False)  # decoded already: only emptiness matters
        try:
            upright = self._upright(img)
        except (OSError, ValueError, SyntaxError) as exc:  # damaged EXIF, as in decoding
            raise InvalidInputError(
                f"cannot read the EXIF orientation of image {name}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            if upright is img and img.mode == self.mode:
                return img.copy() if copy else img
            return self._convert(image_mod, upright)
        except ValueError as exc:  # a conversion Pillow does not have (La to RGB...)
            raise InvalidInputError(
                f"cannot convert image {name} from mode {img.mode} to {self.mode}: {exc}"
            ) from exc

    def _upright(self, img: Any) -> Any:
        """``img`` turned as its EXIF orientation says, when asked (else ``img`` itself)."""
        if not self.exif_transpose:
            return img
        from PIL import ImageOps

        return ImageOps.exif_transpose(img) or img

    def _convert(self, image_mod: ModuleType, img: Any) -> Any:
        """``img`` in :attr:`mode`; 16-bit grey scaled to 8 bits (Pillow would clip it)."""
        if img.mode == self.mode:
            return img
        if img.mode.startswith("I;16"):
            eight = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
            img = image_mod.fromarray(eight)
            return img if img.mode == self.mode else img.convert(self.mode)
        return img.convert(self.mode)

    def __repr__(self) -> str:
        exif = ", exif_transpose=True" if self.exif_transpose else ""
        return f"Decode(mode={self.mode!r}, draft_size={self.draft_size}{exif})"


_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """The canvas ``(width, height)`` a WebP file's header declares, or ``None`` if no WebP.

    Pillow's WebP decoder allocates (and clears) the whole canvas while opening the file,
    before Pillow's own decompression bomb check: a 40-byte file can declare 16383x16383.
    """
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas width - 1 and height - 1
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        width = int.from_bytes(head[26:28], "little") & 0x3FFF
        return width, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14-bit width - 1 and height - 1 after the signature
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _to_pil(image_mod: ModuleType, value: Any, step: str) -> Any:
    """A PIL image, or a uint8 ``HxW`` or ``HxWxC`` array (1 to 4 channels) as one."""
    if isinstance(value, image_mod.Image):
        return value
    if not (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3)):
        raise InvalidInputError(
            f"{step} takes a PIL image or a uint8 HxW(xC) array, got "
            f"{type(value).__name__}{getattr(value, 'shape', '')}; put it before ToFloat"
        )
    if value.ndim == 3:
        channels = value.shape[2]
        if channels == 1:
            value = value[:, :, 0]
        elif channels not in (2, 3, 4):
            raise InvalidInputError(
                f"{step} takes images of 1 to 4 channels (grey, grey and alpha, RGB, RGBA), got "
                f"an array of shape {tuple(value.shape)}"
            )
    return image_mod.fromarray(value)


def _is_pil_image(value: Any) -> bool:
    """Whether ``value`` is a PIL image (without importing Pillow: one exists only if it is)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


def _numbers(value: Any, step: str) -> np.ndarray:
    """``value`` as an array of numbers or booleans, else an :class:`InvalidInputError`."""
    array = as_array(value, f"the input of {step}")
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"{step} takes an image or an array of numbers, got {array.dtype.name} values "
            f"(shape {tuple(array.shape)})"
        )
    return array


def _channel_values(value: Any, what: str) -> np.ndarray:
    """Per-channel values (one, or one per channel) as a finite float64 vector."""
    try:
        vector = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(
            f"{what} must be numbers, one per channel (or one for all), got {_shown(value)}"
        ) from exc
    if vector.ndim != 1 or vector.size == 0:
        raise InvalidArgumentError(
            f"{what} must be one number per channel (or one for all), got shape "
            f"{tuple(vector.shape)}"
        )
    if not np.isfinite(vector).all():
        raise InvalidArgumentError(f"{what} must be finite, got {vector.tolist()}")
    return vector


def _resize(img: Any, size: tuple[int, int], resample: Any, step: str, **options: Any) -> Any:
    """``img.resize(...)``, with Pillow's refusal (a mode it cannot resample) typed."""
    try:
        return img.resize(size, resample, **options)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(
            f"{step} cannot resize a {img.mode} image of {img.width}x{img.height}: {exc}"
        ) from exc


class ResizeShorter:
    """Resizes so that the shorter side is ``size``, keeping the aspect ratio.

    Pillow's resampling filters are used (``"bilinear"`` and ``"bicubic"`` are antialiased when
    shrinking, as torchvision's PIL path is). The longer side is rounded to the nearest pixel.

    Args:
        size: Length of the shorter side after resizing.
        interpolation: ``"nearest"``, ``"bilinear"`` (default), ``"bicubic"``, ``"lanczos"``,
            ``"box"`` or ``"hamming"``.

    Raises:
        InvalidArgumentError: On a size below 1 or an unknown interpolation.
    """

    def __init__(self, size: int, interpolation: str = "bilinear") -> None:
        self.size = _whole(size, "resize size")
        if not (isinstance(interpolation, str) and interpolation in _INTERPOLATIONS):
            raise InvalidArgumentError(
                f"unknown interpolation {_shown(interpolation)}; use one of "
                f"{', '.join(_INTERPOLATIONS)}"
            )
        self.interpolation = interpolation

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The ``(width, height)`` an image of this size is resized to.

        Raises:
            InvalidInputError: If the image is empty (a side of 0).
        """
        if width < 1 or height < 1:
            raise InvalidInputError(f"cannot resize an empty image of {width}x{height}")
        if width <= height:
            return self.size, max(1, round(height * self.size / width))
        return max(1, round(width * self.size / height)), self.size

    def __call__(self, image: Any) -> Any:
        """Resizes one image (PIL image or uint8 array); returns a PIL image.

        Raises:
            InvalidInputError: If the image is empty, not an image, or would have more than
                :data:`MAX_IMAGE_PIXELS` pixels once resized (a long thin strip made large).
        """
        image_mod = _import_pil()
        img = _to_pil(image_mod, image, "ResizeShorter")
        target = self.output_size(*img.size)
        if target == img.size:
            return img
        if target[0] * target[1] > MAX_IMAGE_PIXELS:
            raise InvalidInputError(
                f"ResizeShorter({self.size}) would make the {img.width}x{img.height} image "
                f"{target[0]}x{target[1]}, more than MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS} pixels"
            )
        resample = getattr(image_mod.Resampling, self.interpolation.upper())
        return _resize(img, target, resample, "ResizeShorter")

    def __repr__(self) -> str:
        return f"ResizeShorter({self.size}, {self.interpolation!r})"


class CenterCrop:
    """Cuts the central ``size`` (an int for a square, or ``(height, width)``).

    Takes a PIL image or an array in ``HxW[xC]`` layout; returns the same kind.

    Raises:
        InvalidArgumentError: On a size below 1, or one that is neither an int nor a pair.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.height, self.width = _size_pair(size, "crop size")

    def __call__(self, image: Any) -> Any:
        """Crops one image.

        Raises:
            InvalidInputError: If the image is smaller than the crop, or no image.
        """
        if isinstance(image, np.ndarray) and image.ndim >= 2:
            h, w = image.shape[:2]
        elif _is_pil_image(image):
            w, h = image.size
        else:
            raise InvalidInputError(
                f"CenterCrop takes a PIL image or an HxW[xC] array, got {type(image).__name__}"
                f"{getattr(image, 'shape', '')}"
            )
        if h < self.height or w < self.width:
            raise InvalidInputError(
                f"image of {w}x{h} is smaller than the {self.width}x{self.height} crop; "
                "resize it first (ResizeShorter)"
            )
        top = round((h - self.height) / 2.0)
        left = round((w - self.width) / 2.0)
        if isinstance(image, np.ndarray):
            return image[top : top + self.height, left : left + self.width]
        return image.crop((left, top, left + self.width, top + self.height))

    def __repr__(self) -> str:
        return f"CenterCrop(({self.height}, {self.width}))"


class ToFloat:
    """An image (PIL or array) to a float array times ``scale`` (default 1/255: [0, 1]).

    Args:
        scale: Factor applied to the values (finite).
        dtype: Floating dtype of the result.

    Raises:
        InvalidArgumentError: On a scale that is no finite number or a dtype that is not
            floating point.
    """

    def __init__(self, scale: float = 1.0 / 255.0, dtype: Any = np.float32) -> None:
        self.scale = _finite(scale, "ToFloat scale")
        self.dtype = _dtype(dtype, "ToFloat dtype")
        if self.dtype.kind != "f":
            raise InvalidArgumentError(
                f"ToFloat dtype must be a floating dtype (float32...), not {self.dtype.name}"
            )

    def __call__(self, image: Any) -> np.ndarray:
        """Converts one image; an ``HxW`` image stays 2-D.

        Raises:
            InvalidInputError: If the values are not numbers (or booleans): text, objects,
                complex numbers, dates.
        """
        array = _numbers(image, "ToFloat")
        out = array.astype(self.dtype)
        out *= self.dtype.type(self.scale)
        return out

    def __repr__(self) -> str:
        return f"ToFloat(scale={self.scale:g}, dtype={self.dtype.name})"


class Normalize:
    """``(x - mean) / std`` per channel, the channel axis last (``HWC``: put it before ToLayout).

    Args:
        mean: One value per channel (or one for all).
        std: One value per channel (or one for all); none may be 0.

    Raises:
        InvalidArgumentError: If ``mean`` or ``std`` are not finite numbers, their lengths
            differ, or a std is 0 (or so small that its inverse is infinite).
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        self.mean = _channel_values(mean, "mean")
        self.std = _channel_values(std, "std")
        if self.mean.shape != self.std.shape:
            raise InvalidArgumentError(
                f"mean and std need the same length, got {self.mean.size} and {self.std.size}"
            )
        if np.any(self.std == 0):
            raise InvalidArgumentError("std must not contain 0")
        with np.errstate(over="ignore", divide="ignore"):
            if not np.isfinite(1.0 / self.std).all():
                raise InvalidArgumentError(f"std {self.std.tolist()} is too close to 0")

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """Normalises one float array whose last axis is the channel axis.

        Raises:
            InvalidInputError: If the array is not floating point or its channel count does not
                match ``mean``.
        """
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            raise InvalidInputError(
                f"Normalize takes a float array, got {type(array).__name__} "
                f"{getattr(array, 'dtype', '')}; put ToFloat before it"
            )
        if self.mean.size > 1 and (array.ndim == 0 or array.shape[-1] != self.mean.size):
            raise InvalidInputError(
                f"Normalize has {self.mean.size} channels but the array's last axis is "
                f"{array.shape[-1] if array.ndim else 'missing'} (shape {tuple(array.shape)}); "
                "normalise before ToLayout('CHW')"
            )
        mean = self.mean.astype(array.dtype)
        scale = (1.0 / self.std).astype(array.dtype)
        if self.mean.size == 1:  # one value for all: scalars keep a 0-d array 0-d
            mean, scale = mean[0], scale[0]
        out: np.ndarray = np.asarray(array - mean)
        out *= scale
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class ToLayout:
    """Moves the channel axis of an ``HWC`` array: ``"CHW"`` (channels first) or ``"HWC"``.

    A 2-D ``HxW`` array gets a channel axis of 1 in the asked place.

    Raises:
        InvalidArgumentError: On another layout name.
    """

    def __init__(self, layout: str = "CHW") -> None:
        if not (isinstance(layout, str) and layout in ("CHW", "HWC")):
            raise InvalidArgumentError(f"layout must be 'CHW' or 'HWC', not {_shown(layout)}")
        self.layout = layout

    def __call__(self, array: Any) -> np.ndarray:
        """Returns a contiguous array in the layout.

        Raises:
            InvalidInputError: If the array is not ``HxW`` or ``HxWxC`` (or no array).
        """
        a = as_array(array, "the input of ToLayout")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise InvalidInputError(f"ToLayout takes an HxWxC array, got shape {tuple(a.shape)}")
        if self.layout == "CHW":
            return np.ascontiguousarray(a.transpose(2, 0, 1))
        return np.ascontiguousarray(a)

    def __repr__(self) -> str:
        return f"ToLayout({self.layout!r})"


class ResizeCenterCrop:
    """:class:`ResizeShorter` then :class:`CenterCrop` in one resampling of the kept pixels.

    The crop window is mapped back to the source image and resampled from there with the same
    filter scale as the full resize (Pillow's box resampling), so the result equals the two
    steps to within one grey level (fixed-point rounding), with about 40% less work for the
    ImageNet sizes.

    Args:
        resize: Shorter side of the (virtual) resized image.
        crop: Crop size: an int for a square, or ``(height, width)``.
        interpolation: As for :class:`ResizeShorter`.
    """

    def __init__(
        self, resize: int, crop: int | tuple[int, int], interpolation: str = "bilinear"
    ) -> None:
        self.resize = ResizeShorter(resize, interpolation)
        self.crop = CenterCrop(crop)

    def __call__(self, image: Any) -> Any:
        """Resizes and crops one image (PIL image or uint8 array); returns a PIL image.

        Raises:
            InvalidInputError: If the resized image would be smaller than the crop, or the
                crop has more than :data:`MAX_IMAGE_PIXELS` pixels.
        """
        image_mod = _import_pil()
        img = _to_pil(image_mod, image, "ResizeCenterCrop")
        if self.crop.height * self.crop.width > MAX_IMAGE_PIXELS:
            raise InvalidInputError(
                f"a crop of {self.crop.width}x{self.crop.height} has more than "
                f"MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS} pixels"
            )
        width, height = img.size
        new_w, new_h = self.resize.output_size(width, height)
        crop_h, crop_w = self.crop.height, self.crop.width
        if new_h < crop_h or new_w < crop_w:
            raise InvalidInputError(
                f"image of {width}x{height} resized to {new_w}x{new_h} is smaller than the "
                f"{crop_w}x{crop_h} crop"
            )
        left = round((new_w - crop_w) / 2.0)
        top = round((new_h - crop_h) / 2.0)
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
        resample = getattr(image_mod.Resampling, self.resize.interpolation.upper())
        return _resize(img, (crop_w, crop_h), resample, "ResizeCenterCrop", box=box)

    def __repr__(self) -> str:
        return (
            f"ResizeCenterCrop({self.resize.size}, ({self.crop.height}, {self.crop.width}), "
            f"{self.resize.interpolation!r})"
        )


class NormalizeImage:
    """:class:`ToFloat`, :class:`Normalize` and :class:`ToLayout` in one pass over a uint8 image.

    Each channel has a 256-entry table made by running those three steps on every byte value,
    so the result is bit-identical to the three steps, in half the time (one gather per
    channel, written straight into the layout).

    Args:
        mean: Per-channel mean (on values after ``scale``).
        std: Per-channel standard deviation.
        scale: As for :class:`ToFloat`.
        layout: ``"CHW"`` or ``"HWC"``.
        dtype: Floating dtype of the result.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        scale: float = 1.0 / 255.0,
        layout: str = "CHW",
        dtype: Any = np.float32,
    ) -> None:
        self.steps = (ToFloat(scale, dtype), Normalize(mean, std), ToLayout(layout))
        channels = self.steps[1].mean.size
        # Every byte value through the very same steps: a (1, 256, C) "image".
        values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], channels, axis=2)
        normalised = self.steps[1](self.steps[0](values))
        self.table = np.ascontiguousarray(normalised[0].T)  # (C, 256)
        self.layout = layout
        self.dtype = self.steps[0].dtype

    def __call__(self, image: Any) -> np.ndarray:
        """Normalises one uint8 ``HxWxC`` image (or ``HxW`` with one channel, PIL or array).

        Other inputs go through the steps one by one.

        Raises:
            InvalidInputError: If the input is not an image the steps take.
        """
        array = as_array(image, "the input of NormalizeImage")
        if array.ndim == 2 and len(self.table) == 1:
            array = array[:, :, None]  # a grey image: its one channel
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != len(self.table):
            value: Any = array
            for step in self.steps:
                value = step(value)
            out: np.ndarray = value
            return out
        height, width, channels = array.shape
        if self.layout == "CHW":
            result = np.empty((channels, height, width), self.dtype)
            for c in range(channels):
                np.take(self.table[c], array[:, :, c], out=result[c])
            return result
        result = np.empty((height, width, channels), self.dtype)
        for c in range(channels):
            np.take(self.table[c], array[:, :, c], out=result[:, :, c])
        return result

    def __repr__(self) -> str:
        norm = self.steps[1]
        return (
            f"NormalizeImage(mean={norm.mean.tolist()}, std={norm.std.tolist()}, "
            f"scale={self.steps[0].scale:g}, layout={self.layout!r}, dtype={self.dtype.name})"
        )


class ToDtype:
    """Casts an array to a dtype (an explicit step, so the cast is visible in the pipeline).

    Raises:
        InvalidArgumentError: If ``dtype`` is no numpy dtype.
    """

    def __init__(self, dtype: Any) -> None:
        self.dtype = _dtype(dtype, "ToDtype dtype")

    def __call__(self, array: Any) -> np.ndarray:
        """Returns the array as :attr:`dtype` (no copy when it already is).

        Raises:
            InvalidInputError: If numpy cannot cast the values (text to numbers, None to
                float...).
        """
        value = as_array(array, "the input of ToDtype")
        try:
            out: np.ndarray = value.astype(self.dtype, copy=False)
        except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
            raise InvalidInputError(
                f"ToDtype cannot cast a {value.dtype.name} array to {self.dtype.name}: {exc}"
            ) from exc
        return out

    def __repr__(self) -> str:
        return f"ToDtype({self.dtype.name})"


def image_layout(spec: TensorSpec) -> Layout:
    """The layout of an image input: ``"CHW"`` or ``"HWC"``, from where its channel axis is.

    ``"CHW"`` when axis 1 is 1 or 3 (channels), ``"HWC"`` when the last axis is.

    Args:
        spec: A rank-4 image input spec (batch first).

    Returns:
        ``"CHW"`` or ``"HWC"``.

    Raises:
        InvalidArgumentError: If the spec is not rank 4 or neither axis is a channel axis.
    """
    if spec.shape is None:
        raise InvalidArgumentError(
            f"input '{spec.name}' has no declared shape, so its image layout is unknown: load "
            "the model with input_shapes={...}, or use ImagePipeline.imagenet(size, layout=...)"
        )
    if len(spec.shape) != 4:
        raise InvalidArgumentError(
            f"input '{spec.name}' {spec.shape_text()} is not an image batch (rank 4)"
        )
    if spec.shape[1] in (1, 3):
        return "CHW"
    if spec.shape[3] in (1, 3):
        return "HWC"
    raise InvalidArgumentError(
        f"cannot tell the channel axis of input '{spec.name}' {spec.shape_text()}: neither axis 1 "
        "nor axis 3 is 1 or 3; give layout= explicitly"
    )


class ImagePipeline(Compose):
    """An image pipeline: decode, resize the shorter side, centre crop, scale, normalise, layout.

    Build one with :meth:`imagenet` (the usual classifier preprocessing) or :meth:`for_model`
    (size, layout and dtype read from the model's input), or from steps like :class:`Compose`.
    """

    @classmethod
    def imagenet(
        cls,
        size: int | tuple[int, int] = 224,
        *,
        resize: int | None = None,
        layout: Layout = "CHW",
        dtype: Any = np.float32,
        interpolation: str = "bilinear",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        mode: Literal["RGB", "L"] = "RGB",
        input_name: str | None = None,
        fast_decode: bool = False,
        exif_transpose: bool = False,
    ) -> ImagePipeline:
        """The ImageNet evaluation preprocessing: resize to 256, crop 224, scale, normalise.

        Built from the fused steps :class:`ResizeCenterCrop` (only the kept pixels are
        resampled) and :class:`NormalizeImage` (a table per channel, bit-identical to
        ToFloat, Normalize and ToLayout); compose the single steps for other orders.

        Args:
            size: Side of the square crop, or its ``(height, width)``.
            resize: Shorter side before cropping; ``round(max(size) * 256 / 224)`` by default.
            layout: ``"CHW"`` (torch, ONNX) or ``"HWC"`` (Keras).
            dtype: Floating dtype of the result.
            interpolation: Resize filter (see :class:`ResizeShorter`).
            mean: Per-channel mean (on values in [0, 1]); :data:`IMAGENET_MEAN` for ``"RGB"``,
                its average ``(0.449,)`` for ``"L"`` by default.
            std: Per-channel standard deviation; :data:`IMAGENET_STD` for ``"RGB"``, its
                average ``(0.226,)`` for ``"L"`` by default.
            mode: ``"RGB"`` (three channels) or ``"L"`` (one grey channel: the result has a
                channel axis of 1).
            input_name: Return ``{input_name: array}`` instead of the array.
            fast_decode: Let the JPEG decoder shrink large photos by a power of two (down to
                no less than the resize size) before resizing: faster on big images, slightly
                different pixels from a full decode.
            exif_transpose: Turn photos upright by their EXIF orientation first (see
                :class:`Decode`).

        Returns:
            The pipeline.
        """
        _choice(mode, ("RGB", "L"), "mode")
        crop = _size_pair(size, "size")
        shorter = resize if resize is not None else round(max(crop) * 256 / 224)
        resize_crop = ResizeCenterCrop(shorter, crop, interpolation)
        if mean is None:
            mean = IMAGENET_MEAN if mode == "RGB" else (IMAGENET_GREY_MEAN,)
        if std is None:
            std = IMAGENET_STD if mode == "RGB" else (IMAGENET_GREY_STD,)
        normalize = NormalizeImage(mean, std, layout=layout, dtype=dtype)
        channels = 3 if mode == "RGB" else 1
        if len(normalize.table) not in (1, channels):
            raise InvalidArgumentError(
                f"mean and std have {len(normalize.table)} values, but mode {mode!r} images "
                f"have {channels} channel{'s' if channels > 1 else ''}: give {channels} or 1"
            )
        draft = (resize_crop.resize.size,) * 2 if _flag(fast_decode, "fast_decode") else None
        return cls(
            [Decode(mode, draft_size=draft, exif_transpose=exif_transpose), resize_crop, normalize],
            input_name=input_name,
        )

    @classmethod
    def for_model(cls, model: Model, **kwargs: Any) -> ImagePipeline:
        """The ImageNet-style pipeline fitted to a one-image-input model's input spec.

        The crop size comes from the spec's fixed height and width (a dynamic one takes the
        other's size, 224 where both are dynamic), the layout from where its channel axis is,
        the dtype from its dtype, and a one-channel input gets grey images (``mode="L"``).

        Args:
            model: A model whose first input is an image batch (rank 4).
            **kwargs: Overrides for :meth:`imagenet` (``mean``, ``std``, ``interpolation``...).

        Returns:
            The pipeline, returning ``{input_name: array}``.

        Raises:
            InvalidArgumentError: If the input is not an image batch.
        """
        spec = model.inputs[0]
        layout = image_layout(spec)
        if spec.dtype.kind != "f" and "dtype" not in kwargs:
            raise InvalidArgumentError(
                f"input '{spec.name}' takes {spec.dtype.name}, but ImagePipeline makes "
                "normalised floats; compose Decode, ResizeCenterCrop and ToDtype for raw pixels"
            )
        assert spec.shape is not None  # checked by image_layout
        h, w = (spec.shape[2], spec.shape[3]) if layout == "CHW" else (spec.shape[1], spec.shape[2])
        height = h if isinstance(h, int) else (w if isinstance(w, int) else 224)
        width = w if isinstance(w, int) else height
        size: int | tuple[int, int] = height if height == width else (height, width)
        channels = spec.shape[1] if layout == "CHW" else spec.shape[3]
        if channels == 1:
            kwargs.setdefault("mode", "L")
        kwargs.setdefault("layout", layout)
        kwargs.setdefault("dtype", spec.dtype)
        kwargs.setdefault("input_name", spec.name)
        return cls.imagenet(kwargs.pop("size", size), **kwargs)


# -- text --------------------------------------------------------------------------------------

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
        lowercase = _flag(lowercase, "lowercase")
        if isinstance(vocab, Mapping):
            for word, index in vocab.items():
                if not isinstance(word, str):
                    raise InvalidArgumentError(
                        f"vocabulary words must be str, got {_shown(word)} (id {_shown(index)})"
                    )
                if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                    raise InvalidArgumentError(
                        f"vocabulary id of {word!r} must be an int, got {_shown(index)}"
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
                        f"{_shown(word)}"
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
        lowercase = _flag(lowercase, "lowercase")
        min_count = _whole(min_count, "min_count", least=0)
        if max_size is not None:
            max_size = _whole(max_size, "max_size", least=0)
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
        if _flag(add_special_tokens, "add_special_tokens"):
            ids = [self.cls_token_id, *ids, self.sep_token_id]
        return ids

    __call__ = encode


class TextPipeline:
    """Text to ``input_ids`` and ``attention_mask`` (and ``token_type_ids``) of one length.

    Args:
        tokenizer: A :class:`VocabTokenizer`, an object with ``encode(text) -> ids`` (a Hugging
            Face tokenizer), or a callable returning ids (a list, an array, or a mapping with
            ``"input_ids"``).
        max_length: Length of every sequence (``padding="max_length"``), or the most tokens
            kept.
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
        self.max_length = _whole(max_length, "max_length")
        if self.max_length > MAX_SEQUENCE_LENGTH:
            raise InvalidArgumentError(
                f"max_length {self.max_length} is over {MAX_SEQUENCE_LENGTH} tokens; no model "
                "takes sequences that long"
            )
        self.padding = _choice(padding, ("max_length", "longest"), "padding")
        if not (callable(tokenizer) or callable(getattr(tokenizer, "encode", None))):
            raise InvalidArgumentError(
                f"tokenizer {type(tokenizer).__name__} is neither callable nor has encode()"
            )
        self.tokenizer = tokenizer
        self.truncation = _flag(truncation, "truncation")
        self.token_type_ids = _flag(token_type_ids, "token_type_ids")
        self.attention_mask = _flag(attention_mask, "attention_mask")
        self.dtype = _dtype(dtype, "TextPipeline dtype")
        if self.dtype.kind not in "iu":
            raise InvalidArgumentError(
                f"TextPipeline dtype must be an integer dtype (int64...), not {self.dtype.name}"
            )
        default_pad = getattr(tokenizer, "pad_token_id", None)
        pad = pad_id if pad_id is not None else (default_pad or 0)
        self.pad_id = _whole(pad, "pad_id", least=int(np.iinfo(self.dtype).min))
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
                        f"{_shown(key)}: {_shown(value)}"
                    )
            self.names.update(names)
        outputs = [self.names["input_ids"]]
        outputs += [self.names["attention_mask"]] if self.attention_mask else []
        outputs += [self.names["token_type_ids"]] if self.token_type_ids else []
        if len(set(outputs)) != len(outputs):
            raise InvalidArgumentError(f"names gives two outputs one name: {outputs}")

    @classmethod
    def for_model(cls, model: Model, tokenizer: Any, **kwargs: Any) -> TextPipeline:
        """A pipeline fitted to a model's text inputs.

        ``attention_mask`` and ``token_type_ids`` if the model takes them (under the names in
        ``names=`` when given), its ids' dtype, and its fixed sequence length if it has one.

        Args:
            model: A text model taking ``input_ids`` (and ``attention_mask``...).
            tokenizer: As for the constructor.
            **kwargs: Other constructor arguments (they win over what is read from the model).

        Returns:
            The pipeline.
        """
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
        return cls(tokenizer, **kwargs)

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
            ``attention_mask=False``), and zeros for ``token_type_ids``.

        Raises:
            InvalidInputError: If ``text`` is not a string, or is too long without truncation.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"TextPipeline takes a str, got {type(text).__name__}")
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
