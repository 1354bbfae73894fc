"""The image presets equal ``torchvision.transforms.v2`` on real photographs.

scikit-image ships real photos in its data folder (no download): astronaut (512x512), chelsea
(451x300), coffee (600x400), rocket (640x427), and cut-outs of odd, non-square sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
v2 = pytest.importorskip("torchvision.transforms.v2")
skimage_data = pytest.importorskip("skimage.data")
Image = pytest.importorskip("PIL.Image")

from pyinfer.preprocess import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    ImagePipeline,
    ResizeShorter,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
#: (left, top, right, bottom) cut-outs: odd and non-square sizes, both orientations.
CUTS = (None, (0, 0, 333, 251), (3, 5, 304, 301), (17, 9, 250, 398), (1, 2, 230, 227))
TOLERANCE = 1e-5


def _photos() -> list[tuple[str, Any]]:
    out = []
    for name in PHOTOS:
        array = getattr(skimage_data, name)()
        for cut in CUTS:
            if cut is not None and (cut[3] > array.shape[0] or cut[2] > array.shape[1]):
                continue
            part = array if cut is None else array[cut[1] : cut[3], cut[0] : cut[2]]
            image = Image.fromarray(np.ascontiguousarray(part))
            out.append((f"{name}-{image.width}x{image.height}", image))
    return out


PHOTO_CASES = _photos()


def _v2(resize: int, crop: int | tuple[int, int], interpolation: Any) -> Any:
    return v2.Compose(
        [
            v2.Resize(resize, interpolation=interpolation, antialias=True),
            v2.CenterCrop(crop),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )


def test_the_photos_cover_odd_and_non_square_sizes() -> None:
    sizes = {image.size for _, image in PHOTO_CASES}
    assert len(PHOTO_CASES) == 18  # chelsea (300 high) is too short for two cut-outs
    assert any(w % 2 and h % 2 for w, h in sizes)
    assert any(w > h for w, h in sizes)
    assert any(w < h for w, h in sizes)


@pytest.mark.parametrize(("name", "image"), PHOTO_CASES, ids=[n for n, _ in PHOTO_CASES])
def test_imagenet_preset_equals_torchvision_v2(name: str, image: Any) -> None:
    expected = _v2(256, 224, v2.InterpolationMode.BILINEAR)(image).numpy()
    got = ImagePipeline.imagenet()(np.asarray(image))
    assert got.shape == expected.shape == (3, 224, 224)
    assert float(np.abs(got - expected).max()) < TOLERANCE, name


@pytest.mark.parametrize(
    ("size", "resize", "interpolation"),
    [(224, 232, "bicubic"), ((160, 192), 200, "bilinear"), (299, 342, "bilinear")],
)
def test_other_sizes_and_filters_equal_torchvision_v2(
    size: int | tuple[int, int], resize: int, interpolation: str
) -> None:
    mode = getattr(v2.InterpolationMode, interpolation.upper())
    pipeline = ImagePipeline.imagenet(size, resize=resize, interpolation=interpolation)
    for _, image in PHOTO_CASES[::3]:
        expected = _v2(resize, size, mode)(image).numpy()
        got = pipeline(np.asarray(image))
        assert float(np.abs(got - expected).max()) < TOLERANCE


def test_the_single_steps_give_torchvisions_pixels() -> None:
    for _, image in PHOTO_CASES:
        resized = ResizeShorter(256)(image)
        assert resized.size == v2.Resize(256)(image).size  # the long side truncated
        expected = np.asarray(v2.CenterCrop(224)(v2.Resize(256)(image)))
        np.testing.assert_array_equal(np.asarray(CenterCrop(224)(resized)), expected)


def test_pil_input_and_array_input_agree() -> None:
    pipeline = ImagePipeline.imagenet()
    for _, image in PHOTO_CASES[:4]:
        np.testing.assert_array_equal(pipeline(image), pipeline(np.asarray(image)))
