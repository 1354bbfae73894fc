"""SIGKILL a process that rewrites a profile report in a loop, and count what each kill left.

The loop of ``tests/test_interrupts.py::test_sigkill_while_writing_never_leaves_a_truncated_report``
on its own, with counts: how many kills left a complete report, how many a missing or damaged
one, and how many landed inside a write (a temporary file left beside the report). ``--plain``
writes with ``Path.write_bytes`` instead of ``pyinfer.report.write_atomic``, to see what the
atomic write prevents.

Run from the repository root: ``PYTHONPATH=src python scripts/kill_while_writing.py --kills 20``.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_report import make_report

from pyinfer.errors import InvalidArgumentError
from pyinfer.report import ProfileReport

WRITER = """
import sys
from pathlib import Path
from pyinfer.report import write_atomic

data = Path(sys.argv[1]).read_bytes()
write = (lambda p, d: Path(p).write_bytes(d)) if sys.argv[3] == "plain" else write_atomic
write(sys.argv[2], data)
print("ready", flush=True)
while True:
    write(sys.argv[2], data)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--samples", type=int, default=50_000, help="raw samples in the report")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plain", action="store_true", help="write with Path.write_bytes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        samples = np.random.default_rng(0).lognormal(np.log(5e6), 0.1, args.samples)
        template = make_report(samples_ns=samples).save(folder / "template.json")
        out = folder / "out"
        out.mkdir()
        target = out / "report.json"
        rng = random.Random(args.seed)
        complete = damaged = 0
        for _ in range(args.kills):
            mode = "plain" if args.plain else "atomic"
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(template), str(target), mode],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None
            writer.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.1))
            writer.kill()
            writer.wait()
            writer.stdout.close()
            try:
                ProfileReport.load(target)
                complete += 1
            except InvalidArgumentError:
                damaged += 1
        inside = len([p for p in out.iterdir() if p.name.endswith(".tmp")])
        print(
            f"report {template.stat().st_size} bytes, {args.kills} kills "
            f"({'Path.write_bytes' if args.plain else 'write_atomic'}): {complete} complete, "
            f"{damaged} missing or damaged, {inside} inside a write (a temporary file left)"
        )


if __name__ == "__main__":
    main()
