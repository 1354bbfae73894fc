"""Wall time of ``pyinfer bench --quick``: entries in worker processes against one process.

Run: python benchmarks/bench_suite_walltime.py --reference DIR [--rounds N] [--variant ARGS]...
         [--json FILE]

``DIR`` is the source folder (the one holding ``pyinfer/``) of the pyinfer to compare against:
the one that measured every suite entry in its own process (a worktree of the main branch
before issue 15, with its native core built or copied in: ``git worktree add --detach
../main-ref main`` and ``cp src/pyinfer/_core*.so ../main-ref/src/pyinfer/``). Each round
runs ``pyinfer bench --quick --device cpu`` once with the reference and once per variant of
this checkout (default: one variant, the plain command, so ``--quick``'s own repetitions;
``--variant "--repeat 2"`` adds one), in an order that rotates from round to round, so a drift
of the shared machine hits all of them alike. It prints each run's wall time, the medians and
each variant's median over the reference's. The target: at most 1.5x.

Every run exports its models anew (no ``--work-dir``), as a first run does. The machine is
shared and noisy: that is the condition the figures come from, so nothing here waits for
quiet; read the ratio of medians, not one pair.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
COMMAND = ("bench", "--quick", "--device", "cpu")


def run(source: Path, extra: list[str]) -> tuple[float, int]:
    """Wall seconds and exit status of one ``pyinfer bench --quick`` with ``source``'s pyinfer."""
    env = dict(os.environ, PYTHONPATH=str(source))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfer", *COMMAND, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        sys.stderr.write(proc.stderr[-2000:])
    return wall, proc.returncode


def main() -> int:
    """Runs the rounds and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--reference", type=Path, required=True, help="today's source folder")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="extra arguments of one variant of this checkout (repeatable; default: none)",
    )
    parser.add_argument("--json", type=Path, help="write the wall times here")
    args = parser.parse_args()
    variants = [""] if args.variant is None else args.variant
    names = ["reference", *(f"new {v}".strip() for v in variants)]
    sources = [args.reference.resolve(), *([HERE] * len(variants))]
    extras = [[], *(shlex.split(v) for v in variants)]
    walls: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = [(i + r) % len(names) for i in range(len(names))]
        for i in order:
            wall, code = run(sources[i], extras[i])
            walls[names[i]].append(wall)
            print(f"round {r + 1} {names[i]}: {wall:.1f} s (exit {code})", flush=True)
    reference = statistics.median(walls["reference"])
    print(f"reference median: {reference:.1f} s")
    for name in names[1:]:
        median = statistics.median(walls[name])
        print(f"{name} median: {median:.1f} s, {median / reference:.2f}x the reference")
    if args.json:
        args.json.write_text(json.dumps(walls, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
