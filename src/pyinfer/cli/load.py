"""``pyinfer load``: serve a model under load and print the latency-vs-load table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_USAGE,
    check_outputs,
    write_output,
    write_plot,
)
from pyinfer.cli.model_args import add_input_options, given_from_args, input_shapes, load_from_args
from pyinfer.cli.parser import (
    add_command,
    add_model_options,
    int_list,
    non_negative_int,
    positive_float,
    positive_int,
)
from pyinfer.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.report.load import LoadReport
    from pyinfer.report.load_compare import LoadComparison

__all__ = ["add_parser", "cmd_load", "compare_load_reports", "is_load_report"]


def rate_list(text: str) -> list[float]:
    """Comma-separated request rates above 0, such as ``50,100,200`` (an argparse type)."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated request rates, got {part!r} in {text!r}"
            ) from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"each rate must be above 0, got {part}")
        values.append(value)
    return values


def add_parser(commands: Any) -> None:
    """Adds ``pyinfer load``."""
    parser = add_command(
        commands,
        "load",
        "serve a model under load: latency vs request rate, concurrency, capacity",
        "Serves MODEL the way users would load it. --qps: requests arrive on a schedule that "
        "does not wait for replies (open loop), and each request's latency counts from the "
        "time it was due, so a stall is charged to every request it delays. --concurrency: N "
        "requests kept in flight (closed loop). --find-capacity: the highest rate whose P99 "
        "stays within --p99-budget-ms. Ctrl-C prints and writes what was measured.",
        [
            "pyinfer load model.onnx --qps 50,100,200 --duration 10",
            "pyinfer load model.onnx --concurrency 1,2,4,8 --workers 2 --json load.json",
            "pyinfer load model.pt --qps 50 --workers 2 --instances processes",
            "pyinfer load model.onnx --qps 100 --max-batch 8 --max-queue-delay-ms 5",
            "pyinfer load model.onnx --find-capacity --p99-budget-ms 50 --plot load.png",
        ],
        handler=cmd_load,
    )
    parser.add_argument("model", help="the model file or folder")
    add_model_options(parser)
    group = parser.add_argument_group("load")
    group.add_argument(
        "--qps", type=rate_list, metavar="R[,R...]", help="offered request rate(s), e.g. 50,100"
    )
    group.add_argument(
        "--concurrency",
        type=int_list,
        metavar="N[,N...]",
        help="requests kept in flight, e.g. 1,2,4,8",
    )
    group.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        default=10.0,
        help="seconds per level (default 10)",
    )
    group.add_argument(
        "--arrival",
        choices=("poisson", "constant"),
        default="poisson",
        help="gaps between requests: poisson (random, as real users; default) or constant",
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        default=1,
        help="model instances serving (default 1)",
    )
    group.add_argument(
        "--instances",
        choices=("threads", "processes"),
        default="threads",
        help="each worker a thread of this process (default) or a process of its own that "
        "loads its own copy of the model (for models that hold Python's GIL)",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        metavar="S",
        help="drop requests not done this many seconds after due",
    )
    group.add_argument(
        "--seed", type=non_negative_int, metavar="N", default=0, help="schedule and input seed"
    )
    group.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="for dynamic models: a named dimension (sequence=128) or an input's shape "
        "(input_ids=1x128), batch 1: one item per request; repeatable",
    )
    add_input_options(parser)
    batching = parser.add_argument_group("dynamic batching (model with a dynamic batch)")
    batching.add_argument(
        "--max-batch",
        type=positive_int,
        metavar="B",
        default=1,
        help="serve up to B queued requests at once",
    )
    batching.add_argument(
        "--max-queue-delay-ms",
        type=positive_float,
        metavar="D",
        default=0.0,
        help="wait up to D ms for a batch to fill",
    )
    capacity = parser.add_argument_group("capacity")
    capacity.add_argument(
        "--find-capacity", action="store_true", help="search the highest rate within budget"
    )
    capacity.add_argument(
        "--p99-budget-ms", type=positive_float, metavar="MS", help="the P99 latency budget"
    )
    files = parser.add_argument_group("output files (written atomically)")
    files.add_argument("--json", metavar="FILE", help="write the load report as JSON")
    files.add_argument("--plot", metavar="FILE.png", help="write the latency-vs-load curve as PNG")


def _measure(args: argparse.Namespace, instances: list[Any]) -> LoadReport:
    """Runs the levels asked for, then the capacity search; one report of both."""
    from pyinfer.load import find_capacity, load_test

    arrays, values = given_from_args(args, instances[0])
    given = set(arrays) | {n for n, v in values.items() if isinstance(v, (int, float))}
    dims, batch = input_shapes(args.input_shape, instances[0], None, given)
    if batch not in (None, 1):
        raise InvalidArgumentError(
            f"--input-shape: a request is one item (batch 1), not {batch}; serve batches "
            "with --max-batch"
        )
    common = {
        "input_dims": dims, "inputs": arrays, "input_values": values,
        "duration_s": args.duration, "arrival": args.arrival, "timeout_s": args.timeout,
        "seed": args.seed, "max_batch": args.max_batch,
        "max_queue_delay_ms": args.max_queue_delay_ms, "instances": args.instances,
    }  # fmt: skip
    levels: LoadReport | None = None
    try:
        if args.qps or args.concurrency:
            levels = load_test(instances, qps=args.qps, concurrency=args.concurrency, **common)
        if not args.find_capacity:
            assert levels is not None
            return levels
        search = find_capacity(instances, p99_budget_ms=args.p99_budget_ms, **common)
    except KeyboardInterrupt as exc:
        partial: LoadReport | None = getattr(exc, "partial_result", None)
        if levels is not None and partial is not None:
            partial = dataclasses.replace(partial, levels=levels.levels + partial.levels)
        exc.partial_result = partial or levels  # type: ignore[attr-defined]
        raise
    if levels is None:
        return search
    return dataclasses.replace(search, levels=levels.levels + search.levels)


def _write(report: LoadReport, args: argparse.Namespace) -> None:
    print(report.to_text())
    if args.json:
        write_output(args.json, report.to_json() + "\n", "load report")
    trials = report.capacity.trials if report.capacity else ()
    if args.plot and any(lv.latency for lv in report.levels + trials):
        write_plot(report.plot, Path(args.plot), "load curve")


def cmd_load(args: argparse.Namespace) -> int:
    """Runs ``pyinfer load``; returns the exit status."""
    if not (args.qps or args.concurrency or args.find_capacity):
        raise InvalidArgumentError("give --qps, --concurrency or --find-capacity")
    if args.find_capacity and args.p99_budget_ms is None:
        raise InvalidArgumentError("--find-capacity needs --p99-budget-ms")
    check_outputs(args.json, plot=args.plot)
    if args.instances == "processes":  # each process loads its own copy from the file
        instances = [load_from_args(args)] * args.workers
    else:
        instances = [load_from_args(args) for _ in range(args.workers)]
    try:
        report = _measure(args, instances)
    except KeyboardInterrupt as exc:
        partial: LoadReport | None = getattr(exc, "partial_result", None)
        if partial is not None:
            _write(partial, args)
        sys.stderr.write(
            "pyinfer load: interrupted; "
            + ("the figures above are what was measured\n" if partial else "nothing measured\n")
        )
        return EXIT_INTERRUPTED
    _write(report, args)
    return EXIT_OK


def is_load_report(path: str) -> bool:
    """Whether ``path`` is a JSON load report (``pyinfer load --json``)."""
    from pyinfer.report.load import LOAD_KIND

    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("kind") == LOAD_KIND


def compare_load_reports(args: argparse.Namespace) -> int:
    """``pyinfer compare`` of load reports: each later one against the first, level by level.

    ``--json`` and ``--markdown`` write the comparison too (``--json -``: the JSON alone on
    stdout, the text on stderr); ``--fail-if-slower`` exits with status 4 when a shared level's
    P99 (one run each) or a capacity (judged on both searches' intervals) is slower beyond the
    limit, and with status 2 when a capacity change cannot be judged.

    Raises:
        InvalidArgumentError: If a baseline option is given, a report cannot be read, or a
            report shares nothing with the first.
    """
    from pyinfer.report.load import LoadReport, load_comparison
    from pyinfer.report.load_compare import compare_loads

    given = [
        option
        for option, value in (
            ("--baseline", args.baseline),
            ("--save-baseline", args.save_baseline),
        )
        if value is not None
    ]
    if given:
        raise InvalidArgumentError(
            f"{', '.join(given)}: baselines are profile reports; compare a load report with "
            "another one (pyinfer compare BEFORE.json AFTER.json)"
        )
    check_outputs(args.markdown, None if args.json == "-" else args.json)
    paths = list(args.reports)
    first, *later = [LoadReport.load(p) for p in paths]
    pairs, blocks = [], []
    for path, report in zip(paths[1:], later, strict=True):
        comparison = compare_loads(first, report)
        table = load_comparison(first, report) if comparison.levels else ""
        body = "\n".join(part for part in (table, comparison.to_text()) if part)
        pairs.append((path, comparison))
        blocks.append((f"{paths[0]} -> {path}", body))
    text = "".join(f"{title}\n{body}\n\n" for title, body in blocks)
    document = _comparison_json(paths[0], args.fail_if_slower, pairs)
    if args.json == "-":
        sys.stdout.write(document)
        sys.stderr.write(text)
    else:
        sys.stdout.write(text)
        if args.json:
            write_output(args.json, document, "JSON comparison")
    if args.markdown:
        md = ["## Load comparison"]
        for title, body in blocks:
            md += ["", f"### {title}", "", "```", body, "```"]
        write_output(args.markdown, "\n".join(md) + "\n", "Markdown comparison")
    if args.fail_if_slower is None:
        return EXIT_OK
    titled = [(title, c) for (title, _), (_, c) in zip(blocks, pairs, strict=True)]
    status, lines = _load_gate(args.fail_if_slower, titled)
    sys.stderr.writelines(line + "\n" for line in lines)
    return status


def _load_gate(threshold: float, pairs: list[tuple[str, LoadComparison]]) -> tuple[int, list[str]]:
    """The exit status of ``--fail-if-slower`` on load reports and its lines for stderr."""
    limit = f"{threshold * 100:g}%"
    slower = [
        f"pyinfer compare: {title}: slower beyond {limit}: {line}"
        for title, c in pairs
        for line in c.slower(threshold)
    ]
    if slower:
        return EXIT_REGRESSION, slower
    undecided = [
        f"pyinfer compare: error: --fail-if-slower {limit} cannot judge {title}: {line}"
        for title, c in pairs
        for line in c.undecided(threshold)
    ]
    return (EXIT_USAGE, undecided) if undecided else (EXIT_OK, [])


def _comparison_json(
    reference: str, threshold: float | None, pairs: list[tuple[str, LoadComparison]]
) -> str:
    from pyinfer.report import encode_json
    from pyinfer.report.load import LOAD_SCHEMA_VERSION

    document = {
        "kind": "pyinfer load comparison",
        "schema_version": LOAD_SCHEMA_VERSION,
        "reference": reference,
        "fail_if_slower": threshold,
        "comparisons": [
            {
                "before": reference,
                "after": after,
                "regression": None if threshold is None else bool(c.slower(threshold)),
                **c.to_dict(threshold),
            }
            for after, c in pairs
        ],
    }
    return json.dumps(encode_json(document), indent=2, allow_nan=False) + "\n"
