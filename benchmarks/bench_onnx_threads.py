"""ONNX Runtime intra-op threads: pyinfer's default (physical cores) against ORT's own (0).

Run: python benchmarks/bench_onnx_threads.py [--rounds R] [--iterations N] [--warmup W]

ResNet50 (torchvision, weights=None: random weights, no download) is exported once with the
legacy exporter (dynamo=False, dynamic batch) to a temporary folder and loaded twice through
pyinfer.load_model: with the default intra_op_threads (physical cores) and with
intra_op_threads=0 (ONNX Runtime picks). Each round times N calls of each session at batch 1,
alternating which goes first, after W warm-up calls; the medians of the per-round medians are
printed with their ratio. Issue 3 measured 47 ms (physical cores) against 55 ms (ORT's default)
on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import ensure_triton_safe, import_torch, physical_cores
from pyinfer.export import export_onnx
from pyinfer.loading import load_model


def export_resnet50(folder: Path) -> Path:
    ensure_triton_safe()  # torchvision imports triton
    torch = import_torch()
    import torchvision

    net = torchvision.models.resnet50(weights=None).eval()
    path = folder / "resnet50.onnx"
    # The TorchScript-based exporter: it needs no onnxscript; pyinfer's export keeps the batch
    # dynamic and silences the exporter's deprecation warning.
    example = (torch.randn(1, 3, 224, 224),)
    export_onnx(net, path, example, input_names=["image"], output_names=["logits"], dynamo=False)
    return path


def median_ms(model: Any, feed: dict[str, np.ndarray], iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        model(feed)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = export_resnet50(Path(tmp))
        models = {
            f"physical cores ({physical_cores()})": load_model(path),
            "ORT default (0)": load_model(path, intra_op_threads=0),
        }
        feed = next(iter(models.values())).example_inputs(batch_size=1)
        for model in models.values():
            for _ in range(args.warmup):
                model(feed)
        rounds: dict[str, list[float]] = {label: [] for label in models}
        order = list(models)
        for r in range(args.rounds):
            for label in order if r % 2 == 0 else reversed(order):
                rounds[label].append(median_ms(models[label], feed, args.iterations))

    print(f"ResNet50, batch 1, {args.rounds} rounds x {args.iterations} calls (median of medians)")
    results = {label: statistics.median(values) for label, values in rounds.items()}
    for label, value in results.items():
        spread = ", ".join(f"{v:.1f}" for v in rounds[label])
        print(f"  intra_op_threads = {label:<20} {value:7.2f} ms   rounds: {spread}")
    cores, default = results.values()
    print(f"  ratio physical cores / ORT default: {cores / default:.3f}")


if __name__ == "__main__":
    main()
