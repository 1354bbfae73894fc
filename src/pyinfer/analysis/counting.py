"""``count_macs``: the arithmetic of one inference of any loaded model, by its framework."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyinfer.analysis.arithmetic import Arithmetic
from pyinfer.backends.base import Model
from pyinfer.errors import InvalidArgumentError
from pyinfer.loading import load_model
from pyinfer.report import ArithmeticSummary, ProfileReport

__all__ = ["count_macs", "with_arithmetic"]

logger = logging.getLogger(__name__)


def count_macs(
    model: Model | str | Path,
    batch_size: int = 1,
    *,
    dims: Mapping[str, int] | None = None,
) -> Arithmetic:
    """Counts the multiply-accumulates (and FLOPs = 2 x MACs) of one call of ``model``.

    The count is exact for the shapes of the call: convolutions, transposed convolutions,
    matrix products and attention in MACs, per operator class; pooling and elementwise
    operators as element operations apart; the weights' and activations' bytes beside them
    (see :mod:`pyinfer.analysis.arithmetic` for what is counted). torch models are run once
    under a dispatch mode; ONNX graphs are shape-inferred; Keras and SavedModel graphs traced
    and frozen; TFLite models read from the interpreter.

    Args:
        model: A loaded model, or the path of one to load on the CPU.
        batch_size: The batch of the call counted.
        dims: Sizes of the other named dynamic dimensions (``{"sequence": 128}``).

    Returns:
        The arithmetic of one call at that batch size.

    Raises:
        InvalidArgumentError: If the batch size is not a positive integer, or an input has a
            dynamic dimension not given in ``dims``.
        CorruptModelError: If an ONNX graph's shapes cannot be inferred.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not isinstance(model, Model):
        model = load_model(model)
    arrays = model.example_inputs(batch_size, dims=dims)
    shapes = {k: tuple(int(s) for s in v.shape) for k, v in arrays.items()}
    common: dict[str, Any] = {"model": model.name, "batch_size": batch_size}
    if model.framework == "onnxruntime":
        from pyinfer.analysis.count_onnx import count_onnx_graph

        if model.path is None:
            raise InvalidArgumentError(
                f"model '{model.name}' has no file: ONNX operations are counted from the file"
            )
        return count_onnx_graph(model.path, shapes, **common)
    if model.framework == "torch":
        from pyinfer.analysis.count_torch import count_torch_module, unoptimised_module

        return count_torch_module(
            unoptimised_module(model),
            model.to_native(arrays),
            keyword_inputs=_keyword_inputs(model),
            parameter_bytes=model.parameter_bytes,
            **common,
        )
    if model.framework == "tflite":
        from pyinfer.analysis.count_tf import count_tflite, plain_interpreter

        if model.path is None:
            raise InvalidArgumentError(
                f"model '{model.name}' has no file: TFLite operations are counted from the file"
            )
        return count_tflite(plain_interpreter(model.path, shapes), **common)
    if model.framework == "tensorflow":
        from pyinfer.analysis.count_tf import count_tf_function, model_call

        return count_tf_function(
            model_call(model),
            shapes,
            {k: v.dtype.name for k, v in arrays.items()},
            parameter_bytes=model.parameter_bytes,
            **common,
        )
    raise InvalidArgumentError(  # pragma: no cover - every framework pyinfer loads is above
        f"cannot count the operations of a {model.framework} model"
    )


def _keyword_inputs(model: Model) -> frozenset[str]:
    """The inputs a torch model's ``forward`` takes by keyword (none for other wrappers)."""
    return frozenset(getattr(model, "keyword_inputs", frozenset()))


def _dims_as_run(report: ProfileReport, model: Model) -> dict[str, int]:
    """The named dynamic dimensions' sizes in the inputs the report measured.

    Read from the report's input shapes (given inputs or ``--input-shape`` alike), so the count
    is of the call that was timed (a sequence of 32 tokens, not the model's default).
    """
    dims: dict[str, int] = {}
    for spec in model.inputs:
        shape = report.input_shapes.get(spec.name)
        if spec.shape is None or shape is None or len(shape) != len(spec.shape):
            continue
        for axis, (dim, size) in enumerate(zip(spec.shape, shape, strict=True)):
            if isinstance(dim, str) and axis != spec.batch_axis:
                dims[dim] = int(size)
    return dims


def with_arithmetic(report: ProfileReport, model: Model) -> ProfileReport:
    """The report with its MACs per call counted (unchanged, logged, where counting fails).

    ``pyinfer profile`` calls it on every report; from Python, call it on the report of a
    :class:`~pyinfer.PerformanceProfiler` to get the ``Arithmetic`` line.

    Args:
        report: A profile report of ``model``.
        model: The model profiled.
    """
    try:
        counted = count_macs(model, report.batch_size, dims=_dims_as_run(report, model))
    except Exception as exc:  # a model the counters cannot read still gets its profile
        logger.info("MACs not counted for %s: %s", model.name, exc)
        return report
    summary = ArithmeticSummary(macs=counted.macs, method=counted.method)
    return dataclasses.replace(report, arithmetic=summary)
