"""``pyinfer compare``: saved profile reports side by side and the verdict on each change.

Also the CI gate (``--fail-if-slower``) and named baselines (``--save-baseline`` /
``--baseline``, kept by :mod:`pyinfer.report.baselines`).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import (
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_USAGE,
    CommandError,
    check_outputs,
    write_output,
)
from pyinfer.cli.load import compare_load_reports, is_load_report
from pyinfer.cli.parser import (
    add_command,
    add_model_options,
    add_timing_options,
    percent_or_fraction,
    positive_int,
)
from pyinfer.errors import InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.report import Comparison, ProfileReport

__all__ = ["add_parser", "cmd_compare"]


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


def _load_baseline(name: str, folder: str) -> ProfileReport:
    """The baseline: a missing one is a usage error (listing those saved), a damaged one fails.

    A damaged baseline fails like a damaged report (exit status 1).
    """
    from pyinfer.report import baseline_path, load_baseline

    try:
        return load_baseline(name, folder)
    except InvalidArgumentError as exc:
        if not baseline_path(name, folder).is_file():
            raise
        raise CommandError(f"baseline {name!r} is not a readable profile report: {exc}") from exc


def measure_models(args: argparse.Namespace) -> list[ProfileReport]:
    """``--measure``: the model files given, profiled now with their runs alternating.

    Each model is loaded here (to check it and its inputs), then measured in ``--repeat``
    fresh processes, run 1 of every model, then run 2 of every model, ... so a drift of the
    machine hits them all alike (:func:`pyinfer.profiling.repeat.profile_interleaved`).
    """
    import dataclasses

    from pyinfer.cli.model_args import input_shapes, load_from_args
    from pyinfer.cli.profile import profiler_settings
    from pyinfer.profiling import repeat
    from pyinfer.report.environment import collect_environment

    models, dims, batch = [], {}, args.batch_size
    for path in args.reports:
        model = load_from_args(_with_model(args, path))
        model_dims, model_batch = input_shapes(args.input_shape, model, batch)
        dims.update(model_dims)
        batch = batch or model_batch
        models.append(model)
    settings = profiler_settings(args, dims)
    if settings.repetitions < 2:
        sys.stderr.write(
            "pyinfer compare: warning: --repeat 1 measures each model once: the verdict cannot "
            "tell a change from run-to-run noise (--repeat 4 or more judges it)\n"
        )
        settings = dataclasses.replace(settings, repetitions=1)
    try:

        def environment(overlaps: Any) -> Any:
            return collect_environment(concurrent_measurements=overlaps)

        return repeat.profile_interleaved(
            models, settings, batch_size=batch, memory=False, environment=environment
        )
    finally:
        for model in models:
            model.close()


def _with_model(args: argparse.Namespace, path: str) -> argparse.Namespace:
    """``args`` with ``model`` set, as the shared loading options read it."""
    copy = argparse.Namespace(**vars(args))
    copy.model = path
    return copy


def _check_usage(args: argparse.Namespace) -> None:
    """Refuses option combinations that cannot work, before reading anything."""
    from pyinfer.report import baseline_path

    for name in (args.baseline, args.save_baseline):
        if name is not None:
            baseline_path(name, args.baseline_dir)
    if args.save_baseline is not None and len(args.reports) != 1:
        raise InvalidArgumentError(
            f"--save-baseline keeps one report as the baseline: give one REPORT, got "
            f"{len(args.reports)}"
        )
    if args.measure and args.baseline is None and len(args.reports) < 2:
        raise InvalidArgumentError(
            "--measure compares model files: give two or more (the first is the reference), "
            "or one with --baseline NAME"
        )
    if args.fail_if_slower is not None and args.baseline is None and len(args.reports) < 2:
        raise InvalidArgumentError(
            "--fail-if-slower compares reports: give two or more (the first is the reference), "
            "or one with --baseline NAME"
        )
    check_outputs(args.markdown, None if args.json == "-" else args.json)


def _gate(threshold: float, pairs: list[tuple[str, Comparison]]) -> tuple[int, list[str]]:
    """The exit status of ``--fail-if-slower`` and its lines for stderr."""
    limit = f"{threshold * 100:g}%"
    slower = [
        f"pyinfer compare: {title}: slower beyond {limit}: {c.summary}"
        for title, c in pairs
        if c.regression(threshold)
    ]
    if slower:
        return EXIT_REGRESSION, slower
    undecided = [
        f"pyinfer compare: error: --fail-if-slower {limit} cannot judge {title}: {c.notes[0]}"
        for title, c in pairs
        if not c.decidable
    ]
    if undecided:
        return EXIT_USAGE, undecided
    return EXIT_OK, []


def _json(reference: str, threshold: float | None, pairs: list[tuple[str, str, Comparison]]) -> str:
    from pyinfer.report import SCHEMA_VERSION, encode_json

    document = {
        "schema_version": SCHEMA_VERSION,
        "reference": reference,
        "fail_if_slower": threshold,
        "comparisons": [
            {
                "before": before,
                "after": after,
                "decidable": c.decidable,
                "regression": None if threshold is None else c.regression(threshold),
                **c.to_dict(),
            }
            for before, after, c in pairs
        ],
    }
    return json.dumps(encode_json(document), indent=2, allow_nan=False) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    """The comparison table of saved reports and each one's change against the first.

    The first is the baseline with ``--baseline``; ``--fail-if-slower`` sets the exit status;
    ``--save-baseline`` keeps the report given unless the gate failed.
    """
    from pyinfer.report import compare, comparison_table, save_baseline
    from pyinfer.report.comparison import MIN_RUNS_FOR_INTERVAL, run_medians

    if not args.measure and len(args.reports) > 1 and all(map(is_load_report, args.reports)):
        return compare_load_reports(args)
    _check_usage(args)
    loaded = None if args.measure else [_load_report(p) for p in args.reports]
    reports = measure_models(args) if loaded is None else loaded
    names = list(args.reports)
    if args.baseline is not None:
        reports.insert(0, _load_baseline(args.baseline, args.baseline_dir))
        names.insert(0, f"baseline {args.baseline}")
    table = comparison_table(reports)
    pairs = [
        (names[0], name, compare(reports[0], report))
        for name, report in zip(names[1:], reports[1:], strict=True)
    ]
    blocks = [(f"{before} -> {after}", c.to_text()) for before, after, c in pairs]
    text = table + "".join(f"\n\n{title}\n{body}" for title, body in blocks) + "\n"
    if args.json == "-":
        sys.stdout.write(_json(names[0], args.fail_if_slower, pairs))
        sys.stderr.write(text)
    else:
        sys.stdout.write(text)
        if args.json:
            write_output(args.json, _json(names[0], args.fail_if_slower, pairs), "JSON comparison")
    if args.markdown:
        md = ["## Comparison", "", "```", table, "```"]
        for title, body in blocks:
            md += ["", f"### {title}", "", "```", body, "```"]
        write_output(args.markdown, "\n".join(md) + "\n", "Markdown comparison")
    status = EXIT_OK
    if args.fail_if_slower is not None:
        titled = [(title, c) for (title, _), (_, _, c) in zip(blocks, pairs, strict=True)]
        status, lines = _gate(args.fail_if_slower, titled)
        sys.stderr.writelines(line + "\n" for line in lines)
    if args.save_baseline is not None:
        if status != EXIT_OK:
            sys.stderr.write(
                f"pyinfer compare: baseline {args.save_baseline!r} not saved: the gate failed\n"
            )
        else:
            path = save_baseline(reports[-1], args.save_baseline, args.baseline_dir)
            sys.stderr.write(
                f"saved {args.reports[0]} as baseline {args.save_baseline!r} ({path})\n"
            )
            runs = len(run_medians(reports[-1]))
            if runs < MIN_RUNS_FOR_INTERVAL:
                sys.stderr.write(
                    f"pyinfer compare: warning: the baseline holds {runs} run"
                    f"{'' if runs == 1 else 's'}: --fail-if-slower needs "
                    f"{MIN_RUNS_FOR_INTERVAL} or more on each side to judge (profile with "
                    "--repeat N)\n"
                )
    return status


_DESCRIPTION = [
    "Loads reports saved by 'pyinfer profile --json' and prints the comparison table, then "
    "each later report against the first (or against a saved baseline): the change of each "
    "metric and a verdict decided on the run medians, never on per-call samples. With "
    "repetitions on both sides (profile --repeat N; N >= 4 per side gives a 95% interval) the "
    "verdict is the latency ratio with its 95% interval: slower or faster when the whole "
    "interval is beyond 2%. With one run on a side, run-to-run noise cannot be told apart and "
    "only the ratio is shown.",
    "The CI gate: --fail-if-slower 5% exits with status 4 when a later report is slower than "
    "the first beyond 5% with 95% confidence, and with status 2 when a comparison has too few "
    "runs to judge (it never passes silently). Baselines are profile reports kept as NAME.json "
    "in --baseline-dir (.pyinfer/baselines by default): --save-baseline NAME keeps the one "
    "REPORT given (not when the gate failed), --baseline NAME compares the REPORTs with it.",
    "Load reports (pyinfer load --json) are compared level by level; --fail-if-slower gates "
    "on the P99 of the levels both measured (one run each) and on capacity (docs/load.md).",
]


def add_parser(commands: Any) -> None:
    """Adds ``compare`` to the ``pyinfer`` subcommands."""
    compare = add_command(
        commands,
        "compare",
        "compare saved profile reports; a CI gate on slowdowns",
        "\n\n".join(textwrap.fill(paragraph, 88) for paragraph in _DESCRIPTION),
        [
            "pyinfer compare torch.json onnx.json",
            "pyinfer compare a.json b.json --markdown c.md --json c.json",
            "pyinfer compare main.json new.json --fail-if-slower 5%",
            "pyinfer compare main.json --save-baseline main",
            "pyinfer compare new.json --baseline main --fail-if-slower 5% --json -",
            "pyinfer compare --measure mobilenet.onnx mobilenet_int8.onnx --fail-if-slower 0%",
        ],
        handler=cmd_compare,
    )
    compare.add_argument(
        "reports",
        nargs="+",
        metavar="REPORT",
        help="JSON reports, 1 or more (with --measure: model files, 2 or more)",
    )
    compare.add_argument(
        "--measure",
        action="store_true",
        help="the REPORTs are model files: profile them now, their --repeat runs alternating "
        "(A B A B ...) so a drift of the machine hits them alike, then compare them; the "
        "measurement options below apply",
    )
    compare.add_argument("--batch-size", type=positive_int, help="--measure: items per call")
    compare.add_argument("--markdown", metavar="FILE", help="also write it as Markdown")
    compare.add_argument(
        "--json",
        metavar="FILE",
        help="also write the comparisons as JSON; '-' writes the JSON alone to stdout (the text "
        "then goes to stderr)",
    )
    compare.add_argument(
        "--fail-if-slower",
        metavar="PCT",
        type=percent_or_fraction,
        help="exit with status 4 when a later report is slower than the first beyond PCT ('5%%' "
        "or 0.05) with 95%% confidence; status 2 when too few runs to judge",
    )
    compare.add_argument(
        "--baseline",
        metavar="NAME",
        help="compare the REPORTs with the saved baseline NAME (the reference)",
    )
    compare.add_argument(
        "--save-baseline",
        metavar="NAME",
        help="keep the REPORT (one) as baseline NAME, replacing one of that name",
    )
    compare.add_argument(
        "--baseline-dir",
        metavar="DIR",
        default=str(Path(".pyinfer") / "baselines"),
        help="where baselines are kept (default: .pyinfer/baselines)",
    )
    add_model_options(compare)
    add_timing_options(compare)
