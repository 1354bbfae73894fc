"""The ImageNet-style image pipeline and its two fused steps.

:class:`ResizeCenterCrop` resamples only the pixels a centre crop keeps, and
:class:`NormalizeImage` scales, normalises and lays out a uint8 image through one table per
channel; :class:`ImagePipeline` chains them after :class:`~pyinfer.preprocess.decode.Decode`,
as the usual classifier preset (:meth:`ImagePipeline.imagenet`) or fitted to a model's input
(:meth:`ImagePipeline.for_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess.arguments import choice, flag, size_pair
from pyinfer.preprocess.compose import Compose
from pyinfer.preprocess.decode import Decode
from pyinfer.preprocess.image import (
    CenterCrop,
    Layout,
    Normalize,
    ResizeShorter,
    ToFloat,
    ToLayout,
    image_layout,
)
from pyinfer.preprocess.items import as_array
from pyinfer.preprocess.pil import MAX_IMAGE_PIXELS, import_pil, resize_image, to_pil

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

__all__ = [
    "IMAGENET_GREY_MEAN",
    "IMAGENET_GREY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImagePipeline",
    "NormalizeImage",
    "ResizeCenterCrop",
]

#: Per-channel mean and standard deviation of ImageNet (RGB, on values scaled to [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Their averages, for grey (one-channel) images.
IMAGENET_GREY_MEAN: float = 0.449
IMAGENET_GREY_STD: float = 0.226


class ResizeCenterCrop:
    """:class:`ResizeShorter` then :class:`CenterCrop`, as ``torchvision.transforms.v2`` does.

    The whole image is resized (Pillow's antialiased filters, the longer side truncated as
    torchvision truncates it) and the centre cropped, so the pixels are exactly those of
    ``v2.Resize(resize)`` then ``v2.CenterCrop(crop)`` on a PIL image. (Resampling only the
    crop window from the source, with Pillow's ``box=``, is faster but differs by one grey
    level on some pixels: Pillow's filter weights are computed from the window's offset; it is
    used only where the whole resize would exceed :data:`MAX_IMAGE_PIXELS`, a sliver of an
    image.)

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
        image_mod = import_pil()
        img = to_pil(image_mod, image, "ResizeCenterCrop")
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
        resample = getattr(image_mod.Resampling, self.resize.interpolation.upper())
        if new_w * new_h > MAX_IMAGE_PIXELS:
            # A sliver (1x100000 pixels) whose whole resize would be a decompression bomb:
            # only the crop window is resampled (within one grey level of the full resize).
            sx, sy = width / new_w, height / new_h
            box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
            return resize_image(img, (crop_w, crop_h), resample, "ResizeCenterCrop", box=box)
        if (new_w, new_h) != (width, height):
            img = resize_image(img, (new_w, new_h), resample, "ResizeCenterCrop")
        if (crop_w, crop_h) == (new_w, new_h):
            return img
        return img.crop((left, top, left + crop_w, top + crop_h))

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

        Equal to ``torchvision.transforms.v2``'s ``Resize(resize)``, ``CenterCrop(size)``,
        ``ToImage()``, ``ToDtype(float32, scale=True)`` and ``Normalize(mean, std)`` on a PIL
        image (the long side truncated, antialiased resampling; within 1e-6 on real photos,
        float32 rounding), made of :class:`ResizeCenterCrop` and the fused
        :class:`NormalizeImage` (a table per channel, bit-identical to ToFloat, Normalize and
        ToLayout); compose the single steps for other orders.

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
        choice(mode, ("RGB", "L"), "mode")
        crop = size_pair(size, "size")
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
        draft = (resize_crop.resize.size,) * 2 if flag(fast_decode, "fast_decode") else None
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
