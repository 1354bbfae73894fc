"""Concurrency: recorders under threads, engines in threads, one measurement per device."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.engine import InferenceEngine
from pyinfer.errors import MeasurementConflictError, PyinferError
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings, sweep_report
from pyinfer.profiling import device_lock as _device_lock

HANG_S = 60.0  # a generous bound on any join: only a deadlock reaches it


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Starts every target at once (a barrier), joins them, re-raises the first failure."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_S)
        assert not thread.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


# -- recorders ------------------------------------------------------------------------------


@pytest.mark.parametrize("histogram", [False, True])
def test_readers_see_consistent_recorders_while_writers_record(histogram: bool) -> None:
    recorder = pyinfer.LatencyRecorder(histogram=histogram)
    writers, per_writer, batch = 4, 6_000, 100
    values = [float(1000 * (i + 1)) for i in range(writers)]
    done = threading.Event()
    first_snapshot: list[np.ndarray] = []

    def write(index: int) -> Callable[[], None]:
        def work() -> None:
            value = values[index]
            for _ in range(per_writer // 2):
                recorder.record(value)
            for _ in range(per_writer // 2 // batch):
                recorder.record_many(np.full(batch, value))

        return work

    def read() -> None:
        reads, last = 0, 0
        while not done.is_set() or reads < 3:  # a few reads even when the writers were quick
            reads += 1
            count = recorder.count
            assert count >= last  # counts never go back
            last = count
            if count == 0:
                continue
            summary = recorder.summary((50.0,))
            assert summary.count >= count
            assert values[0] <= summary.min <= summary.max <= values[-1]
            if histogram:
                buckets = recorder.histogram_buckets()
                assert int(buckets[:, 2].sum()) >= summary.count
            else:
                samples = recorder.samples()
                assert samples.size >= summary.count
                assert set(np.unique(samples).tolist()) <= set(values)
                if not first_snapshot:
                    first_snapshot.extend([samples, samples.copy()])

    def writers_then_done() -> None:
        run_threads([write(i) for i in range(writers)])
        done.set()

    run_threads([writers_then_done, read, read])
    assert recorder.count == writers * per_writer
    summary = recorder.summary((50.0,))
    assert summary.count == writers * per_writer
    assert summary.mean == pytest.approx(np.mean(values), rel=1e-12)
    if histogram:
        assert recorder.histogram_buckets()[:, 2].tolist() == [per_writer] * writers
    else:
        counts = np.unique(recorder.samples(), return_counts=True)[1]
        assert counts.tolist() == [per_writer] * writers
        # The first snapshot a reader took never changed after, whatever was recorded since.
        np.testing.assert_array_equal(first_snapshot[0], first_snapshot[1])


def test_record_many_is_atomic_against_snapshots_and_clear() -> None:
    recorder = pyinfer.LatencyRecorder()
    batch, rounds = 64, 400
    done = threading.Event()
    checked = [0]

    def write() -> None:
        for k in range(rounds):
            recorder.record_many(np.full(batch, float(k)))
            if k % 50 == 49:
                recorder.clear()
        done.set()

    def read() -> None:
        while True:
            finished = done.is_set()
            samples = recorder.samples()
            # Whole batches only: a batch is recorded under one lock, and clear() never
            # reuses memory a snapshot reads.
            assert samples.size % batch == 0
            rows = samples.reshape(-1, batch)
            assert (rows == rows[:, :1]).all()
            checked[0] += 1
            if finished:
                return

    run_threads([write, read, read])
    assert recorder.count == 0  # the last round cleared it
    assert checked[0] > 0


def test_concurrent_merges_lose_nothing() -> None:
    exact = pyinfer.LatencyRecorder()
    histogram = pyinfer.LatencyRecorder(histogram=True)
    parts = [pyinfer.LatencyRecorder() for _ in range(6)]
    for i, part in enumerate(parts):
        part.record_many(np.full(5_000, float(100 * (i + 1))))

    def merge(part: pyinfer.LatencyRecorder) -> Callable[[], None]:
        def work() -> None:
            for _ in range(10):
                exact.merge(part)
                histogram.merge(part)

        return work

    run_threads([merge(p) for p in parts])
    assert exact.count == histogram.count == 6 * 10 * 5_000
    assert histogram.histogram_buckets()[:, 2].tolist() == [50_000] * 6
    assert np.unique(exact.samples(), return_counts=True)[1].tolist() == [50_000] * 6


def test_summaries_from_threads_equal_the_sequential_one() -> None:
    values = np.random.default_rng(7).exponential(1e6, 200_000)
    expected = pyinfer.summarize(values, (50.0, 99.0, 99.9)).to_dict()
    results: list[dict[str, Any]] = []

    def work() -> None:
        for _ in range(3):
            results.append(pyinfer.summarize(values, (50.0, 99.0, 99.9)).to_dict())

    run_threads([work] * 4)
    assert results == [expected] * 12


def test_timed_loops_in_threads_each_time_their_own_calls() -> None:
    calls = [0, 0, 0]
    recorders: dict[int, pyinfer.LatencyRecorder] = {}

    def loop(index: int) -> Callable[[], None]:
        def count() -> None:
            calls[index] += 1

        def work() -> None:
            recorders[index] = pyinfer.time_calls(count, 2_000, 100)

        return work

    run_threads([loop(i) for i in range(3)])
    assert calls == [2_100] * 3
    assert [recorders[i].count for i in range(3)] == [2_000] * 3


# -- engines in threads ---------------------------------------------------------------------


def torch_model(torch: ModuleType, seed: int) -> Model:
    from pyinfer.loading import PyTorchModelLoader

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 5),
    )
    return PyTorchModelLoader(input_shapes={"input": (None, 3, 12, 12)}).from_module(
        net, name=f"torch{seed}"
    )


def onnx_model(onnx: ModuleType, folder: Path, seed: int) -> Model:
    h, tp = onnx.helper, onnx.TensorProto
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3 * 12 * 12, 6)).astype(np.float32)
    graph = h.make_graph(
        [
            h.make_node("Flatten", ["input"], ["flat"]),
            h.make_node("MatMul", ["flat", "W"], ["xw"]),
            h.make_node("Relu", ["xw"], ["output"]),
        ],
        f"onnx{seed}",
        [h.make_tensor_value_info("input", tp.FLOAT, ["N", 3, 12, 12])],
        [h.make_tensor_value_info("output", tp.FLOAT, ["N", 6])],
        [onnx.numpy_helper.from_array(weights, "W")],
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 9
    path = folder / f"onnx{seed}.onnx"
    onnx.save_model(proto, str(path))
    return pyinfer.load_model(path, intra_op_threads=1)


def inputs(seed: int, n: int = 21) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 12, 12)).astype(np.float32)


def run_engine(model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A dataset run (worker threads), then predict_batch calls, on a fresh engine."""
    engine = InferenceEngine(model, batch_size=4, num_workers=2, progress=False)
    result = engine.run_dataset(x)
    assert not result.failures
    first = [next(iter(engine.predict_batch(x[i : i + 5]).values())) for i in (0, 5, 10)]
    return result.stacked(), np.concatenate(first), result.batch_sizes


def check_threads_match_sequential(models: list[Model], repeat: int = 2) -> None:
    jobs = [(m, inputs(10 + i)) for i, m in enumerate(models)] * repeat
    expected = [run_engine(m, x) for m, x in jobs]
    got: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}

    def job(i: int) -> Callable[[], None]:
        def work() -> None:
            got[i] = run_engine(*jobs[i])

        return work

    run_threads([job(i) for i in range(len(jobs))])
    for i, (stacked, batched, sizes) in enumerate(expected):
        np.testing.assert_array_equal(got[i][0], stacked)
        np.testing.assert_array_equal(got[i][1], batched)
        assert got[i][2] == sizes == [4, 4, 4, 4, 4, 1]


def test_torch_engines_sharing_one_model_in_threads_match_a_sequential_run(
    torch_module: ModuleType,
) -> None:
    check_threads_match_sequential([torch_model(torch_module, 0)], repeat=4)


def test_onnx_engines_sharing_one_session_in_threads_match_a_sequential_run(
    tmp_path: Path, onnx_module: ModuleType, onnxruntime_module: ModuleType
) -> None:
    check_threads_match_sequential([onnx_model(onnx_module, tmp_path, 0)], repeat=4)


def test_models_loaded_in_threads_at_once(
    tmp_path: Path, onnx_module: ModuleType, onnxruntime_module: ModuleType
) -> None:
    path = onnx_model(onnx_module, tmp_path, 3).path
    assert path is not None
    loaded: list[Model] = []

    def load() -> None:
        loaded.append(pyinfer.load_model(path, intra_op_threads=1))

    run_threads([load] * 4)
    x = inputs(3, 4)
    outputs = [m.to_numpy(m.run_native(m.to_native({"input": x})))["output"] for m in loaded]
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])


def test_engines_of_different_models_and_frameworks_in_threads(
    tmp_path: Path,
    torch_module: ModuleType,
    onnx_module: ModuleType,
    onnxruntime_module: ModuleType,
) -> None:
    models = [
        torch_model(torch_module, 1),
        torch_model(torch_module, 2),
        onnx_model(onnx_module, tmp_path, 1),
        onnx_model(onnx_module, tmp_path, 2),
    ]
    check_threads_match_sequential(models)


# -- one measurement per device -------------------------------------------------------------


class GateModel(Model):
    """y = 2x on the host; while ``hold`` is set, a call waits until ``release`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(
            name=name,
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", ("batch", 4), np.float32)],
            outputs=[TensorSpec("y", ("batch", 4), np.float32)],
            parameter_count=0,
            parameter_bytes=0,
        )
        self.hold = threading.Event()
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail: BaseException | None = None

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.hold.is_set():
            self.started.set()
            assert self.release.wait(HANG_S)
        if self.fail is not None:
            raise self.fail
        return {"y": inputs["x"] * 2}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


QUICK = ProfilerSettings(
    warmup_iterations=2,
    warmup_until_settled=False,
    min_iterations=10,
    min_time_s=0.0,
    max_iterations=50,
    max_time_s=0.2,
    throughput_time_s=0.02,
    memory_runs=1,
)


def hold_device(model: GateModel, measure: Callable[[], Any]) -> threading.Thread:
    """Runs ``measure`` in a thread and returns once it is inside a model call."""
    model.hold.set()
    thread = threading.Thread(target=measure, name="holder")
    thread.start()
    assert model.started.wait(HANG_S)
    return thread


def test_a_second_measurement_on_a_busy_device_is_refused() -> None:
    busy, other = GateModel("busy"), GateModel("other")
    thread = hold_device(busy, lambda: PerformanceProfiler(busy, QUICK).measure_latency())
    try:
        profiler = PerformanceProfiler(other, QUICK)
        for measure in (
            profiler.measure_latency,
            profiler.measure_throughput,
            profiler.measure_memory,
            lambda: profiler.sweep_batch_sizes([1, 2]),
            profiler.profile,
        ):
            with pytest.raises(MeasurementConflictError) as info:
                measure()
            assert isinstance(info.value, PyinferError)
            assert isinstance(info.value, RuntimeError)
        assert str(info.value) == (
            "cannot start profile of model 'other' on cpu: measure_latency of model 'busy' is "
            "running on cpu in thread 'holder'. Two measurements on one device distort each "
            "other: run them one after another (join the other thread first), or on "
            "different devices"
        )
        assert other.started.is_set() is False  # refused before running anything
        with _device_lock.measuring("cuda:0", "a measurement on another device"):
            pass  # another device does not conflict
    finally:
        busy.release.set()
        thread.join(HANG_S)
    report = PerformanceProfiler(other, QUICK).profile(batch_size=2)  # free again
    assert report.latency.batch_size == 2
    assert report.environment.concurrent_measurements == ()
    assert "Warning" not in report.to_text()


def test_nested_measurements_in_one_thread_are_one_claim() -> None:
    model = GateModel("nested")
    with _device_lock.measuring("cpu", "outer") as outer:
        assert _device_lock.held("cpu") is outer
        report = PerformanceProfiler(model, QUICK).profile(batch_sizes=[1, 2])
        assert _device_lock.held("cpu") is outer
    assert _device_lock.held("cpu") is None
    assert report.batch_curve is not None
    assert len(report.batch_curve.points) == 2


@pytest.mark.parametrize("failure", [RuntimeError("model broke"), KeyboardInterrupt()])
def test_the_device_is_released_after_a_failure(
    failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYINFER_LOCK_DIR", str(tmp_path))
    model = GateModel("failing")
    model.fail = failure
    caught: list[BaseException] = []

    def measure() -> None:
        try:
            PerformanceProfiler(model, QUICK).measure_latency()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=measure)
    thread.start()
    thread.join(HANG_S)
    assert type(caught[0]) is type(failure)
    assert _device_lock.held("cpu") is None
    assert list(tmp_path.iterdir()) == []  # the lock file went with the claim
    model.fail = None
    assert PerformanceProfiler(model, QUICK).measure_latency().iterations >= 10


HOLDER = """
import json, sys
from pyinfer.profiling import device_lock as _device_lock
with _device_lock.measuring(sys.argv[1], "measure_latency of model 'neighbour'") as claim:
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(claim.check()), flush=True)
"""


def start_holder(device: str, lock_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYINFER_LOCK_DIR": str(lock_dir)}
    env["PYTHONPATH"] = os.pathsep.join([*sys.path, env.get("PYTHONPATH", "")])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, device],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    return holder


def finish_holder(holder: subprocess.Popen[str]) -> list[str]:
    out, _ = holder.communicate("go\n", timeout=HANG_S)
    assert holder.returncode == 0
    return list(json.loads(out))


def test_another_process_measuring_on_the_device_is_noted_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PYINFER_LOCK_DIR", str(tmp_path))
    stale = tmp_path / "cpu.999999999.lock"  # a process that died holding it: no lock held
    stale.write_text('{"pid": 999999999, "what": "gone"}\n')
    holder = start_holder("cpu", tmp_path)
    elsewhere = start_holder("cuda:1", tmp_path)  # another device: no conflict
    try:
        model = GateModel("mine")
        profiler = PerformanceProfiler(model, QUICK)
        with caplog.at_level(logging.WARNING, logger="pyinfer.profiling.device_lock"):
            report = profiler.profile(batch_size=1, batch_sizes=[1, 2])
            curve = profiler.sweep_batch_sizes([1])
        line = (
            f"another pyinfer process (pid {holder.pid}, measure_latency of model 'neighbour') "
            "measured on cpu at the same time: the figures of both may be distorted"
        )
        assert report.environment.concurrent_measurements == (line,)
        assert f"  Warning: {line}" in report.to_text().splitlines()
        loaded = pyinfer.ProfileReport.from_json(report.to_json())
        assert loaded.environment.concurrent_measurements == (line,)
        assert sweep_report(profiler, curve).environment.concurrent_measurements == (line,)
        assert [r.getMessage() for r in caplog.records] == [  # each measurement warns once
            f"profile of model 'mine': {line}",
            f"sweep_batch_sizes of model 'mine': {line}",
        ]
        assert not stale.exists()
    finally:
        told = finish_holder(holder)
        assert finish_holder(elsewhere) == []
    assert told == [
        f"another pyinfer process (pid {os.getpid()}, profile of model 'mine') measured on "
        "cpu at the same time: the figures of both may be distorted"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_process_that_started_and_ended_during_a_measurement_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYINFER_LOCK_DIR", str(tmp_path))
    model = GateModel("long")
    profiler = PerformanceProfiler(model, QUICK)
    result: list[Any] = []
    thread = hold_device(model, lambda: result.append(profiler.measure_latency()))
    try:
        holder = start_holder("cpu", tmp_path)
        assert len(finish_holder(holder)) == 1  # it saw this process
    finally:
        model.hold.clear()
        model.release.set()
        thread.join(HANG_S)
    assert result
    assert profiler.concurrent_measurements == [
        f"another pyinfer process (pid {holder.pid}, measure_latency of model 'neighbour') "
        "measured on cpu at the same time: the figures of both may be distorted"
    ]


def test_keras_and_tflite_models_in_threads_match_a_sequential_run(
    tmp_path: Path, keras_module: ModuleType
) -> None:
    from pyinfer.export import export_keras

    keras = keras_module
    keras.utils.set_random_seed(3)
    net = keras.Sequential(
        [keras.Input((3, 12, 12)), keras.layers.Flatten(), keras.layers.Dense(6)]
    )
    models = [
        pyinfer.load_model(export_keras(net, tmp_path / "m.keras")),
        pyinfer.load_model(export_keras(net, tmp_path / "m.tflite", "tflite"), num_threads=1),
    ]
    check_threads_match_sequential(models, repeat=3)


def test_one_tflite_interpreter_called_from_threads_with_changing_batches(
    tmp_path: Path, keras_module: ModuleType
) -> None:
    from pyinfer.export import export_keras

    keras = keras_module
    keras.utils.set_random_seed(4)
    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = pyinfer.load_model(export_keras(net, tmp_path / "m.tflite", "tflite"), num_threads=1)
    name = model.input_names()[0]
    x = np.random.default_rng(5).standard_normal((7, 8)).astype(np.float32)
    expected = {n: next(iter(model.run_native({name: x[:n]}).values())) for n in range(1, 8)}

    def work(sizes: list[int]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(150):
                for n in sizes:  # each thread resizes the one interpreter to its own sizes
                    out = next(iter(model.run_native({name: x[:n]}).values()))
                    np.testing.assert_array_equal(out, expected[n])

        return run

    run_threads([work([1, 7]), work([2, 6]), work([3, 5]), work([4])])


def test_a_held_lock_file_with_a_damaged_header_is_still_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    monkeypatch.setenv("PYINFER_LOCK_DIR", str(tmp_path))
    other = tmp_path / "cpu.4242.lock"
    other.write_bytes(b"\xff not json\n")
    fd = os.open(other, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: conflicts like another process
        profiler = PerformanceProfiler(GateModel("probe"), QUICK)
        profiler.measure_latency()
        assert profiler.concurrent_measurements == [
            "another pyinfer process (pid 4242, a measurement) measured on cpu at the same "
            "time: the figures of both may be distorted"
        ]
        told = other.read_text(errors="replace").splitlines()[1:]
        assert [json.loads(line) for line in told] == [
            {"pid": os.getpid(), "what": "measure_latency of model 'probe'"}
        ]
    finally:
        os.close(fd)


def test_an_unusable_lock_dir_skips_the_cross_process_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PYINFER_LOCK_DIR", str(blocker / "locks"))
    profiler = PerformanceProfiler(GateModel("nowhere"), QUICK)
    with caplog.at_level(logging.DEBUG, logger="pyinfer.profiling.device_lock"):
        assert profiler.measure_latency().iterations >= 10
    assert profiler.concurrent_measurements == []
    first = caplog.records[0].getMessage()
    assert first.startswith(f"no cross-process measurement lock ({blocker / 'locks'}): ")
