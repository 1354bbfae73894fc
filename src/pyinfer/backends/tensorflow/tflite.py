""":class:`TFLiteModel`: the TFLite interpreter, and the scan of its Flex ops for side effects."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.backends.frameworks import import_tensorflow, physical_cores
from pyinfer.backends.tensorflow.common import _shape
from pyinfer.backends.tensorflow.saved_model import SIDE_EFFECT_OPS
from pyinfer.backends.tensorflow.tflite_checks import _tflite_constants
from pyinfer.errors import (
    CorruptModelError,
    InferenceError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    PyinferError,
    UntrustedModelError,
)


class TFLiteModel(Model):
    """A TFLite flatbuffer run by the TFLite interpreter on the CPU.

    Names come from the model's first signature where it has one (the names the model was
    exported with), else from the tensors. With a signature, inputs and outputs are sorted by
    name, as for a SavedModel (the converter's order of the graph's tensors follows the
    SavedModel's unordered maps); without one they are in the graph's order.
    An input whose ``shape_signature`` has ``-1`` is dynamic there: when a call brings another
    size, the input is resized (``resize_tensor_input``) and the tensors reallocated, once per
    change of shape. Inputs and outputs keep the model's dtypes (``int8`` for a fully quantized
    model): quantize them with the scale and zero point of the model's tensor details.
    Calls from several threads are safe and take turns: an interpreter holds one set of tensors,
    so a lock covers each call (load the model once per thread to run in parallel).
    """

    def __init__(
        self,
        interpreter: Any,
        input_index: Mapping[str, int],
        output_index: Mapping[str, int],
        **kwargs: Any,
    ) -> None:
        super().__init__(framework="tflite", **kwargs)
        self.interpreter = interpreter
        self._input_index = dict(input_index)
        self._output_index = dict(output_index)
        details = {d["index"]: d for d in interpreter.get_input_details()}
        self._current_shapes = {
            n: tuple(int(s) for s in details[i]["shape"]) for n, i in self._input_index.items()
        }
        self._run_lock = threading.Lock()  # one interpreter runs one call at a time

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """TFLite takes host arrays: returns them as they are."""
        return dict(inputs)

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The outputs are host arrays already."""
        return {k: np.asarray(v) for k, v in outputs.items()}

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Sets the inputs (resizing dynamic ones when their shape changed), invokes, copies out.

        One interpreter holds one set of input and output tensors, so calls from several
        threads take turns (a lock around the whole call); the outputs are copies.

        Raises:
            InferenceError: If the interpreter fails (its errors are plain ``RuntimeError`` and
                ``ValueError``): the inputs were checked against the model before, so the
                model itself is at fault, e.g. a weight whose data is missing from the file.
        """
        try:
            with self._run_lock:
                return self._run(inputs)
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, PyinferError):
                raise
            shapes = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in inputs.items())
            raise InferenceError(
                f"the TFLite interpreter failed running model '{self.name}' ({self.path}) on "
                f"inputs {shapes}: {str(exc).strip()[:500]}; the model file is damaged or "
                "was converted wrongly: convert or copy it again"
            ) from exc

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        resized = False
        for name, index in self._input_index.items():
            shape = tuple(int(s) for s in np.shape(inputs[name]))
            if shape != self._current_shapes[name]:
                self.interpreter.resize_tensor_input(index, list(shape), strict=True)
                self._current_shapes[name] = shape
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for name, index in self._input_index.items():
            self.interpreter.set_tensor(index, inputs[name])
        self.interpreter.invoke()
        return {n: self.interpreter.get_tensor(i) for n, i in self._output_index.items()}

    def close(self) -> None:
        """Drops the interpreter."""
        self.interpreter = None


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        tf = import_tensorflow()
        return tf.lite.Interpreter, "tf.lite"


def tflite_side_effects(path: Path) -> list[str]:
    """The TensorFlow ops (Flex ops) of a TFLite model that write files or call Python.

    A TFLite model runs TensorFlow kernels through custom operators named ``Flex<Op>``, stored
    as strings in the flatbuffer; they run only where the Flex delegate is linked in (the
    interpreters pyinfer uses refuse them), and pyinfer registers no custom operators itself.
    The names are found in the file's bytes, so the check costs one read.

    Args:
        path: The ``.tflite`` file.

    Returns:
        ``Flex<Op>`` for each op of :data:`SIDE_EFFECT_OPS` the model names.
    """
    data = path.read_bytes()
    return sorted(f"Flex{op}" for op in SIDE_EFFECT_OPS if f"Flex{op}".encode() in data)


def _load_tflite(path: Path, *, name: str, num_threads: Any, trust_code: bool) -> TFLiteModel:
    if num_threads is None:
        num_threads = physical_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidArgumentError(
            f"num_threads={num_threads!r} for {path}: give a positive number of threads"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is not a file; a TFLite model is one file", path=path)
    effects = tflite_side_effects(path)
    if effects and not trust_code:
        raise UntrustedModelError(
            f"{path} uses TensorFlow ops that write files or call Python: {', '.join(effects)} "
            "(Flex ops, run by the Flex delegate where it is linked in); no model needs them to "
            "compute its outputs. If you trust where the file comes from, load it with "
            "trust_code=True (CLI: --trust-code)",
            path=path,
        )
    count, nbytes = _tflite_constants(path)
    interpreter_class, runtime = _interpreter_class()
    # The file's bytes, not its path: from a path the interpreter keeps the file open and
    # memory-mapped for the model's life, so overwriting it in place (exporting again to the
    # same path) would change or cut the weights under a loaded model, and a read past the
    # new end is a SIGBUS. From bytes, the file is closed on return and may be replaced.
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}", path=path) from exc
    try:
        with warnings.catch_warnings():
            # tf.lite.Interpreter warns on construction that it moves to ai_edge_litert.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise CorruptModelError(
            f"{path} is not a valid TFLite model ({str(exc).strip()[:500]}): the file is damaged "
            "or truncated; convert or copy it again",
            path=path,
        ) from exc
    in_details = {d["index"]: d for d in interpreter.get_input_details()}
    out_details = {d["index"]: d for d in interpreter.get_output_details()}
    input_index, output_index = _tflite_names(interpreter, in_details, out_details)
    inputs = [_tflite_spec(n, in_details[i]) for n, i in input_index.items()]
    outputs = [_tflite_spec(n, out_details[i]) for n, i in output_index.items()]
    return TFLiteModel(
        interpreter,
        input_index,
        output_index,
        name=name,
        format=ModelFormat.TFLITE,
        device=Device("cpu"),
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=count,
        parameter_bytes=nbytes,
        options={"num_threads": num_threads, "runtime": runtime},
    )


def _tflite_spec(name: str, detail: Mapping[str, Any]) -> TensorSpec:
    dims = detail.get("shape_signature")
    if dims is None or len(dims) != len(detail["shape"]):
        dims = detail["shape"]
    return TensorSpec(name, _shape(dims), np.dtype(detail["dtype"]))


def _tflite_names(
    interpreter: Any, in_details: Mapping[int, Any], out_details: Mapping[int, Any]
) -> tuple[dict[str, int], dict[str, int]]:
    """Input and output name -> tensor index, from the first signature when it fits."""
    try:
        signatures = interpreter.get_signature_list()
    except (AttributeError, RuntimeError, ValueError):  # pragma: no cover - old runtimes
        signatures = {}
    for key in signatures:
        runner = interpreter.get_signature_runner(key)
        sig_in = {str(n): int(d["index"]) for n, d in runner.get_input_details().items()}
        sig_out = {str(n): int(d["index"]) for n, d in runner.get_output_details().items()}
        if set(sig_in.values()) == set(in_details) and set(sig_out.values()) == set(out_details):
            return dict(sorted(sig_in.items())), dict(sorted(sig_out.items()))
    return (
        {str(d["name"]): i for i, d in in_details.items()},
        {str(d["name"]): i for i, d in out_details.items()},
    )
