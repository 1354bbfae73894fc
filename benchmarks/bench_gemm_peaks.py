"""Each library's large fp32 GEMM, measured apart, against the peak pyinfer calibrates.

Run: PYTHONPATH=src python benchmarks/bench_gemm_peaks.py [--size N] [--rounds N]

numpy (its BLAS), torch (oneDNN/MKL) and ONNX Runtime (MLAS) multiply two N x N fp32 matrices;
each round times every library in turn (the order rotating, so a drift of a shared machine hits
all alike) and keeps its best call. Then :func:`pyinfer.analysis.peaks.calibrate` runs as
``pyinfer ops`` runs it. The table gives each library's best GFLOP/s over the rounds and the
calibrated peak: the target is a calibrated peak at least the best single library's (within the
run-to-run spread the table shows, since the two are measured at different moments).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pyinfer.analysis.peaks import calibrate, onnx_matmul_session


def _libraries(n: int) -> dict[str, Callable[[], object]]:
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    session = onnx_matmul_session(n)
    return {
        "numpy": lambda: a @ b,
        "torch": lambda: torch.mm(ta, tb),
        "onnxruntime": lambda: session.run(None, {"a": a, "b": b}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls = _libraries(args.size)
    flops = 2.0 * args.size**3
    best = dict.fromkeys(calls, 0.0)
    names = list(calls)
    for call in calls.values():
        call()  # warm-up
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            calls[name]()
            best[name] = max(best[name], flops / (time.perf_counter() - start) / 1e9)
    peaks = calibrate(gemm_size=args.size)
    print(f"| library | best GFLOP/s ({args.size}x{args.size} fp32, {args.rounds} rounds) |")
    print("|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.1f} |")
    fp32 = [name for name in peaks.gemm_gflops if name in calls]  # bf16 and GPU rates apart
    print(f"| **calibrated fp32 peak** (best of {', '.join(fp32)}) | "
          f"**{peaks.fp32_gflops:.1f}** |")  # fmt: skip
    print(f"\nmemory bandwidth (triad): {peaks.bandwidth_gbs:.1f} GB/s")
    best_single = max(best.values())
    print(f"calibrated / best single library: {peaks.fp32_gflops / best_single:.2f}")


if __name__ == "__main__":
    main()
