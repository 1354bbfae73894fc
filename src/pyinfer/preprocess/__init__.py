"""Preprocessing: raw items (image files, text) to the arrays a model takes.

What belongs here: turning one raw item into one model input *without* the batch dimension (an
array for a one-input model, or a dict of input name to array), checking such items against a
model's input specs, and stacking them into a batch. Pipelines are made of small steps (each a
class with ``__call__``) chained by :class:`Compose`:

* items (:mod:`~pyinfer.preprocess.items`): :func:`as_item`, :func:`check_item`,
  :func:`cast_arrays`, :func:`stack_items`;
* image (:mod:`~pyinfer.preprocess.decode`, :mod:`~pyinfer.preprocess.image`,
  :mod:`~pyinfer.preprocess.imagenet`): :class:`Decode` (Pillow: a path, bytes, a PIL image or
  an array, to RGB), :class:`ResizeShorter`, :class:`CenterCrop`, :class:`ToFloat`,
  :class:`Normalize`, :class:`ToLayout`, :class:`ToDtype`; :meth:`ImagePipeline.imagenet` is
  the usual preset and :meth:`ImagePipeline.for_model` fits size, layout and dtype to a model's
  input;
* text (:mod:`~pyinfer.preprocess.text`): :class:`TextPipeline`,
  :class:`WordPieceTokenizer` (BERT's ids from a ``vocab.txt``, offline) and
  :class:`VocabTokenizer`;
* a kind of raw item to its pipeline (:mod:`~pyinfer.preprocess.choose`):
  :func:`pipeline_for`.

Every pipeline offers ``check(model)``: it runs on an example and compares its output with the
model's input specs, so a mismatch is found before the first batch, with a message saying what
to change. The inference engine calls it. Pillow is imported at first use
(``pip install "pyinfer-toolkit[image]"``).
"""

from __future__ import annotations

from pyinfer.preprocess.choose import pipeline_for
from pyinfer.preprocess.compose import Compose
from pyinfer.preprocess.decode import IMAGE_EXTENSIONS, Decode
from pyinfer.preprocess.image import (
    CenterCrop,
    Layout,
    Normalize,
    ResizeShorter,
    ToDtype,
    ToFloat,
    ToLayout,
    image_layout,
)
from pyinfer.preprocess.imagenet import (
    IMAGENET_GREY_MEAN,
    IMAGENET_GREY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePipeline,
    NormalizeImage,
    ResizeCenterCrop,
)
from pyinfer.preprocess.items import (
    Casting,
    as_array,
    as_item,
    cast_arrays,
    check_item,
    stack_items,
)
from pyinfer.preprocess.pil import MAX_IMAGE_PIXELS
from pyinfer.preprocess.text import MAX_SEQUENCE_LENGTH, TextPipeline, VocabTokenizer
from pyinfer.preprocess.wordpiece import WordPieceTokenizer

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
    "WordPieceTokenizer",
    "as_array",
    "as_item",
    "cast_arrays",
    "check_item",
    "image_layout",
    "pipeline_for",
    "stack_items",
]
