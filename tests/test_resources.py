"""Resources: a memory limit (RLIMIT_AS) leads to back-off, not a crash; no file or thread leaks."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.engine import InferenceEngine
from pyinfer.errors import InferenceError, OutOfMemoryError, as_out_of_memory
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings

HANG_S = 30.0  # a generous bound for threads to end: only a leak reaches it

QUICK = ProfilerSettings(
    warmup_iterations=2,
    warmup_until_settled=False,
    min_iterations=10,
    min_time_s=0.0,
    max_iterations=30,
    max_time_s=0.2,
    throughput_time_s=0.02,
    memory_runs=1,
)


# -- out of memory, recognised from the real exceptions -------------------------------------


def test_torch_cpu_allocator_failure_is_out_of_memory(torch_module: ModuleType) -> None:
    with pytest.raises(RuntimeError) as info:
        torch_module.empty(2**58, dtype=torch_module.uint8)  # 256 PiB: refused by the kernel
    assert "DefaultCPUAllocator: can't allocate memory" in str(info.value)
    converted = as_out_of_memory(info.value)
    assert isinstance(converted, OutOfMemoryError)
    assert converted.__cause__ is info.value
    assert str(converted).startswith("RuntimeError: [enforce fail at alloc_cpu.cpp")


def test_numpy_memory_error_is_out_of_memory() -> None:
    with pytest.raises(MemoryError) as info:
        np.empty(2**58, dtype=np.uint8)
    converted = as_out_of_memory(info.value)
    assert isinstance(converted, OutOfMemoryError)
    assert str(converted).startswith("MemoryError: Unable to allocate 256. PiB")


# -- a memory limit smaller than a batch needs ----------------------------------------------

# Run in a child process, so the limit does not hurt the test process. The model, warmed up
# first (thread pools, allocator arenas), then the limit: the address space now plus a margin
# that a small batch fits in but a batch of 256 does not (a 1x1 convolution to 256 channels:
# 256 MiB per activation at batch 256, little arithmetic). The engine must back off and
# finish; its outputs must equal an unlimited run at the batch it backed off to, exactly (same
# batch, same kernels, same arithmetic).
LIMITED_RUN = r"""
import json, resource, sys
import numpy as np
framework = sys.argv[1]
margin = int(sys.argv[2]) << 20
if framework == "torch":
    from pyinfer.backends.frameworks import ensure_triton_safe
    ensure_triton_safe()
    import torch
    from pyinfer.loading import PyTorchModelLoader
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 256, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    model = PyTorchModelLoader(input_shapes={"input": (None, 3, 32, 32)}).from_module(net)
else:
    import pyinfer
    model = pyinfer.load_model(sys.argv[3], intra_op_threads=1)
from pyinfer.errors import OutOfMemoryError
from pyinfer.engine import InferenceEngine
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings

x = np.random.default_rng(0).standard_normal((256, 3, 32, 32)).astype(np.float32)
settings = ProfilerSettings(
    warmup_iterations=1, warmup_until_settled=False, min_iterations=3, min_time_s=0.0,
    max_iterations=3, max_time_s=1.0,
)
InferenceEngine(model, batch_size=8, num_workers=2, progress=False).run_dataset(x[:16])
PerformanceProfiler(model, settings).sweep_batch_sizes([8])

def vm_size():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm_size() + margin, hard))
out = {}
engine = InferenceEngine(model, batch_size=256, num_workers=2, progress=False)
result = engine.run_dataset(x)
out["batch_sizes"] = result.batch_sizes
out["oom_retries"] = result.oom_retries
out["failures"] = len(result.failures)
limited = result.stacked()
try:
    PerformanceProfiler(model, settings).measure_latency(256)
except OutOfMemoryError as exc:
    out["latency_256"] = type(exc).__name__
curve = PerformanceProfiler(model, settings).sweep_batch_sizes([8, 256, 512])
out["sweep"] = [[p.batch_size, p.ok, p.out_of_memory] for p in curve.points]
out["max_batch"] = InferenceEngine(model, progress=False).find_max_batch_size(
    256, example=x[0], retries=0
)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
backed_off = result.batch_sizes[0]
free = InferenceEngine(model, batch_size=backed_off, num_workers=0, progress=False)
unlimited = free.run_dataset(x).stacked()
out["equal"] = bool(np.array_equal(limited, unlimited))
small = InferenceEngine(model, batch_size=8, num_workers=0, progress=False).run_dataset(x)
out["max_diff_batch_8"] = float(np.abs(limited - small.stacked()).max())
print(json.dumps(out))
"""


def onnx_conv_net(onnx: ModuleType, path: Path) -> Path:
    h, tp = onnx.helper, onnx.TensorProto
    weights = np.random.default_rng(0).standard_normal((256, 3, 1, 1)).astype(np.float32)
    graph = h.make_graph(
        [
            h.make_node("Conv", ["input", "W"], ["conv"]),
            h.make_node("Relu", ["conv"], ["relu"]),
            h.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
            h.make_node("Flatten", ["pooled"], ["output"]),
        ],
        "conv_net",
        [h.make_tensor_value_info("input", tp.FLOAT, ["N", 3, 32, 32])],
        [h.make_tensor_value_info("output", tp.FLOAT, ["N", 256])],
        [onnx.numpy_helper.from_array(weights, "W")],
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 9
    onnx.save_model(proto, str(path))
    return path


def run_limited(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", LIMITED_RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def check_limited(out: dict[str, Any]) -> None:
    sizes = out["batch_sizes"]
    assert sum(sizes) == 256
    assert out["failures"] == 0
    assert 1 <= sizes[0] < 256  # backed off...
    assert sizes == [sizes[0]] * (256 // sizes[0])  # ...once, to one size for the whole run
    assert out["oom_retries"] == {128: 1, 64: 2, 32: 3, 16: 4, 8: 5}.get(sizes[0])
    assert out["equal"] is True
    assert out["max_diff_batch_8"] < 1e-4  # other batch sizes may pick other kernels
    assert out["latency_256"] == "OutOfMemoryError"
    assert out["sweep"] == [[8, True, False], [256, False, True]]  # 512 not tried
    assert sizes[0] <= out["max_batch"] < 256


@pytest.mark.slow
def test_torch_under_a_memory_limit_backs_off_and_finishes(torch_module: ModuleType) -> None:
    check_limited(run_limited("torch", "200"))


def test_onnxruntime_under_a_memory_limit_backs_off_and_finishes(
    tmp_path: Path, onnx_module: ModuleType, onnxruntime_module: ModuleType
) -> None:
    path = onnx_conv_net(onnx_module, tmp_path / "conv.onnx")
    check_limited(run_limited("onnx", "200", str(path)))


# -- the engine's worker threads -----------------------------------------------------------


class Doubler(Model):
    """y = 2x on the host; raises ``fail`` on the call numbered ``fail_at``."""

    def __init__(self) -> None:
        super().__init__(
            name="doubler",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", ("batch", 4), np.float32)],
            outputs=[TensorSpec("y", ("batch", 4), np.float32)],
            parameter_count=0,
            parameter_bytes=0,
        )
        self.calls = 0
        self.fail_at: int | None = None
        self.fail: BaseException = RuntimeError("model broke")

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.fail
        return {"y": inputs["x"] * 2}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


def prep_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pyinfer-prep")]


def wait_for_no_prep_threads() -> None:
    deadline = time.monotonic() + HANG_S
    while prep_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert prep_threads() == []


def test_worker_threads_are_gone_when_run_dataset_returns() -> None:
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    engine = InferenceEngine(Doubler(), batch_size=4, num_workers=3, progress=False)
    for _ in range(5):
        result = engine.run_dataset(x)
        assert prep_threads() == []  # joined, not just told to stop
        np.testing.assert_array_equal(result.stacked(), x * 2)
    streamed = list(engine.run_dataset(x, stream=True))
    assert len(streamed) == 100
    assert prep_threads() == []


@pytest.mark.parametrize("failure", [RuntimeError("model broke"), KeyboardInterrupt()])
def test_worker_threads_end_after_a_failure(failure: BaseException) -> None:
    model = Doubler()
    model.fail, model.fail_at = failure, 3
    engine = InferenceEngine(model, batch_size=4, num_workers=3, progress=False)
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    expected = InferenceError if isinstance(failure, RuntimeError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        engine.run_dataset(x)
    partial = info.value.partial_result  # type: ignore[union-attr]
    assert len(partial) == 8  # the two batches before the failure
    wait_for_no_prep_threads()


def test_a_worker_thread_that_cannot_start_means_preparing_in_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    start = threading.Thread.start
    started: list[str] = []

    def refuse_second(thread: threading.Thread) -> None:
        if thread.name.startswith("pyinfer-prep"):
            if started:
                raise RuntimeError("can't start new thread")
            started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_second)
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    engine = InferenceEngine(Doubler(), batch_size=4, num_workers=3, progress=False)
    with caplog.at_level(logging.WARNING, logger="pyinfer.engine"):
        result = engine.run_dataset(x)
    np.testing.assert_array_equal(result.stacked(), x * 2)
    assert result.batch_sizes == [4] * 25
    assert started == ["pyinfer-prep_0"]
    assert [r.getMessage() for r in caplog.records] == [
        "model 'doubler': cannot start a preprocessing thread (can't start new thread); "
        "preparing the remaining batches in the calling thread"
    ]
    assert prep_threads() == []


# -- no file handles or threads left behind -------------------------------------------------


def open_fds() -> list[str]:
    fds = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            fds.append(str(fd.readlink()))
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
    return sorted(fds)


def counts() -> tuple[int, int, int]:
    gc.collect()
    return len(open_fds()), threading.active_count(), len(list(Path("/proc/self/task").iterdir()))


def grown(before: tuple[int, int, int]) -> list[str]:
    """What grew since ``before``, waiting a little for threads that end asynchronously.

    Only growth counts: a thread another test left (ending meanwhile) may make a count drop.
    """
    names = ("open files", "Python threads", "native threads")
    deadline = time.monotonic() + HANG_S
    while True:
        now = counts()
        more = [f"{n}: {b} -> {a}" for n, b, a in zip(names, before, now, strict=True) if a > b]
        if not more or time.monotonic() > deadline:
            return more
        time.sleep(0.05)


def onnx_with_external_data(onnx: ModuleType, folder: Path) -> Path:
    h, tp = onnx.helper, onnx.TensorProto
    weights = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "W"], ["y"])],
        "external",
        [h.make_tensor_value_info("x", tp.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, ["N", 3])],
        [onnx.numpy_helper.from_array(weights, "W")],
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 9
    path = folder / "external.onnx"
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=True,
        location="external.onnx.data",
        size_threshold=0,
    )
    return path


@pytest.mark.slow
def test_repeated_runs_leave_no_files_or_threads_open(
    tmp_path: Path,
    onnx_module: ModuleType,
    onnxruntime_module: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pyinfer.cli import main

    path = onnx_with_external_data(onnx_module, tmp_path)
    x = np.random.default_rng(2).standard_normal((30, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)

    def one_run() -> None:
        model = pyinfer.load_model(path)
        engine = InferenceEngine(model, batch_size=4, num_workers=2, progress=False)
        assert len(engine.run_dataset(x)) == 30
        assert engine.predict_batch(x)["y"].shape == (30, 3)
        report = PerformanceProfiler(engine, QUICK).profile(batch_sizes=[1, 2])
        assert report.batch_curve is not None
        for argv in (
            ["info", str(path)],
            ["run", str(path), str(tmp_path / "x.npy"), "--no-progress"],
            [
                "profile", str(path), "--iterations", "10", "--warmup", "1",
                "--throughput-time", "0.02", "--no-memory", "--batch-sizes", "1,2", "--repeat", "1",
                "--json", str(tmp_path / "r.json"),
            ],
        ):  # fmt: skip
            assert main(argv) in (0, 3)  # 3: not stable, which 10 calls need not be
        capsys.readouterr()

    one_run()  # warm-up: runtime thread pools and caches are made once
    before = counts()
    for _ in range(20):
        one_run()
    assert grown(before) == [], open_fds()


@pytest.mark.slow
def test_model_files_are_closed_after_loading_and_may_be_replaced(
    tmp_path: Path,
    onnx_module: ModuleType,
    onnxruntime_module: ModuleType,
    torch_module: ModuleType,
) -> None:
    from pyinfer.export import export_torchscript

    torch = torch_module
    torch.manual_seed(0)
    paths = [
        onnx_with_external_data(onnx_module, tmp_path),
        export_torchscript(torch.nn.Linear(4, 3), tmp_path / "m.pt", torch.zeros(1, 4)),
    ]
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    pyinfer.load_model(paths[0])  # warm-up of each runtime
    pyinfer.load_model(paths[1])
    before = counts()
    models = [pyinfer.load_model(p) for p in paths * 25]
    assert not [f for f in open_fds() if str(tmp_path) in f]
    outputs = [InferenceEngine(m, progress=False).predict_batch(x) for m in models[:2]]
    for file in tmp_path.iterdir():  # overwrite in place, then delete
        file.write_bytes(b"\0" * 16)
        file.unlink()
    again = [InferenceEngine(m, progress=False).predict_batch(x) for m in models[:2]]
    for first, second in zip(outputs, again, strict=True):
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])
    del models, outputs, again
    assert grown(before) == []


@pytest.mark.slow
def test_keras_and_tflite_files_are_closed_after_loading_and_may_be_replaced(
    tmp_path: Path, keras_module: ModuleType
) -> None:
    from pyinfer.export import export_keras

    keras = keras_module
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    paths = [
        export_keras(net, tmp_path / "m.keras"),
        export_keras(net, tmp_path / "m.h5", "h5"),
        export_keras(net, tmp_path / "m.tflite", "tflite"),
    ]
    x = np.random.default_rng(4).standard_normal((5, 4)).astype(np.float32)
    for path in paths:
        pyinfer.load_model(path)  # warm-up
    before = counts()
    models: list[Model] = [pyinfer.load_model(p) for p in paths * 8]
    assert not [f for f in open_fds() if str(tmp_path) in f]
    outputs = [InferenceEngine(m, progress=False).predict_batch(x) for m in models[:3]]
    for path in paths:  # overwrite in place (a memory-mapped model would see this), delete
        path.write_bytes(b"\0" * 16)
        path.unlink()
    again = [InferenceEngine(m, progress=False).predict_batch(x) for m in models[:3]]
    for first, second in zip(outputs, again, strict=True):
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])
    del models, outputs, again
    assert [g for g in grown(before) if g.startswith("open files")] == []  # TF's pools vary


def test_a_failed_atomic_write_leaves_no_descriptor_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyinfer.report import write_atomic

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    write_atomic(tmp_path / "warm.txt", "x")
    before = open_fds()
    monkeypatch.setattr(os, "fchmod", refuse)
    for _ in range(10):
        with pytest.raises(PermissionError):
            write_atomic(tmp_path / "report.json", "{}")
    assert open_fds() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warm.txt"]


def test_memory_running_out_while_joining_outputs_is_out_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = Doubler()
    original = model.run_native

    def small_batches_only(inputs: Mapping[str, Any]) -> dict[str, Any]:
        if len(inputs["x"]) > 2:
            raise MemoryError("batch too large")
        return original(inputs)

    model.run_native = small_batches_only  # type: ignore[method-assign]
    engine = InferenceEngine(model, batch_size=8, num_workers=0, progress=False)
    x = np.arange(32, dtype=np.float32).reshape(8, 4)
    out = engine.predict_batch(x)  # backs off to 2 and joins four parts
    assert out.batch_sizes == [2, 2, 2, 2]
    np.testing.assert_array_equal(out["y"], x * 2)

    def no_memory(*args: Any, **kwargs: Any) -> np.ndarray:
        raise MemoryError("cannot join")

    monkeypatch.setattr(np, "concatenate", no_memory)
    with pytest.raises(OutOfMemoryError) as info:
        engine.predict_batch(x)
    assert str(info.value) == (
        "model 'doubler' on cpu ran out of memory on a batch of 8: MemoryError: cannot join"
    )
    with pytest.raises(OutOfMemoryError) as info:
        engine.run_dataset(x)
    assert info.value.partial_result is not None
