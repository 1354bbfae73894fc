"""The ``pyinfer`` command line.

One ``cmd_<name>()`` function per subcommand: ``info``, ``run``, ``profile``, ``sweep``,
``compare``, ``env`` and ``demo`` (``bench`` and ``formats`` come from ``_cli_bench``).

Exit statuses (:mod:`pyinfer._cli_common`): 0 done; 1 a failed run (a model that cannot be
loaded, an input that cannot be read, an item that failed, a damaged report); 2 bad usage (an
unknown option, a malformed value, an option the model cannot take); 3 measured, but not stable;
130 interrupted by Ctrl-C and 143 by SIGTERM, with what was measured printed and written (a
second signal stops the writing at once; every file is written atomically). Errors are one line on
stderr; ``--verbose`` adds the traceback. Frameworks are imported only by the commands that load
a model, so ``pyinfer --help`` stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import logging
import math
import os
import re
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyinfer
from pyinfer._cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNSTABLE,
    EXIT_USAGE,
    StopSignals,
    add_loader_options,
    int_list,
    non_negative_int,
    percent_or_fraction,
    positive_float,
    positive_int,
    stop_signals,
    write_output,
)
from pyinfer.errors import InvalidArgumentError, PyinferError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from pyinfer.backends.base import Model
    from pyinfer.profiler import PerformanceProfiler
    from pyinfer.report import BatchCurve, ProfileReport

logger = logging.getLogger(__name__)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_UNSTABLE",
    "EXIT_USAGE",
    "MODEL_FORMATS",
    "CommandError",
    "build_parser",
    "main",
]

#: The ``--format`` names (``ModelFormat`` values, listed here so ``--help`` imports nothing).
MODEL_FORMATS = (
    "torchscript",
    "pytorch",
    "pytorch-legacy",
    "pickle",
    "torch-export",
    "onnx",
    "keras-h5",
    "keras",
    "saved-model",
    "tflite",
)

#: How long a run's list of failed items gets on stderr before it is cut.
MAX_FAILURES_SHOWN = 20


class CommandError(PyinferError):
    """A command could not do its work: a missing input, a damaged report (exit status 1)."""


# ---- shared options ---------------------------------------------------------------------------

#: What argparse's "invalid TYPE value" means, for the option types of ``_cli_common``.
_TYPE_WORDS = {
    "positive_int": "an integer of at least 1",
    "non_negative_int": "an integer of 0 or more",
    "int": "an integer",
    "float": "a number",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong and where to read more.

    argparse prints the whole usage before a mistake, a dozen lines for ``profile``; the
    message alone, with a pointer to ``--help``, reads better (exit status 2 all the same).
    """

    def error(self, message: str) -> typing.NoReturn:
        match = re.fullmatch(r"argument (.+?): invalid (\w+) value: (.+)", message)
        if match and match.group(2) in _TYPE_WORDS:
            option, kind, value = match.groups()
            message = f"argument {option}: must be {_TYPE_WORDS[kind]}, got {value}"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--format`` and ``--option``, shared by info/run/profile/sweep."""
    group = parser.add_argument_group("model loading")
    group.add_argument(
        "--device", default="cpu", help="cpu (default), cuda or cuda:N; the model runs there"
    )
    group.add_argument(
        "--format",
        metavar="FORMAT",
        help="skip detection and load as this format: " + ", ".join(MODEL_FORMATS),
    )
    add_loader_options(group)


def _add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The profiler's warm-up, stopping-rule and input options (profile and sweep)."""
    group = parser.add_argument_group("measurement")
    group.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="for dynamic models: a named dimension (sequence=128), an input's whole shape "
        "(input_ids=1x128), or the shape of a single-input model (1x3x224x224); a model that "
        "declares no input shape (TorchScript) is loaded with the whole shapes given, the "
        "batch left dynamic; repeatable",
    )
    group.add_argument(
        "--warmup", type=non_negative_int, default=10, help="untimed calls first (default 10)"
    )
    count = group.add_mutually_exclusive_group()
    count.add_argument(
        "--iterations", type=positive_int, help="exactly N timed calls (no time limits)"
    )
    count.add_argument(
        "--min-time", type=positive_float, help="measure at least S seconds (default 1)"
    )
    group.add_argument(
        "--max-time", type=positive_float, help="stop after S seconds, stable or not (default 30)"
    )
    group.add_argument(
        "--stability",
        type=percent_or_fraction,
        help="stability target, as 1%% or 0.01 (default 1%%; 5%% suits --stability-metric cv)",
    )
    group.add_argument(
        "--stability-metric",
        choices=("median_ci", "cv"),
        default="median_ci",
        help="median_ci: half-width of the median's 95%% confidence interval (default); "
        "cv: std/mean",
    )
    group.add_argument(
        "--throughput-time",
        type=positive_float,
        default=2.0,
        help="seconds of the throughput run (default 2)",
    )


#: Formats whose files declare no input shapes (a TorchScript archive, a pickled module): the
#: loader takes them from its ``input_shapes`` option.
_SHAPELESS_FORMATS = frozenset({"torchscript", "pytorch", "pytorch-legacy", "pickle"})


def _shapes_from_specs(specs: Sequence[str]) -> Any:
    """The loader's ``input_shapes`` from ``--input-shape`` specs that give whole shapes.

    A bare shape (``1x3x224x224``) becomes an unnamed shape for a one-input model, ``NAME=AxB``
    an entry of a dict; the batch dimension (the first) is left dynamic (``"batch"``), so
    ``--batch-size`` and ``sweep`` still choose it. Returns ``None`` when a spec is a named
    dimension (``sequence=128``), which a model without declared shapes cannot have.
    """
    if not specs:
        return None
    named: dict[str, list[int | str]] = {}
    for text in specs:
        name, sep, value = text.partition("=")
        if not sep:
            if len(specs) != 1:
                return None
            return ["batch", *_parse_shape(text, text)[1:]]
        if "x" not in value.lower():
            return None
        named[name.strip()] = ["batch", *_parse_shape(value, text)[1:]]
    return named


def _load(args: argparse.Namespace) -> Model:
    """Loads ``args.model`` with the shared loading options.

    A torch model without declared input shapes (TorchScript, a pickled module) given whole
    shapes with ``--input-shape`` is loaded with them as its ``input_shapes`` option, unless
    that option is given.
    """
    from pyinfer.model_loader import detect_format, load_model

    options = dict(args.options)
    if getattr(args, "trust_code", False):
        options["trust_code"] = True
    specs = getattr(args, "input_shape", None) or []
    if specs and "input_shapes" not in options:
        shapes = _shapes_from_specs(specs)
        if shapes is not None:
            fmt = args.format or detect_format(args.model).value
            if fmt in _SHAPELESS_FORMATS:
                logger.info("loading %s with input_shapes=%s", args.model, shapes)
                options["input_shapes"] = shapes
    return load_model(args.model, format=args.format, device=args.device, **options)


def _check_outputs(*paths: str | None, plot: str | None = None) -> None:
    """Refuses, before any work, output files that could not be written.

    A path whose folder does not exist or cannot be written, a path that is a folder, and a
    ``--plot`` file that is not ``.png`` (the plots are PNG images).

    Raises:
        InvalidArgumentError: Naming the path.
    """
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise InvalidArgumentError(f"--plot {plot}: the plot is a PNG image; give a .png file")
    for path in (*paths, plot):
        if path is None:
            continue
        target = Path(path)
        folder = target.parent
        if not folder.is_dir():
            raise InvalidArgumentError(f"cannot write {path}: no folder {folder}")
        if target.is_dir():
            raise InvalidArgumentError(f"cannot write {path}: it is a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InvalidArgumentError(f"cannot write {path}: folder {folder} is not writable")


def _write_plot(draw: Any, path: Path, what: str) -> Path:
    """Draws a plot to ``path`` (``draw(path)``); an OS error becomes a typed one."""
    try:
        written: Path = draw(path)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot write the {what} to {path}: {exc.strerror or exc}"
        ) from exc
    sys.stderr.write(f"wrote {what} to {path}\n")
    return written


# ---- info -------------------------------------------------------------------------------------


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _size_text(nbytes: float) -> str:
    """``512 B``, ``3.4 kB``, ``97.5 MB``, ``1.2 GB`` (powers of 1024)."""
    for unit, scale in (("GB", 1024.0**3), ("MB", 1024.0**2), ("kB", 1024.0)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value or "(none)"
    return json.dumps(value)


def _external_text(files: list[Path]) -> str:
    if not files:
        return ""
    total = _size_text(sum(p.stat().st_size for p in files))
    names = ", ".join(p.name for p in files[:3]) + (", ..." if len(files) > 3 else "")
    return f" + {total} of external data in {names}"


def cmd_info(args: argparse.Namespace) -> int:
    """Loads a model and prints what it is: format, inputs, outputs, parameters, options."""
    model = _load(args)
    described = model.describe()
    path = Path(args.model)
    described["file"] = str(path)
    described["file_bytes"] = _size_of(path)
    external: list[Path] = []
    if model.format.value == "onnx":
        from pyinfer.backends.onnx_backend import external_data_files

        external = external_data_files(path)
        described["external_data_files"] = [str(p) for p in external]
        described["external_data_bytes"] = sum(p.stat().st_size for p in external)
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
        return EXIT_OK
    import_s = model.import_time_s
    load = f"{model.load_time_s:.3f} s" if math.isfinite(model.load_time_s) else "n/a"
    if math.isfinite(import_s) and import_s > 0:
        load += f" (framework import {import_s:.2f} s apart)"
    lines = [
        f"Model:       {model.name}",
        f"File:        {path} ({_size_text(described['file_bytes'])}{_external_text(external)})",
        f"Format:      {model.format.value}",
        f"Framework:   {model.framework}",
        f"Device:      {model.device}",
        "Inputs:",
        *(f"  {spec}" for spec in model.inputs),
        "Outputs:",
        *([f"  {spec}" for spec in model.outputs] or ["  (known once it runs)"]),
        f"Parameters:  {model.parameter_count:,} ({_size_text(model.parameter_bytes)})",
        f"Load time:   {load}",
        "Options:",
    ]
    options = described["options"]
    width = max((len(k) for k in options), default=0)
    lines += [f"  {k:<{width}}  {_value_text(v)}" for k, v in options.items()] or ["  (none)"]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


# ---- run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    """One item of ``pyinfer run``: where it came from, what to feed, and what came of it."""

    source: str
    kind: str  # "image" or "array"
    payload: Any = None
    outputs: dict[str, np.ndarray] | None = None
    error: str | None = None


def _array_entries(path: Path, model: Model) -> list[_Entry]:
    """The items of one ``.npy``/``.npz`` file; a file that does not fit is one failed entry."""
    import numpy as np

    def failed(reason: str) -> list[_Entry]:
        return [_Entry(str(path), "array", error=reason)]

    magic = b"\x93NUMPY" if path.suffix.lower() == ".npy" else b"PK"
    try:
        with path.open("rb") as f:
            start = f.read(len(magic))
    except OSError as exc:
        return failed(f"cannot read {path.suffix} file: {exc.strerror or exc}")
    if start != magic:
        return failed(f"not a {path.suffix} file: it does not start with numpy's header")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        if "allow_pickle" in str(exc):
            return failed(
                "it holds Python objects (an object array), which pyinfer does not unpickle; "
                "save numeric arrays"
            )
        return failed(f"cannot read {path.suffix} file: {exc}")
    names = model.input_names()
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            return failed(
                f"a .npy feeds a single-input model; '{model.name}' takes {', '.join(names)}: "
                "give a .npz with those keys"
            )
        arrays = {names[0]: loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        if set(arrays) != set(names):
            return failed(
                f"its keys ({', '.join(sorted(arrays)) or 'none'}) are not the model's inputs "
                f"({', '.join(names)})"
            )
    # A leading batch dimension (the input's full rank) means many items; one less, one item.
    batched: bool | None = None
    for spec in model.inputs:
        value = arrays[spec.name]
        if spec.rank is None or value.ndim == spec.rank:
            this = spec.rank is not None or value.ndim > 0
        elif value.ndim == spec.rank - 1:
            this = False
        else:
            return failed(
                f"'{spec.name}' has shape {tuple(value.shape)}; the model takes "
                f"{spec.shape_text()} (one item without the batch dimension, or a batch)"
            )
        if batched is not None and this != batched:
            return failed("some arrays have a batch dimension and others do not")
        batched = this
    if not batched:
        return [_Entry(str(path), "array", arrays)]
    counts = {len(v) for v in arrays.values()}
    if len(counts) != 1:
        return failed(f"the arrays hold different numbers of items: {sorted(counts)}")
    n = counts.pop()
    return [_Entry(f"{path}[{i}]", "array", {k: v[i] for k, v in arrays.items()}) for i in range(n)]


def _gather(inputs: Sequence[str]) -> list[tuple[Path, str]]:
    """``(path, kind)`` per input file; a missing path is an error.

    Folders are expanded recursively, sorted by path, hidden files and folders left out.
    """
    from pyinfer.preprocessors import IMAGE_EXTENSIONS

    found: list[tuple[Path, str]] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            # Sub-folders too (a dataset laid out by class); hidden ones (.ipynb_checkpoints) not.
            images = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not images:
                raise CommandError(
                    f"input folder {path} holds no image files "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))}), in it or its sub-folders"
                )
            found += [(p, "image") for p in images]
        elif path.is_file():
            kind = "array" if path.suffix.lower() in {".npy", ".npz"} else "image"
            found.append((path, kind))
        else:
            raise CommandError(f"input {path} does not exist")
    return found


def _run_entries(
    entries: list[_Entry], model: Model, args: argparse.Namespace
) -> BaseException | None:
    """Runs the entries through the engine; returns the exception that stopped it, if any."""
    from pyinfer.inference_engine import InferenceEngine
    from pyinfer.preprocessors import ImagePipeline

    progress = args.progress
    for kind in ("image", "array"):
        todo = [e for e in entries if e.kind == kind and e.error is None]
        if not todo:
            continue
        pipeline = None
        if kind == "image":
            shapeless = [s.name for s in model.inputs if s.shape is None]
            if len(model.inputs) == 1 and shapeless:
                raise InvalidArgumentError(
                    f"{todo[0].source} is an image, but model '{model.name}' does not declare "
                    f"the shape of its input '{shapeless[0]}', so its image size and layout are "
                    "unknown: give it, such as --input-shape 1x3x224x224"
                )
            try:
                pipeline = ImagePipeline.for_model(model)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    f"{todo[0].source} is read as an image, but model '{model.name}' takes no "
                    f"images: {exc}; give it .npy or .npz arrays"
                ) from exc
        cast = None if args.cast == "none" else args.cast
        engine = InferenceEngine(
            model, pipeline, batch_size=args.batch_size, progress=progress, cast_inputs=cast
        )
        items = [Path(e.source) if kind == "image" else e.payload for e in todo]
        try:
            result = engine.run_dataset(items)
        except (KeyboardInterrupt, PyinferError) as exc:
            partial = getattr(exc, "partial_result", None)
            if partial is None:
                raise
            _take_results(todo, partial)
            return exc
        _take_results(todo, result)
    return None


def _take_results(todo: list[_Entry], result: Any) -> None:
    for entry, outputs in zip(todo, result.outputs, strict=False):
        entry.outputs = outputs
    for failure in result.failures:
        todo[failure.index].error = failure.reason


def _is_scores(value: np.ndarray) -> bool:
    return value.ndim == 1 and value.dtype.kind == "f" and value.size > 1


def _top_k(scores: np.ndarray, k: int, labels: list[str] | None) -> list[Any]:
    from pyinfer.inference_engine import top_k

    return top_k(scores, k, labels, apply_softmax=None)


def _read_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read labels file {path}: {exc.strerror or exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _short_float(value: float) -> float:
    """A float32 value as its shortest decimal (0.001, not 0.0010000000474974513)."""
    import numpy as np

    return float(str(np.float32(value)))


def _json_values(value: np.ndarray) -> Any:
    """An array as JSON-ready lists; float16/float32 values as their shortest decimals."""
    import numpy as np

    if value.dtype.kind == "f" and value.dtype.itemsize < 8:
        return np.vectorize(float, otypes=[object])(value.astype(str)).tolist()
    return value.tolist()


def _run_output_payload(
    entries: list[_Entry],
    names: list[str],
    path: Path,
    k: int,
    labels: list[str] | None,
    *,
    interrupted: bool = False,
) -> bytes | str:
    """The ``--output`` file's content: JSON, or ``.npy``/``.npz`` of the items that ran.

    The JSON also says how many inputs there were and whether Ctrl-C (or SIGTERM) stopped the
    run before the rest ran.
    """
    import numpy as np

    done = [e for e in entries if e.outputs is not None]
    suffix = path.suffix.lower()
    if suffix == ".json":
        items = []
        for e in entries:
            if e.outputs is None:
                continue
            item: dict[str, Any] = {"source": e.source}
            first = e.outputs[names[0]]
            if _is_scores(first):
                short = first.dtype.itemsize < 8
                item["top_k"] = [
                    {**p._asdict(), "score": _short_float(p.score) if short else p.score}
                    for p in _top_k(first, k, labels)
                ]
            else:
                item["outputs"] = {n: _json_values(np.asarray(v)) for n, v in e.outputs.items()}
            items.append(item)
        failures = [{"source": e.source, "reason": e.error} for e in entries if e.error]
        document = {
            "items": items,
            "failures": failures,
            "inputs": len(entries),
            "interrupted": interrupted,
        }
        return json.dumps(document, indent=2) + "\n"
    for name in names:
        shapes = sorted({tuple(np.shape(e.outputs[name])) for e in done if e.outputs is not None})
        if len(shapes) > 1:
            raise InvalidArgumentError(
                f"--output {path}: output '{name}' has a different shape per item "
                f"({', '.join(str(s) for s in shapes[:3])}{', ...' if len(shapes) > 3 else ''}), "
                f"which one {suffix} array cannot hold; write a .json file"
            )
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, np.stack([e.outputs[names[0]] for e in done if e.outputs is not None]))
    else:
        arrays = {n: np.stack([e.outputs[n] for e in done if e.outputs is not None]) for n in names}
        arrays.setdefault("sources", np.array([e.source for e in done]))
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _check_labels(labels: list[str] | None, path: str | None, classes: int) -> None:
    if labels is not None and len(labels) != classes:
        raise InvalidArgumentError(
            f"--labels {path}: {len(labels)} labels for a model of {classes} classes; give "
            "one label per line, one per class"
        )


def _check_npy_output(output: Path | None, model: Model, names: list[str]) -> None:
    if output is not None and output.suffix.lower() == ".npy" and len(names) > 1:
        raise InvalidArgumentError(
            f"--output {output}: model '{model.name}' has {len(names)} outputs "
            f"({', '.join(names)}); a .npy holds one, use .npz"
        )


def cmd_run(args: argparse.Namespace) -> int:
    """Runs a model on image files, folders and arrays; prints top-k or the outputs' shapes."""
    import numpy as np

    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in {".npy", ".npz", ".json"}:
        raise InvalidArgumentError(f"--output {output}: use a .npy, .npz or .json file")
    _check_outputs(args.output)
    labels = _read_labels(args.labels)
    files = _gather(args.inputs)
    if args.input_shape and _shapes_from_specs(args.input_shape) is None:
        raise InvalidArgumentError(
            f"--input-shape {' '.join(args.input_shape)}: run takes whole shapes, such as "
            "1x3x224x224 or x=1x3x224x224 (one per input)"
        )
    model = _load(args)
    if args.input_shape and "input_shapes" not in model.options:
        raise InvalidArgumentError(
            f"--input-shape {args.input_shape[0]}: model '{model.name}' "
            f"({model.format.value}) declares its input shapes "
            f"({'; '.join(str(s) for s in model.inputs)}); --input-shape is for models that do "
            "not (TorchScript, a pickled module, a state_dict)"
        )
    _check_npy_output(output, model, model.output_names())
    if model.outputs and model.outputs[0].shape is not None:
        shape = model.outputs[0].shape
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1:
            _check_labels(labels, args.labels, shape[1])  # before the run, when known
    entries: list[_Entry] = []
    for path, kind in files:
        entries += _array_entries(path, model) if kind == "array" else [_Entry(str(path), kind)]
    stopped = _run_entries(entries, model, args)
    done = [e for e in entries if e.outputs is not None]
    # A model without declared outputs (TorchScript) names them at its first call.
    names = model.output_names() or (list(done[0].outputs) if done and done[0].outputs else [])
    _check_npy_output(output, model, names)
    out: list[str] = []
    first = done[0].outputs[names[0]] if done and done[0].outputs else None
    if first is not None and _is_scores(first):
        _check_labels(labels, args.labels, first.size)
        for e in done:
            assert e.outputs is not None
            predictions = _top_k(e.outputs[names[0]], args.top_k, labels)
            text = "; ".join(
                f"{p.label if p.label is not None else f'class {p.class_index}'} {p.score:.4f}"
                for p in predictions
            )
            out.append(f"{e.source}: {text}")
    elif done:
        for name in names:
            stacked = np.stack([e.outputs[name] for e in done if e.outputs is not None])
            values = stacked.astype(np.float64) if stacked.dtype.kind in "biuf" else None
            summary = (
                f"  min {values.min():.4g}  mean {values.mean():.4g}  max {values.max():.4g}"
                if values is not None and values.size
                else ""
            )
            out.append(f"{name}: {tuple(stacked.shape)} {stacked.dtype.name}{summary}")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    failed = [e for e in entries if e.error is not None]
    for e in failed[:MAX_FAILURES_SHOWN]:
        sys.stderr.write(f"failed: {e.source}: {_one_line(e.error or '')}\n")
    if len(failed) > MAX_FAILURES_SHOWN:
        sys.stderr.write(f"... and {len(failed) - MAX_FAILURES_SHOWN} more failed\n")
    ran = f"{len(done)} of {len(entries)} input(s) ran"
    sys.stderr.write(f"{ran}, {len(failed)} failed\n")
    if output is not None and (done or output.suffix.lower() == ".json"):
        payload = _run_output_payload(
            entries,
            names,
            output,
            args.top_k,
            labels,
            interrupted=isinstance(stopped, KeyboardInterrupt),
        )
        write_output(output, payload, "outputs")
    elif output is not None:
        sys.stderr.write(f"{output} not written: no item ran (a .json file lists the failures)\n")
    if isinstance(stopped, KeyboardInterrupt):
        where = f"written to {output}" if output is not None and done else "printed above"
        sys.stderr.write(
            f"interrupted: results so far {where} ({len(done)} of {len(entries)} input(s) ran, "
            f"{len(entries) - len(done) - len(failed)} not run)\n"
        )
        return EXIT_INTERRUPTED
    if stopped is not None:
        raise stopped
    return EXIT_FAILED if failed or not done else EXIT_OK


# ---- profile and sweep ------------------------------------------------------------------------


def _settings(args: argparse.Namespace, input_dims: dict[str, int]) -> Any:
    """``ProfilerSettings`` from the measurement options."""
    from pyinfer.profiler import ProfilerSettings

    kwargs: dict[str, Any] = {
        "input_dims": input_dims,
        "warmup_iterations": args.warmup,
        "stability_metric": args.stability_metric,
        "throughput_time_s": args.throughput_time,
    }
    if args.iterations is not None:
        kwargs.update(
            min_iterations=args.iterations,
            max_iterations=args.iterations,
            min_time_s=0.0,
            max_time_s=math.inf,
        )
    if args.min_time is not None:
        kwargs["min_time_s"] = args.min_time
        if args.max_time is None:  # a minimum past the default cap moves the cap with it
            kwargs["max_time_s"] = max(ProfilerSettings.max_time_s, args.min_time)
    if args.max_time is not None:
        kwargs["max_time_s"] = args.max_time
    if args.stability is not None:
        kwargs["stability_target"] = args.stability
    return ProfilerSettings(**kwargs)


def _parse_shape(text: str, where: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise InvalidArgumentError(
            f"--input-shape {where}: a shape is sizes joined by x, such as 1x3x224x224"
        ) from None
    if not dims or min(dims) < 1:
        raise InvalidArgumentError(f"--input-shape {where}: every size must be at least 1")
    return dims


def _input_shapes(
    specs: Sequence[str], model: Model, batch_size: int | None
) -> tuple[dict[str, int], int | None]:
    """Named dimension sizes and the batch size that ``--input-shape`` gives.

    Raises:
        InvalidArgumentError: If a spec names nothing of the model, or contradicts its fixed
            dimensions, another spec or ``--batch-size`` (the message says which).
    """
    inputs = {s.name: s for s in model.inputs}
    named = {d for s in model.inputs for d in (s.shape or ())[1:] if isinstance(d, str)}
    batch_names = {s.shape[0] for s in model.inputs if s.shape and isinstance(s.shape[0], str)}
    dims: dict[str, int] = {}
    batch = batch_size
    for text in specs:
        name, sep, value = text.partition("=")
        if not sep:
            if len(inputs) != 1:
                raise InvalidArgumentError(
                    f"--input-shape {text}: model '{model.name}' has {len(inputs)} inputs; "
                    f"give NAME=SHAPE for each of {', '.join(inputs)}"
                )
            name, value = next(iter(inputs)), text
        name = name.strip()
        if name in inputs:
            spec = inputs[name]
            shape = _parse_shape(value, text)
            if spec.shape is None:
                raise InvalidArgumentError(
                    f"--input-shape {text}: input '{name}' has no declared shape; load it with "
                    f"--option 'input_shapes={{\"{name}\": [...]}}'"
                )
            if len(shape) != len(spec.shape):
                raise InvalidArgumentError(
                    f"--input-shape {text}: input '{name}' has {len(spec.shape)} dimensions "
                    f"{spec.shape_text()}, not {len(shape)}"
                )
            for axis, (dim, size) in enumerate(zip(spec.shape, shape, strict=True)):
                if isinstance(dim, int):
                    if dim != size:
                        raise InvalidArgumentError(
                            f"--input-shape {text}: dimension {axis} of input '{name}' is fixed "
                            f"at {dim} {spec.shape_text()}, not {size}"
                        )
                elif axis == 0:
                    if batch is not None and batch != size:
                        raise InvalidArgumentError(
                            f"--input-shape {text}: batch {size} contradicts batch size {batch}"
                        )
                    batch = size
                elif isinstance(dim, str):
                    if dims.get(dim, size) != size:
                        raise InvalidArgumentError(
                            f"--input-shape {text}: dimension '{dim}' is {size} here and "
                            f"{dims[dim]} elsewhere"
                        )
                    dims[dim] = size
                else:
                    raise InvalidArgumentError(
                        f"--input-shape {text}: dimension {axis} of input '{name}' is dynamic "
                        f"without a name {spec.shape_text()}; load the model with its shape: "
                        f"--option 'input_shapes={{\"{name}\": [...]}}'"
                    )
        elif name in named or name in batch_names:
            try:
                size = int(value)
            except ValueError:
                size = 0
            if size < 1:
                raise InvalidArgumentError(
                    f"--input-shape {text}: the size of '{name}' must be an integer of at least 1"
                )
            if name in named:
                if dims.get(name, size) != size:
                    raise InvalidArgumentError(
                        f"--input-shape {text}: dimension '{name}' is {size} here and "
                        f"{dims[name]} elsewhere"
                    )
                dims[name] = size
            elif batch is not None and batch != size:
                raise InvalidArgumentError(
                    f"--input-shape {text}: batch {size} contradicts batch size {batch}"
                )
            else:
                batch = size
        else:
            raise InvalidArgumentError(
                f"--input-shape {text}: '{name}' is neither an input of model '{model.name}' "
                f"({', '.join(inputs)}) nor one of its named dimensions "
                f"({', '.join(sorted(named | batch_names)) or 'none'})"
            )
    for spec in model.inputs:
        if spec.shape is None:
            raise InvalidArgumentError(
                f"input '{spec.name}' of model '{model.name}' has no declared shape; load it "
                f"with its shape: --option 'input_shapes={{\"{spec.name}\": [...]}}'"
            )
        for axis, dim in enumerate(spec.shape):
            if axis == 0 or isinstance(dim, int) or dim in dims:
                continue
            if isinstance(dim, str):
                raise InvalidArgumentError(
                    f"input '{spec.name}' of model '{model.name}' has the dynamic dimension "
                    f"'{dim}' {spec.shape_text()}; give its size: --input-shape {dim}=N"
                )
            raise InvalidArgumentError(
                f"input '{spec.name}' of model '{model.name}' has an unnamed dynamic dimension "
                f"{axis} {spec.shape_text()}; load it with its shape: "
                f"--option 'input_shapes={{\"{spec.name}\": [...]}}'"
            )
    return dims, batch


def _profiler(args: argparse.Namespace) -> tuple[PerformanceProfiler, int | None]:
    from pyinfer.profiler import PerformanceProfiler

    if args.iterations is not None and args.max_time is not None:
        raise InvalidArgumentError(
            "--iterations N times exactly N calls; it cannot be combined with --max-time"
        )
    model = _load(args)
    dims, batch = _input_shapes(args.input_shape, model, getattr(args, "batch_size", None))
    return PerformanceProfiler(model, _settings(args, dims)), batch


def _unstable_note(command: str, reason: str) -> None:
    verdict = reason if reason.startswith("NOT stable") else f"NOT stable: {reason}"
    sys.stderr.write(
        f"pyinfer {command}: {verdict}; the figures above are what was measured: "
        "give it more time (--max-time) or a quieter machine\n"
    )


def _interrupted_note(written: list[Path], have: bool) -> None:
    if written:
        where = "written to " + ", ".join(str(p) for p in written)
    else:
        where = "printed above" if have else "none: nothing was measured yet"
    sys.stderr.write(f"interrupted: results so far {where}\n")


def _write_report(report: ProfileReport, args: argparse.Namespace) -> list[Path]:
    written = []
    for path, render, what in (
        (args.json, report.to_json, "JSON report"),
        (args.csv, report.to_csv, "CSV report"),
        (args.markdown, report.to_markdown, "Markdown report"),
    ):
        if path:
            written.append(write_output(path, render(), what))
    if args.plot:
        plot = Path(args.plot)
        written.append(_write_plot(report.plot_latency, plot, "latency plot"))
        curve = report.batch_curve
        if curve is not None and curve.measured:
            batches = plot.with_name(f"{plot.stem}_batches{plot.suffix}")
            draw = functools.partial(curve.plot, title=report.model)
            written.append(_write_plot(draw, batches, "batch curve plot"))
    return written


def _curve_unstable(curve: BatchCurve | None) -> list[int]:
    if curve is None:
        return []
    return [p.batch_size for p in curve.points if p.ok and p.stable is False]


def cmd_profile(args: argparse.Namespace) -> int:
    """Profiles a model: latency, memory, throughput, optionally a batch sweep; writes reports."""
    if args.latency_budget is not None and not args.batch_sizes:
        raise InvalidArgumentError("--latency-budget chooses among --batch-sizes; give them too")
    _check_outputs(args.json, args.csv, args.markdown, plot=args.plot)
    profiler, batch = _profiler(args)
    try:
        report = profiler.profile(
            batch,
            batch_sizes=args.batch_sizes,
            latency_budget_ms=args.latency_budget,
            memory=not args.no_memory,
        )
    except KeyboardInterrupt as exc:
        partial: ProfileReport | None = getattr(exc, "partial_result", None)
        written: list[Path] = []
        if partial is not None:
            _print_report(partial)
            written = _write_report(partial, args)
        _interrupted_note(written, partial is not None)
        return EXIT_INTERRUPTED
    _print_report(report)
    _write_report(report, args)
    unstable = _curve_unstable(report.batch_curve)
    if not report.stable:
        _unstable_note("profile", report.stability_reason)
    if unstable:
        _unstable_note("profile", f"the sweep's batch size(s) {unstable} did not settle")
    return EXIT_UNSTABLE if not report.stable or unstable else EXIT_OK


def _print_report(report: ProfileReport) -> None:
    text = report.to_text()
    if report.batch_curve is not None:
        text += "\n\n" + report.batch_curve.to_table()
    sys.stdout.write(text + "\n")


def _curve_text(curve: BatchCurve) -> str:
    lines = [curve.to_table(), ""]
    if curve.knee_batch_size is not None:
        lines.append(
            f"Knee: batch {curve.knee_batch_size} (the smallest reaching 90% of the best "
            "throughput)"
        )
    lines.append(f"Best batch: {curve.best_reason}")
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Latency and throughput at each batch size: the batch table, the knee, the best batch."""
    _check_outputs(args.json, args.csv, plot=args.plot)
    profiler, batch = _profiler(args)
    model = profiler.model
    if not model.has_dynamic_batch:
        raise InvalidArgumentError(
            f"model '{model.name}' has a fixed batch size ({model.inputs[0]}); a batch sweep "
            "needs a dynamic batch dimension"
        )
    inputs = set(model.input_names())
    whole = [t for t in args.input_shape if "=" not in t or t.partition("=")[0].strip() in inputs]
    if batch is not None and len(whole) < len(args.input_shape):
        raise InvalidArgumentError(
            "--input-shape sets the batch size, which a sweep takes from --batch-sizes; give "
            "the named dimensions only (sequence=128)"
        )
    # A whole shape's first dimension is the batch, which each point of the sweep sets.
    sys.stdout.write(f"Model: {model.name} ({model.format.value} on {model.device})\n")
    interrupted = False
    try:
        curve = profiler.sweep_batch_sizes(args.batch_sizes, args.latency_budget)
    except KeyboardInterrupt as exc:
        partial: BatchCurve | None = getattr(exc, "partial_result", None)
        if partial is None:
            _interrupted_note([], False)
            return EXIT_INTERRUPTED
        curve, interrupted = partial, True
    sys.stdout.write(_curve_text(curve) + "\n")
    written: list[Path] = []
    if args.json:
        from pyinfer.profiler import sweep_report

        report = sweep_report(profiler, curve, interrupted=interrupted)
        written.append(write_output(args.json, report.to_json() + "\n", "sweep report"))
    if args.csv:
        written.append(write_output(args.csv, curve.to_csv(), "batch curve CSV"))
    if args.plot and curve.measured:
        draw = functools.partial(curve.plot, title=model.name)
        written.append(_write_plot(draw, Path(args.plot), "batch curve plot"))
    if interrupted:
        _interrupted_note(written, True)
        return EXIT_INTERRUPTED
    unstable = _curve_unstable(curve)
    if unstable:
        _unstable_note("sweep", f"batch size(s) {unstable} did not settle")
        return EXIT_UNSTABLE
    return EXIT_OK if curve.measured else EXIT_FAILED


# ---- compare and env --------------------------------------------------------------------------


def _load_report(path: str) -> ProfileReport:
    from pyinfer.report import ProfileReport

    if not Path(path).exists():
        raise CommandError(f"report {path} does not exist")
    try:
        return ProfileReport.load(path)
    except InvalidArgumentError as exc:
        if _is_sweep_report(path):
            raise CommandError(
                f"{path} is a sweep report (pyinfer sweep --json); compare takes profile "
                "reports (pyinfer profile --json)"
            ) from exc
        raise CommandError(f"not a readable profile report: {exc}") from exc


def _is_sweep_report(path: str) -> bool:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "batch_curve" in data and "latency" not in data


def cmd_compare(args: argparse.Namespace) -> int:
    """The comparison table of saved reports and each one's change against the first."""
    from pyinfer.report import compare, comparison_table

    _check_outputs(args.markdown)
    reports = [_load_report(p) for p in args.reports]
    table = comparison_table(reports)
    blocks = []
    for path, report in zip(args.reports[1:], reports[1:], strict=True):
        blocks.append((f"{args.reports[0]} -> {path}", compare(reports[0], report).to_text()))
    text = table + "".join(f"\n\n{title}\n{body}" for title, body in blocks)
    sys.stdout.write(text + "\n")
    if args.markdown:
        md = ["## Comparison", "", "```", table, "```"]
        for title, body in blocks:
            md += ["", f"### {title}", "", "```", body, "```"]
        write_output(args.markdown, "\n".join(md) + "\n", "Markdown comparison")
    return EXIT_OK


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if not value:
            return [(prefix, "(none)")]
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(f"{prefix}.{k}", v)
        return rows
    return [(prefix, _value_text(value))]


def cmd_env(args: argparse.Namespace) -> int:
    """The environment pyinfer records with every result, as text or JSON."""
    from pyinfer._environment import collect_environment

    env = dataclasses.asdict(collect_environment())
    if args.json:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
        return EXIT_OK
    rows: list[tuple[str, str]] = []
    for key, value in env.items():
        rows += _flatten(key, value)
    width = max(len(k) for k, _ in rows)
    sys.stdout.write("\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows) + "\n")
    return EXIT_OK


# ---- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Runs the core demo and prints its report (or JSON with ``--json``)."""
    from pyinfer._demo import format_demo, run_demo

    result = run_demo(iterations=args.iterations, warmup=args.warmup, batch_size=args.batch_size)
    if args.json:
        latency = result.latency.to_dict()
        latency["percentiles"] = {str(k): v for k, v in result.latency.percentiles.items()}
        payload = {
            "model": result.model,
            "device": result.device,
            "input_shape": list(result.input_shape),
            "iterations": result.iterations,
            "warmup": result.warmup,
            "latency_ns": latency,
            "throughput_fps": result.throughput_fps,
            "parameter_bytes": result.parameter_bytes,
            "peak_rss_delta_bytes": result.peak_rss_delta_bytes,
            "peak_rss_method": result.peak_rss_method,
            "clock": result.clock.to_dict(),
            "timer_overhead_ns": result.timer_overhead_ns,
            "python_loop_overhead_ns": result.python_loop_overhead_ns,
            "pyinfer_version": pyinfer.__version__,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(format_demo(result) + "\n")
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------


def _command(
    commands: Any, name: str, help_text: str, description: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="Examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log progress and show tracebacks",
    )
    return parser


def _add_report_files(parser: argparse.ArgumentParser, *, markdown: bool = True) -> None:
    group = parser.add_argument_group("output files (written atomically)")
    group.add_argument("--json", metavar="FILE", help="write the result as JSON")
    group.add_argument("--csv", metavar="FILE", help="write the result as CSV")
    if markdown:
        group.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    group.add_argument("--plot", metavar="FILE", help="write a PNG plot (needs pyinfer[plot])")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pyinfer`` command."""
    parser = _Parser(
        prog="pyinfer",
        description="Load, run and profile machine-learning models.",
        epilog="Example: pyinfer profile model.onnx --batch-size 8\n"
        "Exit status: 0 done, 1 failed, 2 bad usage, 3 not stable, 130 interrupted (Ctrl-C), "
        "143 terminated (SIGTERM); interrupted or terminated, what was measured is written.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pyinfer {pyinfer.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = _command(
        commands,
        "info",
        "load a model and describe it",
        "Loads a model of any supported format and prints its format, framework, device, inputs "
        "and outputs (dynamic dimensions by name), parameters, load time, the options applied, "
        "and the file with its size.",
        ["pyinfer info resnet50.onnx", "pyinfer info model.pt --option num_threads=2 --json"],
    )
    info.add_argument("model", help="the model file (or SavedModel folder)")
    _add_model_options(info)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(handler=cmd_info)

    run = _command(
        commands,
        "run",
        "run a model on images or arrays",
        "Runs a model on image files, folders of images and .npy/.npz arrays (an .npz's keys "
        "are the model's input names; a leading batch dimension means many items). Images are "
        "preprocessed for the model (ImageNet-style). A classifier's top-k classes are printed "
        "per item, other outputs as shape, dtype and a summary. Items that fail are listed on "
        "stderr and the exit status is 1; the others are still printed and written.",
        [
            "pyinfer run resnet50.onnx images/ --top-k 3 --labels imagenet.txt",
            "pyinfer run model.onnx batch.npz --output outputs.npz",
            "pyinfer run resnet50.pt images/ --input-shape 1x3x224x224 --output top5.json",
        ],
    )
    run.add_argument("model", help="the model file (or SavedModel folder)")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .npy/.npz")
    run.add_argument("--batch-size", type=positive_int, default=8, help="items per call (8)")
    run.add_argument("--top-k", type=positive_int, default=5, help="classes per item (5)")
    run.add_argument("--labels", metavar="FILE", help="class labels, one per line")
    run.add_argument(
        "--cast",
        choices=("same_kind", "safe", "none"),
        default="same_kind",
        help="cast arrays of another dtype to the model's under this numpy rule: same_kind "
        "(default: float64 to float32, int64 to int32), safe (no loss), none (an error)",
    )
    run.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="for a model that declares no input shape (TorchScript, a pickled module, a "
        "state_dict): an input's whole shape (1x3x224x224, or x=1x3x224x224), the batch left "
        "dynamic; repeatable",
    )
    run.add_argument(
        "--output", metavar="PATH", help="write every output: .npy, .npz (per output) or .json"
    )
    bar = run.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="always show the progress bar (default: on a terminal, for long runs)",
    )
    bar.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="never show it",
    )
    _add_model_options(run)
    run.set_defaults(handler=cmd_run)

    profile = _command(
        commands,
        "profile",
        "measure latency, memory and throughput",
        "Profiles a model: a memory pass, latency (warm-up, then calls until the median is "
        "stable or a cap is hit), throughput and, with --batch-sizes, a batch sweep. Prints the "
        "report in the specification's layout. Exit status 3 when the latency did not become "
        "stable (the figures are still printed and written); Ctrl-C prints and writes what "
        "was measured and exits 130.",
        [
            "pyinfer profile resnet50.onnx --batch-size 8 --json r.json",
            "pyinfer profile bert.onnx --input-shape sequence=128 --iterations 500",
            "pyinfer profile resnet50.pt --input-shape 1x3x224x224 --option num_threads=1",
            "pyinfer profile mlp.pt2 --batch-sizes 1,8,64 --latency-budget 5 --plot mlp.png",
        ],
    )
    profile.add_argument("model", help="the model file (or SavedModel folder)")
    profile.add_argument("--batch-size", type=positive_int, help="items per call (default 1)")
    profile.add_argument(
        "--batch-sizes", type=int_list, metavar="LIST", help="also sweep these: 1,2,4,8"
    )
    profile.add_argument(
        "--latency-budget", type=positive_float, metavar="MS", help="P95 budget for the sweep"
    )
    profile.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    _add_model_options(profile)
    _add_timing_options(profile)
    _add_report_files(profile)
    profile.set_defaults(handler=cmd_profile)

    sweep = _command(
        commands,
        "sweep",
        "latency and throughput against batch size",
        "Measures latency and throughput at each batch size and prints the batch table, the "
        "knee (the smallest batch reaching 90% of the best throughput) and the best batch "
        "(under --latency-budget on P95, if given). Out of memory ends the sweep, shown in the "
        "table. Exit status 3 when a point did not become stable.",
        [
            "pyinfer sweep resnet50.onnx --batch-sizes 1,2,4,8,16,32",
            "pyinfer sweep mlp.onnx --batch-sizes 1,8,64 --latency-budget 2 --json curve.json",
        ],
    )
    sweep.add_argument("model", help="the model file (or SavedModel folder)")
    sweep.add_argument(
        "--batch-sizes", type=int_list, metavar="LIST", required=True, help="such as 1,2,4,8"
    )
    sweep.add_argument(
        "--latency-budget", type=positive_float, metavar="MS", help="P95 budget for the best"
    )
    _add_model_options(sweep)
    _add_timing_options(sweep)
    _add_report_files(sweep, markdown=False)
    sweep.set_defaults(handler=cmd_sweep)

    compare = _command(
        commands,
        "compare",
        "compare saved profile reports",
        "Loads reports saved by 'pyinfer profile --json' and prints the comparison table, then "
        "each later report against the first: the change of each metric and the Mann-Whitney "
        "U test on the raw latency samples (faster/slower only when significant and at least "
        "2% at the median).",
        ["pyinfer compare torch.json onnx.json", "pyinfer compare a.json b.json --markdown c.md"],
    )
    compare.add_argument("reports", nargs="+", metavar="REPORT", help="JSON reports, 1 or more")
    compare.add_argument("--markdown", metavar="FILE", help="also write it as Markdown")
    compare.set_defaults(handler=cmd_compare)

    env = _command(
        commands,
        "env",
        "print the environment pyinfer records",
        "Prints the environment pyinfer records with every result: CPU, cores and affinity, "
        "thread settings, GPU, Python, platform, package versions and the timing clock.",
        ["pyinfer env", "pyinfer env --json > env.json"],
    )
    env.add_argument("--json", action="store_true", help="print it as JSON")
    env.set_defaults(handler=cmd_env)

    demo = _command(
        commands,
        "demo",
        "time a numpy MLP with the native core and print the report",
        "Times the forward pass of a random numpy MLP with pyinfer's native timed "
        "loop and prints latency statistics, memory and throughput in pyinfer's report layout.",
        ["pyinfer demo --iterations 2000 --batch-size 64"],
    )
    demo.add_argument("--iterations", type=positive_int, default=1000, help="timed passes")
    demo.add_argument("--warmup", type=non_negative_int, default=100, help="untimed passes first")
    demo.add_argument("--batch-size", type=positive_int, default=32, help="rows per pass")
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(handler=cmd_demo)

    from pyinfer import _cli_bench

    _cli_bench.add_commands(commands)
    return parser


def _one_line(message: str) -> str:
    """A message on one line.

    A traceback a framework put in it (TorchScript's) is cut to its first and last lines,
    which say what failed and why.
    """
    lines = [" ".join(line.split()) for line in message.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} ... {lines[-1]}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyinfer`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    signals = StopSignals()
    try:
        with stop_signals() as signals:
            status = _run_command(args, signals)
    except KeyboardInterrupt:  # a signal in the instant between the command's end and here
        status = EXIT_INTERRUPTED
    if status == EXIT_INTERRUPTED and signals.terminated:
        sys.stderr.write(f"pyinfer {args.command}: stopped by SIGTERM (exit status 143)\n")
    return signals.exit_status(status)


def _run_command(args: argparse.Namespace, signals: StopSignals) -> int:
    """Runs the command's handler; maps errors and interrupts to a message and a status."""
    try:
        status: int = args.handler(args)
    except PyinferError as error:
        if args.verbose:
            logger.exception("pyinfer %s failed", args.command)
        sys.stderr.write(f"pyinfer {args.command}: error: {_one_line(str(error))}\n")
        return EXIT_USAGE if isinstance(error, InvalidArgumentError) else EXIT_FAILED
    except KeyboardInterrupt:
        if signals.repeated:
            sys.stderr.write(
                f"pyinfer {args.command}: interrupted again: stopped without writing the rest; "
                "the files reported as written are complete, the others were not written\n"
            )
        else:
            sys.stderr.write(f"pyinfer {args.command}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.verbose:
            logger.exception("pyinfer %s: internal error", args.command)
        message = " ".join(str(error).split()) or "(no message)"
        sys.stderr.write(
            f"pyinfer {args.command}: internal error: {type(error).__name__}: {message}"
            + ("\n" if args.verbose else " (re-run with --verbose for the traceback)\n")
        )
        return EXIT_FAILED
    return status
