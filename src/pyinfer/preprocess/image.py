"""Image steps, one job each: resize, crop, scale to float, normalise, lay out, cast.

They match the torchvision transforms of the same names: :class:`ResizeShorter`,
:class:`CenterCrop`, :class:`ToFloat` (scale 1/255), :class:`Normalize` (mean, std),
:class:`ToLayout` (``"CHW"`` or ``"HWC"``), :class:`ToDtype`; :func:`image_layout` reads the
layout of a model's image input. Pillow resizes in C (and releases the GIL, so the engine's
worker threads run in parallel); numpy does the arithmetic on whole arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess.arguments import as_dtype, finite_number, shown, size_pair, whole_number
from pyinfer.preprocess.items import as_array
from pyinfer.preprocess.pil import (
    INTERPOLATIONS,
    MAX_IMAGE_PIXELS,
    import_pil,
    is_pil_image,
    resize_image,
    to_pil,
)

if TYPE_CHECKING:
    from pyinfer.backends.base import TensorSpec

__all__ = [
    "CenterCrop",
    "Layout",
    "Normalize",
    "ResizeShorter",
    "ToDtype",
    "ToFloat",
    "ToLayout",
    "image_layout",
]

#: Where an image's channel axis is: first (``"CHW"``) or last (``"HWC"``).

Layout = Literal["CHW", "HWC"]


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
            f"{what} must be numbers, one per channel (or one for all), got {shown(value)}"
        ) from exc
    if vector.ndim != 1 or vector.size == 0:
        raise InvalidArgumentError(
            f"{what} must be one number per channel (or one for all), got shape "
            f"{tuple(vector.shape)}"
        )
    if not np.isfinite(vector).all():
        raise InvalidArgumentError(f"{what} must be finite, got {vector.tolist()}")
    return vector


class ResizeShorter:
    """Resizes so that the shorter side is ``size``, keeping the aspect ratio.

    Pillow's resampling filters are used (``"bilinear"`` and ``"bicubic"`` are antialiased when
    shrinking, as torchvision's PIL path is). The longer side is truncated to a whole pixel
    (``int(size * long / short)``), as ``torchvision.transforms.v2.Resize(size)`` does.

    Args:
        size: Length of the shorter side after resizing.
        interpolation: ``"nearest"``, ``"bilinear"`` (default), ``"bicubic"``, ``"lanczos"``,
            ``"box"`` or ``"hamming"``.

    Raises:
        InvalidArgumentError: On a size below 1 or an unknown interpolation.
    """

    def __init__(self, size: int, interpolation: str = "bilinear") -> None:
        self.size = whole_number(size, "resize size")
        if not (isinstance(interpolation, str) and interpolation in INTERPOLATIONS):
            raise InvalidArgumentError(
                f"unknown interpolation {shown(interpolation)}; use one of "
                f"{', '.join(INTERPOLATIONS)}"
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
            return self.size, max(1, int(self.size * height / width))
        return max(1, int(self.size * width / height)), self.size

    def __call__(self, image: Any) -> Any:
        """Resizes one image (PIL image or uint8 array); returns a PIL image.

        Raises:
            InvalidInputError: If the image is empty, not an image, or would have more than
                :data:`MAX_IMAGE_PIXELS` pixels once resized (a long thin strip made large).
        """
        image_mod = import_pil()
        img = to_pil(image_mod, image, "ResizeShorter")
        target = self.output_size(*img.size)
        if target == img.size:
            return img
        if target[0] * target[1] > MAX_IMAGE_PIXELS:
            raise InvalidInputError(
                f"ResizeShorter({self.size}) would make the {img.width}x{img.height} image "
                f"{target[0]}x{target[1]}, more than MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS} pixels"
            )
        resample = getattr(image_mod.Resampling, self.interpolation.upper())
        return resize_image(img, target, resample, "ResizeShorter")

    def __repr__(self) -> str:
        return f"ResizeShorter({self.size}, {self.interpolation!r})"


class CenterCrop:
    """Cuts the central ``size`` (an int for a square, or ``(height, width)``).

    Takes a PIL image or an array in ``HxW[xC]`` layout; returns the same kind.

    Raises:
        InvalidArgumentError: On a size below 1, or one that is neither an int nor a pair.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.height, self.width = size_pair(size, "crop size")

    def __call__(self, image: Any) -> Any:
        """Crops one image.

        Raises:
            InvalidInputError: If the image is smaller than the crop, or no image.
        """
        if isinstance(image, np.ndarray) and image.ndim >= 2:
            h, w = image.shape[:2]
        elif is_pil_image(image):
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
        self.scale = finite_number(scale, "ToFloat scale")
        self.dtype = as_dtype(dtype, "ToFloat dtype")
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
            raise InvalidArgumentError(f"layout must be 'CHW' or 'HWC', not {shown(layout)}")
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


class ToDtype:
    """Casts an array to a dtype (an explicit step, so the cast is visible in the pipeline).

    Raises:
        InvalidArgumentError: If ``dtype`` is no numpy dtype.
    """

    def __init__(self, dtype: Any) -> None:
        self.dtype = as_dtype(dtype, "ToDtype dtype")

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
