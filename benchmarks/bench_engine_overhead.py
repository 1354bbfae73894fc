"""Engine overhead: InferenceEngine.predict_batch against calling the model directly.

Run: python benchmarks/bench_engine_overhead.py [--quick] [--rounds R] [--iterations N]

Same model, same stacked batch, both paths in one process. Each round times N calls of each
path back to back (which goes first alternates between rounds); the medians over rounds are
printed, and the ratio engine / direct as the median of the per-round ratios (paired, so a
drifting machine load cancels). Models:

* a small MLP in torch (256 -> 512 -> 512 -> 10, batch 32), where per-call overhead would show;
* the same MLP exported to ONNX (ONNX Runtime CPU);
* ResNet50 (torchvision, weights=None: random weights, no download) exported to ONNX, batch 4
  (skipped with --quick).

"direct" is ``model(feed)``: the Model's own numpy path, which checks inputs too. The engine
adds its per-batch bookkeeping (per-item shape checks from the first row, chunking, output
splitting). Target: under 2% overhead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import ensure_triton_safe, import_torch
from pyinfer.engine import InferenceEngine
from pyinfer.export import export_onnx
from pyinfer.loading import PyTorchModelLoader, load_model


def median_ms(fn: Callable[[], Any], iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def compare(label: str, model: Any, batch: np.ndarray, rounds: int, iterations: int) -> float:
    engine = InferenceEngine(model, batch_size=len(batch), progress=False)
    feed = {model.input_names()[0]: batch}
    paths: dict[str, Callable[[], Any]] = {
        "direct": lambda: model(feed),
        "engine": lambda: engine.predict_batch(batch),
    }
    direct_out = next(iter(model(feed).values()))
    engine_out = next(iter(engine.predict_batch(batch).values()))
    np.testing.assert_array_equal(direct_out, engine_out)  # the same work, the same answer
    for fn in paths.values():
        for _ in range(max(3, iterations // 5)):
            fn()
    per_round: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):
            per_round[name].append(median_ms(paths[name], iterations))
    direct = statistics.median(per_round["direct"])
    eng = statistics.median(per_round["engine"])
    # Paired within each round (the two paths ran back to back), so a drifting machine load
    # cancels out; the median over rounds is the figure.
    ratio = statistics.median(
        e / d for e, d in zip(per_round["engine"], per_round["direct"], strict=True)
    )
    print(
        f"{label:<30} {direct:10.3f} {eng:10.3f} {ratio:8.3f} {100 * (ratio - 1):+8.2f}%"
        f"   (engine - direct = {1e3 * (eng - direct):+.1f} us)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models only, fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 9)
    iterations = args.iterations or (50 if args.quick else 200)

    ensure_triton_safe()
    torch = import_torch()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(256, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )
    x = np.random.default_rng(0).standard_normal((32, 256)).astype(np.float32)
    print(f"{rounds} rounds x {iterations} calls per path, median of per-round medians")
    print(f"{'model':<30} {'direct ms':>10} {'engine ms':>10} {'ratio':>8} {'overhead':>9}")
    torch_model = PyTorchModelLoader(input_shapes={"input": (None, 256)}).from_module(mlp)
    compare("MLP torch, batch 32", torch_model, x, rounds, iterations)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.onnx"
        export_onnx(mlp, path, torch.from_numpy(x[:1]), input_names=["x"], dynamo=False)
        compare("MLP onnxruntime, batch 32", load_model(path), x, rounds, iterations)
        if not args.quick:
            import torchvision

            net = torchvision.models.resnet50(weights=None)
            rpath = Path(tmp) / "resnet50.onnx"
            export_onnx(net, rpath, torch.randn(1, 3, 224, 224), input_names=["x"], dynamo=False)
            images = np.random.default_rng(1).standard_normal((4, 3, 224, 224)).astype(np.float32)
            compare(
                "ResNet50 onnxruntime, batch 4",
                load_model(rpath),
                images,
                rounds,
                max(3, iterations // 40),
            )


if __name__ == "__main__":
    main()
