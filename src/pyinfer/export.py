"""Exporting a model to the other formats of its framework, the way pyinfer loads them fastest.

Used by the tests, the benchmark suite and ``pyinfer formats`` to compare one model across
formats. Every exporter writes models with a dynamic batch dimension where the format allows it
and keeps external data files next to the model.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends._frameworks import import_tensorflow
from pyinfer.errors import InvalidArgumentError, PyinferError

# -- torch: TorchScript, torch.export and ONNX ---------------------------------------------------


# -- Keras: .h5, .keras, SavedModel and TFLite ---------------------------------------------------


_KERAS_EXPORT_FORMATS = ("keras", "h5", "saved_model", "tflite")
_KERAS_SUFFIXES = {"keras": (".keras",), "h5": (".h5", ".hdf5"), "tflite": (".tflite",)}


@contextlib.contextmanager
def _quiet_keras() -> Iterator[None]:
    """Keeps a Keras save quiet and warning-free.

    Keras logs advice on the ``absl`` logger while saving (the legacy-format notice for ``.h5``),
    raised to ERROR for the call; and TensorFlow 2.21's tensors trigger numpy 2's
    ``DeprecationWarning`` about ``__array__`` and ``copy=`` inside Keras' own conversion.
    """
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"__array__ implementation doesn't accept a copy keyword",
                category=DeprecationWarning,
            )
            yield
    finally:
        absl_logger.setLevel(level)


def export_keras(
    model: Any,
    path: str | Path,
    format: str = "keras",
    *,
    int8_calibration: Iterable[Mapping[str, np.ndarray] | np.ndarray] | None = None,
) -> Path:
    """Saves a Keras model as ``.keras``, legacy ``.h5``, a SavedModel folder or TFLite.

    Every format keeps the model's dynamic batch dimension: the SavedModel is written by Keras 3's
    ``model.export`` (its ``serving_default`` signature takes any batch), and the TFLite file is
    converted from that SavedModel, which keeps ``-1`` in the first dimension of each input's
    ``shape_signature`` (checked after conversion).

    Args:
        model: A built ``keras.Model`` (functional or Sequential).
        path: Where to write: a ``.keras`` / ``.h5`` (or ``.hdf5``) / ``.tflite`` file, or the
            SavedModel folder (created; must not be an existing file).
        format: ``"keras"``, ``"h5"``, ``"saved_model"`` or ``"tflite"``.
        int8_calibration: TFLite only: representative inputs (a dict of input name to array per
            sample, or one array per sample for a one-input model). When given, the model is
            fully quantized to ``int8``, inputs and outputs included; otherwise it stays float.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: On an unknown format, a path whose extension does not fit it, or
            calibration data for a format other than TFLite.
        PyinferError: If the TFLite converter drops the dynamic batch.
    """
    if format not in _KERAS_EXPORT_FORMATS:
        raise InvalidArgumentError(
            f"unknown Keras export format {format!r}; use one of {', '.join(_KERAS_EXPORT_FORMATS)}"
        )
    out = Path(path)
    suffixes = _KERAS_SUFFIXES.get(format)
    if suffixes and out.suffix.lower() not in suffixes:
        raise InvalidArgumentError(
            f"a {format} export must be written to a {' or '.join(suffixes)} file, not {out}"
        )
    if int8_calibration is not None and format != "tflite":
        raise InvalidArgumentError("int8_calibration applies to format='tflite' only")
    tf = import_tensorflow()
    out.parent.mkdir(parents=True, exist_ok=True)
    if format in {"keras", "h5"}:
        with _quiet_keras():
            model.save(out)
        return out
    if format == "saved_model":
        with _quiet_keras():
            model.export(str(out), format="tf_saved_model", verbose=False)
        return out
    with tempfile.TemporaryDirectory(prefix="pyinfer-export-") as tmp:
        saved = Path(tmp) / "saved_model"
        with _quiet_keras():
            model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if int8_calibration is not None:
            samples = list(int8_calibration)
            names = [t.name for t in model.inputs]
            struct = getattr(model, "_inputs_struct", None)
            if isinstance(struct, dict):
                names = list(struct)

            def representative() -> Iterator[dict[str, np.ndarray]]:
                for sample in samples:
                    if isinstance(sample, Mapping):
                        yield {n: np.asarray(sample[n]) for n in names}
                    else:
                        yield {names[0]: np.asarray(sample)}

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with _quiet_keras(), warnings.catch_warnings():
            # The int8 calibration runs tf.lite.Interpreter, which warns that it moves to
            # ai_edge_litert.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            flatbuffer = converter.convert()
    out.write_bytes(flatbuffer)
    _check_tflite_dynamic_batch(tf, out, model)
    return out


def _check_tflite_dynamic_batch(tf: ModuleType, path: Path, model: Any) -> None:
    wants_dynamic = any(t.shape and t.shape[0] is None for t in model.inputs)
    if not wants_dynamic:
        return
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns on construction that it moves to ai_edge_litert.
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    for detail in interpreter.get_input_details():
        signature = detail.get("shape_signature")
        if signature is None or len(signature) == 0 or int(signature[0]) != -1:
            raise PyinferError(
                f"the TFLite converter wrote {path} with a fixed batch for input "
                f"{detail['name']!r} (shape {list(detail['shape'])}); the model's batch is "
                "dynamic, so this file would reject other batch sizes"
            )
