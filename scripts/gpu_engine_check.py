"""The inference engine on CUDA: pinned, overlapped dataset pipeline and real out-of-memory.

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU and torch with CUDA (no network).

1. torch ResNet50 (torchvision, weights=None) on ``cuda``: a dataset of N preprocessed images
   runs through InferenceEngine with ``overlap_upload=True`` (each batch staged in a pinned
   PinnedRing slot, uploaded on a side stream while the previous batch computes) and with
   ``overlap_upload=False`` (pageable memory, upload on the compute stream). Outputs must agree;
   images/s of both are printed, alternating the order over rounds, with their ratio.
2. The same from a folder of generated JPEGs with ImagePipeline (decode and resize in worker
   threads), overlap on and off.
3. ONNX Runtime on CUDA (onnxruntime-gpu only): overlap (pinned staging) against plain.
4. Real CUDA out-of-memory: a module that allocates 4 GiB per item runs a dataset with
   batch_size=64; the engine must halve until it fits, lose nothing, and report the batch size
   used; find_max_batch_size() must find the limit by search.

Prints one line per check and exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FAILURES: list[str] = []


def check(name: str, fn: Callable[[], str]) -> None:
    try:
        detail = fn()
    except Exception:  # report every failure, keep checking
        FAILURES.append(name)
        print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    else:
        print(f"ok   {name}: {detail}", flush=True)


def rates(engines: dict[str, Any], source: Any, count: int, rounds: int) -> dict[str, float]:
    for engine in engines.values():  # warm-up: cuDNN autotuning, allocator, ring
        engine.run_dataset(source)
    per: dict[str, list[float]] = {name: [] for name in engines}
    order = list(engines)
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):
            start = time.perf_counter()
            result = engines[name].run_dataset(source)
            per[name].append(count / (time.perf_counter() - start))
            assert len(result) == count, len(result)
            assert not result.failures, result.failures
    return {name: statistics.median(v) for name, v in per.items()}


def text(r: dict[str, float]) -> str:
    on, off = r["overlap"], r["plain"]
    return f"overlap {on:.1f} images/s, plain {off:.1f} images/s, ratio {on / off:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    import torchvision

    import pyinfer
    from pyinfer import ImagePipeline, InferenceEngine, export
    from pyinfer.loading import PyTorchModelLoader

    if not torch.cuda.is_available():
        print("FAIL torch sees no CUDA device")
        sys.exit(1)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    n, bs = args.images, args.batch_size
    rng = np.random.default_rng(0)
    images = rng.standard_normal((n, 3, 224, 224), dtype=np.float32)
    net = torchvision.models.resnet50(weights=None).eval()
    loader = PyTorchModelLoader(input_shapes={"x": (None, 3, 224, 224)})
    model = loader.from_module(net, device="cuda", name="resnet50")

    def make(overlap: bool, preprocessor: Any = None, workers: int | None = None) -> Any:
        return InferenceEngine(
            model,
            preprocessor,
            batch_size=bs,
            overlap_upload=overlap,
            num_workers=workers,
            progress=False,
        )

    def arrays() -> str:
        engines = {"overlap": make(True), "plain": make(False)}
        assert engines["overlap"]._uploader is not None
        first = engines["overlap"].run_dataset(images[: 2 * bs])
        second = engines["plain"].run_dataset(images[: 2 * bs])
        ring = engines["overlap"]._uploader.ring
        assert ring is not None, "no staging ring"
        assert ring.pinned, "the staging ring is not page-locked"
        np.testing.assert_allclose(first.stacked(), second.stacked(), rtol=1e-3, atol=1e-3)
        return f"batch {bs}, {n} images: " + text(rates(engines, images, n, args.rounds))

    check("torch ResNet50 dataset from an array, overlap on/off", arrays)

    def folder() -> str:
        from PIL import Image

        count = min(n, 256)
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(count):
                pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(Path(tmp) / f"{i:05d}.jpg", quality=90)
            pipeline = ImagePipeline.for_model(model)
            engines = {"overlap": make(True, pipeline, 8), "plain": make(False, pipeline, 8)}
            return f"{count} JPEGs, 8 workers: " + text(rates(engines, tmp, count, args.rounds))

    if importlib.util.find_spec("PIL") is not None:
        check("torch ResNet50 dataset from JPEG files, overlap on/off", folder)

    def onnx_cuda() -> str:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "skipped: onnxruntime without CUDA (the CPU package)"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resnet50.onnx"
            export.export_onnx(net, path, torch.randn(1, 3, 224, 224), input_names=["x"])
            ort_model = pyinfer.load_model(path, device="cuda")
            engines = {
                "overlap": InferenceEngine(ort_model, batch_size=bs, overlap_upload=True),
                "plain": InferenceEngine(ort_model, batch_size=bs, overlap_upload=False),
            }
            for e in engines.values():
                e.progress = False
            a = engines["overlap"].run_dataset(images[:bs]).stacked()
            b = engines["plain"].run_dataset(images[:bs]).stacked()
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
            return text(rates(engines, images, n, args.rounds))

    check("onnxruntime ResNet50 on CUDA, pinned staging on/off", onnx_cuda)

    def out_of_memory() -> str:
        free, _ = torch.cuda.mem_get_info()
        per_item = 4 << 30

        class Hungry(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                scratch = torch.empty(x.shape[0] * per_item, dtype=torch.uint8, device=x.device)
                return x.sum(dim=1) + scratch[:1].zero_().float()

        hungry = PyTorchModelLoader(input_shapes={"x": (None, 4)}).from_module(
            Hungry(), device="cuda"
        )
        limit = free // per_item
        x = rng.standard_normal((96, 4), dtype=np.float32)
        engine = InferenceEngine(hungry, batch_size=64, progress=False)
        result = engine.run_dataset(x)
        assert len(result) == 96
        assert not result.failures
        np.testing.assert_allclose(result.stacked(), x.sum(axis=1), rtol=1e-5, atol=1e-5)
        assert result.oom_retries >= 1
        assert max(result.batch_sizes) <= limit
        found = InferenceEngine(hungry).find_max_batch_size(limit=256)
        assert found <= limit + 1, (found, limit)
        return (
            f"~{limit} items fit ({free / 2**30:.0f} GiB free): dataset ran in batches of "
            f"{sorted(set(result.batch_sizes))} after {result.oom_retries} halvings; "
            f"find_max_batch_size() = {found}"
        )

    check("real CUDA out-of-memory back-off", out_of_memory)

    if FAILURES:
        print(f"{len(FAILURES)} engine check(s) failed: {', '.join(FAILURES)}")
        sys.exit(1)
    print("engine checks passed")


if __name__ == "__main__":
    main()
