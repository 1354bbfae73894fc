"""Load tests: open-loop arrivals, requests kept in flight, batching, capacity, the report.

Targets are synthetic (``time.sleep`` releases the GIL, so the service time is what the test
sets); assertions are what is structurally true on a busy machine, with wide margins.
"""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pyinfer
from pyinfer.core import ArrivalScheduler, constant_arrivals, now_ns, poisson_arrivals
from pyinfer.errors import InvalidArgumentError
from pyinfer.load.runner import LevelSettings, run_concurrency
from pyinfer.load.targets import Server, make_servers
from pyinfer.report.load import LoadReport, load_table


class StallEvery:
    """Sleeps ``service_s`` per call, and ``stall_s`` instead on every ``every``-th call."""

    def __init__(self, service_s: float, stall_s: float = 0.0, every: int = 0) -> None:
        self.service_s, self.stall_s, self.every = service_s, stall_s, every
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        stall = self.every and self.calls % self.every == 0
        time.sleep(self.stall_s if stall else self.service_s)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("load") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


# ---- the native scheduler -----------------------------------------------------------------


def test_schedules_are_the_rate_asked_for() -> None:
    assert constant_arrivals(4.0, 3) == [0, 250_000_000, 500_000_000]
    gaps = np.diff(poisson_arrivals(1000.0, 20_001, 3)) * 1e-9
    assert poisson_arrivals(1000.0, 5, 3) == poisson_arrivals(1000.0, 5, 3)
    assert 0.97e-3 < gaps.mean() < 1.03e-3  # exponential gaps: mean 1 ms, std 1 ms
    assert 0.95e-3 < gaps.std() < 1.05e-3
    with pytest.raises(InvalidArgumentError, match=r"above 0 per second, got 0\.0"):
        constant_arrivals(0.0, 3)
    with pytest.raises(InvalidArgumentError, match="non-decreasing and >= 0; offset 2 is 4"):
        ArrivalScheduler([0, 5, 4])


def test_the_scheduler_hands_each_request_once_never_early() -> None:
    scheduler = ArrivalScheduler(constant_arrivals(2000.0, 50))
    start = now_ns() + 1_000_000
    taken: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        while (a := scheduler.next()) is not None:
            with lock:
                taken.append(a)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    scheduler.start(start)
    for t in threads:
        t.join()
    assert sorted(a[0] for a in taken) == list(range(50))
    assert all(s == start + i * 500_000 and issued >= s for i, s, issued in taken)
    assert scheduler.finished
    assert scheduler.issued == 50
    assert len(scheduler) == 50


def test_stop_wakes_a_waiting_worker() -> None:
    scheduler = ArrivalScheduler([0, 60_000_000_000])
    scheduler.start(now_ns())
    assert scheduler.next() is not None
    assert scheduler.next(now_ns() + 1_000_000) is None  # the deadline passed
    threading.Timer(0.05, scheduler.stop).start()
    began = time.monotonic()
    assert scheduler.next() is None
    assert time.monotonic() - began < 30
    assert scheduler.finished


# ---- open and closed loop -----------------------------------------------------------------


@pytest.mark.slow
def test_a_stall_is_charged_to_every_request_behind_it_only_in_open_loop() -> None:
    # 1 ms of service, 200 ms stall every 100th call. Open loop at 100 qps: the ~20 requests
    # arriving during each stall wait for it, so more than 1% of requests are late by over
    # 100 ms. Closed loop: only the stalled call itself is slow, 1% of calls at most.
    target = StallEvery(0.001, 0.2, 100)
    report = pyinfer.load_test(target, qps=100, duration_s=10.0, seed=1)
    (open_level,) = report.levels
    assert open_level.mode == "open"
    assert open_level.scheduled == 1000
    assert open_level.completed == 1000
    assert open_level.dropped == 0
    assert open_level.latency is not None
    assert open_level.queueing is not None
    assert open_level.latency.p99_ms >= 100.0
    assert open_level.queueing.p99_ms >= 90.0  # the latency is waiting, not service
    closed = pyinfer.load_test(target, concurrency=1, duration_s=1.5).levels[0]
    assert closed.mode == "concurrency"
    assert closed.latency is not None
    # At most 1% of the calls stall: P99 lies at the edge, so it is the ~1 ms calls or a 1%
    # step into the first stall (about 3 ms), plus a busy machine's noise; far below 100 ms.
    assert closed.latency.p99_ms < 50.0
    assert closed.latency.p50_ms < 5.0


def test_below_capacity_the_achieved_rate_is_the_offered_rate() -> None:
    level = pyinfer.load_test(
        StallEvery(0.001), qps=200, duration_s=5.0, arrival="constant"
    ).levels[0]
    assert level.scheduled == level.completed == 1000
    # 1,000 requests due from 0 to 4.995 s: every one served by 5 s (a busy machine may add
    # up to 100 ms at the end and stay within 2%).
    assert level.achieved_qps == pytest.approx(200, rel=0.02)
    assert level.achieved_qps <= 200.0
    assert 0.0 <= level.schedule_error_us["p50"] <= level.schedule_error_us["p99"]
    assert level.schedule_error_us["p99"] <= level.schedule_error_us["max"] * 1.001


def test_requests_past_the_timeout_are_dropped() -> None:
    # 50 ms of service offered 100 qps: one worker serves 20 per second; the rest wait past
    # the 120 ms timeout and are dropped without being run.
    target = StallEvery(0.05)
    level = pyinfer.load_test(
        target, qps=100, duration_s=1.0, arrival="constant", timeout_s=0.12
    ).levels[0]
    assert level.scheduled == 100
    assert level.completed + level.dropped == 100
    assert level.dropped >= 50
    assert target.calls < 50
    assert level.latency is not None
    assert level.latency.max_ms <= 120.0 * 1.001


def test_concurrency_keeps_n_requests_in_flight() -> None:
    report = pyinfer.load_test(StallEvery(0.01), concurrency=[1, 4], duration_s=1.0)
    one, four = report.levels
    assert (one.concurrency, four.concurrency) == (1, 4)
    assert four.achieved_qps > 2.5 * one.achieved_qps  # sleeping calls overlap
    assert one.queueing is not None
    assert one.queueing.max_ms == 0.0


def test_a_failing_call_is_counted_with_its_error() -> None:
    def broken() -> None:
        raise RuntimeError("no such tensor 'x'")

    level = pyinfer.load_test(broken, qps=100, duration_s=0.2, arrival="constant").levels[0]
    assert (level.errors, level.completed, level.latency) == (20, 0, None)
    assert level.mean_batch == 1.0
    assert level.first_error == "RuntimeError: no such tensor 'x'"


def test_ctrl_c_keeps_what_was_measured() -> None:
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt) as caught:
        pyinfer.load_test(StallEvery(0.001), qps=[100, 100], duration_s=5.0)
    partial = caught.value.partial_result  # type: ignore[attr-defined]
    assert isinstance(partial, LoadReport)
    (level,) = partial.levels
    assert level.interrupted
    assert 20 <= level.completed < 500
    assert level.scheduled < 500


# ---- models, instances and the dynamic batcher ------------------------------------------


def test_a_model_served_by_instances_and_a_batcher(tiny_onnx: Path) -> None:
    instances = [pyinfer.load_model(tiny_onnx, intra_op_threads=1) for _ in range(2)]
    report = pyinfer.load_test(
        instances, qps=400, duration_s=0.5, arrival="constant", max_batch=8,
        max_queue_delay_ms=20.0,
    )  # fmt: skip
    (level,) = report.levels
    assert report.target == str(tiny_onnx)
    assert level.workers == 2
    assert level.max_batch == 8
    assert level.completed == level.scheduled == 200
    # A worker waits up to 20 ms for more requests, 8 arrive in 20 ms: batches form.
    assert level.mean_batch > 2.0


class OneCallAtATime:
    """An instance whose call takes ``seconds`` whatever the batch, one call at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            time.sleep(self.seconds)


def test_concurrency_levels_go_through_the_batcher() -> None:
    # 8 requests in flight on one instance whose call costs 20 ms whatever its batch: alone,
    # each call serves one request (50 per second at most); batched, up to 8 per call.
    settings = LevelSettings(1.0, max_batch=8, max_queue_delay_ms=5.0)
    batched = run_concurrency([Server(OneCallAtATime(0.02), None)], 8, settings)
    single = run_concurrency(
        [Server(OneCallAtATime(0.02), None)], 8, LevelSettings(1.0, max_batch=1)
    )
    assert (batched.mode, batched.concurrency, batched.max_batch) == ("concurrency", 8, 8)
    assert batched.completed == batched.scheduled > 0
    assert batched.errors == batched.dropped == 0
    assert 2.0 < batched.mean_batch <= batched.largest_batch <= 8
    assert (single.mean_batch, single.largest_batch) == (1.0, 1)
    assert single.achieved_qps <= 55.0
    assert batched.achieved_qps > 2.0 * single.achieved_qps
    assert "Batch mean/max" in load_table([single, batched])
    assert "Batch mean/max" not in load_table([single])


def test_a_model_is_batched_at_a_concurrency_level(tiny_onnx: Path) -> None:
    model = pyinfer.load_model(tiny_onnx, intra_op_threads=1)
    report = pyinfer.load_test(
        model, concurrency=4, duration_s=0.3, max_batch=4, max_queue_delay_ms=20.0
    )
    (level,) = report.levels
    assert level.completed == level.scheduled > 0
    assert level.errors == 0
    assert 1.0 < level.mean_batch <= level.largest_batch <= 4
    assert LoadReport.from_json(report.to_json()) == report


def test_an_engine_is_served_with_its_batch_size(tiny_onnx: Path) -> None:
    model = pyinfer.load_model(tiny_onnx, intra_op_threads=1)
    engine = pyinfer.InferenceEngine(model, batch_size=3)
    (server,) = make_servers(engine, 1)
    assert server.model is model
    assert server.request_batch == 3
    call = server.prepare(2)  # two requests of the engine's batch: one call on 6 items
    assert call.func.__self__ is model  # type: ignore[attr-defined]
    assert call.args[0]["x"].shape == (6, 8)  # type: ignore[attr-defined]
    level = pyinfer.load_test(engine, qps=50, duration_s=0.2, arrival="constant").levels[0]
    assert level.completed == 10


def test_settings_and_targets_are_checked() -> None:
    fn = StallEvery(0.0)
    with pytest.raises(InvalidArgumentError, match=r"give a request rate \(qps=...\)"):
        pyinfer.load_test(fn)
    with pytest.raises(InvalidArgumentError, match="qps must be above 0, got -5"):
        pyinfer.load_test(fn, qps=[10, -5])
    with pytest.raises(InvalidArgumentError, match=r"arrival must be one of \('poisson', "):
        pyinfer.load_test(fn, qps=10, arrival="uniform")
    with pytest.raises(InvalidArgumentError, match="concurrency must be whole numbers"):
        pyinfer.load_test(fn, concurrency=1.5)
    with pytest.raises(InvalidArgumentError, match="dynamic batching needs a model target"):
        pyinfer.load_test(fn, qps=10, max_batch=4)
    with pytest.raises(InvalidArgumentError, match="workers=3 but 2 target instances"):
        pyinfer.load_test([fn, fn], qps=10, workers=3)
    with pytest.raises(InvalidArgumentError, match="not int"):
        pyinfer.load_test(42, qps=10)
    with pytest.raises(InvalidArgumentError, match="p99_budget_ms must be above 0, got 0"):
        pyinfer.find_capacity(fn, p99_budget_ms=0)


# ---- capacity ------------------------------------------------------------------------------


def test_the_capacity_search_brackets_bisects_and_confirms() -> None:
    # A short, coarse search: what it ran and what it concluded must agree.
    report = pyinfer.find_capacity(
        StallEvery(0.005), p99_budget_ms=200.0, duration_s=0.3, arrival="constant",
        start_qps=50.0, precision=0.2, confirmations=1, max_trials=12,
    )  # fmt: skip
    capacity = report.capacity
    assert capacity is not None
    assert report.levels == ()  # no estimate: the start rate was given
    offered = [t.offered_qps for t in capacity.trials]
    assert offered[0] == 50.0
    assert offered[1] == (75.0 if capacity.trials[0].within(200.0) else 25.0)
    at_capacity = [t for t in capacity.trials if t.offered_qps == capacity.capacity_qps]
    assert at_capacity
    assert all(t.within(200.0) for t in at_capacity)
    if capacity.failed_qps is not None:
        assert any(
            not t.within(200.0) for t in capacity.trials if t.offered_qps == capacity.failed_qps
        )
        assert capacity.failed_qps > capacity.capacity_qps
    assert len(capacity.trials) <= 12
    assert LoadReport.from_json(report.to_json()) == report
    fn = StallEvery(0.0)
    with pytest.raises(InvalidArgumentError, match=r"precision must be between 0 and 1, got 1\.5"):
        pyinfer.find_capacity(fn, p99_budget_ms=10, precision=1.5)
    with pytest.raises(InvalidArgumentError, match="confirmations must be 0 or more, got -1"):
        pyinfer.find_capacity(fn, p99_budget_ms=10, confirmations=-1)
    with pytest.raises(InvalidArgumentError, match="start_qps must be above 0, got 0"):
        pyinfer.find_capacity(fn, p99_budget_ms=10, start_qps=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_capacity_of_a_5ms_call_is_200_qps_per_worker(workers: int) -> None:
    # Constant arrivals: below the service rate no queue forms, above it the queue grows by
    # (rate - capacity) x 3 s, past the 200 ms budget within a few percent of capacity. The
    # budget is wide so that a busy machine's hiccups (tens of ms) do not decide the result.
    report = pyinfer.find_capacity(
        StallEvery(0.005), p99_budget_ms=200.0, duration_s=3.0, arrival="constant",
        workers=workers, precision=0.05, confirmations=1,
    )  # fmt: skip
    capacity = report.capacity
    assert capacity is not None
    assert capacity.capacity_qps == pytest.approx(200 * workers, rel=0.10)
    assert capacity.failed_qps is not None
    assert capacity.capacity_qps < capacity.failed_qps <= capacity.capacity_qps * 1.05 + 1e-9
    passing = [t for t in capacity.trials if t.offered_qps == capacity.capacity_qps]
    assert len(passing) >= 2  # confirmed once
    assert all(t.within(200.0) for t in passing)
    assert "capacity within P99 <= 200 ms" in capacity.describe()


# ---- the report ----------------------------------------------------------------------------


def test_the_report_round_trips_and_prints_its_table(tmp_path: Path) -> None:
    report = pyinfer.load_test(
        StallEvery(0.001), qps=50, concurrency=2, duration_s=0.4, arrival="constant"
    )
    again = LoadReport.from_json(report.to_json())
    assert again == report
    lines = report.to_table().splitlines()
    assert lines[0].split("│")[0].strip() == "Load"
    assert [line.split("│")[0].strip() for line in lines[2:]] == ["50 qps", "c=2"]
    assert lines[2].split("│")[8].strip() == "0/20"
    with pytest.raises(InvalidArgumentError, match="not a pyinfer load report"):
        LoadReport.from_dict({**report.to_dict(), "kind": "profile"})
    png = report.plot(tmp_path / "load.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
