"""Compile time of pyinfer's C++ headers, against the standard headers they need.

Compiles (``-std=c++17 -O2 -c``) side by side, alternating round by round:

- ``std``: a file including only the standard and system headers that pyinfer's headers include;
- ``pyinfer.hpp``: a file including the umbrella header and nothing else;
- ``summarize``: a file including the umbrella header and calling ``pyinfer::summarize()`` and
  ``LatencyRecorder::summary()``;

each header-only (the default: a plain ``-I``) and with ``PYINFER_SEPARATE_COMPILATION`` (the
``pyinfer::pyinfer`` CMake target: ``summarize()`` and the harness's reporting compiled once into
the pyinfer library). Each mode is compared with its own ``std`` file, since the two modes include
different standard headers. Prints the median wall and CPU (user + system) seconds of every file,
the preprocessed line counts, the one-time cost of compiling the library, and the figures against
the targets: including pyinfer.hpp adds at most 0.3 s over the standard headers, and a file that
calls summary() compiles in at most 1.5 s. On a busy machine the CPU figures are the steadier.

Run: python benchmarks/bench_cpp_compile.py [--rounds R] [--cxx g++] [--flags "-O2"]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "src" / "cpp" / "include"
LIBRARY_SOURCE = ROOT / "src" / "cpp" / "lib" / "pyinfer.cpp"

INCLUDE_TARGET_S = 0.3
SUMMARY_TARGET_S = 1.5

UMBRELLA = '#include "pyinfer/pyinfer.hpp"\nint main() { return 0; }\n'
SUMMARIZE = r"""#include "pyinfer/pyinfer.hpp"

#include <vector>

int main() {
  std::vector<double> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 97);
  const pyinfer::Summary s = pyinfer::summarize(v.data(), v.size(), {50.0, 99.0});
  pyinfer::LatencyRecorder recorder;
  recorder.record_many(v.data(), v.size());
  const pyinfer::Summary r = recorder.summary({50.0, 99.0});
  return s.percentile(50.0) == r.percentile(50.0) ? 0 : 1;
}
"""


def standard_headers(cxx: str, flags: list[str], source: Path) -> str:
    """A file including the system headers that pyinfer's own headers include (from ``-H``)."""
    trace = subprocess.run(
        [cxx, *flags, f"-I{INCLUDE}", "-H", "-fsyntax-only", str(source)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    stack: list[str] = []
    seen: dict[str, None] = {}
    for line in trace.splitlines():
        dots, _, path = line.partition(" ")
        if not dots or set(dots) != {"."}:
            continue
        stack = stack[: len(dots) - 1]
        parent = stack[-1] if stack else str(source)
        stack.append(path)
        if "/pyinfer/" in parent and "/pyinfer/" not in path:
            seen.setdefault(path, None)
    return "".join(f'#include "{p}"\n' for p in seen) + "int main() { return 0; }\n"


def compile_once(cxx: str, flags: list[str], source: Path) -> tuple[float, float]:
    """Compiles `source` to an object file; returns (wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [cxx, *flags, f"-I{INCLUDE}", "-c", str(source), "-o", os.devnull],
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def preprocessed_lines(cxx: str, flags: list[str], source: Path) -> int:
    """Lines of `source` after the preprocessor."""
    out = subprocess.run(
        [cxx, *flags, f"-I{INCLUDE}", "-E", str(source)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.count("\n")


def main() -> None:
    """Measures and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    parser.add_argument("--flags", default="-O2", help="extra compiler flags (default -O2)")
    args = parser.parse_args()
    base = ["-std=c++17", *shlex.split(args.flags)]
    modes = {"header-only": base, "separate": [*base, "-DPYINFER_SEPARATE_COMPILATION"]}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "umbrella.cpp").write_text(UMBRELLA)
        (work / "summarize.cpp").write_text(SUMMARIZE)
        files: list[tuple[str, str, list[str], Path]] = []
        for mode, flags in modes.items():
            std = work / f"std_{mode}.cpp"
            std.write_text(standard_headers(args.cxx, flags, work / "umbrella.cpp"))
            files += [
                (mode, "std", flags, std),
                (mode, "pyinfer.hpp", flags, work / "umbrella.cpp"),
                (mode, "summarize", flags, work / "summarize.cpp"),
            ]
        wall: dict[tuple[str, str], list[float]] = {(m, k): [] for m, k, _, _ in files}
        cpu: dict[tuple[str, str], list[float]] = {(m, k): [] for m, k, _, _ in files}
        library: list[float] = []
        for _ in range(args.rounds):
            for mode, kind, flags, source in files:
                w, c = compile_once(args.cxx, flags, source)
                wall[mode, kind].append(w)
                cpu[mode, kind].append(c)
            library.append(compile_once(args.cxx, [*base, "-fPIC"], LIBRARY_SOURCE)[1])
        lines = {(m, k): preprocessed_lines(args.cxx, f, s) for m, k, f, s in files}

    version = subprocess.run(
        [args.cxx, "--version"], check=True, capture_output=True, text=True
    ).stdout
    print(
        f"{version.splitlines()[0]}, {' '.join(base)} -c; {args.rounds} alternating rounds, medians"
    )
    print()
    print("| mode | file | wall s | CPU s | over std (CPU) | preprocessed lines |")
    print("|---|---|---|---|---|---|")
    med = {key: (statistics.median(wall[key]), statistics.median(cpu[key])) for key in wall}
    for mode, kind, _, _ in files:
        w, c = med[mode, kind]
        over = "" if kind == "std" else f"{c - med[mode, 'std'][1]:+.2f}"
        print(f"| {mode} | {kind} | {w:.2f} | {c:.2f} | {over} | {lines[mode, kind]:,} |")
    print()
    print(f"the pyinfer library itself (once, -fPIC): {statistics.median(library):.2f} s CPU")
    for mode in modes:
        include_over = med[mode, "pyinfer.hpp"][1] - med[mode, "std"][1]
        summary_s = med[mode, "summarize"][1]
        print(
            f"{mode}: pyinfer.hpp adds {include_over:.2f} s "
            f"({'meets' if include_over <= INCLUDE_TARGET_S else 'misses'} "
            f"<= {INCLUDE_TARGET_S} s); a file calling summary() {summary_s:.2f} s "
            f"({'meets' if summary_s <= SUMMARY_TARGET_S else 'misses'} <= {SUMMARY_TARGET_S} s)"
        )


if __name__ == "__main__":
    main()
