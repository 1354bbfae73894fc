"""Ray's overhead on dataset inference: the local engine against a pool of Ray actors.

Run: python benchmarks/bench_ray_dataset.py [--model PATH ...] [--images N] [--batch-size B]
     [--actors A] [--rounds R]

Without --model, ResNet18 and MobileNetV2 (torchvision, weights=None: random weights, no
download) are exported to ONNX (224x224, dynamic batch) in a temporary folder. N JPEG images
(scikit-image's photos, resized to 256x256 and shifted so no two are alike) are written there
too. Each round runs the same folder, model and batch size through

* the local engine: ``InferenceEngine(model, ImagePipeline.for_model(model)).run_dataset``
  (the model loaded once, before the rounds; preprocessing in its worker threads), and
* ``pyinfer.cluster.run_dataset`` on a local Ray cluster of ``ray.init(num_cpus=<cores>)``
  with A actors: each run starts its actor pool, loads the model on each actor and gathers
  the outputs on the driver; all of that is in its time,

alternating which goes first. Throughput is the images that ran per second of wall time; the
table gives each side's median over the rounds and the median of the per-round ratios
(Ray / local), and for Ray the images one actor runs per second it is busy, and the seconds
of the run's wall time that the busiest actor was not busy (the pool's start, model loads,
Ray Data's scheduling and the last outputs' gathering).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import ensure_triton_safe, import_torch
from pyinfer.cluster import run_dataset
from pyinfer.engine import InferenceEngine
from pyinfer.export import export_onnx
from pyinfer.loading import load_model
from pyinfer.preprocess import ImagePipeline


def export(name: str, folder: Path) -> Path:
    ensure_triton_safe()  # torchvision imports triton
    torch = import_torch()
    import torchvision

    net = getattr(torchvision.models, name)(weights=None).eval()
    path = folder / f"{name}.onnx"
    # The TorchScript-based exporter: it needs no onnxscript; pyinfer's export keeps the batch
    # dynamic and silences the exporter's deprecation warning.
    example = (torch.randn(1, 3, 224, 224),)
    export_onnx(net, path, example, input_names=["image"], output_names=["logits"], dynamo=False)
    return path


def write_images(folder: Path, count: int) -> Path:
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    small = [np.asarray(Image.fromarray(p).resize((256, 256))) for p in photos]
    images = folder / "images"
    images.mkdir()
    for i in range(count):
        shifted = np.roll(small[i % len(small)], i % 31, axis=1)
        Image.fromarray(shifted).save(images / f"{i:05d}.jpg", quality=90)
    return images


def run_local(engine: InferenceEngine, files: list[Path]) -> float:
    start = time.perf_counter()
    result = engine.run_dataset(files)
    return result.succeeded / (time.perf_counter() - start)


def run_ray(model: Path, images: Path, batch_size: int, actors: int) -> tuple[float, float, float]:
    """Ray's images/s, one actor's images per busy second, and the seconds no actor was busy."""
    report = run_dataset(model, images, batch_size=batch_size, actors=actors).report
    per_actor = statistics.mean(a.items / a.busy_s for a in report.per_actor)
    idle = report.elapsed_s - max(a.busy_s for a in report.per_actor)
    return report.items_per_s, per_actor, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="ONNX models (repeatable)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import ray

    cores = os.cpu_count() or 1
    # The actors import pyinfer from the same tree as this script.
    root = str(Path(__file__).resolve().parent.parent / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = [Path(m) for m in args.model] or [
            export("resnet18", folder),
            export("mobilenet_v2", folder),
        ]
        images = write_images(folder, args.images)
        files = sorted(images.glob("*.jpg"))
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        rows: list[tuple[str, float, float, float, float, float]] = []
        for path in models:
            model = load_model(path)
            engine = InferenceEngine(
                model, ImagePipeline.for_model(model), batch_size=args.batch_size, progress=False
            )
            engine.run_dataset(files[: args.batch_size * 2])  # warm the sessions' first calls
            local: list[float] = []
            remote: list[float] = []
            per_actor: list[float] = []
            idle: list[float] = []
            for round_ in range(args.rounds):
                order: list[Any] = ["local", "ray"] if round_ % 2 == 0 else ["ray", "local"]
                for side in order:
                    if side == "local":
                        local.append(run_local(engine, files))
                    else:
                        rate, actor_rate, idle_s = run_ray(
                            path, images, args.batch_size, args.actors
                        )
                        remote.append(rate)
                        per_actor.append(actor_rate)
                        idle.append(idle_s)
                print(
                    f"{path.stem} round {round_ + 1}: local {local[-1]:.1f}/s, "
                    f"ray {remote[-1]:.1f}/s ({remote[-1] / local[-1]:.2f}x)",
                    flush=True,
                )
            ratio = statistics.median(r / loc for r, loc in zip(remote, local, strict=True))
            rows.append(
                (
                    path.stem,
                    statistics.median(local),
                    statistics.median(remote),
                    ratio,
                    statistics.median(per_actor),
                    statistics.median(idle),
                )
            )
        ray.shutdown()
    print(
        f"\n{args.images} images, batch {args.batch_size}, {args.actors} actors, "
        f"{cores} cores, {args.rounds} rounds (medians)"
    )
    print(
        "| model | local engine (img/s) | Ray (img/s) | Ray / local | one actor busy (img/s) "
        "| Ray start, no actor busy (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, loc, rem, ratio, actor_rate, idle_s in rows:
        print(
            f"| {name} | {loc:.1f} | {rem:.1f} | {ratio:.2f}x | {actor_rate:.1f} | {idle_s:.1f} |"
        )


if __name__ == "__main__":
    main()
