"""Dataset throughput: the engine's overlapped pipeline, a sequential loop, inference alone.

Run: python benchmarks/bench_dataset_pipeline.py [--quick] [--images N] [--batch-size B]
         [--workers W] [--rounds R] [--intra-op-threads T] [--fast-decode] [--single-steps]
         [--no-spinning] [--synthetic]

ResNet50 (torchvision, weights=None: random weights, no download) is exported to ONNX in a
temporary folder and run with ONNX Runtime on the CPU. N JPEG images of 500x375 are generated
(smooth random colour fields with texture, Pillow-encoded at quality 90, so they decode like
photos). Every image goes through ImagePipeline.imagenet(): decode, resize the shorter side to
256, crop 224, scale, normalise, CHW. Three ways to get all N through the model, alternating
their order between rounds in one process, images/s as the median over rounds:

* inference alone: the tensors were preprocessed beforehand; only the model runs (batches of B);
* sequential: a plain loop that preprocesses a batch, then runs it;
* engine: InferenceEngine.run_dataset(folder): W worker threads preprocess the next batches
  while the model runs the current one.

The ratio engine / inference alone is the target (>= 0.9); it is taken within each round (the
ways run back to back there) and the median over rounds is printed, which cancels most of a
shared machine's drifting load. --synthetic shows the overlap alone: a model and a preprocessor
that sleep (50 ms a batch, 5 ms an item), so no core is contended. Where the time goes is
printed too:
decode, resize + crop, and scale + normalise + layout per image, and inference per image.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import ensure_triton_safe, import_torch
from pyinfer.engine import InferenceEngine
from pyinfer.loading import load_model
from pyinfer.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    ImagePipeline,
    Normalize,
    ResizeShorter,
    ToFloat,
    ToLayout,
)


def export_resnet50(folder: Path) -> Path:
    ensure_triton_safe()
    torch = import_torch()
    import torchvision

    from pyinfer.export import export_onnx

    net = torchvision.models.resnet50(weights=None).eval()
    path = folder / "resnet50.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        export_onnx(net, path, torch.randn(1, 3, 224, 224), input_names=["x"], dynamo=False)
    return path


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Photo-like JPEGs: a smooth colour field from an upsampled 6x8 grid, plus fine texture."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(
            Image.fromarray(coarse).resize((500, 375), Image.Resampling.BICUBIC), np.int16
        )
        texture = rng.normal(0, 12, (375, 500, 1)).astype(np.int16)
        pixels = np.clip(field + texture, 0, 255).astype(np.uint8)
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def breakdown(paths: list[Path], pipeline: ImagePipeline) -> dict[str, float]:
    """Milliseconds per image of each step, measured step by step on one thread."""
    totals = {repr(step).split("(")[0]: 0.0 for step in pipeline.steps}
    for path in paths:
        value: Any = path
        for step in pipeline.steps:
            start = time.perf_counter()
            value = step(value)
            totals[repr(step).split("(")[0]] += time.perf_counter() - start
    return {k: 1e3 * v / len(paths) for k, v in totals.items()}


def single_steps(model: Any, fast_decode: bool) -> ImagePipeline:
    """The same preprocessing from the single steps (resize, then crop, then three passes)."""
    fused = ImagePipeline.for_model(model, fast_decode=fast_decode)
    decode = fused.steps[0]
    return ImagePipeline(
        [
            decode,
            ResizeShorter(256),
            CenterCrop(224),
            ToFloat(),
            Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ToLayout("CHW"),
        ],
        input_name=model.input_names()[0],
    )


def synthetic(batches: int = 20, batch: int = 8) -> None:
    """The overlap itself, apart from CPU contention: a model that takes 50 ms per batch and a
    preprocessor that takes 5 ms per item, both sleeping (so neither needs a core)."""
    from collections.abc import Mapping

    from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec

    class Sleeper(Model):
        def __init__(self) -> None:
            super().__init__(
                name="sleeper",
                format=ModelFormat.ONNX,
                framework="numpy",
                device=Device("cpu"),
                path=None,
                inputs=[TensorSpec("x", ("N", 4), np.float32)],
                outputs=[TensorSpec("y", ("N", 4), np.float32)],
                parameter_count=0,
                parameter_bytes=0,
            )

        def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
            return dict(inputs)

        def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
            time.sleep(0.050)
            return {"y": inputs["x"] * 2}

        def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
            return dict(outputs)

    def preprocess(i: int) -> np.ndarray:
        time.sleep(0.005)
        return np.full(4, i, np.float32)

    print(f"synthetic: model 50 ms per batch, preprocessing 5 ms per item, batch {batch}")
    for workers in (0, 1, 2):
        engine = InferenceEngine(
            Sleeper(), preprocess, batch_size=batch, num_workers=workers, progress=False
        )
        start = time.perf_counter()
        result = engine.run_dataset(range(batches * batch))
        per_batch = 1e3 * (time.perf_counter() - start) / batches
        assert result.succeeded == batches * batch
        print(f"  num_workers={workers}: {per_batch:6.1f} ms per batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 images, 3 rounds")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--fast-decode", action="store_true")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="only the overlap with a sleeping model and preprocessor (no ResNet50, no cores)",
    )
    parser.add_argument(
        "--no-spinning",
        action="store_true",
        help="ONNX Runtime's intra-op threads sleep instead of spinning between parallel ops",
    )
    parser.add_argument(
        "--single-steps",
        action="store_true",
        help="resize, crop, scale, normalise, layout as single steps (not the fused preset)",
    )
    args = parser.parse_args()
    if args.synthetic:
        synthetic()
        return
    count = args.images or (24 if args.quick else 48)
    rounds = args.rounds or (3 if args.quick else 9)
    batch = args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = make_images(folder, count)
        options = (
            {} if args.intra_op_threads is None else {"intra_op_threads": args.intra_op_threads}
        )
        onnx_path = export_resnet50(Path(tmp))
        model = load_model(onnx_path, **options)
        if args.no_spinning:
            # The loader has no option for this session setting yet: rebuild the session with
            # it, same threads and providers (an experiment for this benchmark only).
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = int(model.options["intra_op_threads"])
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            model._session = ort.InferenceSession(  # type: ignore[attr-defined]
                str(onnx_path), so, providers=["CPUExecutionProvider"]
            )
        pipeline = (
            single_steps(model, args.fast_decode)
            if args.single_steps
            else ImagePipeline.for_model(model, fast_decode=args.fast_decode)
        )
        engine = InferenceEngine(
            model,
            pipeline,
            batch_size=batch,
            num_workers=args.workers,
            prefetch=args.prefetch,
            progress=False,
        )
        tensors = [pipeline(p)["x"] for p in paths]
        batches = [np.stack(tensors[i : i + batch]) for i in range(0, count, batch)]
        reference = np.concatenate([model({"x": b})[model.output_names()[0]] for b in batches])

        def inference_alone() -> None:
            for b in batches:
                model({"x": b})

        def sequential() -> None:
            for i in range(0, count, batch):
                b = np.stack([pipeline(p)["x"] for p in paths[i : i + batch]])
                model({"x": b})

        def pipelined() -> None:
            result = engine.run_dataset(folder)
            assert len(result) == count
            assert not result.failures

        check = engine.run_dataset(folder)  # same answers as the pre-made tensors
        np.testing.assert_allclose(check.stacked(), reference, rtol=1e-4, atol=1e-4)

        ways = {"inference alone": inference_alone, "sequential": sequential, "engine": pipelined}
        rates: dict[str, list[float]] = {name: [] for name in ways}
        order = list(ways)
        for r in range(rounds):
            for name in order if r % 2 == 0 else reversed(order):
                start = time.perf_counter()
                ways[name]()
                rates[name].append(count / (time.perf_counter() - start))
        # The machine's load drifts over seconds: compare the ways within each round, where
        # they ran one after the other, and summarise those paired ratios.
        ratios = {
            name: [v / a for v, a in zip(rates[name], rates["inference alone"], strict=True)]
            for name in ("engine", "sequential")
        }
        stages = breakdown(paths[: min(count, 32)], pipeline)
        # The fused preset against the same work as single steps, image by image alternately.
        fused, single = ImagePipeline.for_model(model), single_steps(model, args.fast_decode)
        spent = {"fused preset": 0.0, "single steps": 0.0}
        for _ in range(3):
            for path in paths[: min(count, 32)]:
                for label, pipe in (("fused preset", fused), ("single steps", single)):
                    start = time.perf_counter()
                    pipe(path)
                    spent[label] += time.perf_counter() - start
        per_image = {k: 1e3 * v / (3 * min(count, 32)) for k, v in spent.items()}

    infer_ms = 1e3 / statistics.median(rates["inference alone"])
    print(
        f"ResNet50 ONNX Runtime CPU ({model.options.get('intra_op_threads')} intra-op threads), "
        f"{count} JPEGs 500x375, batch {batch}, {args.workers} preprocessing worker(s), "
        f"prefetch {args.prefetch}, fast_decode={args.fast_decode}, "
        f"{'single' if args.single_steps else 'fused'} steps, "
        f"spinning {'off' if args.no_spinning else 'on'}, {rounds} rounds"
    )
    print(f"{'way':<18} {'images/s':>9}   rounds")
    for name, values in rates.items():
        spread = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:<18} {statistics.median(values):9.2f}   {spread}")
    for name, values in ratios.items():
        spread = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"ratio {name} / inference alone: median of rounds {statistics.median(values):.3f}"
            f"   rounds: {spread}"
        )
    print("where the time goes, per image and step (one thread, no overlap):")
    for stage, ms in stages.items():
        print(f"  {stage:<26} {ms:7.2f} ms")
    print(f"  {'inference (batch ' + str(batch) + ')':<26} {infer_ms:7.2f} ms")
    print(
        f"preprocessing per image, side by side: fused preset {per_image['fused preset']:.2f} ms, "
        f"single steps {per_image['single steps']:.2f} ms "
        f"(ratio {per_image['fused preset'] / per_image['single steps']:.2f})"
    )


if __name__ == "__main__":
    main()
