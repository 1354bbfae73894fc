"""Preprocessing pipelines against hand-computed references on tiny images and texts."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Decode,
    ImagePipeline,
    Normalize,
    NormalizeImage,
    ResizeCenterCrop,
    ResizeShorter,
    TextPipeline,
    ToDtype,
    ToFloat,
    ToLayout,
    VocabTokenizer,
    as_item,
    cast_arrays,
    check_item,
    image_layout,
    pipeline_for,
    stack_items,
)

Image = pytest.importorskip("PIL.Image")

# A 4x6 RGB image with known values: red = 9 * (6 * row + col), green = red + 3, blue = red + 6.
IMG = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3).astype(np.uint8)


class SpecModel(Model):
    """A model that only declares inputs (what check() reads); running it is not needed."""

    def __init__(self, *specs: TensorSpec) -> None:
        super().__init__(
            name="spec",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=specs,
            outputs=[],
            parameter_count=0,
            parameter_bytes=0,
        )

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        raise NotImplementedError

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError


def triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's antialiased bilinear filter when shrinking: a triangle scaled to the ratio."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for j in range(n_out):
        centre = (j + 0.5) * scale
        for i in range(n_in):
            m[j, i] = max(0.0, 1.0 - abs(i + 0.5 - centre) / scale)
        m[j] /= m[j].sum()
    return m


# -- image steps against hand computations ------------------------------------------------------


def test_resize_shorter_nearest_picks_the_centre_pixels() -> None:
    out = np.asarray(ResizeShorter(2, "nearest")(IMG))
    assert out.shape == (2, 3, 3)
    # 4x6 -> 2x3: each output pixel samples source pixel floor((j + 0.5) * 2) = rows 1, 3 and
    # columns 1, 3, 5.
    np.testing.assert_array_equal(out, IMG[[1, 3]][:, [1, 3, 5]])
    assert out[0, 0, 0] == 63
    assert out[1, 2, 2] == 213


def test_resize_shorter_bilinear_matches_the_triangle_filter() -> None:
    out = np.asarray(ResizeShorter(2, "bilinear")(Image.fromarray(IMG))).astype(np.float64)
    rows, cols = triangle_weights(4, 2), triangle_weights(6, 3)
    expected = np.einsum("yi,ixc->yxc", rows, np.einsum("xj,ijc->ixc", cols, IMG.astype(float)))
    # Pillow rounds to uint8 between its two passes: within one grey level.
    np.testing.assert_allclose(out, expected, atol=1.0)
    assert out[0, 0, 0] == 45.0  # (0.75*0 + 0.75*9 + 0.25*18)/1.75 = 6.43 per row, rows alike


def test_resize_shorter_sizes_and_errors() -> None:
    # The long side is truncated, as torchvision's Resize: 500 * 224 / 375 = 298.67 -> 298.
    assert ResizeShorter(224).output_size(500, 375) == (298, 224)
    assert ResizeShorter(224).output_size(375, 500) == (224, 298)
    assert ResizeShorter(4)(Image.fromarray(IMG)).size == (6, 4)  # already the size: unchanged
    with pytest.raises(InvalidArgumentError, match="size must be >= 1"):
        ResizeShorter(0)
    with pytest.raises(InvalidArgumentError, match="unknown interpolation 'cubic'"):
        ResizeShorter(2, "cubic")
    with pytest.raises(InvalidInputError, match="put it before ToFloat"):
        ResizeShorter(2)(IMG.astype(np.float32))


def test_center_crop_on_arrays_and_images() -> None:
    np.testing.assert_array_equal(CenterCrop(2)(IMG), IMG[1:3, 2:4])
    np.testing.assert_array_equal(CenterCrop((3, 4))(IMG), IMG[0:3, 1:5])  # round(0.5) == 0
    cropped = CenterCrop(2)(Image.fromarray(IMG))
    np.testing.assert_array_equal(np.asarray(cropped), IMG[1:3, 2:4])
    with pytest.raises(InvalidInputError, match="6x4 is smaller than the 5x5 crop"):
        CenterCrop(5)(IMG)
    with pytest.raises(InvalidArgumentError, match="crop size"):
        CenterCrop(0)


def test_scale_normalise_layout_exact_values() -> None:
    x = ToFloat()(IMG)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, IMG.astype(np.float32) * np.float32(1 / 255))
    normed = Normalize(IMAGENET_MEAN, IMAGENET_STD)(x)
    mean = np.array(IMAGENET_MEAN, np.float32)
    inv_std = (1.0 / np.array(IMAGENET_STD)).astype(np.float32)
    np.testing.assert_array_equal(normed, (x - mean) * inv_std)
    # the corner pixel (0, 3, 6) by hand
    np.testing.assert_allclose(
        normed[0, 0],
        [-0.485 / 0.229, (3 / 255 - 0.456) / 0.224, (6 / 255 - 0.406) / 0.225],
        rtol=1e-6,
    )
    chw = ToLayout("CHW")(normed)
    assert chw.shape == (3, 4, 6)
    assert chw.flags.c_contiguous
    np.testing.assert_array_equal(chw[1], normed[:, :, 1])
    assert ToLayout("HWC")(normed).shape == (4, 6, 3)
    assert ToLayout("CHW")(np.zeros((4, 6))).shape == (1, 4, 6)
    assert ToDtype(np.float16)(normed).dtype == np.float16
    assert Normalize(0.5, 0.25)(np.ones((2, 2), np.float64))[0, 0] == 2.0


def test_step_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="same length"):
        Normalize([0.1, 0.2], [0.3])
    with pytest.raises(InvalidArgumentError, match="must not contain 0"):
        Normalize([0.1], [0.0])
    with pytest.raises(InvalidInputError, match="put ToFloat before it"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(IMG)
    with pytest.raises(InvalidInputError, match="3 channels but the array's last axis is 6"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(np.zeros((3, 4, 6), np.float32))
    with pytest.raises(InvalidArgumentError, match="layout must be"):
        ToLayout("NCHW")
    with pytest.raises(InvalidInputError, match="HxWxC"):
        ToLayout()(np.zeros(3))
    with pytest.raises(InvalidArgumentError, match="not callable"):
        Compose([ToFloat(), 3])  # type: ignore[list-item]


# -- decoding -----------------------------------------------------------------------------------


def test_decode_from_every_source(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(IMG).save(path)
    for source in (path, str(path), path.read_bytes(), Image.fromarray(IMG), IMG):
        img = Decode()(source)
        assert img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), IMG)
    grey = Decode()(IMG[:, :, 0])
    np.testing.assert_array_equal(np.asarray(grey)[:, :, 1], IMG[:, :, 0])
    assert Decode("L")(Image.fromarray(IMG)).mode == "L"


def test_decode_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InvalidInputError, match=r"cannot decode image .*broken\.jpg"):
        Decode()(bad)
    with pytest.raises(InvalidInputError, match=r"image .*missing\.png does not exist"):
        Decode()(tmp_path / "missing.png")
    with pytest.raises(InvalidInputError, match="cannot decode image <bytes>"):
        Decode()(b"nope")
    with pytest.raises(InvalidInputError, match="uint8 of shape HxW"):
        Decode()(np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidInputError, match="cannot decode a int"):
        Decode()(3)


def test_decode_scales_16_bit_grey_to_8_bits(tmp_path: Path) -> None:
    deep = (np.arange(4 * 6, dtype=np.uint16).reshape(4, 6) * 2800).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    with Image.open(path) as opened:
        opened.load()
        assert opened.mode.startswith("I;16")
    expected = (deep >> 8).astype(np.uint8)
    for source in (path, opened):
        rgb = np.asarray(Decode()(source))
        for c in range(3):
            np.testing.assert_array_equal(rgb[:, :, c], expected)  # not clipped at 255
        np.testing.assert_array_equal(np.asarray(Decode("L")(source)), expected)


def test_empty_images_are_typed_errors() -> None:
    with pytest.raises(InvalidInputError, match=r"image array is empty: shape \(0, 10, 3\)"):
        Decode()(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="cannot resize an empty image of 0x4"):
        ResizeShorter(8)(Image.new("RGB", (0, 4)))
    with pytest.raises(InvalidInputError, match="cannot resize an empty image of 5x0"):
        ResizeCenterCrop(8, 4)(Image.new("RGB", (5, 0)))


def test_exif_orientation_applied_only_when_asked(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: turn 90 degrees clockwise to show it
    path = tmp_path / "phone.png"
    Image.fromarray(IMG).save(path, exif=exif)
    np.testing.assert_array_equal(np.asarray(Decode()(path)), IMG)  # as stored, as torchvision
    upright = np.rot90(IMG, k=-1)
    np.testing.assert_array_equal(np.asarray(Decode(exif_transpose=True)(path)), upright)
    with Image.open(path) as opened:
        opened.load()
    np.testing.assert_array_equal(np.asarray(Decode(exif_transpose=True)(opened)), upright)
    grey = np.asarray(Decode("L", exif_transpose=True)(path))
    assert grey.shape == (6, 4)
    pipeline = ImagePipeline.imagenet(4, resize=4, layout="HWC", exif_transpose=True)
    expected = NormalizeImage(IMAGENET_MEAN, IMAGENET_STD, layout="HWC")(upright[1:5])
    np.testing.assert_array_equal(pipeline(path), expected)  # the crop of the upright image


def test_fast_decode_shrinks_large_jpegs_in_the_decoder() -> None:
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG")
    data = buffer.getvalue()
    assert Decode()(data).size == (800, 600)
    assert Decode(draft_size=(256, 256))(data).size == (400, 300)  # 1/2 still >= 256
    fast = ImagePipeline.imagenet(fast_decode=True)(data)
    slow = ImagePipeline.imagenet()(data)
    assert fast.shape == slow.shape == (3, 224, 224)


# -- presets and checks -------------------------------------------------------------------------


def test_imagenet_preset_equals_the_steps_by_hand() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
    out = ImagePipeline.imagenet()(photo)
    assert out.shape == (3, 224, 224)
    assert out.dtype == np.float32
    # Resize the shorter side to 256 (500x375 -> 341x256), crop the centre 224 (left 58, top
    # 16), scale, normalise, CHW: one step at a time.
    resized = np.asarray(Image.fromarray(photo).resize((341, 256), Image.Resampling.BILINEAR))
    crop = resized[16:240, 58:282]
    np.testing.assert_array_equal(np.asarray(ResizeCenterCrop(256, 224)(photo)).shape, crop.shape)
    fused_crop = np.asarray(ResizeCenterCrop(256, 224)(photo)).astype(int)
    np.testing.assert_array_equal(fused_crop, crop)  # the same resampling, the same pixels
    scaled = fused_crop.astype(np.float32) * np.float32(1 / 255)
    by_hand = (scaled - np.array(IMAGENET_MEAN, np.float32)) * (
        1.0 / np.array(IMAGENET_STD)
    ).astype(np.float32)
    np.testing.assert_array_equal(out, by_hand.transpose(2, 0, 1))
    hwc = ImagePipeline.imagenet(32, layout="HWC", input_name="img")(photo)
    assert hwc["img"].shape == (32, 32, 3)
    assert "ResizeCenterCrop(256, (224, 224), 'bilinear')" in repr(ImagePipeline.imagenet())
    with pytest.raises(InvalidInputError, match="resized to 6x4 is smaller than the 5x5 crop"):
        ResizeCenterCrop(4, 5)(IMG)


@pytest.mark.parametrize(("layout", "dtype"), [("CHW", np.float32), ("HWC", np.float16)])
def test_normalize_image_is_bit_identical_to_the_steps(layout: str, dtype: Any) -> None:
    photo = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    fused = NormalizeImage(IMAGENET_MEAN, IMAGENET_STD, layout=layout, dtype=dtype)
    steps = Compose(
        [ToFloat(dtype=dtype), Normalize(IMAGENET_MEAN, IMAGENET_STD), ToLayout(layout)]
    )
    np.testing.assert_array_equal(fused(photo), steps(photo))
    assert fused(photo).dtype == dtype
    floats = photo.astype(np.float32)  # not uint8: the steps run one by one
    np.testing.assert_array_equal(fused(floats), steps(floats))
    assert layout in repr(fused)


def test_layout_and_size_from_the_model() -> None:
    chw = SpecModel(TensorSpec("x", ("N", 3, 32, 32), np.float32))
    hwc = SpecModel(TensorSpec("img", (None, 48, 48, 3), np.float16))
    assert image_layout(chw.inputs[0]) == "CHW"
    assert image_layout(hwc.inputs[0]) == "HWC"
    out = ImagePipeline.for_model(hwc)(IMG)
    assert out["img"].shape == (48, 48, 3)
    assert out["img"].dtype == np.float16
    assert ImagePipeline.for_model(chw).check(chw)["x"].shape == (3, 32, 32)
    dyn = SpecModel(TensorSpec("x", ("N", 3, "h", "w"), np.float32))
    assert ImagePipeline.for_model(dyn)(IMG)["x"].shape == (3, 224, 224)
    with pytest.raises(InvalidArgumentError, match="not an image batch"):
        image_layout(TensorSpec("x", ("N", 4), np.float32))
    unknown = SpecModel(TensorSpec("x", None, np.float32))  # a TorchScript file's input
    with pytest.raises(InvalidArgumentError, match=r"no declared shape.*ImagePipeline\.imagenet"):
        ImagePipeline.for_model(unknown)
    with pytest.raises(InvalidArgumentError, match="cannot tell the channel axis"):
        image_layout(TensorSpec("x", ("N", 5, 8, 8), np.float32))


def test_pipeline_for_each_kind_of_item_and_why_a_model_cannot_take_it() -> None:
    images = SpecModel(TensorSpec("x", ("N", 3, 32, 32), np.float32))
    vectors = SpecModel(TensorSpec("x", ("N", 4), np.float32))
    chosen = pipeline_for(images, "image", "a.png is read as an image")
    assert isinstance(chosen, ImagePipeline)
    assert chosen(IMG)["x"].shape == (3, 32, 32)
    assert pipeline_for(vectors, "array", "unused") is None
    with pytest.raises(
        InvalidArgumentError,
        match=r"^a\.png is read as an image, but model 'spec' takes no images: .*not an image "
        r"batch.*; give it \.npy or \.npz arrays$",
    ):
        pipeline_for(vectors, "image", "a.png is read as an image")
    with pytest.raises(
        InvalidArgumentError,
        match=r"^the inputs are texts, but model 'spec' has no tokenizer: .*; load a Hugging Face "
        r"folder with its tokenizer, or give token ids as \.npz arrays$",
    ):
        pipeline_for(vectors, "text", "the inputs are texts")
    with pytest.raises(InvalidArgumentError, match=r"unknown kind of item 'audio': use one of"):
        pipeline_for(vectors, "audio", "x")


def test_for_model_fits_grey_and_non_square_inputs() -> None:
    grey_model = SpecModel(TensorSpec("x", ("N", 1, 4, 6), np.float32))
    grey = IMG[:, :, 0]
    pipeline = ImagePipeline.for_model(grey_model, resize=4)  # 6x4 image: no resampling
    out = pipeline.check(grey_model, grey)["x"]
    assert out.shape == (1, 4, 6)
    by_hand = (grey.astype(np.float32) * np.float32(1 / 255) - np.float32(0.449)) * np.float32(
        1 / 0.226
    )
    np.testing.assert_allclose(out[0], by_hand, rtol=1e-6)
    assert pipeline.check(grey_model, IMG)["x"].shape == (1, 4, 6)  # colour made grey
    keras_grey = SpecModel(TensorSpec("img", (None, 28, 28, 1), np.float32))
    assert ImagePipeline.for_model(keras_grey).check(keras_grey)["img"].shape == (28, 28, 1)
    wide = SpecModel(TensorSpec("img", (None, 4, 6, 3), np.float32))
    out = ImagePipeline.for_model(wide, resize=4).check(wide, IMG)["img"]
    expected = NormalizeImage(IMAGENET_MEAN, IMAGENET_STD, layout="HWC")(IMG)
    np.testing.assert_array_equal(out, expected)  # the whole 6x4 image, not a 4x4 crop
    chw = SpecModel(TensorSpec("x", ("N", 3, 32, 32), np.float32))
    assert ImagePipeline.for_model(chw, size=np.int64(32)).check(chw)["x"].shape == (3, 32, 32)
    tall = SpecModel(TensorSpec("x", ("N", 3, 48, "w"), np.float32))
    assert ImagePipeline.for_model(tall).check(tall)["x"].shape == (3, 48, 48)
    with pytest.raises(InvalidArgumentError, match="mode must be 'RGB' or 'L'"):
        ImagePipeline.imagenet(mode="CMYK")  # type: ignore[arg-type]


def test_check_reports_a_pipeline_that_does_not_fit() -> None:
    model = SpecModel(TensorSpec("x", ("N", 3, 32, 32), np.float32))
    with pytest.raises(
        InvalidInputError,
        match=r"ImagePipeline output does not fit model 'spec': .*'x'.*\(3, 32, 32\) per item.*"
        r"got \(3, 224, 224\)",
    ):
        ImagePipeline.imagenet().check(model)
    with pytest.raises(InvalidInputError, match="must be float32, got float64"):
        ImagePipeline.imagenet(32, dtype=np.float64).check(model)


def test_check_item_and_cast_arrays() -> None:
    model = SpecModel(
        TensorSpec("ids", ("batch", "seq"), np.int64), TensorSpec("x", ("batch", 2), np.float32)
    )
    ok = check_item(model, {"x": np.zeros(2, np.float32), "ids": np.zeros(5, np.int64)})
    assert list(ok) == ["ids", "x"]
    cast = check_item(
        model, {"x": np.zeros(2, np.float64), "ids": np.zeros(5, np.int32)}, casting="same_kind"
    )
    assert cast["x"].dtype == np.float32
    assert cast["ids"].dtype == np.int64
    assert (
        cast_arrays({"ids": np.zeros(3, np.uint8)}, model.inputs, "safe")["ids"].dtype == np.int64
    )
    with pytest.raises(InvalidInputError, match="'x' is float64 and cannot be cast to float32"):
        cast_arrays({"x": np.zeros(2)}, model.inputs, "safe")
    with pytest.raises(InvalidArgumentError, match="casting must be"):
        cast_arrays({}, model.inputs, "unsafe")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"'ids'.*shape \(\?,\) per item.*got \(2, 2\)"):
        check_item(model, {"x": np.zeros(2, np.float32), "ids": np.zeros((2, 2), np.int64)})


# -- text ---------------------------------------------------------------------------------------


def test_vocab_tokenizer() -> None:
    tok = VocabTokenizer(["hello", "world", ","])
    assert tok.tokenize("Hello, WORLD!") == ["hello", ",", "world", "!"]
    assert tok.encode("Hello, WORLD!") == [2, 4, 6, 5, 1, 3]
    assert tok.encode("hello", add_special_tokens=False) == [4]
    assert len(tok) == 7
    corpus = VocabTokenizer.from_corpus(["b a b", "c b a"], max_size=2)
    assert corpus.vocab == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "b": 4, "a": 5}
    assert VocabTokenizer.from_corpus(["x y y"], min_count=2).encode("x y") == [2, 1, 4, 3]
    mapping = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "Yes": 4}
    assert VocabTokenizer(mapping, lowercase=False)("Yes yes") == [2, 4, 1, 3]
    with pytest.raises(InvalidArgumentError, match=r"must map \[UNK\] to 1"):
        VocabTokenizer({"[PAD]": 0, "[UNK]": 7})


def test_text_pipeline_padding_and_truncation() -> None:
    tok = VocabTokenizer(["a", "b", "c", "d"])
    padded = TextPipeline(tok, max_length=6)("a b")
    np.testing.assert_array_equal(padded["input_ids"], [2, 4, 5, 3, 0, 0])
    np.testing.assert_array_equal(padded["attention_mask"], [1, 1, 1, 1, 0, 0])
    assert padded["input_ids"].dtype == np.int64
    assert "token_type_ids" not in padded
    cut = TextPipeline(tok, max_length=4, token_type_ids=True)("a b c d")
    np.testing.assert_array_equal(cut["input_ids"], [2, 4, 5, 3])  # the [SEP] is kept
    np.testing.assert_array_equal(cut["token_type_ids"], [0, 0, 0, 0])
    with pytest.raises(InvalidInputError, match="6 tokens is longer than max_length=4"):
        TextPipeline(tok, max_length=4, truncation=False)("a b c d")
    longest = TextPipeline(tok, max_length=8, padding="longest", dtype=np.int32)
    items = [longest("a"), longest("a b c")]
    assert items[0]["input_ids"].shape == (3,)
    batch = longest.collate(items)
    np.testing.assert_array_equal(batch["input_ids"], [[2, 4, 3, 0, 0], [2, 4, 5, 6, 3]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert batch["input_ids"].dtype == np.int32
    with pytest.raises(InvalidInputError, match="takes a str"):
        longest(3)
    with pytest.raises(InvalidArgumentError, match="max_length"):
        TextPipeline(tok, max_length=0)
    with pytest.raises(InvalidArgumentError, match="padding must be"):
        TextPipeline(tok, padding="right")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="neither callable nor has encode"):
        TextPipeline(object())
    assert "max_length=8" in repr(longest)


class HuggingFaceLike:
    """Duck-typed like a transformers tokenizer: encode() with special ids, pad and sep ids."""

    pad_token_id = 1
    sep_token_id = 2

    def encode(self, text: str) -> list[int]:
        return [0, *(10 + len(w) for w in text.split()), 2]


def test_user_tokenizers_are_duck_typed() -> None:
    hf = TextPipeline(HuggingFaceLike(), max_length=4)
    np.testing.assert_array_equal(hf("hi there")["input_ids"], [0, 12, 15, 2])
    np.testing.assert_array_equal(hf("a")["input_ids"], [0, 11, 2, 1])  # padded with pad id 1
    np.testing.assert_array_equal(hf("a bb ccc")["input_ids"], [0, 11, 12, 2])

    def as_mapping(text: str) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}

    plain = TextPipeline(as_mapping, max_length=3)
    np.testing.assert_array_equal(plain("abcd")["input_ids"], [97, 98, 99])  # no sep: plain cut
    arrays = TextPipeline(lambda t: np.array([5, 6]), max_length=3)("x")
    np.testing.assert_array_equal(arrays["input_ids"], [5, 6, 0])


def test_text_pipeline_for_model_and_check() -> None:
    bert = SpecModel(
        TensorSpec("input_ids", ("batch", 16), np.int32),
        TensorSpec("attention_mask", ("batch", 16), np.int32),
        TensorSpec("token_type_ids", ("batch", 16), np.int32),
    )
    tok = VocabTokenizer(["a"])
    fitted = TextPipeline.for_model(bert, tok)
    assert fitted.max_length == 16
    assert fitted.token_type_ids
    assert fitted.dtype == np.int32
    assert fitted.check(bert)["input_ids"].shape == (16,)
    with pytest.raises(InvalidInputError, match=r"missing 'token_type_ids'.*token_type_ids=True"):
        TextPipeline(tok, max_length=16, dtype=np.int32).check(bert)
    renamed = TextPipeline(tok, names={"input_ids": "ids"})
    assert set(renamed("a")) == {"ids", "attention_mask"}


def test_text_pipeline_for_a_model_that_takes_only_ids() -> None:
    ids_only = SpecModel(TensorSpec("input_ids", ("batch", 8), np.int64))
    tok = VocabTokenizer(["a", "b"])
    fitted = TextPipeline.for_model(ids_only, tok)
    out = fitted.check(ids_only, "a b")
    assert set(out) == {"input_ids"}
    np.testing.assert_array_equal(out["input_ids"], [2, 4, 5, 3, 0, 0, 0, 0])
    with pytest.raises(
        InvalidInputError, match=r"unexpected 'attention_mask'.*attention_mask=False"
    ):
        TextPipeline(tok, max_length=8).check(ids_only)
    renamed = SpecModel(
        TensorSpec("ids", ("batch", 6), np.int32), TensorSpec("mask", ("batch", 6), np.int32)
    )
    fitted = TextPipeline.for_model(
        renamed, tok, names={"input_ids": "ids", "attention_mask": "mask"}
    )
    assert fitted.max_length == 6  # read from the renamed ids input
    np.testing.assert_array_equal(fitted.check(renamed, "b")["mask"], [1, 1, 1, 0, 0, 0])


# -- inputs found by fuzzing --------------------------------------------------------------------
# Each was an untyped error, a hang, a memory blow-up or a silently wrong result before its fix
# (tests/_fuzz_preprocessors.py found them; tests/test_fuzz_preprocessors.py runs it).


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (its checksum valid again)."""
    buffer = io.BytesIO()
    Image.fromarray(IMG).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _webp_declaring(width: int, height: int) -> bytes:
    """A tiny lossless WebP whose header declares ``width`` x ``height`` (at most 16384)."""
    buffer = io.BytesIO()
    Image.fromarray(IMG).save(buffer, format="WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"VP8L"
    bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    data[21:25] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(data)


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    # Over twice Pillow's limit it raised its own (untyped) DecompressionBombError.
    with pytest.raises(InvalidInputError, match=r"image <bytes> declares more than 89478485"):
        Decode()(_png_declaring(30000, 30000))
    # Between once and twice, Pillow only warns (an error under pytest) and would decode it.
    with pytest.raises(InvalidInputError, match="declares more than 89478485 pixels"):
        Decode()(_png_declaring(10000, 10000))
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(30, 20))
    with pytest.raises(
        InvalidInputError, match=r"bomb\.png declares 30x20 = 600 pixels, more than max_pixels=500"
    ):
        Decode(max_pixels=500)(path)
    # Pillow's WebP decoder cleared a 16384x16384 canvas (1 GiB) before its own check.
    with pytest.raises(InvalidInputError, match="declares 16384x16384 = 268435456 pixels"):
        Decode()(_webp_declaring(16384, 16384))
    small = Decode()(_webp_declaring(6, 4))  # the same file at its true size still decodes
    assert small.size == (6, 4)


def test_decode_arguments_and_odd_images_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="Decode mode must be a Pillow mode"):
        Decode("bogus")  # was a ValueError from convert() on the first image
    with pytest.raises(InvalidArgumentError, match=r"draft_size must be None or \(width, height\)"):
        Decode(draft_size=2.5)  # type: ignore[arg-type]  # was a TypeError inside draft()
    with pytest.raises(InvalidArgumentError, match="draft_size must be >= 1, got 0"):
        Decode(draft_size=(0, 0))  # was a ZeroDivisionError inside draft()
    with pytest.raises(InvalidArgumentError, match="exif_transpose must be True or False"):
        Decode(exif_transpose=np.array([1, 0]))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"image .* is a folder, not an image file"):
        Decode()(tmp_path)
    with pytest.raises(InvalidInputError, match="cannot convert image <Image> from mode La to RGB"):
        Decode()(Image.new("La", (2, 2)))  # Pillow has no such conversion: a ValueError
    with pytest.raises(InvalidInputError, match=r"image <Image> is empty: 4x0"):
        Decode()(Image.new("RGB", (4, 0)))  # was returned as it was
    with pytest.raises(InvalidInputError, match=r"1 to 4 channels .* shape \(4, 6, 5\)"):
        Decode()(np.zeros((4, 6, 5), np.uint8))  # was Pillow's TypeError
    grey = Decode("L")(IMG[:, :, :1])  # one channel: a grey image (was a TypeError)
    np.testing.assert_array_equal(np.asarray(grey), IMG[:, :, 0])


def test_resizing_to_more_than_the_pixel_limit_is_refused() -> None:
    strip = Image.new("RGB", (4000, 1))
    # 2e10 pixels: the worker hung (or died of MemoryError) making it.
    with pytest.raises(InvalidInputError, match=r"would make the 4000x1 image 20000000x5000"):
        ResizeShorter(5000)(strip)
    with pytest.raises(InvalidInputError, match="a crop of 100000x100000 has more than"):
        ResizeCenterCrop(8, 100_000)(IMG)
    with pytest.raises(InvalidInputError, match="ResizeShorter takes images of 1 to 4 channels"):
        ResizeShorter(2)(np.zeros((4, 4, 5), np.uint8))


def test_sizes_must_be_whole_numbers() -> None:
    assert ResizeShorter(np.int64(3)).size == 3
    assert ResizeShorter(4.0).size == 4  # type: ignore[arg-type]
    crop = CenterCrop(np.int64(2))  # type: ignore[arg-type]  # was a TypeError (unpacking)
    assert (crop.height, crop.width) == (2, 2)
    assert CenterCrop([3, 2])(IMG).shape == (3, 2, 3)  # type: ignore[arg-type]
    for bad, message in [
        ("8", r"resize size must be an integer >= 1, got '8'"),
        (float("nan"), "resize size must be an integer >= 1, got nan"),
        (True, "resize size must be an integer >= 1, got True"),
        (3.5, "resize size must be an integer >= 1, got 3.5"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            ResizeShorter(bad)
    for bad in [(2, 3, 4), (3,), "ab", None]:
        with pytest.raises(InvalidArgumentError, match="crop size must be an int"):
            CenterCrop(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="unknown interpolation array"):
        ResizeShorter(2, np.array(["bilinear", "box"]))  # type: ignore[arg-type]


def test_center_crop_takes_only_images() -> None:
    with pytest.raises(InvalidInputError, match=r"CenterCrop takes .*got ndarray\(5,\)"):
        CenterCrop(2)(np.zeros(5))  # was a ValueError (unpacking the shape)
    with pytest.raises(InvalidInputError, match=r"CenterCrop takes .*got list"):
        CenterCrop(2)([[1, 2], [3, 4]])  # was an AttributeError


def test_to_float_and_to_dtype_check_their_dtypes() -> None:
    with pytest.raises(InvalidArgumentError, match="ToFloat dtype must be a floating dtype"):
        ToFloat(dtype=np.int32)  # gave all zeros: 1/255 as an int32 is 0
    with pytest.raises(InvalidArgumentError, match="ToFloat scale must be finite, got nan"):
        ToFloat(scale=float("nan"))
    with pytest.raises(InvalidArgumentError, match="ToFloat dtype is no numpy dtype"):
        ToFloat(dtype="bogus")
    for values in (np.array(["a", "b"]), np.array([1 + 2j]), [None, 1]):
        with pytest.raises(InvalidInputError, match="ToFloat takes an image or an array of num"):
            ToFloat()(values)
    assert ToFloat()(np.array([True, False])).tolist() == [np.float32(1 / 255), 0.0]
    with pytest.raises(InvalidInputError, match="numpy cannot read"):
        ToFloat()([[1, 2], [3]])  # ragged: was numpy's ValueError
    with pytest.raises(InvalidArgumentError, match="ToDtype dtype is no numpy dtype of values"):
        ToDtype(None)  # was float64 without a word
    with pytest.raises(InvalidInputError, match="ToDtype cannot cast a str32 array to int32"):
        ToDtype(np.int32)(np.array(["x"]))


def test_normalize_checks_mean_and_std() -> None:
    with pytest.raises(InvalidArgumentError, match=r"mean must be one number per channel .*\(0,\)"):
        Normalize([], [])  # accepted, then a broadcasting ValueError on the first image
    with pytest.raises(InvalidArgumentError, match="mean must be numbers"):
        Normalize(["a"], [1.0])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match=r"mean must be finite, got \[nan\]"):
        Normalize([float("nan")], [1.0])
    with pytest.raises(InvalidArgumentError, match="is too close to 0"):
        Normalize([0.0], [1e-320])
    scalar = Normalize(0.5, 0.25)(np.array(1.0, np.float32))
    assert scalar.shape == ()  # was (1,): one value for all kept a 0-d array 0-d
    assert float(scalar) == 2.0
    with pytest.raises(InvalidInputError, match="numpy cannot read"):
        ToLayout()([[1, 2], [3]])
    with pytest.raises(InvalidArgumentError, match="layout must be 'CHW' or 'HWC'"):
        ToLayout(np.array(["CHW"]))  # type: ignore[arg-type]  # was an ambiguous truth value


def test_presets_check_mean_length_and_dtype() -> None:
    with pytest.raises(InvalidArgumentError, match="mean and std have 3 values, but mode 'L'"):
        ImagePipeline.imagenet(8, mode="L", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    with pytest.raises(InvalidArgumentError, match=r"size must be an int or \(height, width\)"):
        ImagePipeline.imagenet((2, 3, 4))  # type: ignore[arg-type]
    model = SpecModel(TensorSpec("x", ("N", 3, 8, 8), np.uint8))
    with pytest.raises(InvalidArgumentError, match="input 'x' takes uint8, but ImagePipeline"):
        ImagePipeline.for_model(model)  # was Normalize's InvalidInputError from the table


def test_tokenizers_check_words_ids_and_texts() -> None:
    with pytest.raises(InvalidArgumentError, match="vocabulary word 1 must be a str, got int 3"):
        VocabTokenizer(["a", 3])  # type: ignore[list-item]  # was an AttributeError (lower)
    specials = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    with pytest.raises(InvalidArgumentError, match="vocabulary id of 'cat' must be an int"):
        VocabTokenizer({**specials, "cat": None})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="vocabulary id of 'cat' is negative: -1"):
        VocabTokenizer({**specials, "cat": -1})
    with pytest.raises(InvalidArgumentError, match="max_size must be >= 0, got -2"):
        VocabTokenizer.from_corpus(["a b"], max_size=-2)  # silently dropped the last two words
    with pytest.raises(InvalidArgumentError, match="corpus text 1 is a NoneType, not a str"):
        VocabTokenizer.from_corpus(["a", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="VocabTokenizer takes a str, got bytes"):
        VocabTokenizer(["a"]).encode(b"a")  # type: ignore[arg-type]  # was re's TypeError


def test_text_pipeline_checks_its_options_and_the_tokenizer_output() -> None:
    tok = VocabTokenizer(["a", "b"])
    with pytest.raises(InvalidArgumentError, match=r"names gives two outputs one name"):
        TextPipeline(tok, names={"attention_mask": "input_ids"})  # the mask replaced the ids
    with pytest.raises(InvalidArgumentError, match="TextPipeline dtype must be an integer"):
        TextPipeline(tok, dtype=np.float32)
    with pytest.raises(InvalidArgumentError, match="pad_id 300 does not fit int8"):
        TextPipeline(tok, dtype=np.int8, pad_id=300)  # was an OverflowError on every text
    with pytest.raises(InvalidArgumentError, match="max_length must be an integer >= 1"):
        TextPipeline(tok, max_length="8")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_length 1099511627776 is over"):
        TextPipeline(tok, max_length=1 << 40)  # numpy's "maximum dimension exceeded"
    with pytest.raises(InvalidInputError, match=r"token id 1099511627776 does not fit .* int32"):
        TextPipeline(lambda text: [2, 1 << 40], dtype=np.int32)("x")
    with pytest.raises(InvalidInputError, match="returned float64 values, not integer token ids"):
        TextPipeline(lambda text: [1.5, 2.0])("x")  # was int(1.5) == 1 without a word
    with pytest.raises(InvalidInputError, match=r"a mapping without 'input_ids' .*keys: ids"):
        TextPipeline(lambda text: {"ids": [1]})("x")
    with pytest.raises(InvalidInputError, match="numpy cannot read"):
        TextPipeline(lambda text: [[1, 2], [3]])("x")
    assert TextPipeline(lambda text: [], max_length=2)("x")["input_ids"].tolist() == [0, 0]
    with pytest.raises(InvalidInputError, match="no items to collate"):
        TextPipeline(tok).collate([])


def test_input_helpers_check_what_they_are_given() -> None:
    scalar = SpecModel(TensorSpec("t", ("batch",), np.float32))
    out = check_item(scalar, {"t": np.float32(0.5)})
    assert out["t"].shape == ()  # was (1,): a batch of these stacked to (batch, 1)
    assert stack_items([out, out])["t"].shape == (2,)
    with pytest.raises(InvalidInputError, match="must be a dict of input name to array, not list"):
        check_item(scalar, [1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="input 't' of model 'spec' is a list numpy"):
        check_item(scalar, {"t": [[1], [2, 3]]})
    with pytest.raises(InvalidInputError, match=r"inputs must be a dict .* not ndarray"):
        cast_arrays(np.zeros(2), scalar.inputs, "safe")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="an input of model 'spec' is a list numpy"):
        as_item(scalar, [[1], [2, 3]])
    with pytest.raises(InvalidInputError, match="no items to stack into a batch"):
        stack_items([])  # was an IndexError
    with pytest.raises(InvalidInputError, match=r"item 1 of the batch has inputs \['u'\]"):
        stack_items([{"t": np.zeros(2)}, {"u": np.zeros(2)}])  # was a KeyError
    dates = np.array(["2020-01-01"], "datetime64[s]")
    with pytest.raises(InvalidInputError, match=r"mixes dtypes \['datetime64\[s\]', 'float64'\]"):
        stack_items([{"t": np.zeros(1)}, {"t": dates}])  # was numpy's DTypePromotionError
