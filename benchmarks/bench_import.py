"""How long `import pyinfer` takes, against a bare interpreter and `import numpy`.

Run: python benchmarks/bench_import.py [--runs N]
Each command runs N times in fresh interpreters, interleaved; the median wall time is reported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import pyinfer": "import pyinfer",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, code in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<18}{'median ms':>10}{'over bare python ms':>21}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<18}{median * 1e3:>10.1f}{(median - base) * 1e3:>21.1f}")


if __name__ == "__main__":
    main()
