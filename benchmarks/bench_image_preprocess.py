"""ImageNet preprocessing: pyinfer's preset against torchvision.transforms.v2, on PIL photos.

Run: python benchmarks/bench_image_preprocess.py [--rounds R] [--iterations N]

Both pipelines take the same PIL image (a real photo from scikit-image's data folder, no
download) and give the same ``(3, 224, 224)`` float32 array (checked first: max abs difference
under 1e-5):

* pyinfer: ``ImagePipeline.imagenet()`` (resize the shorter side to 256, centre crop 224,
  scale, normalise, CHW), its output a numpy array;
* torchvision: ``v2.Compose([Resize(256), CenterCrop(224), ToImage(), ToDtype(float32,
  scale=True), Normalize(mean, std)])``, its output a tensor (``.numpy()`` is free).

Each round times N calls of each pipeline back to back (which goes first alternates between
rounds); the table gives the medians over rounds and the ratio pyinfer / torchvision as the
median of the per-round ratios (paired, so a drifting machine load cancels). torch runs with
one intra-op thread, as a data loader worker does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import skimage.data
import torch
from PIL import Image
from torchvision.transforms import v2

from pyinfer.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePipeline

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def median_ms(fn: Callable[[], Any], iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def compare(name: str, image: Any, rounds: int, iterations: int) -> tuple[float, float, float]:
    ours = ImagePipeline.imagenet()
    theirs = v2.Compose(
        [
            v2.Resize(256),
            v2.CenterCrop(224),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )
    diff = float(np.abs(ours(image) - theirs(image).numpy()).max())
    assert diff < 1e-5, f"{name}: the pipelines differ by {diff}"
    paths: dict[str, Callable[[], Any]] = {
        "pyinfer": lambda: ours(image),
        "torchvision": lambda: theirs(image).numpy(),
    }
    for fn in paths.values():
        for _ in range(max(3, iterations // 5)):
            fn()
    per_round: dict[str, list[float]] = {k: [] for k in paths}
    ratios = []
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        got = {k: median_ms(paths[k], iterations) for k in order}
        for k, v in got.items():
            per_round[k].append(v)
        ratios.append(got["pyinfer"] / got["torchvision"])
    return (
        statistics.median(per_round["pyinfer"]),
        statistics.median(per_round["torchvision"]),
        statistics.median(ratios),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| photo (W x H) | pyinfer ms | torchvision v2 ms | pyinfer / v2 |")
    print("|---|---:|---:|---:|")
    ratios = []
    for name in PHOTOS:
        image = Image.fromarray(getattr(skimage.data, name)())
        ours, theirs, ratio = compare(name, image, args.rounds, args.iterations)
        ratios.append(ratio)
        label = f"{name} ({image.width} x {image.height})"
        print(f"| {label} | {ours:.3f} | {theirs:.3f} | {ratio:.2f} |")
    print(f"\nmedian ratio over the photos: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
