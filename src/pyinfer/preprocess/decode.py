""":class:`Decode`: image files, bytes, PIL images and arrays to a PIL image, safely.

A file is refused before decoding when it declares more pixels than a bound (a decompression
bomb), including WebP files whose decoder would allocate the canvas before Pillow's own check.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError, OutOfMemoryError, PyinferError
from pyinfer.preprocess.arguments import flag, shown, whole_number
from pyinfer.preprocess.pil import MAX_IMAGE_PIXELS, import_pil, to_pil

__all__ = ["IMAGE_EXTENSIONS", "Decode"]

#: File extensions (lower case) read as images from a folder.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
)


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
        import_pil()
        from PIL import ImageMode

        try:
            ImageMode.getmode(mode)
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(
                f"Decode mode must be a Pillow mode ('RGB', 'L', 'RGBA'...), not {shown(mode)}"
            ) from exc
        if draft_size is not None:
            if not (isinstance(draft_size, (tuple, list)) and len(draft_size) == 2):
                raise InvalidArgumentError(
                    f"draft_size must be None or (width, height), got {shown(draft_size)}"
                )
            draft_size = (
                whole_number(draft_size[0], "draft_size"),
                whole_number(draft_size[1], "draft_size"),
            )
        self.mode = mode
        self.draft_size = draft_size
        self.exif_transpose = flag(exif_transpose, "exif_transpose")
        self.max_pixels = whole_number(max_pixels, "max_pixels")

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
        image_mod = import_pil()
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
            return self._finish(image_mod, to_pil(image_mod, item, "Decode"), name)
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
