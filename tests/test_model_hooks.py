"""The hooks the engine and the profiler call on a Model instead of asking for its framework.

Defaults (host runtimes), torch on the CPU for real, torch and ONNX Runtime on CUDA through fake
framework modules that record what is called, TensorFlow's memory statistics through a fake
``tf.config.experimental``; one real-GPU check under the ``gpu`` marker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer.backends.base import Device, DeviceMemoryReading, Model, ModelFormat, TensorSpec
from pyinfer.backends.onnx import OnnxModel
from pyinfer.backends.tensorflow import KerasModel
from pyinfer.backends.torch import TorchModel

SPECS = {
    "name": "m",
    "path": None,
    "inputs": [TensorSpec("x", ("batch", 3), np.float32)],
    "outputs": [TensorSpec("y", ("batch", 3), np.float32)],
    "parameter_count": 0,
    "parameter_bytes": 0,
}


class HostModel(Model):
    """A runtime with no device: what every default hook is for."""

    def __init__(self) -> None:
        super().__init__(
            format=ModelFormat.ONNX, framework="host", device=Device("cpu"), options={}, **SPECS
        )
        self.converted: list[Mapping[str, np.ndarray]] = []

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"]}

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        self.converted.append(inputs)
        return {k: ("native", v) for k, v in inputs.items()}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


def counter() -> tuple[list[int], Any]:
    calls: list[int] = []
    return calls, lambda: calls.append(1)


# -- defaults ----------------------------------------------------------------------------------


def test_default_hooks_of_a_host_runtime() -> None:
    model = HostModel()
    assert model.release_cached_memory() is None
    assert model.supports_cuda_graphs is False
    assert model.supports_overlapped_upload is False
    calls, run = counter()
    assert model.measure_device_memory(run, 5) is None
    assert calls == []  # None: nothing ran, the caller measures device-wide memory itself
    host = {"x": np.ones((2, 3), np.float32)}
    tensors, stream = model.upload_async(host)
    assert stream == 0
    assert list(tensors) == ["x"]
    assert tensors["x"][0] == "native"
    assert tensors["x"][1] is host["x"]
    assert model.converted == [host]


def test_device_memory_reading_fields() -> None:
    reading = DeviceMemoryReading(1, 2, 3, None, "how")
    assert (reading.activation_bytes, reading.allocated_bytes, reading.reserved_bytes) == (1, 2, 3)
    assert reading.framework_peak_bytes is None
    assert reading.method == "how"


# -- torch on the CPU (real torch) -------------------------------------------------------------


def test_torch_on_the_cpu_keeps_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from pyinfer.backends.torch import from_module

    model = from_module(torch.nn.Linear(3, 3), Device("cpu"), name="linear")
    assert isinstance(model, TorchModel)

    def never() -> None:
        raise AssertionError("empty_cache must not be called on the CPU")

    monkeypatch.setattr(torch.cuda, "empty_cache", never)
    model.release_cached_memory()
    assert model.supports_cuda_graphs is False
    assert model.supports_overlapped_upload is False
    calls, run = counter()
    assert model.measure_device_memory(run, 3) is None
    assert calls == []
    host = {"input": np.arange(6, dtype=np.float32).reshape(2, 3)}
    tensors, stream = model.upload_async(host)
    assert stream == 0
    assert tensors["input"].device.type == "cpu"
    assert tensors["input"].tolist() == host["input"].tolist()


# -- torch on CUDA (a fake torch records the calls) --------------------------------------------


class FakeTensor:
    def __init__(self, log: list[Any], array: np.ndarray, where: str = "host") -> None:
        self.log = log
        self.array = array
        self.where = where
        self.layout = "contiguous"

    def to(self, device: Any, *, non_blocking: bool) -> FakeTensor:
        entered = [e[1] for e in self.log if e[0] == "enter"]
        exited = [e[1] for e in self.log if e[0] == "exit"]
        on = entered[-1] if len(entered) > len(exited) else "compute"
        self.log.append(("to", device, non_blocking, on))
        return FakeTensor(self.log, self.array, "device")

    def dim(self) -> int:
        return int(self.array.ndim)

    def record_stream(self, stream: Any) -> None:
        self.log.append(("record_stream", stream.name))

    def contiguous(self, *, memory_format: str) -> FakeTensor:
        out = FakeTensor(self.log, self.array, self.where)
        out.layout = memory_format
        return out


class FakeStream:
    def __init__(self, log: list[Any], name: str, handle: int) -> None:
        self.log = log
        self.name = name
        self.cuda_stream = handle

    def wait_event(self, event: Any) -> None:
        self.log.append(("wait_event", self.name, event.recorded_on))


class FakeEvent:
    def __init__(self) -> None:
        self.recorded_on: str | None = None

    def record(self, stream: FakeStream) -> None:
        self.recorded_on = stream.name


def fake_torch(log: list[Any], allocated: list[int]) -> Any:
    compute = FakeStream(log, "compute", 7)
    made: list[FakeStream] = []

    def new_stream(device: Any) -> FakeStream:
        made.append(FakeStream(log, f"side{len(made)}", 4242 + len(made)))
        log.append(("new_stream", device))
        return made[-1]

    @contextlib.contextmanager
    def on_stream(stream: FakeStream) -> Iterator[None]:
        log.append(("enter", stream.name))
        yield
        log.append(("exit", stream.name))

    cuda = SimpleNamespace(
        empty_cache=lambda: log.append(("empty_cache",)),
        memory_allocated=lambda d: allocated.pop(0),
        reset_peak_memory_stats=lambda d: log.append(("reset_peak", d)),
        max_memory_allocated=lambda d: 900,
        memory_reserved=lambda d: 2048,
        Stream=new_stream,
        current_stream=lambda d: compute,
        stream=on_stream,
        Event=FakeEvent,
    )
    return SimpleNamespace(
        device=lambda text: f"dev:{text}",
        cuda=cuda,
        from_numpy=lambda a: FakeTensor(log, a),
        channels_last="channels_last",
    )


def cuda_torch_model(log: list[Any], allocated: list[int], **options: Any) -> TorchModel:
    return TorchModel(
        object(),
        torch_mod=fake_torch(log, allocated),
        format=ModelFormat.PYTORCH,
        device=Device("cuda", 1),
        options=options,
        **SPECS,
    )


def test_torch_on_cuda_empties_its_cache_and_supports_graphs_and_overlap() -> None:
    log: list[Any] = []
    model = cuda_torch_model(log, [])
    model.release_cached_memory()
    assert log == [("empty_cache",)]
    assert model.supports_cuda_graphs is True
    assert model.supports_overlapped_upload is True


def test_torch_on_cuda_measures_with_its_allocator_statistics() -> None:
    log: list[Any] = []
    model = cuda_torch_model(log, [300, 500])  # allocated before the calls, then after
    calls, run = counter()
    reading = model.measure_device_memory(run, 4)
    assert calls == [1, 1, 1, 1]
    assert log == [("reset_peak", "dev:cuda:1")]
    assert reading == DeviceMemoryReading(
        activation_bytes=600,  # max allocated 900 over the 300 allocated before
        allocated_bytes=500,
        reserved_bytes=2048,
        framework_peak_bytes=None,
        method="torch peak allocated over the post-load allocated, 4 calls",
    )


def test_torch_upload_runs_on_a_side_stream_the_compute_stream_waits_for() -> None:
    log: list[Any] = []
    model = cuda_torch_model(log, [], channels_last=True)
    host = {"x": np.zeros((1, 3, 2, 2), np.float32), "n": np.zeros((1, 3), np.float32)}
    tensors, stream = model.upload_async(host)
    assert stream == 4242
    assert log == [
        ("new_stream", "dev:cuda:1"),
        ("enter", "side0"),
        ("to", "dev:cuda:1", True, "side0"),
        ("to", "dev:cuda:1", True, "side0"),
        ("exit", "side0"),
        ("wait_event", "compute", "side0"),
        ("record_stream", "compute"),
        ("record_stream", "compute"),
    ]
    assert tensors["x"].layout == "channels_last"  # 4-D input, channels_last on
    assert tensors["n"].layout == "contiguous"
    assert all(t.where == "device" for t in tensors.values())
    log.clear()
    _, again = model.upload_async(host)
    assert again == 4242  # the side stream is made once, at the first upload
    assert ("new_stream", "dev:cuda:1") not in log


def test_torch_upload_keeps_the_layout_without_channels_last() -> None:
    log: list[Any] = []
    model = cuda_torch_model(log, [])
    tensors, _ = model.upload_async({"x": np.zeros((1, 3, 2, 2), np.float32)})
    assert tensors["x"].layout == "contiguous"


# -- ONNX Runtime ------------------------------------------------------------------------------


def onnx_model(device: Device, made: list[Any]) -> OnnxModel:
    def from_numpy(array: np.ndarray, where: str, index: int) -> tuple[str, int, np.ndarray]:
        made.append((where, index))
        return (where, index, array)

    ort = SimpleNamespace(OrtValue=SimpleNamespace(ortvalue_from_numpy=from_numpy))
    return OnnxModel(
        session=None,
        ort=ort,  # type: ignore[arg-type]
        stream=None,
        stream_handle=None,
        device=device,
        options={},
        **{**SPECS, "path": Path("m.onnx")},
    )


def test_onnx_on_cuda_uploads_synchronously_into_ort_values() -> None:
    made: list[Any] = []
    model = onnx_model(Device("cuda", 2), made)
    assert model.supports_overlapped_upload is True
    assert model.supports_cuda_graphs is False
    model.release_cached_memory()
    calls, run = counter()
    assert model.measure_device_memory(run, 3) is None
    assert calls == []
    tensors, stream = model.upload_async({"x": np.ones((2, 3), np.float32)})
    assert stream == 0  # the copy is complete on return
    assert made == [("cuda", 2)]
    assert tensors["x"][:2] == ("cuda", 2)


def test_onnx_on_the_cpu_does_not_overlap() -> None:
    made: list[Any] = []
    model = onnx_model(Device("cpu"), made)
    assert model.supports_overlapped_upload is False
    host = {"x": np.ones((2, 3), np.float32)}
    tensors, stream = model.upload_async(host)
    assert stream == 0
    assert tensors["x"] is host["x"]
    assert made == []


# -- TensorFlow --------------------------------------------------------------------------------


def keras_model(device: Device, experimental: Any) -> KerasModel:
    tf = SimpleNamespace(config=SimpleNamespace(experimental=experimental))
    return KerasModel(
        object(),
        call_mode="direct",
        tf=tf,
        tf_device="/GPU:3" if device.is_cuda else "/CPU:0",
        format=ModelFormat.KERAS,
        device=device,
        options={},
        **SPECS,
    )


class FakeExperimental:
    def __init__(self, infos: list[dict[str, int]], fail: bool = False) -> None:
        self.infos = infos
        self.fail = fail
        self.log: list[Any] = []

    def reset_memory_stats(self, name: str) -> None:
        self.log.append(("reset", name))
        if self.fail:
            raise ValueError("no statistics for this device")

    def get_memory_info(self, name: str) -> dict[str, int]:
        self.log.append(("info", name))
        return self.infos.pop(0)


def test_tensorflow_on_gpu_measures_with_its_memory_info() -> None:
    experimental = FakeExperimental([{"current": 1000, "peak": 0}, {"current": 1200, "peak": 4000}])
    model = keras_model(Device("cuda", 3), experimental)
    calls, run = counter()
    reading = model.measure_device_memory(run, 6)
    assert calls == [1] * 6
    assert experimental.log == [("reset", "GPU:3"), ("info", "GPU:3"), ("info", "GPU:3")]
    assert reading == DeviceMemoryReading(
        activation_bytes=3000,
        allocated_bytes=None,
        reserved_bytes=None,
        framework_peak_bytes=4000,
        method="TensorFlow peak over its use before the calls, 6 calls",
    )
    assert model.supports_cuda_graphs is False
    assert model.supports_overlapped_upload is False


def test_tensorflow_without_statistics_still_runs_and_says_so() -> None:
    experimental = FakeExperimental([], fail=True)
    model = keras_model(Device("cuda", 3), experimental)
    calls, run = counter()
    reading = model.measure_device_memory(run, 2)
    assert calls == [1, 1]
    assert reading == DeviceMemoryReading(
        activation_bytes=None,
        allocated_bytes=None,
        reserved_bytes=None,
        framework_peak_bytes=None,
        method="unavailable: TensorFlow reports no GPU memory statistics",
    )


def test_tensorflow_on_the_cpu_keeps_no_statistics() -> None:
    experimental = FakeExperimental([])
    model = keras_model(Device("cpu"), experimental)
    calls, run = counter()
    assert model.measure_device_memory(run, 2) is None
    assert calls == []
    assert experimental.log == []


# -- a real GPU --------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not pyinfer.cuda_available(), reason="no CUDA device")
def test_torch_hooks_on_a_real_gpu() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from pyinfer.backends.torch import from_module

    model = from_module(torch.nn.Linear(3, 3), Device("cuda", 0), name="linear")
    host = {"input": np.arange(6, dtype=np.float32).reshape(2, 3)}
    tensors, stream = model.upload_async(host)
    assert stream != 0
    assert tensors["input"].device.type == "cuda"
    out = model.to_numpy(model.run_native(tensors))
    np.testing.assert_allclose(out["output"], model(host)["output"], rtol=1e-6)
    reading = model.measure_device_memory(lambda: model.run_native(tensors), 3)
    assert reading is not None
    assert reading.activation_bytes is not None
    assert reading.activation_bytes >= 0
    assert reading.method == "torch peak allocated over the post-load allocated, 3 calls"
    model.release_cached_memory()
