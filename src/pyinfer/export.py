"""Exporting a model to the other formats of its framework, the way pyinfer loads them fastest.

Used by the tests, the benchmark suite and ``pyinfer formats`` to compare one model across
formats. Every exporter writes models with a dynamic batch dimension where the format allows it
and keeps external data files next to the model. Every export is atomic: it is written beside
its target in a hidden staging folder and moved into place once complete, so an interrupted or
killed export never leaves a half-written model under the target's name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import ensure_triton_safe, import_tensorflow, import_torch
from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError, PyinferError
from pyinfer.report import write_atomic

logger = logging.getLogger(__name__)

#: Age in seconds after which an export's staging folder, left beside its target by a process
#: killed while exporting, is removed by the next export of the same name.
STALE_STAGING_S = 600.0


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """Yields where to write ``out``: the same name in a hidden folder beside it.

    Once the exporter returns, the result is moved into place with ``os.replace`` (atomic for a
    file); an ONNX model's ``.data`` file first, after the old model is removed, so no model is
    ever left beside weights that are not its own. An exporter that fails or is interrupted
    leaves ``out`` as it was; one killed outright (SIGKILL) leaves only the hidden staging folder
    ``.NAME.XXXXXXXX.export``, removed by a later export of the same name once it is older than
    :data:`STALE_STAGING_S`. A reader never sees a half-written model under the final name.
    """
    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{out.name}.", suffix=".export"))
    try:
        staged = staging / out.name
        yield staged
        data, staged_data = out.with_name(out.name + ".data"), staged.with_name(out.name + ".data")
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)  # a SavedModel folder: os.replace cannot replace a full one
        elif staged_data.exists() or data.exists():
            out.unlink(missing_ok=True)  # the old model must not meet the new weights
        if staged_data.exists():
            staged_data.replace(data)
        else:
            data.unlink(missing_ok=True)  # a stale one from an earlier export must not remain
        staged.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(out: Path) -> None:
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.export")
    now = time.time()
    try:
        stale = [p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return
    for folder in stale:
        try:
            if now - folder.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(folder)
                logger.info("removed %s, left by an export that was killed", folder)
        except OSError:
            continue


# -- torch: TorchScript, torch.export and ONNX ---------------------------------------------------


def _torch_examples(torch: ModuleType, example_inputs: Any, module: Any = None) -> tuple[Any, ...]:
    """Example inputs as a tuple of tensors (numpy arrays are converted).

    A dict of input name to tensor (what a Hugging Face tokenizer gives) is put in the order of
    ``module``'s ``forward`` arguments; names it does not take are an error.
    """
    if isinstance(example_inputs, Mapping):
        count = len(example_inputs)
        params = _forward_names(module, count) if module is not None else []
        if set(params) != set(example_inputs):
            raise InvalidArgumentError(
                f"example inputs {', '.join(map(str, example_inputs))} must be the first "
                f"{count} arguments of the module's forward ({', '.join(params)}), which the "
                "exports take by position"
            )
        example_inputs = tuple(example_inputs[n] for n in params)
    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    out = []
    for given in items:
        item = torch.from_numpy(np.array(given)) if isinstance(given, np.ndarray) else given
        if not isinstance(item, torch.Tensor):
            raise InvalidArgumentError(
                f"example inputs must be torch tensors or numpy arrays, not {type(item).__name__}"
            )
        out.append(item)
    if not out:
        raise InvalidArgumentError("give at least one example input")
    return tuple(out)


def _batch_axis(name: str, tensor: Any, batch_axes: Mapping[str, int | None]) -> int | None:
    """Where ``tensor`` (input or output ``name``) holds its batch.

    ``batch_axes[name]``, else the first axis; ``None`` for a 0-d tensor, or an axis it lacks.
    """
    axis = batch_axes.get(name, 0)
    rank = tensor.dim() if hasattr(tensor, "dim") else len(getattr(tensor, "shape", ()))
    return axis if axis is not None and 0 <= axis < rank else None


def _dynamic_shapes(
    torch: ModuleType,
    module: Any,
    examples: tuple[Any, ...],
    names: Sequence[str],
    batch_axes: Mapping[str, int | None],
) -> tuple[Any, ...]:
    """``torch.export`` dynamic shapes: one shared ``batch`` on every input's batch axis.

    The batch axis is ``batch_axes[name]`` (``None``: the input has none, as a shared scalar),
    the first axis for inputs not named there, none for 0-d inputs. A module that declares
    ``pyinfer_dynamic_axes`` (input name to ``{axis: (name, max)}``, as the Hugging Face wrapper
    of :mod:`pyinfer.backends.torch.hf` does) gets those axes instead, each name one shared
    ``Dim`` (``sequence`` bounded by the model's position embeddings).
    """
    declared = getattr(module, "pyinfer_dynamic_axes", None)
    if not declared:
        batch = torch.export.Dim("batch", min=1)
        shapes = []
        for name, t in zip(names, examples, strict=True):
            axis = _batch_axis(name, t, batch_axes)
            shapes.append({} if axis is None else {axis: batch})
        return tuple(shapes)
    dims: dict[str, Any] = {}
    shapes = []
    for name in _forward_names(module, len(examples)):
        axes: dict[int, Any] = {}
        for axis, (dim_name, top) in dict(declared.get(name, {})).items():
            if dim_name not in dims:
                dims[dim_name] = torch.export.Dim(dim_name, min=1, max=top or None)
            axes[int(axis)] = dims[dim_name]
        shapes.append(axes)
    return tuple(shapes)


def _dynamic_axes(
    module: Any,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    batch_axes: Mapping[str, int | None],
) -> dict[str, Any]:
    """The legacy ONNX exporter's ``dynamic_axes``.

    The batch on every input's and output's batch axis (see :func:`_dynamic_shapes`), or the
    module's ``pyinfer_dynamic_axes`` for its inputs (and the batch on its outputs).
    """
    declared = getattr(module, "pyinfer_dynamic_axes", None) or {}
    axes: dict[str, Any] = {}
    for name, tensor in [*inputs.items(), *outputs.items()]:
        axis = _batch_axis(name, tensor, batch_axes)
        if axis is not None:
            axes[name] = {axis: "batch"}
    for name, given in dict(declared).items():
        axes[name] = {int(a): d[0] for a, d in given.items()}
    return axes


def _batched(
    examples: tuple[Any, ...], names: Sequence[str], batch_axes: Mapping[str, int | None]
) -> tuple[Any, ...]:
    """Examples with a batch of at least 2: torch.export fixes a dimension traced at size 1.

    Each input with a batch axis is repeated along it when every such input has a batch of 1.
    """
    axes = [_batch_axis(n, t, batch_axes) for n, t in zip(names, examples, strict=True)]
    batched = [(t, a) for t, a in zip(examples, axes, strict=True) if a is not None]
    if not batched or any(t.shape[a] != 1 for t, a in batched):
        return examples
    return tuple(
        t if a is None else t.repeat(*[2 if i == a else 1 for i in range(t.dim())])
        for t, a in zip(examples, axes, strict=True)
    )


def _eval_module(module: Any) -> Any:
    """``module`` in eval mode, ready for an exporter.

    A ``torch.export.ExportedProgram`` becomes its module. That module (like any unlifted
    ``torch.export`` module) is already in inference mode and raises on ``eval()``/``train()``,
    which every exporter calls, so it is wrapped in a module whose ``forward`` has the same
    signature (the exporters name inputs and map dynamic shapes from it).
    """
    torch = import_torch()
    if isinstance(module, torch.export.ExportedProgram):
        module = module.module()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(f"expected a torch.nn.Module, not {type(module).__name__}")
    try:
        return module.eval()
    except NotImplementedError:  # an unlifted torch.export module
        return _inference_wrapper(torch, module)


def _inference_wrapper(torch: ModuleType, inner: Any) -> Any:
    """A module that calls ``inner`` and whose ``train``/``eval`` leave ``inner`` alone."""

    class _InferenceOnly(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def train(self, mode: bool = True) -> Any:
            self.training = mode
            return self

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.inner(*args, **kwargs)

    try:
        signature = inspect.signature(inner.forward)
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        signature = None
    if signature is not None:
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        _InferenceOnly.forward.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*params, *signature.parameters.values()]
        )
    return _InferenceOnly().train(False)


def _forward_names(module: Any, count: int) -> list[str]:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:  # a TorchScript method: its schema names the arguments
        names = [a.name for a in schema.arguments if a.name != "self"]
        if len(names) >= count and all(n.isidentifier() for n in names[:count]):
            return names[:count]
    try:
        params = [
            p.name
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in {p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD}
        ]
    except (TypeError, ValueError):  # pragma: no cover - forward without a signature
        params = []
    if len(params) >= count:
        return params[:count]
    return [f"input_{i}" for i in range(count)]


def export_torchscript(
    module: Any,
    path: str | Path,
    example_inputs: Any,
    *,
    method: str = "trace",
) -> Path:
    """Saves a module as a TorchScript archive.

    Args:
        module: The ``torch.nn.Module`` (switched to eval mode).
        path: The file to write (``.pt``).
        example_inputs: A tensor or tuple of tensors (or numpy arrays) to trace with.
        method: ``"trace"`` (records the operations run on the example; the batch stays
            dynamic for models without shape-dependent Python code) or ``"script"`` (compiles
            the Python source, keeping control flow).

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: On an unknown method or bad example inputs.
    """
    torch = import_torch()
    if method not in {"trace", "script"}:
        raise InvalidArgumentError(f"method must be 'trace' or 'script', not {method!r}")
    module = _eval_module(module)
    examples = _torch_examples(torch, example_inputs, module)
    out = Path(path)
    with warnings.catch_warnings():
        # torch 2.14 deprecates torch.jit.* with a FutureWarning; the format is still loaded.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        # The tracer reads every attribute of a module; transformers models answer a
        # deprecated one (is_gradient_checkpointing) with a FutureWarning.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
        # Its masking code tests tensor values in Python; the trace holds for other batch sizes
        # and lengths (pyinfer formats checks each export's outputs against the original's).
        warnings.filterwarnings(
            "ignore", category=torch.jit.TracerWarning, module=r"transformers\."
        )
        with torch.no_grad():
            if method == "trace":
                # strict=False lets dict and list outputs through, as pyinfer loads them.
                scripted = torch.jit.trace(module, examples, strict=False)
            else:
                scripted = torch.jit.script(module)
        with _staged(out) as staged:
            torch.jit.save(scripted, str(staged))
    return out


def export_torch_program(
    module: Any,
    path: str | Path,
    example_inputs: Any,
    *,
    dynamic_batch: bool = True,
    batch_axes: Mapping[str, int | None] | None = None,
) -> Path:
    """Saves a module as a ``torch.export`` program (``.pt2``).

    Args:
        module: The ``torch.nn.Module`` (switched to eval mode).
        path: The file to write.
        example_inputs: A tensor or tuple of tensors (or numpy arrays), one per ``forward``
            argument. Examples of batch 1 are repeated to batch 2 for export, since
            ``torch.export`` would otherwise fix a dimension it saw at size 1.
        dynamic_batch: Declare every input's batch axis as one dynamic ``batch``.
        batch_axes: Input name to its batch axis (``None``: it has none, as a scalar shared
            by the batch); inputs not named have it first, 0-d inputs have none.

    Returns:
        The path written.
    """
    torch = import_torch()
    ensure_triton_safe()
    module = _eval_module(module)
    examples = _torch_examples(torch, example_inputs, module)
    axes = dict(batch_axes or {})
    dynamic_shapes = None
    if dynamic_batch:
        names = _forward_names(module, len(examples))
        examples = _batched(examples, names, axes)
        dynamic_shapes = _dynamic_shapes(torch, module, examples, names, axes)
    program = torch.export.export(module, examples, dynamic_shapes=dynamic_shapes)
    out = Path(path)
    with _staged(out) as staged:
        torch.export.save(program, str(staged))
    return out


def export_onnx(
    module: Any,
    path: str | Path,
    example_inputs: Any,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    dynamo: bool | None = None,
    batch_axes: Mapping[str, int | None] | None = None,
) -> list[Path]:
    """Exports a module to ONNX, with a dynamic batch and its external data beside it.

    The default exporter is torch's dynamo-based one (``torch.export`` underneath), the one
    torch develops and defaults to since 2.9; the TorchScript-based exporter is deprecated and
    will be removed. It needs ``onnxscript``: where that is missing the default falls back to
    the legacy exporter with a logged note. The dynamo exporter writes the weights to
    ``<name>.onnx.data`` in the same folder; keep the two files together.

    Args:
        module: The ``torch.nn.Module`` (switched to eval mode), a TorchScript module or a
            ``torch.export.ExportedProgram``.
        path: The ``.onnx`` file to write.
        example_inputs: A tensor or tuple of tensors (or numpy arrays), one per input.
        input_names: Names of the ONNX inputs; the ``forward`` argument names by default.
        output_names: Names of the ONNX outputs; by default those pyinfer gives the module's
            outputs (``output``; ``output_0``, ...; a dict's keys).
        dynamic_batch: Make every input's and output's batch axis a dynamic ``batch``.
        batch_axes: Input or output name to its batch axis (``None``: it has none, as a scalar
            shared by the batch, or a state); those not named have it first, 0-d ones none.
        opset: The ONNX opset (the exporter's default if ``None``).
        dynamo: ``True`` for the dynamo exporter, ``False`` for the legacy one, ``None``
            (default) for dynamo where ``onnxscript`` is installed and ``module`` is not a
            TorchScript module (which only the legacy exporter takes).

    Returns:
        The files written: the model first, then its external data file if there is one.

    Raises:
        InvalidArgumentError: On bad example inputs or names.
        FrameworkNotInstalledError: If ``dynamo=True`` and onnxscript is missing.
    """
    torch = import_torch()
    ensure_triton_safe()
    from pyinfer.backends.torch import flatten_outputs

    module = _eval_module(module)
    examples = _torch_examples(torch, example_inputs, module)
    scripted = isinstance(module, torch.jit.ScriptModule)
    if scripted and dynamo:
        raise InvalidArgumentError(
            "the dynamo ONNX exporter cannot take a TorchScript module; pass dynamo=False (or "
            "None) for the TorchScript-based exporter, or export the original nn.Module"
        )
    if dynamo is None and scripted:
        dynamo = False
        logger.info("a TorchScript module: exporting with the TorchScript-based ONNX exporter")
    if dynamo is None:
        dynamo = importlib.util.find_spec("onnxscript") is not None
        if not dynamo:
            logger.info("onnxscript is not installed: exporting with the legacy ONNX exporter")
    elif dynamo and importlib.util.find_spec("onnxscript") is None:
        raise FrameworkNotInstalledError(
            "the dynamo ONNX exporter needs onnxscript: pip install onnxscript, or pass "
            "dynamo=False for the legacy exporter"
        )
    in_names = list(input_names) if input_names else _forward_names(module, len(examples))
    if len(in_names) != len(examples):
        raise InvalidArgumentError(
            f"{len(in_names)} input names for {len(examples)} example inputs: give one per input"
        )
    axes = dict(batch_axes or {})
    if dynamic_batch:
        examples = _batched(examples, in_names, axes)
    with torch.no_grad():
        result = module(*examples)
    results = dict(flatten_outputs(result, "output", top=True))
    out_names = list(results) if output_names is None else list(output_names)
    if len(out_names) != len(results):
        raise InvalidArgumentError(
            f"{len(out_names)} output names for the module's {len(results)} outputs: give one "
            "per output"
        )
    out = Path(path)
    data_file = out.with_name(out.name + ".data")
    kwargs: dict[str, Any] = {"input_names": in_names, "output_names": out_names}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamo:
        if dynamic_batch:
            kwargs["dynamic_shapes"] = _dynamic_shapes(torch, module, examples, in_names, axes)
        with warnings.catch_warnings():
            # One Dim shared by several inputs makes the exporter warn that it names the
            # axis once; that is what a shared batch means.
            warnings.filterwarnings("ignore", message=r".*The axis name", category=UserWarning)
            with _staged(out) as staged:
                torch.onnx.export(
                    module, examples, str(staged), dynamo=True, verbose=False, **kwargs
                )
    else:
        if dynamic_batch:
            kwargs["dynamic_axes"] = _dynamic_axes(
                module,
                dict(zip(in_names, examples, strict=True)),
                dict(zip(out_names, results.values(), strict=True)),
                axes,
            )
        with warnings.catch_warnings():
            # The legacy exporter is deprecated (DeprecationWarning) but still works; the
            # caller chose it with dynamo=False, or has no onnxscript.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # A TorchScript module's forward has no Python signature; the names are given.
            warnings.filterwarnings("ignore", message=r"no signature found", category=UserWarning)
            with _stdout_to_log("the TorchScript-based ONNX exporter"), _staged(out) as staged:
                torch.onnx.export(module, examples, str(staged), dynamo=False, **kwargs)
    return [out, data_file] if data_file.exists() else [out]


@contextlib.contextmanager
def _stdout_to_log(what: str) -> Iterator[None]:
    """Sends what native code writes to the process's standard output into the log.

    The TorchScript-based exporter prints the whole TorchScript graph from C++ when an operator
    has no ONNX form (thousands of lines on stdout, where a command's results go); the error it
    raises says what failed. File descriptor 1 is pointed at a temporary file for the duration
    and its content logged at DEBUG level.
    """
    fd = 1  # native code writes to the descriptor, whatever sys.stdout is
    try:
        saved = os.dup(fd)
    except OSError:  # no standard output at all
        yield
        return
    sys.stdout.flush()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                logger.debug("%s wrote to stdout:\n%s", what, text)


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
        with _quiet_keras(), _staged(out) as staged:
            model.save(staged)
        return out
    if format == "saved_model":
        with _quiet_keras(), _staged(out) as staged:
            model.export(str(staged), format="tf_saved_model", verbose=False)
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
    write_atomic(out, flatbuffer)
    _check_tflite_dynamic_batch(tf, out, model)
    return out


def export_saved_model_tflite(saved_model: str | Path, path: str | Path) -> Path:
    """Converts a TensorFlow SavedModel folder to a float32 TFLite file.

    For a model that exists only as a SavedModel (no Keras model to give
    :func:`export_keras`).

    Args:
        saved_model: The SavedModel folder.
        path: The ``.tflite`` file to write.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: If ``saved_model`` is not a folder.
        FrameworkNotInstalledError: If TensorFlow is not installed.
    """
    folder = Path(saved_model)
    if not folder.is_dir():
        raise InvalidArgumentError(f"{folder} is not a SavedModel folder")
    tf = import_tensorflow()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_keras():
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(folder)).convert()
    write_atomic(out, flatbuffer)
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
