"""``pyinfer run``: run a model on image files, folders and arrays; print or write the outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    check_outputs,
    write_output,
)
from pyinfer.cli.model_args import given_from_args, load_from_args, shapes_from_specs
from pyinfer.cli.parser import add_command, add_model_options, positive_int
from pyinfer.cli.run_ray import add_ray_options, cmd_run_ray
from pyinfer.cli.run_results import (
    DEFAULT_TOP_K,
    RunEntry,
    check_labels,
    print_results,
    read_labels,
    run_output_payload,
)
from pyinfer.errors import InvalidArgumentError, PyinferError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    import numpy as np

    from pyinfer.backends.base import Model

__all__ = ["add_parser", "cmd_run"]


def _array_entries(path: Path, model: Model, given: Collection[str] = ()) -> list[RunEntry]:
    """The items of one ``.npy``/``.npz`` file; a file that does not fit is one failed entry.

    ``given`` names the inputs ``--input-value`` gives, which the file may leave out.
    """
    import numpy as np

    def failed(reason: str) -> list[RunEntry]:
        return [RunEntry(str(path), "array", error=reason)]

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
    names = [n for n in model.input_names() if n not in given]
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
        if not set(names) <= set(arrays) <= set(model.input_names()):
            return failed(
                f"its keys ({', '.join(sorted(arrays)) or 'none'}) are not the model's inputs "
                f"({', '.join(names)})"
            )
    if _whole_calls(model, arrays):
        # A shared scalar with inputs of undeclared shape: where their batch is is unknown.
        return [RunEntry(str(path), "call", arrays)]
    # A batch dimension (the input's full rank) means many items, on each input's batch axis;
    # one less, one item. An input a batch shares (a 0-d sample rate) goes to every item.
    batched: bool | None = None
    counts: set[int] = set()
    for spec in model.inputs:
        if spec.name not in arrays:
            continue  # given by --input-value
        value = arrays[spec.name]
        if spec.shape is not None and spec.batch_axis is None:
            if value.ndim != len(spec.shape):
                return failed(
                    f"'{spec.name}' has shape {tuple(value.shape)}; the model takes "
                    f"{spec.shape_text()}, which a batch shares"
                )
            continue
        axis = spec.batch_axis or 0
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
        if this:
            counts.add(int(value.shape[axis]))
    if not batched:
        return [RunEntry(str(path), "array", arrays)]
    if len(counts) != 1:
        return failed(f"the arrays hold different numbers of items: {sorted(counts)}")
    n = counts.pop()
    return [RunEntry(f"{path}[{i}]", "array", _item(model, arrays, i)) for i in range(n)]


def _item(model: Model, arrays: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """Item ``index`` of a file's batch: each input taken on its batch axis, shared ones whole."""
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        if spec.name not in arrays:
            continue
        value = arrays[spec.name]
        shared = spec.shape is not None and spec.batch_axis is None
        out[spec.name] = value if shared else np.take(value, index, axis=spec.batch_axis or 0)
    return out


def _whole_calls(model: Model, arrays: dict[str, np.ndarray]) -> bool:
    """Whether a file's arrays are run as one call rather than split into items.

    So they are for a model with inputs of undeclared shape (TorchScript loaded without
    ``--input-shape``) given a 0-d array, or with an input that a batch shares: the batch
    axes of the inputs of undeclared shape are unknown (a state ``(2, batch, 128)`` holds it
    on axis 1), so the items cannot be told apart. Give their shapes to run item by item.
    """
    undeclared = any(spec.shape is None for spec in model.inputs)
    shared = any(
        (spec.shape is None and spec.name in arrays and arrays[spec.name].ndim == 0)
        or (spec.shape is not None and spec.batch_axis is None)
        for spec in model.inputs
    )
    return undeclared and shared


def _run_calls(entries: list[RunEntry], model: Model, args: argparse.Namespace) -> None:
    """Runs each whole-call entry as one call of the model (its arrays cast as ``--cast``)."""
    import numpy as np

    from pyinfer.preprocess import cast_arrays

    for entry in entries:
        if entry.kind != "call" or entry.error is not None:
            continue
        arrays = {k: np.asarray(v) for k, v in entry.payload.items()}
        specs = {spec.name: spec for spec in model.inputs}
        for name, value in args.given_values.items():
            arrays.setdefault(name, np.asarray(value, dtype=specs[name].dtype))
        try:
            if args.cast != "none":
                arrays = cast_arrays(arrays, model.inputs, args.cast)
            entry.outputs = model(arrays)
        except PyinferError as exc:
            entry.error = str(exc)


def _run_values(args: argparse.Namespace, model: Model) -> dict[str, Any]:
    """The ``--input-value`` constants: one value per input, shared by every item."""
    from pyinfer.profiling import IntRange

    values = given_from_args(args, model)[1]
    for name, value in values.items():
        if isinstance(value, IntRange):
            raise InvalidArgumentError(
                f"--input-value {name}={value.low}:{value.high}: a range draws random values "
                f"for measuring; run takes one value ({name}={value.low})"
            )
    return values


def _text_entries(path: Path) -> list[RunEntry]:
    """One item per non-empty line of a ``.txt`` file, named ``FILE:LINE``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [RunEntry(str(path), "text", error=f"cannot read text file: {exc}")]
    entries = [
        RunEntry(f"{path}:{number}", "text", line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    return entries or [RunEntry(str(path), "text", error="the text file has no non-empty line")]


def _gather(inputs: Sequence[str]) -> list[tuple[Path, str]]:
    """``(path, kind)`` per input file; a missing path is an error.

    Folders are expanded recursively, sorted by path, hidden files and folders left out.
    """
    from pyinfer.preprocess import IMAGE_EXTENSIONS

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
            suffix = path.suffix.lower()
            kind = (
                "array" if suffix in {".npy", ".npz"} else "text" if suffix == ".txt" else "image"
            )
            found.append((path, kind))
        else:
            raise CommandError(f"input {path} does not exist")
    return found


def _run_entries(
    entries: list[RunEntry], model: Model, args: argparse.Namespace
) -> BaseException | None:
    """Runs the entries through the engine; returns the exception that stopped it, if any."""
    from pyinfer.engine import InferenceEngine
    from pyinfer.preprocess import ImagePipeline, TextPipeline, pipeline_for

    _run_calls(entries, model, args)
    progress = args.progress
    for kind in ("image", "array", "text"):
        todo = [e for e in entries if e.kind == kind and e.error is None]
        if not todo:
            continue
        pipeline: ImagePipeline | TextPipeline | None = None
        if kind == "image":
            shapeless = [s.name for s in model.inputs if s.shape is None]
            if len(model.inputs) == 1 and shapeless:
                raise InvalidArgumentError(
                    f"{todo[0].source} is an image, but model '{model.name}' does not declare "
                    f"the shape of its input '{shapeless[0]}', so its image size and layout are "
                    "unknown: give it, such as --input-shape 1x3x224x224"
                )
            pipeline = pipeline_for(model, kind, f"{todo[0].source} is read as an image")
        if kind == "text":
            pipeline = pipeline_for(model, kind, f"{todo[0].source.rsplit(':', 1)[0]} is text")
        cast = None if args.cast == "none" else args.cast
        engine = InferenceEngine(
            model,
            pipeline,
            batch_size=args.batch_size,
            progress=progress,
            cast_inputs=cast,
            input_values=args.given_values,
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


def _take_results(todo: list[RunEntry], result: Any) -> None:
    for entry, outputs in zip(todo, result.outputs, strict=False):
        entry.outputs = outputs
    for failure in result.failures:
        todo[failure.index].error = failure.reason


def _check_npy_output(output: Path | None, model: Model, names: list[str]) -> None:
    if output is not None and output.suffix.lower() == ".npy" and len(names) > 1:
        raise InvalidArgumentError(
            f"--output {output}: model '{model.name}' has {len(names)} outputs "
            f"({', '.join(names)}); a .npy holds one, use .npz"
        )


def cmd_run(args: argparse.Namespace) -> int:
    """Runs a model on image files, folders and arrays; prints top-k or the outputs' shapes."""
    pool = (args.actors, args.cpus_per_actor, args.gpus_per_actor, args.text_column)
    if args.ray is not None or any(value is not None for value in pool):
        return cmd_run_ray(args)  # it refuses the pool's options without --ray
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in {".npy", ".npz", ".json"}:
        raise InvalidArgumentError(f"--output {output}: use a .npy, .npz or .json file")
    check_outputs(args.output)
    labels = read_labels(args.labels)
    files = _gather(args.inputs)
    if args.input_shape and shapes_from_specs(args.input_shape) is None:
        raise InvalidArgumentError(
            f"--input-shape {' '.join(args.input_shape)}: run takes whole shapes, such as "
            "1x3x224x224 or x=1x3x224x224 (one per input)"
        )
    model = load_from_args(args)
    if args.input_shape and "input_shapes" not in model.options:
        raise InvalidArgumentError(
            f"--input-shape {args.input_shape[0]}: model '{model.name}' "
            f"({model.format.value}) declares its input shapes "
            f"({'; '.join(str(s) for s in model.inputs)}); --input-shape is for models that do "
            "not (TorchScript, a pickled module, a state_dict)"
        )
    _check_npy_output(output, model, model.output_names())
    args.given_values = _run_values(args, model)
    if model.outputs and model.outputs[0].shape is not None:
        shape = model.outputs[0].shape
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1:
            check_labels(labels, args.labels, shape[1])  # before the run, when known
    entries: list[RunEntry] = []
    for path, kind in files:
        if kind == "array":
            entries += _array_entries(path, model, args.given_values)
        elif kind == "text":
            entries += _text_entries(path)
        else:
            entries.append(RunEntry(str(path), kind))
    stopped = _run_entries(entries, model, args)
    done = [e for e in entries if e.outputs is not None]
    # A model without declared outputs (TorchScript) names them at its first call.
    names = model.output_names() or (list(done[0].outputs) if done and done[0].outputs else [])
    _check_npy_output(output, model, names)
    score, failed = print_results(entries, names, args, labels)
    k = args.top_k or DEFAULT_TOP_K
    if output is not None and (done or output.suffix.lower() == ".json"):
        payload = run_output_payload(
            entries,
            names,
            output,
            k,
            labels,
            score=score,
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


def add_parser(commands: Any) -> None:
    """Adds ``run`` to the ``pyinfer`` subcommands."""
    run = add_command(
        commands,
        "run",
        "run a model on images, arrays or text",
        "Runs a model on image files, folders of images, .npy/.npz arrays (an .npz's keys "
        "are the model's input names; a leading batch dimension means many items) and .txt "
        "files (each non-empty line one item, encoded by the model's own tokenizer: a Hugging "
        "Face folder's). Images are preprocessed for the model (ImageNet-style). A model of "
        "one output of scores gets its top-k classes per item (others with --top-k or "
        "--labels); every other output is printed by name with its shape, dtype and a "
        "summary. An .npz's items are taken on each input's batch axis (a state "
        "(2, batch, 128) on axis 1); an input a batch shares (a 0-d sample rate) goes to every "
        "item, and items of different such values run in separate calls. "
        "Items that fail are listed on stderr and the exit status is 1; the others are still "
        "printed and written.",
        [
            "pyinfer run resnet50.onnx images/ --top-k 3 --labels imagenet.txt",
            "pyinfer run model.onnx batch.npz --output outputs.npz",
            "pyinfer run vad.onnx audio.npz --input-value sr=16000 --batch-size 16",
            "pyinfer run my-bert-folder/ reviews.txt --labels labels.txt",
            "pyinfer run resnet50.pt images/ --input-shape 1x3x224x224 --output top5.json",
            "pyinfer run resnet50.onnx images/ --ray --actors 2 --output outputs/",
        ],
        handler=cmd_run,
    )
    run.add_argument("model", help="the model file (or SavedModel folder)")
    run.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders, .npy/.npz, .txt"
    )
    run.add_argument("--batch-size", type=positive_int, default=8, help="items per call (8)")
    run.add_argument(
        "--top-k",
        type=positive_int,
        help="classes per item (5); reads the first output of float scores as classes (a "
        "model of one such output is read so without it)",
    )
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
        "--input-value",
        action="append",
        default=[],
        dest="input_values",
        metavar="NAME=VALUE",
        help="a value for an input, given to every item that leaves it out (sr=16000: an "
        ".npz may then omit it); repeatable",
    )
    run.add_argument(
        "--output",
        metavar="PATH",
        help="write every output: .npy, .npz (per output) or .json; with --ray a folder of "
        "shards (--shard-format) and report.json",
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
    add_ray_options(run)
    add_model_options(run)
