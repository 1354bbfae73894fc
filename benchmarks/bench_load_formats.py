"""Every loader on a real model: cold-load time per format and output parity, side by side.

Run: PYTHONPATH=src python benchmarks/bench_load_formats.py [--repeat N] [--skip-tf]

Builds ResNet50 with random weights (torchvision ``weights=None`` and
``keras.applications.ResNet50(weights=None)``: nothing is downloaded), exports the torch one to a
state_dict, TorchScript, torch.export and ONNX, and the Keras one to ``.keras``, ``.h5``,
SavedModel and TFLite, all with pyinfer's exporters. Each file is then loaded ``repeat`` times
through ``pyinfer.load_model`` (the framework imported once, before timing) and run once on the
same batch of 2 images. Prints, per format: the median ``model.load_time_s`` (the cold start
the profiler reports), the first run's time, the parameter count, the options applied, and the
largest difference of its outputs from the framework's own model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pyinfer
from pyinfer import export
from pyinfer.backends.frameworks import ensure_triton_safe, import_tensorflow

ROWS: list[tuple[str, str, float, float, int, float, str]] = []


def measure(
    label: str,
    path: Path,
    reference: np.ndarray,
    inputs: dict[str, np.ndarray],
    repeat: int,
    **o: Any,
) -> None:
    times = []
    model = None
    for _ in range(repeat):
        model = pyinfer.load_model(path, **o)
        times.append(model.load_time_s)
    assert model is not None
    start = time.perf_counter()
    out = model({model.input_names()[0]: next(iter(inputs.values()))})
    first_run = time.perf_counter() - start
    got = next(iter(out.values()))
    diff = float(np.max(np.abs(got - reference)))
    shown = {k: v for k, v in model.options.items() if not isinstance(v, dict | list)}
    ROWS.append(
        (
            label,
            model.format.value,
            statistics.median(times),
            first_run,
            model.parameter_count,
            diff,
            ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))[:110],
        )
    )


def torch_formats(folder: Path, repeat: int) -> None:
    ensure_triton_safe()
    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.inference_mode():
        reference = net(torch.from_numpy(x)).numpy()
    example = torch.from_numpy(x)
    torch.save(net.state_dict(), folder / "resnet50.pth")
    ts = export.export_torchscript(net, folder / "resnet50.ts.pt", example)
    pt2 = export.export_torch_program(net, folder / "resnet50.pt2", example)
    onnx = export.export_onnx(net, folder / "resnet50.onnx", example)[0]
    inputs = {"x": x}
    shapes = {"input_shapes": {"x": (None, 3, 224, 224)}}
    measure(
        "torch state_dict + arch",
        folder / "resnet50.pth",
        reference,
        inputs,
        repeat,
        architecture="torchvision.models:resnet50",
        **shapes,
    )
    measure("TorchScript", ts, reference, inputs, repeat, **shapes)
    measure("torch.export", pt2, reference, inputs, repeat)
    measure("ONNX (dynamo export)", onnx, reference, inputs, repeat)


def keras_formats(folder: Path, repeat: int) -> None:
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(0).standard_normal((2, 224, 224, 3), dtype=np.float32)
    reference = np.asarray(model(x, training=False))
    inputs = {"x": x}
    for fmt, name in (
        ("keras", "resnet50.keras"),
        ("h5", "resnet50.h5"),
        ("saved_model", "resnet50_savedmodel"),
        ("tflite", "resnet50.tflite"),
    ):
        path = export.export_keras(model, folder / name, format=fmt)
        measure(f"Keras -> {fmt}", path, reference, inputs, repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-tf", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch_formats(folder, args.repeat)
        if not args.skip_tf:
            keras_formats(folder, args.repeat)
    print(f"ResNet50, random weights, batch 2; load time = median of {args.repeat} loads")
    print(
        f"{'format':26} {'detected':13} {'load s':>7} {'1st run s':>9} {'params':>11} "
        f"{'max |diff|':>10}  options"
    )
    for label, fmt, load_s, run_s, params, diff, options in ROWS:
        print(
            f"{label:26} {fmt:13} {load_s:7.3f} {run_s:9.3f} {params:11,d} {diff:10.1e}  {options}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
