"""Preprocessing pipelines (kept for one release; import from :mod:`pyinfer.preprocess` instead).

Every public name this module had is re-exported from :mod:`pyinfer.preprocess`, where the
items, image, ImageNet and text steps now live in one module each.
"""

from __future__ import annotations

from pyinfer.preprocess import (
    IMAGE_EXTENSIONS,
    IMAGENET_GREY_MEAN,
    IMAGENET_GREY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_IMAGE_PIXELS,
    MAX_SEQUENCE_LENGTH,
    Casting,
    CenterCrop,
    Compose,
    Decode,
    ImagePipeline,
    Layout,
    Normalize,
    NormalizeImage,
    ResizeCenterCrop,
    ResizeShorter,
    TextPipeline,
    ToDtype,
    ToFloat,
    ToLayout,
    VocabTokenizer,
    as_array,
    as_item,
    cast_arrays,
    check_item,
    image_layout,
    stack_items,
)

__all__ = [
    "IMAGENET_GREY_MEAN",
    "IMAGENET_GREY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_SEQUENCE_LENGTH",
    "Casting",
    "CenterCrop",
    "Compose",
    "Decode",
    "ImagePipeline",
    "Layout",
    "Normalize",
    "NormalizeImage",
    "ResizeCenterCrop",
    "ResizeShorter",
    "TextPipeline",
    "ToDtype",
    "ToFloat",
    "ToLayout",
    "VocabTokenizer",
    "as_array",
    "as_item",
    "cast_arrays",
    "check_item",
    "image_layout",
    "stack_items",
]
