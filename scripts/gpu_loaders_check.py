"""Loads one model on CUDA with every framework available and checks it against the CPU.

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU. For torch it exports a small conv
net to TorchScript, torch.export and a state_dict, loads each on ``cuda`` and on ``cpu`` through
``pyinfer.load_model`` and compares the outputs; it also times the CUDA model with the core's
CudaEventTimer on the model's own stream. For ONNX Runtime it loads the ONNX export on ``cuda``:
with onnxruntime-gpu the outputs are compared, with the CPU package the load must be refused
with CudaUnavailableError (never run silently on the CPU) and run on the CPU only with
``allow_fallback=True``. For TensorFlow (when installed) it loads a Keras model on ``cuda``.
Prints one line per check and exits non-zero if any check fails.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pyinfer
from pyinfer import export

FAILURES: list[str] = []
RTOL, ATOL = 1e-3, 1e-4  # TF32/cuDNN convolutions on the GPU vs float32 on the CPU


def check(name: str, fn: Callable[[], str]) -> None:
    try:
        detail = fn()
    except Exception:  # report every failure, keep checking
        FAILURES.append(name)
        print(f"FAIL {name}\n{traceback.format_exc()}")
    else:
        print(f"ok   {name}: {detail}")


def compare(cpu: dict[str, np.ndarray], gpu: dict[str, np.ndarray]) -> str:
    assert list(cpu) == list(gpu), (list(cpu), list(gpu))
    worst = 0.0
    for key, expected in cpu.items():
        np.testing.assert_allclose(gpu[key], expected, rtol=RTOL, atol=ATOL)
        worst = max(worst, float(np.max(np.abs(gpu[key] - expected))))
    return f"max |gpu - cpu| = {worst:.2e}"


def torch_checks(folder: Path) -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.head = torch.nn.Linear(8, 5)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.bn(self.conv(image)))
            return self.head(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = Net().eval()
    example = torch.randn(2, 3, 32, 32)
    files = {
        "torchscript": export.export_torchscript(net, folder / "net.ts.pt", example),
        "torch-export": export.export_torch_program(net, folder / "net.pt2", example),
    }
    torch.save(net.state_dict(), folder / "net.pth")
    onnx_files = export.export_onnx(net, folder / "net.onnx", example)
    x = {"image": np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)}

    for label, path in files.items():

        def one(path: Path = path) -> str:
            cpu = pyinfer.load_model(path, device="cpu")
            gpu = pyinfer.load_model(path, device="cuda")
            assert gpu.device.is_cuda
            assert isinstance(gpu.stream_handle, int)
            return compare(cpu(x), gpu(x)) + f", options {gpu.options}"

        check(f"torch {label} on cuda", one)

    def state_dict() -> str:
        cpu = pyinfer.load_model(folder / "net.pth", device="cpu", architecture=Net)
        gpu = pyinfer.load_model(folder / "net.pth", device="cuda", architecture=Net)
        return compare(cpu(x), gpu(x))

    check("torch state_dict + architecture on cuda", state_dict)

    def event_timing() -> str:
        gpu = pyinfer.load_model(files["torch-export"], device="cuda")
        native = gpu.to_native(x)
        timer = pyinfer.CudaEventTimer(stream=gpu.stream_handle or 0)
        for _ in range(20):
            timer.start()
            gpu.run_native(native)
            timer.stop()
        ms = timer.elapsed_ms()
        gpu.synchronize()
        assert ms.size == 20
        assert float(np.median(ms)) > 0
        return f"median {np.median(ms):.3f} ms on stream {gpu.stream_handle}"

    check("torch CUDA events on the model's stream", event_timing)

    if importlib.util.find_spec("onnxruntime") is None:
        print("skip onnxruntime: not installed")
        return
    import onnxruntime

    onnx_path = onnx_files[0]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():

        def onnx_gpu() -> str:
            cpu = pyinfer.load_model(onnx_path, device="cpu")
            gpu = pyinfer.load_model(onnx_path, device="cuda")
            assert gpu.options["providers"][0] == "CUDAExecutionProvider", gpu.options
            return compare(cpu(x), gpu(x)) + f", stream {gpu.stream_handle}"

        check("onnxruntime-gpu on cuda", onnx_gpu)
    else:

        def onnx_refused() -> str:
            try:
                pyinfer.load_model(onnx_path, device="cuda")
            except pyinfer.CudaUnavailableError as exc:
                fallback = pyinfer.load_model(onnx_path, device="cuda", allow_fallback=True)
                assert str(fallback.device) == "cpu"
                return f"refused as it must be ({str(exc)[:90]}...); fallback ran on the cpu"
            raise AssertionError("CUDA was asked of the CPU package and not refused")

        check("onnxruntime (CPU package) asked for cuda", onnx_refused)


def tensorflow_checks(folder: Path) -> None:
    from pyinfer.backends.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    inp = keras.Input((16,), name="features")
    out = keras.layers.Dense(4, name="scores")(keras.layers.Dense(32, activation="relu")(inp))
    model = keras.Model(inp, out)
    path = export.export_keras(model, folder / "dense.keras", format="keras")
    x = {"features": np.random.default_rng(1).standard_normal((3, 16), dtype=np.float32)}

    def keras_gpu() -> str:
        cpu = pyinfer.load_model(path, device="cpu")
        gpu = pyinfer.load_model(path, device="cuda")
        return compare(cpu(x), gpu(x))

    check("keras on cuda", keras_gpu)


def main() -> int:
    if not pyinfer.cuda_available():
        print(f"no CUDA here: {pyinfer.cuda_unavailable_reason()}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if importlib.util.find_spec("torch") is not None:
            torch_checks(folder)
        else:
            print("skip torch: not installed")
        if importlib.util.find_spec("tensorflow") is not None:
            tensorflow_checks(folder)
        else:
            print("skip tensorflow: not installed")
    print(f"{len(FAILURES)} failure(s)" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
