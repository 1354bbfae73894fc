"""The profiler on a real GPU: ResNet50 at batch 1 and its batch curve to 256, three ways.

Run (on a machine with an NVIDIA GPU and torch with CUDA; no network): python
scripts/gpu_profiler_check.py [--quick]

- torch eager, timed with CUDA events on torch's current stream;
- torch with CUDA graphs (capture after warm-up, time the replay);
- ONNX Runtime with the CUDA provider, if it is installed (events on its user_compute_stream);
- event vs host timing of the same torch model at batch 1 (host: synchronise after each call);
- the full report (memory pass, throughput with NVML utilisation) of torch eager at batch 1.

Random weights (torchvision ``weights=None``): latency does not depend on the values.
Exits non-zero if a step fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyinfer
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def line(model: Any, settings: ProfilerSettings, label: str) -> None:
    lat = PerformanceProfiler(model, settings).measure_latency(1)
    s = lat.stats
    host = "" if lat.host_mean_ms is None else f", host end-to-end {lat.host_mean_ms:.3f} ms"
    print(
        f"  {label:<28} median {s.median_ms:.3f} ms, mean {s.mean_ms:.3f}, p99 {s.p99_ms:.3f}, "
        f"std {s.std_percent:.1f}%{host}; {s.count} samples, stable={lat.stable}"
    )
    print(f"  {'':<28} timing: {lat.timing_method}")


def curve(model: Any, settings: ProfilerSettings, label: str) -> None:
    start = time.perf_counter()
    result = PerformanceProfiler(model, settings).sweep_batch_sizes(BATCHES, latency_budget_ms=10)
    print(f"-- {label}: batch curve ({time.perf_counter() - start:.0f} s)")
    print(result.to_table())
    print(f"knee: batch {result.knee_batch_size}; best under 10 ms P95: {result.best_reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch
    import torchvision

    if not torch.cuda.is_available():
        print("torch has no CUDA here; nothing to check")
        return 1
    settings = ProfilerSettings(
        warmup_iterations=20,
        min_iterations=100 if not args.quick else 50,
        min_time_s=0.5 if not args.quick else 0.2,
        max_time_s=5.0 if not args.quick else 2.0,
        throughput_time_s=1.0,
    )
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    shape = (None, 3, 224, 224)
    eager = pyinfer.PyTorchModelLoader(input_shapes=shape).from_module(net, device="cuda")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")

    print("-- ResNet50 batch 1")
    line(eager, settings, "torch eager, CUDA events")
    line(eager, replace(settings, timing="host"), "torch eager, host + sync")
    line(eager, replace(settings, cuda_graphs=True), "torch CUDA graphs, events")

    ort_model = None
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            from pyinfer.export import export_onnx

            folder = Path(tempfile.mkdtemp())
            cpu_net = torchvision.models.resnet50(weights=None).eval()  # net stays on the GPU
            path = export_onnx(cpu_net, folder / "resnet50.onnx", torch.randn(1, 3, 224, 224))[0]
            ort_model = pyinfer.load_model(path, device="cuda")
            line(ort_model, settings, "ONNX Runtime CUDA, events")
        else:
            print("  ONNX Runtime has no CUDA provider here: skipped")
    except ImportError:
        print("  onnxruntime is not installed: skipped")

    print("-- full report, torch eager, batch 1")
    report = PerformanceProfiler(eager, settings).profile(batch_size=1)
    print(report.to_text())

    sweep = replace(settings, min_iterations=30, min_time_s=0.2, max_time_s=2.0)
    curve(eager, sweep, "torch eager")
    curve(eager, replace(sweep, cuda_graphs=True), "torch CUDA graphs")
    if ort_model is not None:
        curve(ort_model, sweep, "ONNX Runtime CUDA")
    return 0


if __name__ == "__main__":
    sys.exit(main())
