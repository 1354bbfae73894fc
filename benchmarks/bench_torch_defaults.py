"""The PyTorch backend's speed defaults, measured side by side on ResNet50 (random weights).

Run: PYTHONPATH=src python benchmarks/bench_torch_defaults.py [--rounds R] [--iterations N]
     [--batch B] [--threads T]

Variants, each loaded through pyinfer (so what is timed is what users get):
- eager: the nn.Module, contiguous (NCHW) memory;
- eager+cl: the same with channels_last (pyinfer's default for modules with convolutions);
- script: a TorchScript trace, neither frozen nor optimised, NCHW;
- script+freeze: torch.jit.freeze + optimize_for_inference, NCHW;
- script+freeze+cl: the same with channels_last (pyinfer's default for TorchScript).
Each round times `iterations` calls of every variant in turn (``run_native`` on tensors already
made, under inference mode); the median per-call time over rounds is kept, and ratios are given
against plain eager and plain TorchScript. Outputs of every variant are checked against eager.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer import load_model
from pyinfer.backends.frameworks import ensure_triton_safe, import_torch
from pyinfer.export import export_torchscript
from pyinfer.loading import PyTorchModelLoader


def timed(fn: Callable[[], Any], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    torch = import_torch()
    ensure_triton_safe()
    import torchvision

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    shape = (None, 3, 224, 224)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_torchscript(net, Path(tmp) / "resnet50.pt", torch.from_numpy(x))
        models = {
            "eager": PyTorchModelLoader(input_shapes=shape, channels_last=False).from_module(net),
            "eager+cl": PyTorchModelLoader(input_shapes=shape).from_module(
                torchvision.models.resnet50(weights=None).eval()
            ),
            "script": load_model(path, input_shapes=shape, channels_last=False, freeze=False),
            "script+freeze": load_model(path, input_shapes=shape, channels_last=False),
            "script+freeze+cl": load_model(path, input_shapes=shape),
        }
    # eager+cl was built from its own random weights: give it the same ones for the check.
    models["eager+cl"].module.load_state_dict(net.state_dict())
    reference = models["eager"]({"x": x})["output"]
    for name, model in models.items():
        got = model({"x": x})["output"]
        err = float(np.max(np.abs(got - reference)))
        print(
            f"{name:18s} options: channels_last={model.options['channels_last']} "
            f"freeze={model.options['freeze']} optimize={model.options['optimize']} "
            f"max |diff| vs eager = {err:.2e}"
        )
    natives = {name: m.to_native({"x": x}) for name, m in models.items()}
    for name, m in models.items():  # warm-up
        for _ in range(3):
            m.run_native(natives[name])
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            feed = natives[name]
            rounds[name].append(timed(lambda m=m, feed=feed: m.run_native(feed), args.iterations))
    medians = {name: statistics.median(v) * 1e3 for name, v in rounds.items()}
    print(
        f"\nResNet50 batch {args.batch}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds} rounds x "
        f"{args.iterations} calls"
    )
    for name, ms in medians.items():
        spread = (max(rounds[name]) - min(rounds[name])) * 1e3
        print(
            f"{name:18s} {ms:8.1f} ms   (round spread {spread:5.1f} ms)   "
            f"vs eager {ms / medians['eager']:.2f}x   vs script {ms / medians['script']:.2f}x"
        )


if __name__ == "__main__":
    main()
