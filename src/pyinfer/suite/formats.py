"""One model compared across every format reachable from its framework, with output parity.

:func:`compare_formats` loads the user's file, exports it with :mod:`pyinfer.export` to each other
format, loads each back, checks its outputs against the original's on the same random input and
profiles it with the same settings.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pyinfer
from pyinfer.errors import InvalidArgumentError, PyinferError
from pyinfer.formats import format_info
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings
from pyinfer.report.environment import collect_environment
from pyinfer.suite.artifacts import Artifacts, work_folder
from pyinfer.suite.parity import output_parity
from pyinfer.suite.results import FormatEntry, FormatsResult, failure_reason
from pyinfer.suite.settings import (
    FAILED,
    FORMAT_CHOICES,
    FORMAT_ROW_LABELS,
    OK,
    PARITY_TOLERANCE,
    PARITY_TOLERANCE_TFLITE,
    Progress,
    full_settings,
    quick_settings,
    settings_dict,
)
from pyinfer.suite.tables import done_line

__all__ = ["compare_formats"]

logger = logging.getLogger(__name__)

_TORCH_SOURCES = {"pytorch", "pytorch-legacy", "pickle"}
_KERAS_SOURCES = {"keras", "keras-h5"}


#: Why a source format reaches no more than its export targets, where that needs saying.
_UNREACHABLE_NOTES = {
    "torchscript": (
        "from TorchScript: eager and torch.export need the Python module, not in the file"
    ),
    "saved-model": (
        "from a SavedModel: Keras is not reachable (the folder does not keep the Keras model)"
    ),
    "onnx": (
        "nothing else is reachable from an ONNX file: "
        "pyinfer exports from torch modules and Keras models only"
    ),
    "tflite": (
        "nothing else is reachable from a TFLite file: "
        "pyinfer exports from torch modules and Keras models only"
    ),
}


def _reachable(source_format: str) -> tuple[tuple[str, ...], str]:
    """The formats reachable from a source format (its own first) and a note on the rest.

    The targets are the format registry's export targets (:mod:`pyinfer.formats`).
    """
    targets = format_info(source_format).export_targets
    return (_original_key(source_format), *targets), _UNREACHABLE_NOTES.get(source_format, "")


def _original_key(source_format: str) -> str:
    if source_format in _TORCH_SOURCES:
        return "eager"
    if source_format in _KERAS_SOURCES:
        return "keras"
    return source_format


def _export_name(fmt: str, stem: str) -> str:
    """The file (or folder) name of ``stem`` exported in ``fmt``."""
    return {
        "torchscript": f"{stem}.torchscript.pt",
        "torch-export": f"{stem}.pt2",
        "onnx": f"{stem}.onnx",
        "keras": f"{stem}.keras",
        "saved-model": f"{stem}_saved_model",
    }.get(fmt, f"{stem}.tflite")


def _export(fmt: str, source: Any, example: Any, target: Path) -> Path:
    """Writes ``source`` (a torch module, a Keras model or a SavedModel path) in ``fmt``."""
    from pyinfer import export

    if fmt == "torchscript":
        return export.export_torchscript(source, target, example)
    if fmt == "torch-export":
        return export.export_torch_program(source, target, example)
    if fmt == "onnx":
        return export.export_onnx(source, target, example)[0]
    if isinstance(source, Path):  # a SavedModel folder
        return export.export_saved_model_tflite(source, target)
    kind = {"saved-model": "saved_model"}.get(fmt, fmt)
    return export.export_keras(source, target, format=kind)


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files and their relative names."""
    sha = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        sha.update(str(file.relative_to(path) if file != path else "").encode())
        with file.open("rb") as handle:
            for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
                sha.update(chunk)
    return sha.hexdigest()


def _shape_dims(
    model: Any, input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None
) -> dict[str, int]:
    """Named dynamic dimensions of the inputs, sized from ``--input-shape``.

    A sequence sizes the first input, a mapping each input it names.
    """
    if not input_shape or not model.inputs:
        return {}
    if isinstance(input_shape, Mapping):
        given = [(s, input_shape[s.name]) for s in model.inputs if s.name in input_shape]
    else:
        given = [(model.inputs[0], input_shape)]
    dims: dict[str, int] = {}
    for spec, item in given:
        for dim, size in zip((spec.shape or ())[1:], item, strict=False):
            if isinstance(dim, str):
                dims[dim] = int(size)
    return dims


def compare_formats(
    path: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    formats: Sequence[str] | None = None,
    input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    work_dir: str | Path | None = None,
    quick: bool = False,
    settings: ProfilerSettings | None = None,
    trust_code: bool = False,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> FormatsResult:
    """Profiles a model in every format reachable from its framework, with output parity.

    The original is loaded with :func:`pyinfer.load_model`, exported to each other format with
    :mod:`pyinfer.export`, loaded back and profiled with the same settings; each one's outputs on
    the same random input are compared with the original's.

    Args:
        path: The model file (or SavedModel folder).
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: Items per call.
        formats: A subset of the reachable formats (default: all of them).
        input_shape: One item's shape (without the batch), for a torch module that does not
            describe its input, and to size named dynamic dimensions; for a model with several
            inputs, a mapping of input name to its item's shape.
        work_dir: Keep the exports here (default: a temporary folder, removed).
        quick: Use :func:`quick_settings`.
        settings: Explicit profiler settings (override ``quick``).
        trust_code: Allow loading code stored in the original (a pickled whole module, Keras
            Lambda layers, ...; runs code from the file). The exports are loaded without it.
        options: More options for loading the original with :func:`pyinfer.load_model`
            (``architecture`` for a state_dict, ``input_shapes``...); they win over
            ``input_shape``.
        progress: Called with a line per step.

    Returns:
        The result; a format that fails to export or load is recorded with its reason.

    Raises:
        ModelLoadError: If the original cannot be loaded (missing file, unknown format...).
        InvalidArgumentError: On a format not reachable from the model, or a bad option.
    """
    source = Path(path)
    fmt = pyinfer.detect_format(source)
    source_format = fmt.value
    reachable, note = _reachable(source_format)
    if formats:
        unknown = [f for f in formats if f not in FORMAT_CHOICES]
        if unknown:
            raise InvalidArgumentError(
                f"--formats: unknown format {', '.join(map(repr, unknown))}; use some of "
                + ", ".join(FORMAT_CHOICES)
            )
        unreachable = [f for f in formats if f not in reachable]
        if unreachable:
            raise InvalidArgumentError(
                f"--formats: {', '.join(unreachable)} not reachable from {source} "
                f"({source_format}); reachable: {', '.join(reachable)}"
            )
        chosen = [f for f in reachable if f in formats or f == reachable[0]]
    else:
        chosen = list(reachable)
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    prof = settings or (quick_settings() if quick else full_settings())
    no_throughput = quick and settings is None
    say = progress or (lambda line: logger.info("%s", line))
    start = time.perf_counter()
    load_options: dict[str, Any] = {"trust_code": True} if trust_code else {}
    if source_format in _TORCH_SOURCES | {"torchscript", "torch-export"}:
        if isinstance(input_shape, Mapping):
            load_options["input_shapes"] = {k: (None, *v) for k, v in input_shape.items()}
        elif input_shape:
            load_options["input_shapes"] = (None, *input_shape)
    load_options.update(options or {})
    entries: list[FormatEntry] = []
    interrupted = False
    stem = source.stem or "model"
    original_key = _original_key(source_format)

    def load(p: Path, key: str | None = None) -> Any:
        """The original (``key`` None) with the user's options; an export with what it needs."""
        extra = load_options if key is None else {}
        if key in {"torchscript", "torch-export"}:
            # A traced or exported module does not record its input shapes: the original's
            # (one input: by position, since tracing may rename it).
            shapes = {s.name: s.shape for s in original.inputs}
            one = next(iter(shapes.values())) if len(shapes) == 1 else None
            extra = {"input_shapes": one if one is not None else shapes}
        return pyinfer.load_model(p, device=device, name=stem, **extra)

    try:
        with work_folder(Path(work_dir) if work_dir is not None else None) as folder:
            artifacts = Artifacts(folder)
            t0 = time.perf_counter()
            original = load(source)
            exportable = original
            torch_source = source_format in _TORCH_SOURCES | {"torchscript", "torch-export"}
            if len(chosen) > 1 and (device != "cpu" or torch_source):
                # The exporters take the module as written: not on CUDA, and not the frozen,
                # oneDNN-optimised TorchScript that pyinfer runs (its mkldnn ops have no ONNX
                # form).
                plain: dict[str, Any] = (
                    {"freeze": False, "optimize": False, "channels_last": False}
                    if torch_source
                    else {}
                )
                exportable = pyinfer.load_model(
                    source, device="cpu", name=stem, **load_options, **plain
                )
            _check_batch(original, batch_size)
            dims = _shape_dims(original, input_shape)
            inputs = original.example_inputs(batch_size, seed=0, dims=dims)
            expected = original(inputs)
            load_s = time.perf_counter() - t0
            export_source: Any = (
                source
                if source_format == "saved-model"
                else getattr(exportable, "keras_model", None) or getattr(exportable, "module", None)
            )
            example = tuple(inputs[s.name] for s in exportable.inputs)
            versions = collect_environment().versions
            # An export is reused only from the same model file, inputs, options and versions.
            export_key = "|".join(
                [
                    f"source={_digest(source)}",
                    f"inputs={[tuple(np.shape(x)) for x in example]}",
                    f"options={sorted((k, repr(v)) for k, v in load_options.items())}",
                    ",".join(f"{k}={v}" for k, v in sorted(versions.items())),
                ]
            )
            prof = dataclasses.replace(prof, input_dims={**prof.input_dims, **dims})
            for number, key in enumerate(chosen, 1):
                label = _original_label(key, source_format) if key == original_key else None
                label = label or FORMAT_ROW_LABELS[key]
                say(
                    f"[{number}/{len(chosen)}] {label} "
                    f"(elapsed {time.perf_counter() - start:.0f} s)"
                )
                entry = _format_entry(
                    key,
                    label,
                    original if key == original_key else None,
                    export_fn=functools.partial(
                        artifacts.get,
                        _export_name(key, stem),
                        f"{key}|{export_key}",
                        functools.partial(_export, key, export_source, example),
                    ),
                    load=functools.partial(load, key=key),
                    inputs=inputs,
                    expected=expected,
                    settings=prof,
                    batch_size=batch_size,
                    no_throughput=no_throughput,
                    prepare_s=load_s if key == original_key else 0.0,
                )
                if _export_name(key, stem) in artifacts.reused:
                    entry = dataclasses.replace(entry, reused=True)
                    say(f"[{number}/{len(chosen)}] reused {entry.path} (same model and versions)")
                entries.append(entry)
                say(f"[{number}/{len(chosen)}] {done_line(entry)}")
            original.close()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: keeping the formats finished so far")
    environment = collect_environment(cuda_device=0 if device.startswith("cuda") else None)
    return FormatsResult(
        source=str(source),
        source_format=source_format,
        device=device,
        batch_size=batch_size,
        entries=tuple(entries),
        note=note,
        environment=environment,
        settings=settings_dict(prof),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
    )


def _check_batch(model: Any, batch_size: int) -> None:
    """Refuses, before any export, a batch size that a fixed-batch model cannot run.

    Raises:
        InvalidArgumentError: Naming the input and its fixed batch.
    """
    if model.has_dynamic_batch:
        return
    first = next((s for s in model.inputs if s.shape and isinstance(s.shape[0], int)), None)
    if first is not None and first.shape[0] != batch_size:
        model.close()
        raise InvalidArgumentError(
            f"--batch-size {batch_size}: model '{model.name}' has a fixed batch size of "
            f"{first.shape[0]} (input {first}); use --batch-size {first.shape[0]}, or export it "
            "with a dynamic batch"
        )


def _original_label(key: str, source_format: str) -> str:
    if source_format == "keras-h5":
        return "Keras (h5)"
    return FORMAT_ROW_LABELS[key]


def _format_entry(
    key: str,
    label: str,
    original: Any,
    *,
    export_fn: Callable[[], Path],
    load: Callable[[Path], Any],  # the format's loader
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    settings: ProfilerSettings,
    batch_size: int,
    no_throughput: bool,
    prepare_s: float,
) -> FormatEntry:
    """Exports, loads, checks and profiles one format; failures become the row's reason."""
    start = time.perf_counter()
    tolerance = PARITY_TOLERANCE_TFLITE if key == "tflite" else PARITY_TOLERANCE
    is_original = original is not None
    # The row's identity and its parity fields, shared by the failed and the measured row.
    base: dict[str, Any] = {
        "format": key,
        "label": label,
        "original": is_original,
        "tolerance": tolerance,
    }
    model = original
    path = ""
    try:
        if model is None:
            try:
                written = export_fn()
            except Exception as exc:
                raise _StageError("export failed", exc) from exc
            path = str(written)
            try:
                model = load(written)
            except Exception as exc:
                raise _StageError("load failed", exc) from exc
            prepare_s = time.perf_counter() - start
            try:
                # In the original's order: an export may name its inputs differently.
                check = output_parity(expected, model(list(inputs.values())), tolerance)
                base.update(
                    max_abs_error=check.max_abs,
                    relative_error=check.relative,
                    parity=check.ok,
                    parity_output=check.output,
                    mismatch=check.detail,
                )
            except Exception as exc:
                raise _StageError("parity check failed", exc) from exc
        else:
            path = str(original.path or "")
        try:
            report = PerformanceProfiler(model, settings).profile(
                batch_size=batch_size, throughput=not no_throughput
            )
        except Exception as exc:
            raise _StageError("profiling failed", exc) from exc
    except _StageError as stage:
        return FormatEntry(
            **base,
            status=FAILED,
            path=path,
            reason=f"{stage.stage}: {failure_reason(stage.cause)}",
            elapsed_s=time.perf_counter() - start,
        )
    finally:
        if model is not None and not is_original:
            model.close()
    return FormatEntry(
        **base,
        status=OK,
        path=path,
        report=report,
        prepare_s=prepare_s,
        elapsed_s=time.perf_counter() - start,
    )


class _StageError(PyinferError):
    """A failure at one step of a format's row (export, load, parity, profiling)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage = stage
        self.cause = cause
