"""Pillow access for the image steps: the lazy import, arrays as images, a typed resize.

Pillow is imported at first use (``pip install "pyinfer-toolkit[image]"``), never at import.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.errors import FrameworkNotInstalledError, InvalidInputError

__all__ = [
    "INTERPOLATIONS",
    "MAX_IMAGE_PIXELS",
    "import_pil",
    "is_pil_image",
    "resize_image",
    "to_pil",
]

#: The most pixels an image may have, decoded or resized (Pillow's own warning limit: a bigger
#: file is likely a decompression bomb, a few bytes that would take gigabytes once decoded).
MAX_IMAGE_PIXELS: int = 89_478_485

#: The resampling filters ResizeShorter knows, by name.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def import_pil() -> ModuleType:
    """The ``PIL.Image`` module, or an error naming the extra to install."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            'image preprocessing needs Pillow: pip install "pyinfer-toolkit[image]"'
        ) from exc
    return Image


def to_pil(image_mod: ModuleType, value: Any, step: str) -> Any:
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


def is_pil_image(value: Any) -> bool:
    """Whether ``value`` is a PIL image (without importing Pillow: one exists only if it is)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


def resize_image(img: Any, size: tuple[int, int], resample: Any, step: str, **options: Any) -> Any:
    """``img.resize(...)``, with Pillow's refusal (a mode it cannot resample) typed."""
    try:
        return img.resize(size, resample, **options)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(
            f"{step} cannot resize a {img.mode} image of {img.width}x{img.height}: {exc}"
        ) from exc
