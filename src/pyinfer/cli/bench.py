"""``pyinfer bench`` and ``pyinfer formats``: the benchmark suite; a model across its formats.

The suite runs ResNet50 in its formats, BERT-base and MobileNetV2.

The work is :mod:`pyinfer.suite`'s; this module parses the options, prints the tables, writes the
files and maps the result's :class:`~pyinfer.suite.Outcome` to the exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNSTABLE,
    EXIT_USAGE,
    write_output,
)
from pyinfer.cli.model_args import (
    BATCH_MARKS,
    add_input_options,
    given_from_args,
    parse_spec,
    shapes_from_specs,
)
from pyinfer.cli.parser import add_loader_options, add_repeat_options, int_list, positive_int
from pyinfer.errors import CudaUnavailableError, InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.cluster import MatrixResult
    from pyinfer.suite import Outcome, SuiteConfig

__all__ = ["add_parser", "cmd_bench", "cmd_formats", "exit_status"]


def _names(text: str) -> list[str]:
    """A comma-separated list of names (an argparse type)."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of names, got {text!r}")
    return names


def _shape(text: str) -> str:
    """An ``--input-shape`` spec, checked (an argparse type): ``pyinfer profile``'s grammar.

    A whole shape, batch first (``1x3x224x224``, ``x=1x3x224x224``), is checked here as it
    always was; the other forms (``NAME:SHAPE`` with ``b`` marking the batch axis, ``sr:`` for
    a 0-d input, ``sequence=32`` for a named dimension) by :func:`parse_spec`.
    """
    if not _is_legacy(text):
        try:
            parse_spec(text)
        except InvalidArgumentError as error:
            why = str(error).removeprefix(f"--input-shape {text}: ")
            raise argparse.ArgumentTypeError(why) from error
        return text
    _legacy_shape(text)
    return text


def _is_legacy(text: str) -> bool:
    """A whole shape with the batch first and no ``b`` mark (``8x3`` or ``a=8x3``)."""
    if ":" in text:
        return False
    _, sep, value = text.partition("=")
    body = (value if sep else text).lower()
    if sep and "x" not in body:
        return False  # a named dimension's size: sequence=32
    return not any(part.strip() in BATCH_MARKS for part in body.split("x"))


def _legacy_shape(text: str) -> tuple[str | None, list[int]]:
    """An input's name (or None) and its whole shape, batch first.

    As ``pyinfer profile`` takes it: ``1x3x224x224``, or ``x=1x3x224x224`` with the input's name.
    """
    name, sep, value = text.partition("=")
    dims = value if sep else text
    if sep and not name.strip():
        raise argparse.ArgumentTypeError(f"the input's name before = is empty in {text!r}")
    if "," in dims or not dims.strip():
        raise argparse.ArgumentTypeError(
            f"must be a whole shape with the batch first, sizes joined by x (1x3x224x224), "
            f"got {text!r}"
        )
    shape = int_list(dims.lower().replace("x", ","))
    if len(shape) < 2:
        raise argparse.ArgumentTypeError(
            f"must be a whole shape with the batch first (1x3x224x224), got {text!r}: one "
            "size is only the batch"
        )
    return (name.strip() if sep else None), shape


def _profile_grammar(
    specs: list[str], batch_size: int | None, model: str, fmt: str | None
) -> tuple[dict[str, Any], dict[str, int], int]:
    """Loader options, named sizes and the batch from specs in ``pyinfer profile``'s grammar.

    Whole shapes become the loader's ``input_shapes`` (for a format whose file declares none:
    TorchScript, a pickled module), their batch axis dynamic; an unmarked batch axis's size is
    the batch. ``NAME=SIZE`` sizes a named dimension.

    Raises:
        InvalidArgumentError: If a batch contradicts another spec's or ``--batch-size``.
    """
    from pyinfer.formats import format_info
    from pyinfer.loading import detect_format

    parsed = [parse_spec(t) for t in specs]
    dims = {p.name: p.size for p in parsed if p.name is not None and p.size is not None}
    batch, given = batch_size, f"--batch-size {batch_size}"
    for p in parsed:
        axis = p.batch_axis
        if p.dims is None or axis is None or p.dims[axis] == "batch":
            continue
        size = int(p.dims[axis])
        if batch is not None and batch != size:
            raise InvalidArgumentError(
                f"--input-shape {p.text} has batch {size}, which contradicts {given}"
            )
        batch, given = size, f"--input-shape {p.text}"
    options: dict[str, Any] = {}
    shapes = shapes_from_specs(specs)
    if shapes is not None and not format_info(fmt or detect_format(model)).declares_inputs:
        options["input_shapes"] = shapes
    return options, dims, batch or 1


def _item_shapes(
    specs: list[tuple[str | None, list[int]]], batch_size: int | None
) -> tuple[list[int] | dict[str, list[int]] | None, int]:
    """One item's shape (or one per named input) and the batch, from ``--input-shape`` specs.

    Raises:
        InvalidArgumentError: If unnamed and named shapes are mixed, a name repeats, or a batch
            contradicts another spec's or ``--batch-size``.
    """
    if not specs:
        return None, batch_size or 1
    unnamed = [shape for name, shape in specs if name is None]
    if unnamed and len(specs) > 1:
        raise InvalidArgumentError(
            "--input-shape: an unnamed shape is for a one-input model; with several inputs name "
            "each one: --input-shape a=1x8 --input-shape b=1x3"
        )
    named: dict[str, list[int]] = {}
    given = f"--batch-size {batch_size}"
    for name, shape in specs:
        text = "x".join(map(str, shape))
        where = f"--input-shape {name}={text}" if name else f"--input-shape {text}"
        if name is not None and name in named:
            raise InvalidArgumentError(f"{where}: input '{name}' is given twice")
        if batch_size is not None and batch_size != shape[0]:
            raise InvalidArgumentError(f"{where} has batch {shape[0]}, which contradicts {given}")
        batch_size, given = shape[0], where
        if name is not None:
            named[name] = shape[1:]
    assert batch_size is not None
    return (unnamed[0][1:] if unnamed else named), batch_size


def _wrap(text: str) -> str:
    """A description wrapped for a help formatter that keeps it as written."""
    import textwrap

    return textwrap.fill(text, width=78)


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _usage_error(command: str, error: InvalidArgumentError) -> int:
    sys.stderr.write(f"pyinfer {command}: error: {error}\n")
    return EXIT_USAGE


def exit_status(outcome: Outcome, *, strict: bool = False) -> int:
    """The exit status of a suite's or a format comparison's outcome.

    A measurement that missed its stability or reproducibility target exits 0 (the command
    warns), or 3 with ``--strict``; failures and interrupts keep their statuses.
    """
    from pyinfer.suite import Outcome

    return {
        Outcome.OK: EXIT_OK,
        Outcome.FAILED: EXIT_FAILED,
        Outcome.UNSTABLE: EXIT_UNSTABLE if strict else EXIT_OK,
        Outcome.INTERRUPTED: EXIT_INTERRUPTED,
    }[outcome]


def _finish(command: str, outcome: Outcome, unstable: list[str], args: argparse.Namespace) -> int:
    """Warns about the entries that missed their targets; returns the exit status."""
    from pyinfer.suite import Outcome

    if outcome is Outcome.UNSTABLE:
        strict = args.strict
        status = "exit status 3 (--strict)" if strict else "exit status 0 (--strict makes it 3)"
        longer = "more time (leave out --quick), " if args.quick else ""
        sys.stderr.write(
            f"warning: pyinfer {command}: NOT stable: {', '.join(unstable)} missed the "
            "stability or reproducibility target (marked ~); the figures are what was "
            f"measured: give them {longer}more runs (--repeat) or a quieter machine; {status}\n"
        )
    return exit_status(outcome, strict=args.strict)


def _devices(choice: str) -> tuple[str, ...]:
    return {"cpu": ("cpu",), "cuda": ("cuda",), "all": ("cpu", "cuda")}.get(choice, ())


def _require_cuda(devices: tuple[str, ...]) -> None:
    """Raises CudaUnavailableError (exit 1) when CUDA is asked for and not there."""
    import pyinfer

    if "cuda" in devices and not pyinfer.cuda_available():
        raise CudaUnavailableError(
            f"--device {'all' if len(devices) > 1 else 'cuda'} asks for CUDA, which is not "
            f"available here: {pyinfer.cuda_unavailable_reason()}"
        )


def cmd_bench(args: argparse.Namespace) -> int:
    """Runs the benchmark suite (or, given a MODEL, compares its formats)."""
    suite_only = {
        "--only": args.only,
        "--batch-sizes": args.batch_sizes,
        "--seq-lengths": args.seq_lengths,
        "--input-sizes": args.input_sizes,
        "--image-size": args.image_size,
        "--markdown": args.markdown,
        "--device all": args.device == "all" or None,
    }
    model_only = {
        "--batch-size": args.batch_size,
        "--input-shape": args.input_shape,
        "--option": args.options or None,
        "--trust-code": args.trust_code or None,
    }
    if args.model is not None:
        misplaced = suite_only
        where = (
            f"the suite, not to comparing the formats of {args.model}; leave them out, or "
            "leave out MODEL to run the suite"
        )
    else:
        misplaced = model_only
        where = (
            "a MODEL given to compare its formats (pyinfer bench MODEL or pyinfer formats "
            "MODEL), not to the suite"
        )
    given = [name for name, value in misplaced.items() if value is not None]
    if given:
        return _usage_error("bench", InvalidArgumentError(f"{', '.join(given)} apply to {where}"))
    if args.model is not None:
        return cmd_formats(args)
    if args.ray_timeout is not None and args.ray is None:
        return _usage_error("bench", InvalidArgumentError(_RAY_TIMEOUT_ALONE))
    from pyinfer.suite import (
        DEFAULT_BATCH_SIZES,
        DEFAULT_INPUT_SIZES,
        DEFAULT_SEQ_LENGTHS,
        RESNET_IMAGE_SIZE,
        SUITE_FORMATS,
        SUITE_MODELS,
        SuiteConfig,
        run_suite,
    )

    try:
        config = SuiteConfig(
            models=tuple(args.only or SUITE_MODELS),
            formats=tuple(args.formats or SUITE_FORMATS),
            devices=_devices(args.device),
            batch_sizes=tuple(args.batch_sizes or DEFAULT_BATCH_SIZES),
            seq_lengths=tuple(args.seq_lengths or DEFAULT_SEQ_LENGTHS),
            input_sizes=tuple(args.input_sizes or DEFAULT_INPUT_SIZES),
            image_size=args.image_size or RESNET_IMAGE_SIZE,
            quick=args.quick,
            repetitions=args.repeat,
            cpus=tuple(args.cpus or ()),
            work_dir=Path(args.work_dir) if args.work_dir else None,
        )
    except InvalidArgumentError as error:
        return _usage_error("bench", error)
    if args.ray is not None:
        return _bench_matrix(config, args)
    _require_cuda(config.devices)
    from pyinfer.loading import native_output_silenced

    with native_output_silenced(enabled=not args.verbose):
        result = run_suite(config, progress=_progress)
    sys.stdout.write(result.to_text() + "\n")
    sys.stdout.flush()
    if args.json:
        write_output(args.json, result.to_json() + "\n", "JSON result")
    if args.markdown:
        write_output(args.markdown, result.to_markdown(), "Markdown tables")
    unstable = [f"{e.device} {e.name}" for e in result.unstable]
    return _finish("bench", result.outcome, unstable, args)


def cmd_formats(args: argparse.Namespace) -> int:
    """Compares a model across every format reachable from its framework."""
    from pyinfer.loading import native_output_silenced
    from pyinfer.suite import compare_formats

    if args.ray_timeout is not None and args.ray is None:
        return _usage_error(args.command, InvalidArgumentError(_RAY_TIMEOUT_ALONE))
    device = "cpu" if args.device in (None, "all") else args.device
    specs: list[str] = args.input_shape or []
    options: dict[str, Any] = dict(args.options)
    dims: dict[str, int] = {}
    try:
        if all(_is_legacy(t) for t in specs):
            item_shape, batch_size = _item_shapes(
                [_legacy_shape(t) for t in specs], args.batch_size
            )
        else:
            shapes, dims, batch_size = _profile_grammar(
                specs, args.batch_size, args.model, getattr(args, "format", None)
            )
            item_shape = None
            for key, value in shapes.items():
                options.setdefault(key, value)
    except InvalidArgumentError as error:
        return _usage_error(args.command, error)
    given = given_from_args(args, None)  # --inputs, --input-value
    settings: dict[str, Any] = {
        "device": device,
        "batch_size": batch_size,
        "formats": args.formats,
        "input_shape": item_shape,
        "work_dir": args.work_dir,
        "quick": args.quick,
        "repetitions": args.repeat,
        "cpus": tuple(args.cpus or ()),
        "trust_code": args.trust_code,
        "options": options,
        "progress": _progress,
        "inputs": given[0],
        "input_values": given[1],
        "input_dims": dims,
    }
    if args.ray is not None:
        return _formats_matrix(args, settings)
    _require_cuda((device,))
    try:
        with native_output_silenced(enabled=not args.verbose):
            result = compare_formats(args.model, **settings)
    except InvalidArgumentError as error:
        return _usage_error(args.command, error)
    sys.stdout.write(result.to_text() + "\n")
    sys.stdout.flush()
    if args.json:
        write_output(args.json, result.to_json() + "\n", "JSON result")
    unstable = [e.label for e in result.entries if e.status == "ok" and not e.stable]
    return _finish(args.command, result.outcome, unstable, args)


_RAY_TIMEOUT_ALONE = "--ray-timeout applies to entries run on a Ray cluster: add --ray"


def _ray_address(args: argparse.Namespace) -> str | None:
    """``--ray``'s cluster: ``None`` for a local one started for the run, else the address."""
    return args.ray or None


def _matrix_done(result: MatrixResult, args: argparse.Namespace, *, markdown: bool) -> int:
    """Prints a matrix's tables, writes its files, returns the exit status."""
    sys.stdout.write(result.to_text() + "\n")
    sys.stdout.flush()
    if args.json:
        write_output(args.json, result.to_json() + "\n", "JSON result")
    if markdown and args.markdown:
        write_output(args.markdown, result.to_markdown(), "Markdown tables")
    return _finish(args.command, result.outcome, result.unstable(), args)


def _bench_matrix(config: SuiteConfig, args: argparse.Namespace) -> int:
    """``pyinfer bench --ray``: the suite on every node of a Ray cluster."""
    from pyinfer.cluster import run_suite_on_cluster
    from pyinfer.loading import native_output_silenced

    try:
        with native_output_silenced(enabled=not args.verbose):
            result = run_suite_on_cluster(
                config,
                address=_ray_address(args),
                progress=_progress,
                timeout_s=args.ray_timeout,
            )
    except InvalidArgumentError as error:
        return _usage_error("bench", error)
    return _matrix_done(result, args, markdown=True)


def _formats_matrix(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """``pyinfer formats --ray``: the format comparison on every node of a Ray cluster."""
    from pyinfer.cluster import compare_formats_on_cluster
    from pyinfer.loading import native_output_silenced

    try:
        with native_output_silenced(enabled=not args.verbose):
            result = compare_formats_on_cluster(
                args.model, address=_ray_address(args), timeout_s=args.ray_timeout, **settings
            )
    except InvalidArgumentError as error:
        return _usage_error(args.command, error)
    return _matrix_done(result, args, markdown=False)


def _common(parser: argparse.ArgumentParser, *, suite: bool) -> None:
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run every entry on every node of a Ray cluster, each entry alone on its node "
        "(all its CPUs and GPUs), the tables grouped by node: bare --ray starts a local "
        "cluster for the run; ADDRESS is auto (the cluster 'ray start' runs here), host:port "
        "or ray://host:port; the model files must be at the same path on every node "
        "(--work-dir on shared storage); needs pip install 'pyinfer-toolkit[ray]'",
    )
    parser.add_argument(
        "--ray-timeout",
        type=float,
        metavar="SECONDS",
        help="with --ray: an entry whose task has not finished after SECONDS (waiting for "
        "its node included) is cancelled and fails (default: no limit)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "all") if suite else ("cpu", "cuda"),
        default=None,
        help="where to run (bench: default the CPU, plus CUDA when available; formats: cpu)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short measurements (3 warm-up calls, 10+ timed calls, at most 3 s per entry), "
        "one run of each entry unless --repeat is given",
    )
    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        help="keep the exported models here and reuse them (default: a temporary folder)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the whole result as JSON")
    parser.add_argument(
        "--formats",
        type=_names,
        metavar="LIST",
        help="formats to run, comma-separated (bench: ResNet50's, of pytorch,onnx,torchscript,"
        "tensorflow,tflite; BERT and MobileNetV2 run in PyTorch; formats: eager,torchscript,"
        "torch-export,onnx,keras,saved-model,tflite)",
    )
    parser.add_argument("--batch-size", type=positive_int, help="MODEL: items per call (default 1)")
    parser.add_argument(
        "--input-shape",
        type=_shape,
        action="append",
        metavar="SHAPE",
        help="MODEL: as for pyinfer profile: an input's whole shape, batch first "
        "(1x3x224x224, or x=1x3x224x224; several inputs: one each, named), for a module that "
        "does not describe its input; NAME:SHAPE with b marking a batch axis elsewhere "
        "(state:2xbx128) and sr: for a 0-d input; NAME=SIZE for a named dimension "
        "(sequence=32)",
    )
    add_loader_options(parser, scope="MODEL: ")
    # Every entry runs in its own worker process, whatever the count; --quick picks its own.
    add_repeat_options(
        parser,
        default=None,
        repeat_help="measure each entry in N fresh worker processes, the entries alternating "
        "in each round (default 5, --quick 1); the latency ratios between formats get a 95%% "
        "interval from 4 runs on; the default time and count limits are shared among the runs",
    )


def add_parser(commands: Any) -> None:
    """Adds ``bench`` and ``formats`` to the ``pyinfer`` subcommands.

    Args:
        commands: The ``argparse`` subparsers action of the ``pyinfer`` parser.
    """
    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite (ResNet50, BERT-base, MobileNetV2)",
        description=_wrap(
            "Builds ResNet50, BERT-base and MobileNetV2 with random weights, exports them, and "
            "profiles each entry the same way, each in its own fresh worker process, --repeat "
            "times (default 5, --quick 1), the entries alternating in each round; prints the "
            "tables of formats (with each format's latency ratio to PyTorch eager), batch sizes, "
            "sequence lengths and input sizes. Given MODEL, "
            "acts as 'pyinfer formats MODEL'. Exit status: 0 all fine (also when an entry "
            "missed its stability or reproducibility target: a warning says so; 3 with "
            "--strict), 1 an entry failed, 130 interrupted (finished runs still printed and "
            "written; 143 for SIGTERM)."
        ),
        epilog="Examples:\n"
        "  pyinfer bench --quick --json bench.json --markdown bench.md\n"
        "  pyinfer bench --only mobilenetv2 --input-sizes 224 --quick\n"
        "  pyinfer bench --only resnet50 --formats pytorch,onnx --batch-sizes 1,8 --quick\n"
        "  pyinfer bench --only resnet50 --formats pytorch,onnx --repeat 4 --quick --strict",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("model", nargs="?", help="a model file: compare its formats instead")
    _common(bench, suite=True)
    bench.add_argument(
        "--only",
        type=_names,
        metavar="LIST",
        help="models to run, comma-separated: resnet50,bert,mobilenetv2",
    )
    bench.add_argument(
        "--batch-sizes",
        type=int_list,
        metavar="LIST",
        help="ResNet50's batch sweep (default 1,2,4,8,16,32)",
    )
    bench.add_argument(
        "--seq-lengths",
        type=int_list,
        metavar="LIST",
        help="BERT's sequence lengths (default 128,256,512; at most 512)",
    )
    bench.add_argument(
        "--input-sizes",
        type=int_list,
        metavar="LIST",
        help="MobileNetV2's input sizes (default 224,320; at least 32)",
    )
    bench.add_argument("--image-size", type=positive_int, help="ResNet50's input size (224)")
    bench.add_argument("--markdown", metavar="FILE", help="write the tables as Markdown")
    bench.set_defaults(handler=cmd_bench)

    formats = commands.add_parser(
        "formats",
        help="compare a model across every format reachable from its framework",
        description=_wrap(
            "Exports MODEL to the other formats of its framework; then loads and profiles each "
            "format in its own fresh worker process, --repeat times (default 5, --quick 1), "
            "the formats alternating in each round, and checks its outputs against the "
            "original's on the same random input. Prints each format's latency ratio to the "
            "original, with its 95% interval over the runs. Exit status: 0 all fine (also when "
            "a measurement missed its stability or reproducibility target: a warning says so; "
            "3 with --strict), 1 a format failed or its outputs differ, 130 interrupted (143 "
            "for SIGTERM)."
        ),
        epilog="Examples:\n"
        '  python -c "import torch, torchvision; torch.save(torchvision.models.resnet18('
        "weights=None), 'resnet18.pt')\"\n"
        "  pyinfer formats resnet18.pt --trust-code --input-shape 1x3x224x224 --quick "
        "--work-dir exports\n"
        "  pyinfer formats exports/resnet18.onnx --batch-size 8 --quick\n"
        "  pyinfer formats resnet18.pt --trust-code --input-shape 1x3x224x224 --repeat 5 "
        "--cpus 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats.add_argument("model", help="the model file (or SavedModel folder)")
    _common(formats, suite=False)
    add_input_options(formats)
    formats.set_defaults(handler=cmd_formats)
