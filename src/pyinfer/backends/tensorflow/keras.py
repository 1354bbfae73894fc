""":class:`KerasModel`: ``.h5`` and ``.keras`` files loaded with Keras, and how they run."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import Device, ModelFormat, TensorSpec
from pyinfer.backends.tensorflow.common import TensorFlowModel, _np_dtype, _shape, device_scope
from pyinfer.backends.tensorflow.keras_safety import (
    _caller_objects,
    _code_layers,
    _foreign_references,
    _keras_config,
)
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    UntrustedModelError,
)

_CALL_MODES = ("function", "direct", "predict")


class KerasModel(TensorFlowModel):
    """A Keras model loaded from a ``.h5`` or ``.keras`` file.

    Inputs are named after the model's ``Input`` layers (or the keys of its input dict); outputs
    after the keys of its output dict, or else its output layers, in the model's own order.
    """

    def __init__(self, keras_model: Any, *, call_mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keras_model = keras_model
        self._call_mode = call_mode
        self._input_struct = getattr(keras_model, "_inputs_struct", None)
        self._dict_outputs = isinstance(getattr(keras_model, "_outputs_struct", None), dict)
        self._graph_call: Any = None
        if call_mode == "function":
            self._graph_call = self._tf.function(
                lambda x: keras_model(x, training=False), reduce_retracing=True
            )

    def _structure(self, inputs: Mapping[str, Any]) -> Any:
        names = self.input_names()
        if isinstance(self._input_struct, dict):
            return {n: inputs[n] for n in names}
        if len(names) == 1:
            return inputs[names[0]]
        return [inputs[n] for n in names]

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the model (``training=False``) in the call mode chosen at load time."""
        x = self._structure(inputs)
        try:
            with self._tf.device(self._tf_device):
                if self._call_mode == "predict":
                    batch = len(next(iter(inputs.values())))
                    result = self.keras_model.predict(x, verbose=0, batch_size=max(1, batch))
                elif self._graph_call is not None:
                    result = self._graph_call(x)
                else:
                    result = self.keras_model(x, training=False)
        except Exception as exc:
            raise self._run_error(exc, inputs) from exc
        return self._named(result)

    def _named(self, result: Any) -> dict[str, Any]:
        names = self.output_names()
        if isinstance(result, Mapping):
            return {n: result[n] for n in names}
        if isinstance(result, (list, tuple)):
            return dict(zip(names, result, strict=True))
        return {names[0]: result}


@contextlib.contextmanager
def _keras_path(path: Path, fmt: ModelFormat) -> Iterator[Path]:
    """The path under a name Keras accepts: it picks the reader from the extension alone."""
    suffixes = (".keras",) if fmt is ModelFormat.KERAS else (".h5", ".hdf5")
    if path.suffix.lower() in suffixes:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pyinfer-keras-") as tmp:
        link = Path(tmp) / f"model{suffixes[0]}"
        link.symlink_to(path.resolve())
        yield link


def _load_keras(
    tf: ModuleType,
    path: Path,
    fmt: ModelFormat,
    device: Device,
    tf_device: str,
    *,
    name: str,
    call_mode: str,
    trust_code: bool,
    custom_objects: Any,
) -> KerasModel:
    if call_mode not in _CALL_MODES:
        raise InvalidArgumentError(
            f"call_mode={call_mode!r} for {path}: use one of {', '.join(_CALL_MODES)}"
        )
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise InvalidArgumentError(
            f"custom_objects for {path} must be a dict of name to class or function, "
            f"not {type(custom_objects).__name__}"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is not a file; a Keras model is one file", path=path)
    config = _keras_config(path, fmt)
    lambdas = _code_layers(config)
    if lambdas and not trust_code:
        raise UntrustedModelError(
            f"{path} holds Lambda layer(s) {', '.join(lambdas)}: their Python code is stored in "
            "the file and would run while the model is loaded, so a malicious file could run "
            "anything. If you trust where the file comes from, load it with trust_code=True "
            "(CLI: --trust-code)",
            path=path,
        )
    import keras

    foreign, non_modeling = _foreign_references(
        config, _caller_objects(keras, custom_objects), keras
    )
    if foreign:
        # Never handed to Keras, trusted or not: pyinfer imports no module a file names.
        first = foreign[0].rsplit(".", 1)[-1]
        raise ArchitectureError(
            f"{path} uses {', '.join(repr(f.rsplit('.', 1)[-1]) for f in foreign[:5])} "
            f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}), which is not a "
            "Keras object nor in custom_objects: it is code outside the file, and pyinfer "
            "does not import modules or functions a model file names. If it is your own code, "
            f"pass it with custom_objects={{'{first}': TheClass}}",
            path=path,
        )
    if non_modeling and not trust_code:
        raise UntrustedModelError(
            f"{path} names Keras functions that are not model parts: {', '.join(non_modeling)} "
            "(they read, download or write files, or change Keras settings, and would be "
            "called while the model is rebuilt); a model file has no use for them. If you "
            "trust where the file comes from, load it with trust_code=True (CLI: --trust-code)",
            path=path,
        )
    try:
        with _keras_path(path, fmt) as keras_path, device_scope(tf, tf_device):
            keras_model = keras.models.load_model(
                keras_path,
                custom_objects=dict(custom_objects) if custom_objects else None,
                compile=False,
                safe_mode=not trust_code,
            )
    except Exception as exc:
        raise _keras_error(exc, path) from exc
    inputs, outputs = _keras_specs(keras_model, path)
    weights = list(keras_model.weights)
    parameter_bytes = sum(
        int(np.prod(w.shape, dtype=np.int64)) * _np_dtype(w.dtype).itemsize for w in weights
    )
    return KerasModel(
        keras_model,
        call_mode=call_mode,
        tf=tf,
        tf_device=tf_device,
        name=name,
        format=fmt,
        device=device,
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=int(keras_model.count_params()),
        parameter_bytes=parameter_bytes,
        options={
            "call_mode": call_mode,
            "trust_code": trust_code,
            "custom_objects": sorted(custom_objects) if custom_objects else [],
        },
    )


def _keras_error(exc: Exception, path: Path) -> ModelLoadError:
    text = str(exc)
    if "safe_mode" in text or "unsafe" in text.lower():
        return UntrustedModelError(
            f"{path}: Keras refused to load code stored in the file ({text}); load it with "
            "trust_code=True only if you trust where the file comes from",
            path=path,
        )
    missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if missing or "Unknown layer" in text:
        what = f"'{missing.group(1)}'" if missing else "a layer class"
        return ArchitectureError(
            f"{path} uses {what}, which Keras cannot find: it is custom code, not stored in "
            f"the file. Pass it with custom_objects={{'{missing.group(1) if missing else 'Name'}"
            "': TheClass}",
            path=path,
        )
    return CorruptModelError(
        f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {text}); the file "
        "is damaged or was written by an incompatible Keras version: save it again",
        path=path,
    )


def _keras_specs(keras_model: Any, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    try:
        in_tensors = list(keras_model.inputs)
        out_tensors = list(keras_model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ArchitectureError(
            f"{path} holds a Keras model whose inputs are not declared (a subclassed model "
            "never called before saving); pyinfer needs a functional or Sequential model with "
            "keras.Input layers: rebuild it so and save it again",
            path=path,
        ) from exc
    in_struct = getattr(keras_model, "_inputs_struct", None)
    in_names = list(in_struct) if isinstance(in_struct, dict) else [t.name for t in in_tensors]
    in_by_name = (
        dict(in_struct)
        if isinstance(in_struct, dict)
        else dict(zip(in_names, in_tensors, strict=True))
    )
    inputs = [
        TensorSpec(n, _shape(in_by_name[n].shape), _np_dtype(in_by_name[n].dtype)) for n in in_names
    ]
    out_struct = getattr(keras_model, "_outputs_struct", None)
    if isinstance(out_struct, dict):
        out_pairs = list(out_struct.items())
    else:
        names = getattr(keras_model, "output_names", None)
        if not names or len(names) != len(out_tensors):
            if len(out_tensors) == 1:
                names = [keras_model.layers[-1].name]
            else:
                names = [f"output_{i}" for i in range(len(out_tensors))]
        out_pairs = list(zip(names, out_tensors, strict=True))
    outputs = [TensorSpec(str(n), _shape(t.shape), _np_dtype(t.dtype)) for n, t in out_pairs]
    return inputs, outputs
