"""Does the profiler change what it measures? Its median latency against the best hand-written loop.

Run: python benchmarks/bench_profiler_overhead.py [--quick] [--rounds R] [--calls N]

For ResNet50 and MobileNetV2 (torchvision, random weights) at batch 1 on the CPU, with torch
eager, TorchScript and ONNX Runtime, two ways of timing the same `model.run_native(native)` on
the same pre-made inputs alternate in one process, `rounds` times (the order swapped every
round):

- hand: the best loop a user can write: `t0 = perf_counter_ns(); run(native); t1 = ...` with
  every lookup hoisted, samples into a preallocated list;
- profiler: `PerformanceProfiler(model, settings).measure_latency()` with the same number of
  timed calls (min = max iterations), its own warm-up and stopping-rule chunks included.

Each round gives one median per method and their ratio; the table shows the median over rounds
of each and the median of the per-round ratios (paired, so that a slow spell of a shared machine,
which hits both methods of a round, cancels). Target (issue 5): within 2%, i.e. the profiler adds
nothing a user could see.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyinfer
from pyinfer.export import export_onnx, export_torchscript
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings


def hand_loop(model: Any, native: Any, calls: int) -> float:
    """Median of `calls` perf_counter_ns samples around run_native, in milliseconds."""
    clock = time.perf_counter_ns
    run = model.run_native
    samples = [0] * calls
    for i in range(calls):
        t0 = clock()
        run(native)
        samples[i] = clock() - t0
    return statistics.median(samples) / 1e6


def profiler_median(model: Any, calls: int, warmup: int) -> float:
    settings = ProfilerSettings(
        warmup_iterations=warmup,
        warmup_until_settled=False,
        min_iterations=calls,
        max_iterations=calls,
        min_time_s=0.0,
        max_time_s=3600.0,
    )
    return PerformanceProfiler(model, settings).measure_latency(1).stats.median_ms


def load_variants(name: str, folder: Path, quick: bool) -> dict[str, Any]:
    import torch
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None).eval()
    shape = (None, 3, 224, 224)
    example = torch.randn(1, 3, 224, 224)
    variants = {"torch eager": pyinfer.PyTorchModelLoader(input_shapes=shape).from_module(net)}
    script = export_torchscript(net, folder / f"{name}.pt", example)
    variants["TorchScript"] = pyinfer.load_model(script, input_shapes=shape)
    onnx = export_onnx(net, folder / f"{name}.onnx", example, dynamo=False)[0]
    variants["ONNX Runtime"] = pyinfer.load_model(onnx)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (~2 min)")
    parser.add_argument("--rounds", type=int, default=None, help="A/B rounds per model")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per method per round")
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    calls = args.calls or (10 if args.quick else 15)
    warmup = 3
    logging.basicConfig(level=logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for backend, model in load_variants(name, Path(tmp), args.quick).items():
                native = model.to_native(model.example_inputs(1))
                for _ in range(warmup * 2):
                    model.run_native(native)
                hand, prof = [], []
                for r in range(rounds):
                    order = ("hand", "profiler") if r % 2 == 0 else ("profiler", "hand")
                    for method in order:
                        if method == "hand":
                            for _ in range(warmup):
                                model.run_native(native)
                            hand.append(hand_loop(model, native, calls))
                        else:
                            prof.append(profiler_median(model, calls, warmup))
                h, p = statistics.median(hand), statistics.median(prof)
                ratio = statistics.median(b / a for a, b in zip(hand, prof, strict=True))
                rows.append((name, backend, h, p, ratio))
                print(
                    f"  {name:<13} {backend:<13} hand {h:8.3f} ms  profiler {p:8.3f} ms", flush=True
                )

    print()
    print(f"{rounds} alternating rounds x {calls} timed calls per method, batch 1, CPU")
    print(f"{'model':<14}{'backend':<14}{'hand (ms)':>11}{'profiler (ms)':>15}{'ratio':>8}")
    print(f"{'':<14}{'':<14}{'':>11}{'':>15}{'(paired)':>8}")
    for name, backend, h, p, ratio in rows:
        print(f"{name:<14}{backend:<14}{h:>11.3f}{p:>15.3f}{ratio:>8.3f}")
    worst = max(abs(r[4] - 1.0) for r in rows)
    print(f"largest deviation from 1: {worst * 100:.1f}% (target: within 2%)")


if __name__ == "__main__":
    main()
