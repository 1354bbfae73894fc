"""Fuzz campaigns for the preprocessors: every step fed odd images, arrays, texts and objects.

One campaign per preprocessor (:data:`CAMPAIGNS`). Each input is made from the index alone (see
:func:`_fuzz.rng_for`): the step's constructor arguments (plausible ones, and wrong ones: sizes
of 0, strings, NaN, unknown modes and dtypes) and the item it is called on:

* images: tiny PNG, JPEG, GIF, BMP, WebP, TIFF and PPM seeds in many modes (1-bit, palette,
  grey + alpha, CMYK, 16-bit, animated, EXIF orientations) written by Pillow here, damaged by the
  byte mutations of :mod:`_fuzz` or given huge declared dimensions (decompression bombs), plus
  random bytes, missing paths, folders, PIL images of every mode and arrays of every kind;
* arrays: ranks 0-5, sizes of 0, 1, 2, 4 or 5 channels, every dtype (numeric, bool, complex,
  object, strings), NaN and infinities, non-contiguous, reversed and read-only views;
* text: random unicode (lone surrogates, combining marks, right-to-left, NUL, very long, empty),
  non-strings, tokenizers with odd vocabularies and callables returning odd ids.

The contract: a typed :class:`pyinfer.errors.PyinferError`, or a result that keeps the step's
promise (shape, dtype, value range), which :meth:`PreprocessorCampaign.run` checks. Warnings are
not findings (numpy warns when NaN is cast to an integer, as asked); they are silenced in the
workers.
"""

from __future__ import annotations

import atexit
import dataclasses
import io
import math
import pickle
import random
import shutil
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from _fuzz import MUTATIONS, mutate_bytes, random_bytes, register, rng_for

#: The campaigns, one per preprocessor (and input helper), each ``name -> what it calls``.
CAMPAIGNS: dict[str, str] = {
    "decode": "Decode",
    "resize_shorter": "ResizeShorter",
    "center_crop": "CenterCrop",
    "to_float": "ToFloat",
    "normalize": "Normalize",
    "to_layout": "ToLayout",
    "to_dtype": "ToDtype",
    "resize_center_crop": "ResizeCenterCrop",
    "normalize_image": "NormalizeImage",
    "compose": "Compose",
    "imagenet": "ImagePipeline.imagenet",
    "for_model": "ImagePipeline.for_model",
    "vocab_tokenizer": "VocabTokenizer",
    "text_pipeline": "TextPipeline",
    "cast_arrays": "cast_arrays",
    "check_item": "check_item",
    "as_item": "as_item",
    "as_array": "as_array",
    "stack_items": "stack_items",
}


def configs() -> dict[str, dict[str, Any]]:
    """Each campaign's configuration (only its seed: the inputs are made in the campaign)."""
    return {name: {"seed": f"preprocessor-{name}", "campaign": name} for name in CAMPAIGNS}


# -- odd values -------------------------------------------------------------------------------

MODES = (
    "1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F",
    "I;16", "I;16B", "LA", "PA", "La", "RGBa", "RGBX",
)  # fmt: skip
DTYPES = (
    "uint8", "uint16", "int8", "int32", "int64", "float16", "float32", "float64", "bool",
    "complex64", "object", "<U3", "S2", "datetime64[s]",
)  # fmt: skip
#: Sizes a user might pass: right ones, and wrong ones (:data:`BAD_SIZES`).
SIZES: tuple[Any, ...] = (1, 2, 3, 4, 7, 16, 224, (2, 3), (5, 1), np.int64(5), 4.0, [3, 2])
BAD_SIZES: tuple[Any, ...] = (
    0, -1, 3.5, float("nan"), "8", None, True, (0, 4), (3,), (2, 3, 4), ("a", 2), 10**6, 1 << 40,
    np.float32(4.5), {1: 2},
)  # fmt: skip
CHARS = (
    "abc xyz ", "The cat sat.", "\u0301\u0302\u20dd", "\u05d0\u05d1 \u0627\u0644\u0639",
    "\u200b\u200e\u200f\u202e", "\x00\x01\x7f", "\u4e2d\u6587", "\U0001f600\U0001f3fd",
    "\ud800\udfff\udc00", "\u2028\u00a0\t\n", "'!?,.;", "\u0130\u00df\ufb01",
)  # fmt: skip


def random_text(rng: random.Random) -> str:
    """Random unicode: words, marks, right-to-left, NUL, lone surrogates; empty or very long."""
    pieces = []
    for _ in range(rng.choice([0, 1, 3, 8, 20, rng.randrange(60)])):
        chars = rng.choice(CHARS)
        start = rng.randrange(len(chars))
        pieces.append(chars[start : start + rng.randrange(1, 6)])
    text = "".join(pieces)
    if rng.random() < 0.01:
        text = (text or "x ") * (50_000 // max(1, len(text) or 2))  # very long
    return text


def random_array(rng: random.Random, *, image: bool = False, most: int = 4096) -> np.ndarray:
    """An array of random rank, shape, dtype and values, sometimes a strided or read-only view.

    With ``image``, mostly ``uint8`` of shape ``HxW`` or ``HxWxC`` (C of 1 to 5).
    """
    np_rng = np.random.default_rng(rng.getrandbits(64))
    if image and rng.random() < 0.8:
        shape: tuple[int, ...] = (rng.choice([0, 1, 2, 5, 9, 33]), rng.choice([0, 1, 3, 8, 31]))
        if rng.random() < 0.8:
            shape += (rng.choice([3, 3, 1, 2, 4, 5]),)
        dtype = np.dtype("uint8") if rng.random() < 0.8 else np.dtype(rng.choice(DTYPES))
    else:
        rank = rng.choice([0, 1, 2, 3, 3, 4, 5])
        shape = tuple(rng.choice([0, 1, 1, 2, 3, 4, 5, 7]) for _ in range(rank))
        dtype = np.dtype(rng.choice(DTYPES))
    if math.prod(shape) > most:
        shape = tuple(min(d, 4) for d in shape)
    array = np.array(_fill(np_rng, shape, dtype))  # a 0-d array, not a scalar, for rank 0
    view = rng.random()
    if view < 0.1 and array.ndim:
        array = array[::-1]
    elif view < 0.2 and array.ndim:
        array = array[::2]
    elif view < 0.25 and array.ndim >= 2:
        array = array.swapaxes(0, 1)
    elif view < 0.3:
        array.flags.writeable = False
    elif view < 0.33 and array.ndim and array.shape[0]:
        array = np.broadcast_to(array[:1], (3, *array.shape[1:]))  # zero strides, read-only
    return array


def _fill(np_rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np_rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if dtype.kind == "f":
        values = np_rng.normal(0, 1e3, size=shape).astype(dtype)
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 255.0], dtype=dtype)
        mask = np_rng.random(size=shape) < 0.1
        values[mask] = np_rng.choice(specials, size=int(mask.sum()))
        return values
    if dtype.kind == "b":
        return np_rng.random(size=shape) < 0.5
    if dtype.kind == "c":
        return (np_rng.normal(size=shape) + 1j * np_rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "M":
        return np_rng.integers(0, 10**9, size=shape).astype(dtype)
    if dtype.kind in "US":
        return np_rng.integers(0, 100, size=shape).astype(dtype)
    array = np.empty(shape, dtype=object)
    for i, pos in enumerate(np.ndindex(*shape)):
        array[pos] = (None, 1, "x", 2.5, [1])[i % 5]
    return array


def random_pil(rng: random.Random) -> Any:
    """A small PIL image of a random mode and size (0 wide or high too), random pixels."""
    from PIL import Image

    mode = rng.choice(MODES)
    size = rng.choice([(0, 0), (0, 3), (4, 0), (1, 1), (3, 2), (5, 9), (16, 12), (1, 40)])
    needed = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, rng.randbytes(needed))
    if mode in ("P", "PA") and rng.random() < 0.5:
        image.putpalette(list(rng.randbytes(rng.choice([0, 3, 30, 768]))))
    return image


def odd_value(rng: random.Random) -> Any:
    """Anything a user might pass by mistake: None, numbers, text, bytes, lists, objects..."""
    kind = rng.randrange(16)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, 0, -1, 7, 2**70, 3.5, float("nan"), float("inf"), 1 + 2j])
    if kind == 2:
        return random_text(rng)
    if kind == 3:
        return random_bytes(rng, 64)
    if kind == 4:
        return rng.choice([[], [1, 2, 3], [[1, 2], [3]], [1, "a", None], [[1.5, 2], [3, 4]]])
    if kind == 5:
        return rng.choice([{}, {"x": 1}, {"x": [1, [2]]}, {1: 2}])
    if kind == 6:
        return rng.choice([object(), range(3), {1, 2}, (1, 2), Path("nowhere.png")])
    if kind == 7:
        return rng.choice([np.float64(1.5), np.int8(-3), np.bool_(True), np.str_("x")])
    if kind == 8:
        return bytearray(random_bytes(rng, 32))
    if kind in (9, 10):
        return random_pil(rng)
    return random_array(rng, image=kind < 13)


def size_arg(rng: random.Random, pairs: bool = True) -> Any:
    """A size argument: mostly a right one, sometimes a wrong one or an odd value."""
    good = SIZES if pairs else tuple(s for s in SIZES if not isinstance(s, (tuple, list)))
    return rng.choice(good) if rng.random() < 0.85 else pick(rng, BAD_SIZES, 0.2)


def arg(rng: random.Random, good: tuple[Any, ...], bad: tuple[Any, ...] = ()) -> Any:
    """An argument: one of ``good`` nine times in ten, else one of ``bad`` or an odd value."""
    if rng.random() < 0.9:
        return rng.choice(good)
    return pick(rng, bad, 0.3) if bad else odd_value(rng)


def mean_std(rng: random.Random) -> tuple[Any, Any]:
    """Matching ``mean`` and ``std`` (1 to 4 channels) nine times in ten, else odd ones."""
    if rng.random() < 0.9:
        n = rng.choice([1, 3, 3, 4, 2])
        mean = [round(rng.uniform(-1, 2), 3) for _ in range(n)]
        std = [round(rng.uniform(0.01, 3), 3) for _ in range(n)]
        return (mean[0] if n == 1 and rng.random() < 0.3 else mean), std
    return pick(rng, PreprocessorCampaign.MEANS), pick(rng, PreprocessorCampaign.STDS)


def pick(rng: random.Random, values: tuple[Any, ...], odd: float = 0.04) -> Any:
    """One of ``values``, or with probability ``odd`` an :func:`odd_value`."""
    return odd_value(rng) if rng.random() < odd else rng.choice(values)


# -- image seeds ------------------------------------------------------------------------------


def _encode(image: Any, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_seeds() -> list[tuple[str, bytes]]:
    """Tiny images of every format and many modes, written by Pillow: ``(suffix, bytes)``."""
    from PIL import Image, features

    rng = np.random.default_rng(7)

    def img(mode: str, size: tuple[int, int] = (6, 4)) -> Any:
        rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        if mode == "I;16":
            return Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16))
        if mode == "F":
            return Image.fromarray(rng.normal(size=size[::-1]).astype(np.float32))
        return rgb.convert(mode)

    exif = Image.Exif()
    exif[0x0112] = 6
    bad_exif = Image.Exif()
    bad_exif[0x0112] = 9  # not an orientation
    frames = [img("P"), img("P"), img("P")]
    seeds = [
        (".png", _encode(img("RGB"), "PNG")),
        (".png", _encode(img("L"), "PNG")),
        (".png", _encode(img("1"), "PNG")),
        (".png", _encode(img("P"), "PNG", transparency=3)),
        (".png", _encode(img("LA"), "PNG")),
        (".png", _encode(img("RGBA"), "PNG")),
        (".png", _encode(img("I;16"), "PNG")),
        (".png", _encode(img("RGB"), "PNG", exif=exif)),
        (".png", _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])),
        (".jpg", _encode(img("RGB", (20, 12)), "JPEG")),
        (".jpg", _encode(img("L"), "JPEG", progressive=True)),
        (".jpg", _encode(img("CMYK"), "JPEG")),
        (".jpg", _encode(img("RGB"), "JPEG", exif=exif)),
        (".jpg", _encode(img("RGB"), "JPEG", exif=bad_exif)),
        (".gif", _encode(img("P"), "GIF")),
        (".gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)),
        (".bmp", _encode(img("RGB"), "BMP")),
        (".bmp", _encode(img("1"), "BMP")),
        (".bmp", _encode(img("P"), "BMP")),
        (".tif", _encode(img("RGB"), "TIFF")),
        (".tif", _encode(img("I;16"), "TIFF")),
        (".tif", _encode(img("CMYK"), "TIFF", compression="tiff_lzw")),
        (".tif", _encode(img("F"), "TIFF")),
        (".tif", _encode(img("1"), "TIFF", compression="packbits")),
        (".tif", _encode(img("RGB"), "TIFF", exif=exif)),
        (".ppm", _encode(img("RGB"), "PPM")),
        (".pgm", _encode(img("L"), "PPM")),
    ]
    if features.check("webp"):
        seeds += [
            (".webp", _encode(img("RGB"), "WEBP", quality=50)),
            (".webp", _encode(img("RGBA"), "WEBP", lossless=True)),
            (".webp", _encode(frames[0].convert("RGB"), "WEBP", save_all=True, append_images=[
                f.convert("RGB") for f in frames[1:]])),
        ]  # fmt: skip
    return seeds


#: Declared sizes for :func:`huge_dims`: zero, one, and sides whose products (also after the
#: formats' 14 or 16-bit masks) are over :data:`pyinfer.preprocess.MAX_IMAGE_PIXELS`, some
#: within twice that (Pillow only warns there). No product is large but allowed: decoding a
#: 50-megapixel image of garbage is valid and costs a second, which no check needs.
HUGE = (0, 1, 9_500, 30_000, 65_535, 2**31 - 1, 2**32 - 1)


def huge_dims(data: bytes, rng: random.Random) -> bytes:
    """``data`` with its declared width and height replaced (valid checksums where there are)."""
    w, h = rng.choice(HUGE), rng.choice(HUGE)
    out = bytearray(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 33:
        out[16:24] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif data[:3] == b"GIF" and len(data) >= 10:
        out[6:10] = struct.pack("<HH", w & 0xFFFF, h & 0xFFFF)
        at = data.find(b"\x2c", 10)  # the first image descriptor
        if at > 0 and rng.random() < 0.7 and len(data) >= at + 9:
            out[at + 5 : at + 9] = struct.pack("<HH", w & 0xFFFF, h & 0xFFFF)
    elif data[:2] == b"BM" and len(data) >= 26:
        sign = rng.choice([1, -1])
        out[18:26] = struct.pack("<ii", min(w, 2**31 - 1), sign * min(h, 2**31 - 1))
    elif data[:2] == b"\xff\xd8":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at > 0 and len(data) >= at + 9:
                out[at + 5 : at + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
    elif data[:2] in (b"P5", b"P6", b"P4"):
        body = data.split(b"\n", 3)[-1]
        return data[:2] + f"\n{w} {h}\n255\n".encode() + body
    elif data[:4] == b"RIFF" and len(data) >= 30:
        if data[12:16] == b"VP8X":  # 24-bit canvas size - 1
            out[24:30] = ((w - 1) % (1 << 24)).to_bytes(3, "little") + (
                (h - 1) % (1 << 24)
            ).to_bytes(3, "little")
        elif data[12:16] == b"VP8L":  # 14-bit size - 1 after the signature byte
            bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
            bits |= ((w - 1) & 0x3FFF) | (((h - 1) & 0x3FFF) << 14)
            out[21:25] = bits.to_bytes(4, "little")
        else:
            out[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    elif data[:2] in (b"II", b"MM"):
        order = "<" if data[:2] == b"II" else ">"
        (ifd,) = struct.unpack(order + "I", data[4:8])
        if ifd + 2 <= len(data):
            (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
            for i in range(count):
                at = ifd + 2 + 12 * i
                if at + 12 > len(data):
                    break
                tag, kind = struct.unpack(order + "HH", data[at : at + 4])
                if tag in (256, 257):
                    value = w if tag == 256 else h
                    packed = (
                        struct.pack(order + "H", value & 0xFFFF) + b"\0\0"
                        if kind == 3
                        else struct.pack(order + "I", value & 0xFFFFFFFF)
                    )
                    out[at + 8 : at + 12] = packed
    return bytes(out)


# -- a model that only declares inputs --------------------------------------------------------


def spec_model(inputs: list[tuple[str, Any, Any]]) -> Any:
    """A :class:`pyinfer.backends.base.Model` with these ``(name, shape, dtype)`` inputs."""
    from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec

    class SpecModel(Model):
        def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
            raise NotImplementedError

        def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
            raise NotImplementedError

        def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
            raise NotImplementedError

    return SpecModel(
        name="fuzz",
        format=ModelFormat.ONNX,
        framework="numpy",
        device=Device("cpu"),
        path=None,
        inputs=[TensorSpec(n, s, d) for n, s, d in inputs],
        outputs=[],
        parameter_count=0,
        parameter_bytes=0,
    )


def random_specs(rng: random.Random, image: bool = False) -> list[tuple[str, Any, Any]]:
    """Input specs: names, shapes (fixed, named, unknown dims; rank 0-5) and dtypes."""
    # 10**8 is over MAX_IMAGE_PIXELS with any other side: refused at once, never made.
    dims: tuple[Any, ...] = (1, 2, 3, 3, 4, 8, 0, None, "batch", "n", 224, 10**8)
    specs = []
    for i in range(rng.choice([1, 1, 1, 2, 3])):
        if image and i == 0 and rng.random() < 0.8:
            sides = dims if rng.random() < 0.2 else (3, 4, 8, 8, None, "h")
            shape: Any = ["batch", *(rng.choice(sides) for _ in range(3))]
            if rng.random() < 0.8:
                shape[1 if rng.random() < 0.5 else 3] = rng.choice([1, 3, 3])
        else:
            shape = (
                None if rng.random() < 0.1 else [rng.choice(dims) for _ in range(rng.randrange(5))]
            )
        dtype = rng.choice(["float32", "float32", "float16", "float64", "int64", "uint8", "bool"])
        if image and i == 0 and rng.random() < 0.8:
            dtype = rng.choice(["float32", "float32", "float16", "float64"])
        specs.append(
            (rng.choice(["x", "input_ids", "images", "", "x"]) + str(i or ""), shape, dtype)
        )
    return specs


# -- the campaign -----------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One input: the step's constructor arguments and the item (or items) it is called on."""

    args: dict[str, Any]
    item: Any
    note: str = ""


class PreprocessorCampaign:
    """Random constructions of one preprocessor, called on random items; results checked."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.name: str = config["campaign"]
        self.seed = config["seed"]
        self._seeds: list[tuple[str, bytes]] | None = None
        self._scratch: Path | None = None

    @property
    def seeds(self) -> list[tuple[str, bytes]]:
        if self._seeds is None:
            self._seeds = image_seeds()
        return self._seeds

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"pyinfer-fuzz-{self.name}-"))
            atexit.register(shutil.rmtree, self._scratch, True)
        return self._scratch

    # -- inputs ---------------------------------------------------------------------------------

    def case(self, index: int) -> Case:
        rng = rng_for(self.seed, index)
        return Case(*getattr(self, f"_case_{self.name}")(rng, index))

    def image_item(self, rng: random.Random, index: int, intact: float = 0.1) -> tuple[Any, str]:
        """An item for Decode: damaged image bytes, a path, a PIL image, an array, an object."""
        kind = index % 10
        if kind < 6:
            suffix, data = rng.choice(self.seeds)
            how = MUTATIONS[rng.randrange(6)] if kind < 4 else "huge_dims"
            if rng.random() < intact:
                how = "intact"
            elif how == "huge_dims":
                data = huge_dims(data, rng)
            else:
                data = mutate_bytes(data, rng, how)
            if rng.random() < 0.3:
                return ("file", suffix, data), f"{how} {suffix} file"
            return data, f"{how} {suffix} bytes"
        if kind == 6:
            return random_bytes(rng), "random bytes"
        if kind == 7:
            return (
                rng.choice([("missing",), ("folder",), ("nul",), ("empty",), ("long",)]),
                "a path that is no image file",
            )
        if kind == 8:
            return random_pil(rng), "PIL image"
        return odd_value(rng), "an odd value"

    def _case_decode(self, rng: random.Random, index: int) -> tuple[dict[str, Any], Any, str]:
        args = {
            "mode": arg(rng, ("RGB", "RGB", "L", "RGBA", "1", "P", "CMYK", "I", "F", "LAB"), ("",)),
            "draft_size": arg(rng, (None, None, (8, 8), (1, 1)), ((0, 0), (-3, 5), (4,), 7)),
            "exif_transpose": rng.random() < 0.5,
        }
        item, note = self.image_item(rng, index)
        return args, item, note

    def _case_resize_shorter(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        interp = ("bilinear", "nearest", "bicubic", "lanczos", "box", "hamming", "cubic", "")
        args = {
            "size": size_arg(rng, pairs=False),
            "interpolation": arg(rng, interp[:6], interp[6:]),
        }
        return args, self.array_or_image(rng), ""

    def _case_center_crop(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        return {"size": size_arg(rng)}, self.array_or_image(rng), ""

    def _case_resize_center_crop(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        interp = ("bilinear", "nearest", "bicubic", "box")
        args = {
            "resize": size_arg(rng, pairs=False),
            "crop": size_arg(rng),
            "interpolation": arg(rng, interp, ("sinc",)),
        }
        return args, self.array_or_image(rng), ""

    def array_or_image(self, rng: random.Random) -> Any:
        roll = rng.random()
        if roll < 0.4:
            return random_pil(rng)
        if roll < 0.9:
            return random_array(rng, image=True)
        return odd_value(rng)

    def any_array(self, rng: random.Random) -> Any:
        roll = rng.random()
        if roll < 0.7:
            return random_array(rng, image=rng.random() < 0.5)
        if roll < 0.8:
            return random_pil(rng)
        if roll < 0.9:
            return random_array(rng).tolist()
        return odd_value(rng)

    def _case_to_float(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        args = {
            "scale": arg(rng, (1 / 255, 1.0, 0.0, -2.0, 1e300), (float("nan"), float("inf"), "2")),
            "dtype": arg(rng, ("float32", "float32", "float64", "float16"), DTYPES),
        }
        return args, self.any_array(rng), ""

    MEANS: tuple[Any, ...] = (
        (0.485, 0.456, 0.406), (0.5,), 0.5, (0.1, 0.2, 0.3, 0.4), [0.1, 0.2],
        (0.485, 0.456, 0.406), (0.5,), 0.5, (0.1, 0.2, 0.3, 0.4), (), [[0.1, 0.2]],
        (float("nan"), 0.0, 0.0), (0.0, 0.0, float("inf")), ("a", "b", "c"), (1e308, -1e308, 0),
    )  # fmt: skip
    STDS: tuple[Any, ...] = (
        (0.229, 0.224, 0.225), (0.5,), 0.25, (1.0, 1.0, 1.0, 1.0), [2.0, 0.5],
        (0.229, 0.224, 0.225), (0.5,), 0.25, (1.0, 1.0, 1.0, 1.0), (), (0.0, 1.0, 1.0),
        (float("nan"), 1.0, 1.0), (1e-320, 1.0, 1.0), (-1.0, -1.0, -1.0), (1e-30,),
    )  # fmt: skip

    def _case_normalize(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        mean, std = mean_std(rng)
        args = {"mean": mean, "std": std}
        if rng.random() < 0.6:  # mostly a float image, to reach the arithmetic
            channels = len(std) if isinstance(std, list) and rng.random() < 0.8 else 3
            dtype = rng.choice(["float32", "float32", "float64", "float16"])
            shape = (rng.randrange(4), rng.randrange(1, 5), channels)[rng.randrange(2) :]
            np_rng = np.random.default_rng(rng.getrandbits(64))
            return args, np.array(_fill(np_rng, shape, np.dtype(dtype))), ""
        return args, self.any_array(rng), ""

    def _case_to_layout(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        layout = arg(rng, ("CHW", "HWC"), ("NCHW", "chw", ""))
        return {"layout": layout}, self.any_array(rng), ""

    def _case_to_dtype(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        dtypes = (*DTYPES, "float32", "bogus", "V4", "int", "c16")
        return {"dtype": pick(rng, dtypes)}, self.any_array(rng), ""

    def _case_normalize_image(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        args = {
            **dict(zip(("mean", "std"), mean_std(rng), strict=True)),
            "scale": arg(rng, (1 / 255, 1 / 255, 1.0, 0.0), (float("nan"),)),
            "layout": arg(rng, ("CHW", "HWC"), ("WHC",)),
            "dtype": arg(rng, ("float32", "float32", "float64", "float16"), ("int32", "bool")),
        }
        return args, self.any_array(rng) if rng.random() < 0.5 else self.array_or_image(rng), ""

    def pipeline_args(self, rng: random.Random) -> dict[str, Any]:
        size = arg(rng, (224, 8, 1, (6, 10), (10, 6)), (0, (3, -1), "224", 10**5))
        mean, std = mean_std(rng) if rng.random() < 0.3 else (None, None)
        mode = arg(rng, ("RGB", "RGB", "L"), ("RGBA", "P"))
        if isinstance(mode, str) and mode == "L" and mean is not None and rng.random() < 0.9:
            mean, std = (0.5,), (0.25,)
        return {
            "size": size,
            "resize": arg(rng, (None, None, None, 8, 1), (0, 30000)),
            "layout": arg(rng, ("CHW", "HWC", "CHW"), ("NHWC",)),
            "dtype": arg(rng, ("float32", "float32", "float16", "float64"), ("int8", "uint8")),
            "interpolation": arg(rng, ("bilinear", "bicubic", "nearest", "lanczos", "box"), ("",)),
            "mean": mean,
            "std": std,
            "mode": mode,
            "input_name": arg(rng, (None, "x", "", "images"), (3,)),
            "fast_decode": rng.random() < 0.3,
            "exif_transpose": rng.random() < 0.3,
        }

    def _case_imagenet(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        args = self.pipeline_args(rng)
        if rng.random() < 0.8:  # mostly plausible sizes, to reach the steps after the crop
            args["size"], args["resize"] = rng.choice([(8, None), ((6, 10), 12), (4, 4), (16, 9)])
        item, note = self.image_item(rng, index, intact=0.5)
        return args, item, note

    def _case_for_model(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        specs = random_specs(rng, image=True)
        keep = ("interpolation", "mean", "std", "exif_transpose", "fast_decode")
        args = {
            k: v for k, v in self.pipeline_args(rng).items() if k in keep and rng.random() < 0.3
        }
        item, note = self.image_item(rng, index, intact=0.5)
        return {"specs": specs, "kwargs": args}, item, note

    def _case_compose(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        # A chain of 1-5 steps, each with arguments its own campaign would make.
        names = ("decode", "resize_shorter", "center_crop", "to_float", "normalize", "to_layout",
                 "to_dtype", "resize_center_crop", "normalize_image")  # fmt: skip
        if rng.random() < 0.6:  # the usual chain, some steps left out
            chain = ["decode", "resize_shorter", "center_crop", "to_float", "normalize",
                     "to_layout", "to_dtype"]  # fmt: skip
            chosen = [n for n in chain if rng.random() < 0.8]
        else:
            chosen = [rng.choice(names) for _ in range(rng.randrange(1, 6))]
        steps = [(n, getattr(self, f"_case_{n}")(rng, index)[0]) for n in chosen or ["to_float"]]
        args = {
            "steps": steps,
            "input_name": arg(rng, (None, "x"), (3,)),
            "check": random_specs(rng, image=True) if rng.random() < 0.3 else None,
        }
        decode = steps[0][0] == "decode"
        item = self.image_item(rng, index, intact=0.5)[0] if decode else self.any_array(rng)
        return args, item, ""

    # -- text -----------------------------------------------------------------------------------

    def random_vocab(self, rng: random.Random) -> Any:
        words = [random_text(rng)[:12] for _ in range(rng.randrange(12))]
        words += ["the", "cat", "sat", "The", "", " ", "[PAD]", "[UNK]"][: rng.randrange(9)]
        roll = rng.random()
        if roll < 0.5:
            return ("list", words)
        if roll < 0.6:
            return ("list", [*words, rng.choice([None, 3, b"bytes", ("a",), 2.5])])
        if roll < 0.7:
            return ("corpus", [random_text(rng) for _ in range(rng.randrange(6))],
                    arg(rng, (1, 2, 0), (-1,)), arg(rng, (None, 3, 0, 10**9), (-2,)))  # fmt: skip
        mapping: dict[Any, Any] = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
        for i, word in enumerate(words):
            mapping[word] = i + 4
        if rng.random() < 0.5:
            key = rng.choice([*mapping, 7, None, b"x"])
            mapping[key] = pick(rng, (-1, 2**63, 2**70, "5", 4.5, None, True, 100), 0.1)
        return ("mapping", mapping)

    def _case_vocab_tokenizer(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        args = {
            "vocab": self.random_vocab(rng),
            "lowercase": arg(rng, (True, False)),
            "add_special_tokens": rng.random() < 0.7,
        }
        text = random_text(rng) if rng.random() < 0.85 else odd_value(rng)
        return args, text, ""

    def random_tokenizer(self, rng: random.Random) -> Any:
        roll = rng.random()
        if roll < 0.4:
            return ("vocab", self.random_vocab(rng))
        returns = (
            [2, 5, 3], [], [0], [-1, 7], [2**40], [2**63], [2**70], [1.5, 2.0], np.array([[2, 3]]),
            np.array([1, 2], np.uint64), np.array([3.0, np.nan]), "ids", None, [[1, 2], [3]],
            {"input_ids": [2, 9, 3]}, {"ids": [1]}, [True, False], [1, None], list(range(300)),
            np.zeros((0, 4), np.int64), [np.int64(4), 5], ["1", "2"],
        )  # fmt: skip
        result = rng.choice(returns)
        return ("encode" if roll < 0.7 else "callable", result)

    def _case_text_pipeline(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        names = ({}, {"input_ids": "ids"}, {"attention_mask": "input_ids"}, {"input_ids": 3},
                 {"token_type_ids": "attention_mask"}, {"extra": "x"})  # fmt: skip
        args = {
            "tokenizer": self.random_tokenizer(rng),
            "max_length": arg(rng, (8, 8, 1, 2, 3, 128, 100_000), (0, -4, 2.5)),
            "padding": arg(rng, ("max_length", "longest", "max_length"), ("left",)),
            "truncation": rng.random() < 0.7,
            "pad_id": arg(rng, (None, None, 0, 1), (-1, 300, 2**63)),
            "token_type_ids": rng.random() < 0.3,
            "attention_mask": rng.random() < 0.8,
            "dtype": arg(rng, ("int64", "int64", "int32", "int8", "uint8"), ("float32", "bool")),
            "names": arg(rng, (None, None, None, {"input_ids": "ids"}), names),
        }
        texts = [random_text(rng) if rng.random() < 0.9 else odd_value(rng) for _ in range(3)]
        return args, texts, ""

    # -- input helpers -------------------------------------------------------------------------

    def random_item(self, rng: random.Random, specs: list[tuple[str, Any, Any]]) -> Any:
        if rng.random() < 0.1:
            return odd_value(rng)
        item: dict[Any, Any] = {}
        for name, shape, dtype in specs:
            if rng.random() < 0.1:
                continue  # a missing input
            if shape is not None and rng.random() < 0.8:
                dims = [
                    d if isinstance(d, int) and d < 64 else rng.choice([1, 2, 3]) for d in shape
                ]
                kind = dtype if rng.random() < 0.8 else rng.choice(DTYPES)
                value: Any = np.zeros(dims[1:], dtype=kind)
            else:
                value = self.any_array(rng)
            item[name] = value
        if rng.random() < 0.1:
            item[rng.choice(["extra", 1, None])] = np.zeros(2)
        return item

    def _case_cast_arrays(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        specs = random_specs(rng)
        casting = arg(rng, ("safe", "same_kind"), ("unsafe", None))
        return {"specs": specs, "casting": casting}, self.random_item(rng, specs), ""

    def _case_check_item(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        specs = random_specs(rng)
        args = {
            "specs": specs,
            "casting": arg(rng, (None, "safe", "same_kind"), ("equiv",)),
            "where": pick(rng, ("", " (item 3)")),
        }
        return args, self.random_item(rng, specs), ""

    def _case_as_item(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        specs = random_specs(rng)
        item = self.random_item(rng, specs) if rng.random() < 0.3 else self.any_array(rng)
        return {"specs": specs}, item, ""

    def _case_as_array(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        return {"what": pick(rng, ("an input", ""))}, self.any_array(rng), ""

    def _case_stack_items(self, rng: random.Random, index: int) -> tuple[Any, Any, str]:
        specs = random_specs(rng)
        count = rng.choice([0, 1, 1, 2, 2, 3, 3, 5, 5, 8])
        items = [self.random_item(rng, specs) for _ in range(count)]
        if items and rng.random() < 0.5:  # mostly like items, to reach the stacking
            items = [items[0]] * len(items)
        return {}, items, ""

    # -- running one ----------------------------------------------------------------------------

    def save(self, case: Case, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "case.txt").write_text(f"{self.name}: {case.note}\nargs={case.args!r}\n"[:20000])
        if isinstance(case.item, (bytes, bytearray)):
            (folder / "item.bin").write_bytes(case.item)
        elif isinstance(case.item, tuple) and case.item[:1] == ("file",):
            (folder / f"item{case.item[1]}").write_bytes(case.item[2])
        try:
            (folder / "case.pkl").write_bytes(pickle.dumps(case))
        except Exception:  # an unpicklable odd value: the text and the index still replay it
            (folder / "case.txt").open("a").write(f"item={case.item!r}"[:20000])
        return folder

    def run(self, case: Case) -> str:
        check: Callable[[Any, Case], str] = getattr(self, f"_run_{self.name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # see the module docstring
            return check(self.item_for(case.item), case)

    def item_for(self, item: Any) -> Any:
        """The item as the step gets it: path cases become files (or missing paths) here."""
        if not (isinstance(item, tuple) and item and isinstance(item[0], str)):
            return item
        where = self.scratch
        if item[0] == "file":
            path = where / f"image{item[1]}"
            path.write_bytes(item[2])
            return path
        if item[0] == "missing":
            return where / "missing.png"
        if item[0] == "folder":
            return where
        if item[0] == "nul":
            return str(where / "a\0b.png")
        if item[0] == "empty":
            return ""
        if item[0] == "long":
            return where / ("x" * 300 + ".png")
        return item

    # Each ``_run_<campaign>`` builds the step, calls it, and checks what it promises.

    def _run_decode(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import Decode

        step = Decode(**case.args)
        image = step(item)
        _expect_image(image, step.mode)
        return "ok"

    def _run_resize_shorter(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ResizeShorter

        step = ResizeShorter(**case.args)
        out = step(item)
        size = _image_size(item)
        _expect(out.size == step.output_size(*size), f"resized to {out.size}, not {size}")
        _expect(min(out.size) == step.size or size == out.size, f"shorter side of {out.size}")
        return "ok"

    def _run_center_crop(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import CenterCrop

        step = CenterCrop(**case.args)
        out = step(item)
        if isinstance(item, np.ndarray):
            _expect(out.shape == (step.height, step.width, *item.shape[2:]), f"crop {out.shape}")
            _expect(out.dtype == item.dtype, f"crop changed the dtype to {out.dtype}")
        else:
            _expect(out.size == (step.width, step.height), f"crop of size {out.size}")
            _expect(out.mode == item.mode, f"crop changed the mode to {out.mode}")
        return "ok"

    def _run_to_float(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ToFloat

        step = ToFloat(**case.args)
        out = step(item)
        _expect(isinstance(out, np.ndarray) and out.dtype == step.dtype, f"ToFloat gave {out!r}")
        _expect(out.dtype.kind == "f", f"ToFloat gave {out.dtype}")
        _expect(out.shape == np.asarray(item).shape, f"ToFloat changed the shape: {out.shape}")
        return "ok"

    def _run_normalize(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import Normalize

        step = Normalize(**case.args)
        out = step(item)
        _expect(out.dtype == item.dtype, f"Normalize turned {item.dtype} into {out.dtype}")
        _expect(out.shape == item.shape, f"Normalize turned {item.shape} into {out.shape}")
        _expect(np.isfinite(step.mean).all() and np.isfinite(step.std).all(), "non-finite mean")
        return "ok"

    def _run_to_layout(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ToLayout

        step = ToLayout(**case.args)
        out = step(item)
        hwc = np.asarray(item)
        hwc = hwc[:, :, None] if hwc.ndim == 2 else hwc
        want = hwc.shape if step.layout == "HWC" else (hwc.shape[2], *hwc.shape[:2])
        _expect(out.shape == want and out.flags.c_contiguous, f"{out.shape}, not {want}")
        return "ok"

    def _run_to_dtype(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ToDtype

        step = ToDtype(**case.args)
        out = step(item)
        _expect(out.dtype == step.dtype, f"ToDtype gave {out.dtype}, not {step.dtype}")
        _expect(out.shape == np.asarray(item).shape, f"ToDtype changed the shape: {out.shape}")
        return "ok"

    def _run_resize_center_crop(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ResizeCenterCrop

        step = ResizeCenterCrop(**case.args)
        out = step(item)
        want = (step.crop.width, step.crop.height)
        _expect(out.size == want, f"ResizeCenterCrop gave {out.size}, not {want}")
        return "ok"

    def _run_normalize_image(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import NormalizeImage

        step = NormalizeImage(**case.args)
        out = step(item)
        _expect(out.dtype == step.dtype and out.ndim == 3, f"{out.dtype} {out.shape}")
        return "ok"

    def _run_compose(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import Compose

        steps = [_build(name, args) for name, args in case.args["steps"]]
        pipeline = Compose(steps, input_name=case.args["input_name"])
        out = pipeline(item)
        if case.args["input_name"] is not None:
            _expect(list(out) == [case.args["input_name"]], f"Compose gave {list(out)}")
        if case.args["check"] is not None:
            checked = pipeline.check(spec_model(case.args["check"]), item)
            _expect(all(isinstance(v, np.ndarray) for v in checked.values()), "check()")
        return "ok"

    def _run_imagenet(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ImagePipeline

        pipeline = ImagePipeline.imagenet(**case.args)
        out = pipeline(item)
        if case.args["input_name"] is not None:
            out = out[case.args["input_name"]]
        crop = pipeline.steps[1].crop
        norm = pipeline.steps[2]
        channels = norm.steps[1].mean.size
        channels = 3 if channels == 1 and case.args["mode"] == "RGB" else channels
        want = (crop.height, crop.width)
        want = (channels, *want) if norm.layout == "CHW" else (*want, channels)
        _expect(out.shape == want, f"imagenet() gave {out.shape}, not {want}")
        _expect(out.dtype == norm.dtype, f"imagenet() gave {out.dtype}")
        _expect_in_table(out, norm)
        return "ok"

    def _run_for_model(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import ImagePipeline

        model = spec_model(case.args["specs"])
        pipeline = ImagePipeline.for_model(model, **case.args["kwargs"])
        out = pipeline(item)
        spec = model.inputs[0]
        _expect(list(out) == [spec.name], f"for_model gave {list(out)}")
        _expect(out[spec.name].dtype == spec.dtype, f"for_model gave {out[spec.name].dtype}")
        _expect_in_table(out[spec.name], pipeline.steps[2])
        if len(model.inputs) == 1:
            pipeline.check(model, item)  # it fits, or says why not
        return "ok"

    def _run_vocab_tokenizer(self, item: Any, case: Case) -> str:
        tokenizer = _tokenizer(case.args["vocab"], case.args["lowercase"])
        ids = tokenizer.encode(item, add_special_tokens=case.args["add_special_tokens"])
        known = set(tokenizer.vocab.values())
        _expect(all(type(i) is int and i in known for i in ids), f"ids {ids[:10]} not in vocab")
        if case.args["add_special_tokens"]:
            _expect(ids[0] == 2 and ids[-1] == 3, f"ids {ids[:10]} lack [CLS] ... [SEP]")
        _expect(all(isinstance(w, str) for w in tokenizer.tokenize(item)), "tokens not str")
        return "ok"

    def _run_text_pipeline(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import TextPipeline

        args = dict(case.args)
        kind, spec = args.pop("tokenizer")
        pipeline = TextPipeline(_text_tokenizer(kind, spec), **args)
        outs = [pipeline(text) for text in item]
        for out in outs:
            ids = out[pipeline.names["input_ids"]]
            _expect(ids.dtype == pipeline.dtype and ids.ndim == 1, f"ids {ids.dtype} {ids.shape}")
            if pipeline.padding == "max_length":
                _expect(len(ids) == pipeline.max_length, f"{len(ids)} ids, not max_length")
            _expect(len(ids) <= pipeline.max_length, f"{len(ids)} ids > {pipeline.max_length}")
            if pipeline.attention_mask:
                mask = out[pipeline.names["attention_mask"]]
                _expect(mask.shape == ids.shape and set(mask.tolist()) <= {0, 1}, "mask")
                _expect(np.all(ids[mask == 0] == pipeline.pad_id), "padding is not pad_id")
            want = {"input_ids", "attention_mask", "token_type_ids"}
            want -= set() if pipeline.attention_mask else {"attention_mask"}
            want -= set() if pipeline.token_type_ids else {"token_type_ids"}
            _expect(set(out) == {pipeline.names[n] for n in want}, f"outputs {sorted(out)}")
        batch = pipeline.collate(outs)
        for value in batch.values():
            _expect(value.shape[0] == len(outs) and value.dtype == pipeline.dtype, "collate")
        return "ok"

    def _run_cast_arrays(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import cast_arrays

        model = spec_model(case.args["specs"])
        out = cast_arrays(item, model.inputs, case.args["casting"])
        for spec in model.inputs:
            if spec.name in out:
                _expect(out[spec.name].dtype == spec.dtype, f"cast gave {out[spec.name].dtype}")
        return "ok"

    def _run_check_item(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import check_item

        model = spec_model(case.args["specs"])
        out = check_item(model, item, casting=case.args["casting"], where=case.args["where"])
        _expect(list(out) == model.input_names(), f"check_item gave {list(out)}")
        for spec in model.inputs:
            value = out[spec.name]
            _expect(value.dtype == spec.dtype and value.flags.c_contiguous, "check_item dtype")
            if spec.shape is not None:  # a rank-0 spec takes rank-0 items (no batch axis)
                rank = max(0, len(spec.shape) - 1)
                _expect(value.ndim == rank, f"rank {value.ndim} for {spec}")
        return "ok"

    def _run_as_item(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import as_item

        model = spec_model(case.args["specs"])
        out = as_item(model, item)
        _expect(isinstance(out, dict), f"as_item gave {type(out).__name__}")
        return "ok"

    def _run_as_array(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import as_array

        out = as_array(item, case.args["what"])
        _expect(isinstance(out, np.ndarray), f"as_array gave {type(out).__name__}")
        return "ok"

    def _run_stack_items(self, item: Any, case: Case) -> str:
        from pyinfer.preprocess import stack_items

        out = stack_items(item)
        for name, value in out.items():
            _expect(value.shape[0] == len(item), f"stacked {name} of {value.shape}")
        return "ok"


# -- building steps and checking results ------------------------------------------------------


def _build(name: str, args: Mapping[str, Any]) -> Any:
    import pyinfer.preprocess as pre

    return getattr(pre, CAMPAIGNS[name])(**args)


def _tokenizer(vocab: Any, lowercase: Any) -> Any:
    from pyinfer.preprocess import VocabTokenizer

    if vocab[0] == "corpus":
        return VocabTokenizer.from_corpus(
            vocab[1], min_count=vocab[2], max_size=vocab[3], lowercase=lowercase
        )
    return VocabTokenizer(vocab[1], lowercase=lowercase)


class _Encodes:
    """A tokenizer object whose ``encode`` returns a fixed (odd) result."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.sep_token_id = 3

    def encode(self, text: str) -> Any:
        return self.result


def _text_tokenizer(kind: str, spec: Any) -> Any:
    if kind == "vocab":
        return _tokenizer(spec, True)
    if kind == "encode":
        return _Encodes(spec)
    return lambda text: spec


def _expect(ok: Any, what: str) -> None:
    if not ok:
        raise AssertionError(what)


def _image_size(item: Any) -> tuple[int, int]:
    if isinstance(item, np.ndarray):
        return item.shape[1], item.shape[0]
    size: tuple[int, int] = item.size
    return size


def _expect_image(image: Any, mode: str) -> None:
    from PIL import Image

    _expect(isinstance(image, Image.Image), f"Decode gave a {type(image).__name__}")
    _expect(image.mode == mode, f"Decode gave mode {image.mode}, not {mode}")
    _expect(image.width >= 1 and image.height >= 1, f"Decode gave an empty image {image.size}")
    image.load()


def _expect_in_table(out: np.ndarray, norm: Any) -> None:
    """Every value is one a byte maps to (the normalisation table), so finite and in range."""
    table = norm.table.astype(np.float64)
    lo, hi = np.nanmin(table), np.nanmax(table)
    if np.isfinite(table).all():
        values = out.astype(np.float64)
        _expect(np.all((values >= lo) & (values <= hi)), "values outside the byte range")


for _name in CAMPAIGNS:
    register(_name)(PreprocessorCampaign)
