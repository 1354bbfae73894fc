"""One model compared across every format reachable from its framework, with output parity.

:func:`compare_formats` loads the user's file, computes its outputs on a seeded random input and
exports it with :mod:`pyinfer.export` to each other format; then each format is loaded and
profiled with the same settings in its own fresh worker process (:mod:`pyinfer.suite.measure`),
its outputs on the same input coming back to be checked against the original's. The parent
measures nothing itself and keeps no model while the workers run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import pyinfer
from pyinfer.backends.base import LoadRequest
from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import format_info
from pyinfer.profiling import ProfilerSettings
from pyinfer.profiling.inputs import given_inputs
from pyinfer.profiling.jobs import WorkerJob, WorkerResult
from pyinfer.profiling.repeat import load_request_of
from pyinfer.profiling.settings import settings_record
from pyinfer.report.codec import encode_json
from pyinfer.report.environment import collect_environment
from pyinfer.suite.artifacts import Artifacts, work_folder
from pyinfer.suite.measure import EntryError, Measured, Subject, measure_interleaved
from pyinfer.suite.parity import output_parity
from pyinfer.suite.ratios import LatencyRatio
from pyinfer.suite.results import FormatEntry, FormatsResult, failure_reason, run_medians
from pyinfer.suite.settings import (
    FAILED,
    FORMAT_CHOICES,
    FORMAT_ROW_LABELS,
    OK,
    PARITY_TOLERANCE,
    PARITY_TOLERANCE_TFLITE,
    Progress,
    measurement_settings,
    runs_of,
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


def _export(
    fmt: str, source: Any, example: Any, batch_axes: dict[str, int | None], target: Path
) -> Path:
    """Writes ``source`` (a torch module, a Keras model or a SavedModel path) in ``fmt``.

    ``batch_axes`` (input or output name to its batch axis) makes the exported batch dynamic
    where the model keeps it: a state's batch on axis 1, none on a shared scalar.
    """
    from pyinfer import export

    if fmt == "torchscript":
        return export.export_torchscript(source, target, example)
    if fmt == "torch-export":
        return export.export_torch_program(source, target, example, batch_axes=batch_axes)
    if fmt == "onnx":
        return export.export_onnx(source, target, example, batch_axes=batch_axes)[0]
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
    repetitions: int | None = None,
    cpus: Sequence[int] = (),
    trust_code: bool = False,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    input_values: Mapping[str, Any] | None = None,
    input_dims: Mapping[str, int] | None = None,
    worker: Callable[[WorkerJob], WorkerResult] | None = None,
) -> FormatsResult:
    """Profiles a model in every format reachable from its framework, with output parity.

    The original is loaded with :func:`pyinfer.load_model`, exported to each other format with
    :mod:`pyinfer.export`; each format is then loaded and profiled with the same settings in
    its own fresh worker process (never in this one), its outputs on the same random input
    compared with the original's. With several repetitions the formats alternate in each
    round (run 1 of every format, then run 2...), and each format's latency ratio to the
    original comes with a 95% interval over the runs.

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
        settings: Explicit profiler settings for each run (override ``quick``).
        repetitions: Runs of each format, each in a fresh worker process (``None``:
            ``settings.repetitions`` when settings are given, else
            :data:`~pyinfer.suite.settings.QUICK_REPETITIONS` with ``quick`` and
            :data:`~pyinfer.suite.settings.SUITE_REPETITIONS` without); the default settings
            are spread over the runs (:func:`~pyinfer.suite.settings.measurement_settings`).
        cpus: Logical CPUs to pin the worker processes to.
        trust_code: Allow loading code stored in the original (a pickled whole module, Keras
            Lambda layers, ...; runs code from the file). The exports are loaded without it.
        options: More options for loading the original with :func:`pyinfer.load_model`
            (``architecture`` for a state_dict, ``input_shapes``...); they win over
            ``input_shape``.
        progress: Called with a line per step.
        inputs: Given inputs instead of random ones (``ProfilerSettings.inputs``): the parity
            check and every format's measurement run them.
        input_values: Values of some inputs (``ProfilerSettings.input_values``: a sample
            rate, a range of token ids).
        input_dims: Sizes of named dynamic dimensions (``{"sequence": 32}``), over the
            model's own defaults.
        worker: Runs one format's job (default: a fresh worker process on this machine; a
            Ray task on a cluster's node: :func:`pyinfer.cluster.compare_formats_on_cluster`).

    Returns:
        The result; a format that fails to export, load or run is recorded with its reason.

    Raises:
        ModelLoadError: If the original cannot be loaded (missing file, unknown format...).
        InvalidArgumentError: On a format not reachable from the model, or a bad option.
    """
    source = Path(path)
    fmt = pyinfer.detect_format(source)
    source_format = fmt.value
    reachable, note = _reachable(source_format)
    chosen = _chosen(formats, reachable, source, source_format)
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    runs = runs_of(settings, repetitions, quick=quick)
    prof = measurement_settings(settings, quick=quick, repetitions=runs, cpus=cpus)
    if inputs or input_values:
        prof = dataclasses.replace(
            prof, inputs=dict(inputs or {}), input_values=dict(input_values or {})
        )
    if input_dims:
        prof = dataclasses.replace(prof, input_dims={**prof.input_dims, **input_dims})
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
    items: list[FormatEntry | _Ready] = []
    measured: list[Measured] = []
    parity: dict[int, dict[str, Any]] = {}
    interrupted = False
    try:
        with work_folder(Path(work_dir) if work_dir is not None else None) as folder:
            user = _Original(
                source, source_format, load_options, device, batch_size, input_shape, prof
            )
            prepared = _prepare(
                user,
                chosen,
                Artifacts(folder),
                lambda text: say(f"{text} (elapsed {time.perf_counter() - start:.0f} s)"),
            )
            items = prepared.items
            prof = dataclasses.replace(prof, input_dims={**prof.input_dims, **prepared.dims})
            if prepared.tokenized and not prof.inputs:
                # Token ids from the original's tokenizer for every format: an export has no
                # tokenizer, and random ids fall outside small tables (token type ids).
                prof = dataclasses.replace(prof, inputs=prepared.inputs)
            ready = [
                (k, item)
                for k, item in zip(chosen, items, strict=False)
                if isinstance(item, _Ready)
            ]
            subjects = [
                _subject(item, prof, batch_size, no_throughput, prepared.inputs)
                for _, item in ready
            ]

            def check(index: int, result: WorkerResult) -> None:
                if ready[index][1].original or result.outputs is None:
                    return  # the reference itself
                key = ready[index][0]
                try:
                    got = output_parity(prepared.expected, result.outputs, _tolerance(key))
                except Exception as exc:
                    raise EntryError(f"parity check failed: {failure_reason(exc)}") from exc
                parity[index] = {
                    "max_abs_error": got.max_abs,
                    "relative_error": got.relative,
                    "parity": got.ok,
                    "parity_output": got.output,
                    "mismatch": got.detail,
                }

            def finished(index: int, got: Measured) -> None:
                key, item = ready[index]
                entry = _entry(key, item, got, prof, parity.get(index, {}))
                say(f"[{index + 1}/{len(subjects)}] {done_line(entry)}")

            measured, interrupted = measure_interleaved(
                subjects,
                runs,
                say,
                after_first=check,
                on_finished=finished,
                start=start,
                worker=worker,
            )
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        say("interrupted: keeping the formats finished so far")
    entries = _entries(chosen, items, measured, prof, parity)
    environment = collect_environment(cuda_device=0 if device.startswith("cuda") else None)
    return FormatsResult(
        source=str(source),
        source_format=source_format,
        device=device,
        batch_size=batch_size,
        entries=tuple(entries),
        note=note,
        environment=environment,
        settings=encode_json(settings_record(prof)),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
    )


def _chosen(
    formats: Sequence[str] | None, reachable: Sequence[str], source: Path, source_format: str
) -> list[str]:
    """The formats to compare, the original's first.

    Raises:
        InvalidArgumentError: On an unknown format, or one not reachable from the source.
    """
    if not formats:
        return list(reachable)
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
    return [f for f in reachable if f in formats or f == reachable[0]]


def _tolerance(key: str) -> float:
    return PARITY_TOLERANCE_TFLITE if key == "tflite" else PARITY_TOLERANCE


@dataclass
class _Ready:
    """A format whose file is ready for its workers: how they load it, and the parent's time."""

    label: str
    request: LoadRequest
    original: bool
    prepare_s: float
    reused: bool = False


@dataclass
class _Prepared:
    """What the parent made before any measuring: the exports, the inputs, the reference."""

    items: list[FormatEntry | _Ready]
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    dims: dict[str, int]
    #: The original made its inputs with its own tokenizer, which the exports do not carry.
    tokenized: bool = False


@dataclass(frozen=True)
class _Original:
    """The user's model: its file, format and loading options, and how it is run."""

    path: Path
    format: str
    options: dict[str, Any]
    device: str
    batch_size: int
    input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None
    settings: ProfilerSettings  # its inputs and input_values make the parity inputs


def _prepare(
    user: _Original, chosen: Sequence[str], artifacts: Artifacts, step: Progress
) -> _Prepared:
    """Loads the original, computes its outputs on a seeded input and exports every format.

    The parent keeps no model afterwards: the workers load the files.

    Args:
        user: The user's model.
        chosen: The formats, the original's first.
        artifacts: Where the exports go (and are reused from).
        step: Gets a line as each export starts.

    Raises:
        ModelLoadError: If the original cannot be loaded.
        InvalidArgumentError: If the batch size does not fit a fixed-batch model.
        KeyboardInterrupt: On Ctrl-C (nothing is measured yet).
    """
    source, source_format, device = user.path, user.format, user.device
    load_options, batch_size = user.options, user.batch_size
    stem = source.stem or "model"
    original_key = _original_key(source_format)
    torch_source = source_format in _TORCH_SOURCES | {"torchscript", "torch-export"}
    t0 = time.perf_counter()
    original = pyinfer.load_model(source, device=device, name=stem, **load_options)
    exportable = original
    try:
        if len(chosen) > 1 and (device != "cpu" or torch_source):
            # The exporters take the module as written: not on CUDA, and not the frozen,
            # oneDNN-optimised TorchScript that pyinfer runs (its mkldnn ops have no ONNX form).
            plain: dict[str, Any] = (
                {"freeze": False, "optimize": False, "channels_last": False} if torch_source else {}
            )
            exportable = pyinfer.load_model(
                source, device="cpu", name=stem, **load_options, **plain
            )
        _check_batch(original, batch_size)
        dims = {**original.default_dims, **_shape_dims(original, user.input_shape)}
        given = dataclasses.replace(
            user.settings, seed=0, input_dims={**user.settings.input_dims, **dims}
        )
        inputs = given_inputs(original, batch_size, given)
        expected = original(inputs)
        load_s = time.perf_counter() - t0
        export_source: Any = (
            source
            if source_format == "saved-model"
            else getattr(exportable, "keras_model", None) or getattr(exportable, "module", None)
        )
        example = tuple(inputs[s.name] for s in exportable.inputs)
        batch_axes = {
            s.name: s.batch_axis
            for model in (original, exportable)
            for s in [*model.inputs, *model.outputs]
        }
        versions = collect_environment().versions
        # An export is reused only from the same model file, inputs, options and versions.
        export_key = "|".join(
            [
                f"source={_digest(source)}",
                f"inputs={[tuple(np.shape(x)) for x in example]}",
                f"batch_axes={sorted(batch_axes.items())}",
                f"options={sorted((k, repr(v)) for k, v in load_options.items())}",
                ",".join(f"{k}={v}" for k, v in sorted(versions.items())),
            ]
        )
        # A traced or exported module does not record its input shapes: the original's (one
        # input: by position, since tracing may rename it).
        shapes = {s.name: s.shape for s in original.inputs}
        one = next(iter(shapes.values())) if len(shapes) == 1 else None
        dtypes = {s.name: s.dtype.name for s in original.inputs}
        traced = {
            "input_shapes": one if one is not None else shapes,
            "input_dtypes": next(iter(dtypes.values())) if one is not None else dtypes,
        }
        items: list[FormatEntry | _Ready] = []
        for key in chosen:
            label = _original_label(key, source_format) if key == original_key else None
            label = label or FORMAT_ROW_LABELS[key]
            if key == original_key:
                items.append(_Ready(label, load_request_of(original), True, load_s))
                continue
            step(f"exporting {label}")
            item = _exported(
                key,
                label,
                stem=stem,
                device=device,
                export_source=export_source,
                example=example,
                batch_axes=batch_axes,
                export_key=export_key,
                artifacts=artifacts,
                options=traced if key in {"torchscript", "torch-export"} else {},
            )
            if isinstance(item, _Ready) and item.reused:
                step(f"reused {item.request.path} (same model and versions)")
            items.append(item)
    finally:
        original.close()
        if exportable is not original:
            exportable.close()
    tokenized = getattr(original, "tokenizer", None) is not None
    return _Prepared(items, dict(inputs), dict(expected), dims, tokenized)


def _exported(
    key: str,
    label: str,
    *,
    stem: str,
    device: str,
    export_source: Any,
    example: Any,
    batch_axes: dict[str, int | None],
    export_key: str,
    artifacts: Artifacts,
    options: dict[str, Any],
) -> FormatEntry | _Ready:
    """One format exported (or reused) for its workers, or its failed row."""
    start = time.perf_counter()
    name = _export_name(key, stem)
    try:
        written = artifacts.get(
            name,
            f"{key}|{export_key}",
            functools.partial(_export, key, export_source, example, batch_axes),
        )
    except Exception as exc:
        logger.warning("exporting %s failed: %s", label, exc, exc_info=True)
        return FormatEntry(
            format=key,
            label=label,
            status=FAILED,
            tolerance=_tolerance(key),
            reason=f"export failed: {failure_reason(exc)}",
            elapsed_s=time.perf_counter() - start,
        )
    request = LoadRequest(
        path=str(written.absolute()),
        format=pyinfer.detect_format(written).value,
        device=device,
        name=stem,
        options=options,
    )
    return _Ready(label, request, False, time.perf_counter() - start, name in artifacts.reused)


def _subject(
    ready: _Ready,
    settings: ProfilerSettings,
    batch_size: int,
    no_throughput: bool,
    inputs: Mapping[str, np.ndarray],
) -> Subject:
    job = WorkerJob(
        load=ready.request,
        settings=settings,
        batch_size=batch_size,
        throughput=not no_throughput,
        cpus=settings.cpus,
        # By position, in the original's order: an export may rename its inputs.
        parity_inputs=None if ready.original else tuple(inputs.values()),
        label=ready.label,
    )
    return Subject(ready.label, ready.label, job, prepare_s=ready.prepare_s)


def _entry(
    key: str,
    ready: _Ready,
    got: Measured,
    settings: ProfilerSettings,
    parity: Mapping[str, Any],
) -> FormatEntry:
    """A format's row from what its runs gave."""
    base: dict[str, Any] = {
        "format": key,
        "label": ready.label,
        "original": ready.original,
        "tolerance": _tolerance(key),
        "path": ready.request.path,
        "prepare_s": ready.prepare_s,
        "elapsed_s": ready.prepare_s + got.elapsed_s,
        "reused": ready.reused,
        **parity,
    }
    if got.error is not None:
        reason = str(got.error) if isinstance(got.error, EntryError) else failure_reason(got.error)
        return FormatEntry(**base, status=FAILED, reason=reason)
    report = got.report(settings)
    return FormatEntry(**base, status=OK, report=report)


def _entries(
    chosen: Sequence[str],
    items: Sequence[FormatEntry | _Ready],
    measured: Sequence[Measured],
    settings: ProfilerSettings,
    parity: Mapping[int, Mapping[str, Any]],
) -> list[FormatEntry]:
    """Every row in order, each with its latency ratio to the original's."""
    entries: list[FormatEntry] = []
    index = 0
    for key, slot in zip(chosen, items, strict=False):
        if isinstance(slot, FormatEntry):
            entries.append(slot)
            continue
        got = measured[index] if index < len(measured) else None
        if got is not None and (got.runs or got.error is not None):
            entries.append(_entry(key, slot, got, settings, parity.get(index, {})))
        index += 1
    original = next((e for e in entries if e.original and e.report is not None), None)
    if original is None or original.report is None:
        return entries
    reference = run_medians(original.report)
    return [
        dataclasses.replace(
            e, ratio=LatencyRatio.between(original.label, reference, run_medians(e.report))
        )
        if e.report is not None and not e.original
        else e
        for e in entries
    ]


def _check_batch(model: Any, batch_size: int) -> None:
    """Refuses, before any export, a batch size that a fixed-batch model cannot run.

    Raises:
        InvalidArgumentError: Naming the input and its fixed batch.
    """
    if model.has_dynamic_batch:
        return
    # The batch axis, not the first dimension: a state (2, batch, 128) holds its batch on 1.
    first = next((s for s in model.inputs if s.fixed_batch is not None), None)
    if first is not None and first.fixed_batch != batch_size:
        model.close()
        raise InvalidArgumentError(
            f"--batch-size {batch_size}: model '{model.name}' has a fixed batch size of "
            f"{first.fixed_batch} (input {first}); use --batch-size {first.fixed_batch}, or "
            "export it with a dynamic batch"
        )


def _original_label(key: str, source_format: str) -> str:
    if source_format == "keras-h5":
        return "Keras (h5)"
    return FORMAT_ROW_LABELS[key]
