"""``pyinfer run --ray``: a dataset through a pool of Ray actors, on a local or running cluster.

The inputs are listed here and run by :func:`pyinfer.cluster.run_dataset`; the results are
printed as a local ``pyinfer run`` prints them (top-k or summaries, the failures), or, with
``--output DIR``, written there as shards with ``report.json``, then the throughput overall
and per actor.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyinfer.cli.common import EXIT_FAILED, EXIT_OK, first_and_last_line
from pyinfer.cli.model_args import load_options_from_args
from pyinfer.cli.parser import positive_int
from pyinfer.cli.run_results import MAX_FAILURES_SHOWN, RunEntry, print_results, read_labels
from pyinfer.errors import InvalidArgumentError

__all__ = ["LOCAL", "add_ray_options", "cmd_run_ray"]

#: What a bare ``--ray`` stands for: a local cluster started for the run.
LOCAL = "local"


def add_ray_options(run: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the actor pool's options."""
    group = run.add_argument_group("on a Ray cluster (pip install 'pyinfer-toolkit[ray]')")
    group.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        default=None,
        metavar="ADDRESS",
        help="run on Ray: bare, a local cluster on this machine; or the cluster at ADDRESS "
        "(auto, host:port, ray://host:port). Put it after the inputs (or write --ray=ADDRESS)",
    )
    group.add_argument(
        "--actors",
        type=positive_int,
        help="actors of the pool (default: one per GPU of the cluster, else one per CPU)",
    )
    group.add_argument(
        "--cpus-per-actor",
        type=float,
        help="CPUs each actor asks for (default: 90%% of the cluster's, shared)",
    )
    group.add_argument(
        "--gpus-per-actor", type=float, help="GPUs each actor asks for (default: 1 with GPUs)"
    )
    group.add_argument(
        "--text-column", metavar="NAME", help="the Parquet column of texts (default: text)"
    )
    group.add_argument(
        "--shard-format",
        choices=("parquet", "npz"),
        default="parquet",
        help="with --output DIR: the shards' format (parquet)",
    )


def cmd_run_ray(args: argparse.Namespace) -> int:
    """Runs ``args.inputs`` on Ray; prints the results and the throughput.

    Raises:
        InvalidArgumentError: An option of the pool is given without ``--ray``, or as for
            :func:`pyinfer.cluster.run_dataset`.
    """
    from pyinfer.cluster import run_dataset

    ray_only = {
        "--actors": args.actors,
        "--cpus-per-actor": args.cpus_per_actor,
        "--gpus-per-actor": args.gpus_per_actor,
        "--text-column": args.text_column,
    }
    if args.ray is None:
        given = [name for name, value in ray_only.items() if value is not None]
        if given:
            raise InvalidArgumentError(f"{given[0]} is an option of --ray; add --ray")
    labels = read_labels(args.labels)
    options: dict[str, Any] = load_options_from_args(args)
    if args.format:
        options["format"] = args.format
    if args.device:
        options["device"] = args.device
    result = run_dataset(
        args.model,
        args.inputs,
        load_options=options,
        text_column=args.text_column,
        cast_inputs=None if args.cast == "none" else args.cast,
        batch_size=args.batch_size,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        output=args.output,
        output_format=args.shard_format,
        address=None if args.ray == LOCAL else args.ray,
        progress=args.progress,
    )
    report = result.report
    if args.output is None:
        data = result.in_order()
        failed = {f.index: f.reason for f in data.failures}
        entries = [
            RunEntry(source, "item", outputs=outputs, error=failed.get(index))
            for index, (source, outputs) in enumerate(zip(data.sources, data.outputs, strict=True))
        ]
        first = next((o for o in data.outputs if o is not None), None)
        print_results(entries, list(first) if first else [], args, labels)
    else:
        for failure in report.failures[:MAX_FAILURES_SHOWN]:
            sys.stderr.write(f"failed: {failure.source}: {first_and_last_line(failure.reason)}\n")
        if len(report.failures) > MAX_FAILURES_SHOWN:
            sys.stderr.write(f"... and {len(report.failures) - MAX_FAILURES_SHOWN} more failed\n")
        sys.stderr.write(
            f"outputs written to {report.output}: {len(report.shards)} shard(s) and report.json\n"
        )
    sys.stderr.write(report.to_text() + "\n")
    return EXIT_FAILED if report.failures or not report.succeeded else EXIT_OK
