""":class:`Compose`: preprocessing steps chained, and the check of their output against a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from pyinfer.errors import InvalidArgumentError, InvalidInputError
from pyinfer.preprocess.arguments import shown
from pyinfer.preprocess.items import Casting, as_item, check_item

if TYPE_CHECKING:
    from pyinfer.backends.base import Model

__all__ = ["Compose"]


class Compose:
    """Steps applied one after the other: ``Compose([a, b, c])(x) == c(b(a(x)))``.

    Args:
        steps: Callables, each taking the previous one's output.
        input_name: If given, the result is ``{input_name: array}`` instead of the array.

    Attributes:
        steps: The steps, in order.
        input_name: As given.
    """

    def __init__(self, steps: Iterable[Callable[[Any], Any]], *, input_name: str | None = None):
        self.steps = list(steps)
        if input_name is not None and not isinstance(input_name, str):
            raise InvalidArgumentError(f"input_name must be a str or None, not {shown(input_name)}")
        self.input_name = input_name
        for step in self.steps:
            if not callable(step):
                raise InvalidArgumentError(f"pipeline step {step!r} is not callable")

    def __call__(self, item: Any) -> Any:
        """Applies the steps to one item.

        Args:
            item: A raw item (what the first step takes).

        Returns:
            The last step's output, or ``{input_name: output}``.
        """
        value = item
        for step in self.steps:
            value = step(value)
        return value if self.input_name is None else {self.input_name: value}

    def example(self) -> Any:
        """A raw item to check the pipeline with (a 64x48 gradient image, RGB uint8 array)."""
        ramp = np.linspace(0, 255, 64 * 48 * 3, dtype=np.float64).reshape(48, 64, 3)
        return ramp.astype(np.uint8)

    def check(
        self, model: Model, example: Any = None, *, casting: Casting | None = None
    ) -> dict[str, np.ndarray]:
        """Runs the pipeline on an example and checks the output against the model's inputs.

        Args:
            model: The model the pipeline feeds.
            example: A raw item; :meth:`example` when ``None``.
            casting: The dtype cast the engine will apply (its ``cast_inputs``), if any.

        Returns:
            The checked output, input name to array (without batch dimension).

        Raises:
            InvalidInputError: If the output does not fit the model; the message names the input
                and says what the pipeline gives and what the model takes.
        """
        value = self(self.example() if example is None else example)
        try:
            return check_item(model, as_item(model, value), casting=casting)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{type(self).__name__} output does not fit model '{model.name}': {exc}"
            ) from exc

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.steps)
        return f"{type(self).__name__}([{inner}])"
