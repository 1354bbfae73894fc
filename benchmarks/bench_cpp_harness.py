"""Per-call figures of pyinfer's C++ harness against a steady_clock loop and google-benchmark.

Run: python benchmarks/bench_cpp_harness.py [--rounds N] [--json FILE]

Builds ``benchmarks/cpp/overhead.cpp`` four times at -O2 (g++ -std=c++17): pyinfer's
``run_benchmark`` with one call per sample, the same with the batch the harness picks, a loop
reading ``std::chrono::steady_clock`` around every call, and google-benchmark (Debian's
``libbenchmark-dev``; the variant is left out when its header is missing). Each prints the median
nanoseconds per call of a no-op and of a 64x64 float matrix multiply. The four run one after
another in every round, the order rotating from round to round, so a drift of the shared machine
hits all alike; the table gives the median over the rounds: each timer's median per call and,
for the no-op, the wall time per call of its whole timing loop (what the timing itself costs);
and an increment the compiler must keep (``++k`` then ``do_not_optimize(k)``), the smallest
body that is not deleted, where batch mode's own cost shows.
google-benchmark reports the loop's wall time over its iterations (its ``real_time``) for both.

The targets: pyinfer's per-call overhead in batch mode at most google-benchmark's per-iteration
figure, and in per-call mode at most half the steady_clock loop's (wall time per no-op call).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "benchmarks" / "cpp" / "overhead.cpp"
INCLUDE = ROOT / "src" / "cpp" / "include"
VARIANTS = {
    "PYINFER_CALL": "pyinfer, one call per sample",
    "PYINFER_BATCH": "pyinfer, batch mode",
    "STEADY": "steady_clock loop",
    "GBENCH": "google-benchmark",
}


def build(variant: str, folder: Path) -> Path:
    """Compiles one variant; its executable."""
    out = folder / variant.lower()
    command = ["g++", "-std=c++17", "-O2", f"-D{variant}", f"-I{INCLUDE}", str(SOURCE), "-o"]
    command += [str(out), "-pthread"] + (["-lbenchmark"] if variant == "GBENCH" else [])
    subprocess.run(command, check=True, timeout=300)
    return out


def run(variant: str, program: Path) -> dict[str, float]:
    """The variant's median nanoseconds per call: ``{"noop": ..., "matmul": ...}``."""
    if variant == "GBENCH":
        done = subprocess.run(
            [str(program), "--benchmark_format=json"],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        rows = json.loads(done.stdout)["benchmarks"]
        got = {r["name"].split("/")[0]: float(r["real_time"]) for r in rows}
        # Its per-iteration figure is the loop's wall time over the iterations.
        return {
            "noop": got["noop"], "noop_wall": got["noop"], "tick": got["tick"], "matmul": got["mm"]
        }  # fmt: skip
    done = subprocess.run([str(program)], check=True, capture_output=True, text=True, timeout=300)
    return {line.split()[0]: float(line.split()[1]) for line in done.stdout.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    variants = [v for v in VARIANTS if v != "GBENCH" or Path("/usr/include/benchmark").is_dir()]
    if shutil.which("g++") is None:
        raise SystemExit("needs g++")
    bodies = ("noop", "noop_wall", "tick", "matmul")
    figures: dict[str, dict[str, list[float]]] = {v: {b: [] for b in bodies} for v in variants}
    with tempfile.TemporaryDirectory() as temporary:
        programs = {v: build(v, Path(temporary)) for v in variants}
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for v in order:
                for body, ns in run(v, programs[v]).items():
                    figures[v][body].append(ns)
            print(f"round {r + 1} done")
    medians = {v: {b: statistics.median(x) for b, x in f.items()} for v, f in figures.items()}
    header = f"{'variant':<30} {'no-op median':>13} {'no-op wall/call':>16} {'increment':>10}"
    print(f"\n{header} {'64x64 matmul median':>20}")
    for v in variants:
        m = medians[v]
        row = f"{VARIANTS[v]:<30} {m['noop']:>13.4g} {m['noop_wall']:>16.4g} {m['tick']:>10.4g}"
        print(f"{row} {m['matmul']:>20.6g}")
    call, steady = medians["PYINFER_CALL"]["noop_wall"], medians["STEADY"]["noop_wall"]
    print(f"\nper-call mode, wall time per no-op call: pyinfer {call:.3g} ns, steady_clock loop "
          f"{steady:.3g} ns (target: at most half, {steady / 2:.3g} ns)")  # fmt: skip
    if "GBENCH" in medians:
        for body in ("noop", "tick"):
            batch, gbench = medians["PYINFER_BATCH"][body], medians["GBENCH"][body]
            print(f"batch mode, {body}: pyinfer {batch:.3g} ns, google-benchmark {gbench:.3g} ns "
                  "(target: at most google-benchmark's)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rounds": figures, "medians": medians}, indent=2) + "\n")


if __name__ == "__main__":
    main()
