"""The preprocessing for a kind of raw item: images through an image pipeline, texts a tokenizer.

``pyinfer run`` (local and on Ray) reads image files and text lines; :func:`pipeline_for` gives
each kind the pipeline fitted to the model (:meth:`ImagePipeline.for_model`,
:meth:`TextPipeline.for_model`), or says in one message why the model cannot take that kind and
what to give it instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfer.errors import InvalidArgumentError
from pyinfer.preprocess.imagenet import ImagePipeline
from pyinfer.preprocess.text import TextPipeline

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

__all__ = ["ITEM_KINDS", "pipeline_for"]

#: The kinds of raw item: ``image`` (a file), ``text`` (a line), ``array`` (fed as it is).
ITEM_KINDS = ("image", "text", "array")


def pipeline_for(model: Model, kind: str, subject: str) -> ImagePipeline | TextPipeline | None:
    """The pipeline that turns ``kind`` items into ``model``'s inputs (``None`` for arrays).

    Args:
        model: The model the items are for.
        kind: ``"image"``, ``"text"`` or ``"array"``.
        subject: What the items are, as the error's opening words: ``"photo.png is read as an
            image"``, ``"the inputs are texts"``.

    Returns:
        An image or text pipeline fitted to the model; ``None`` for arrays, which go as given.

    Raises:
        InvalidArgumentError: ``kind`` is unknown; the model takes no images for image items,
            or has no tokenizer for text items (the message starts with ``subject``, gives the
            reason and says what to give instead).
    """
    if kind not in ITEM_KINDS:
        raise InvalidArgumentError(f"unknown kind of item {kind!r}: use one of {ITEM_KINDS}")
    try:
        if kind == "image":
            return ImagePipeline.for_model(model)
        if kind == "text":
            return TextPipeline.for_model(model)
    except InvalidArgumentError as exc:
        if kind == "image":
            why = f"takes no images: {exc}; give it .npy or .npz arrays"
        else:
            why = (
                f"has no tokenizer: {exc}; load a Hugging Face folder with its tokenizer, or "
                "give token ids as .npz arrays"
            )
        raise InvalidArgumentError(f"{subject}, but model '{model.name}' {why}") from exc
    return None
