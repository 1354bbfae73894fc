"""The profiler: stopping rule and warm-up on synthetic streams, accuracy on a known workload,
the measurements on busy-wait models, and full profiles of tiny torch, ONNX Runtime and Keras
models. GPU paths are marked ``gpu``."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer.backends.base import Device, DeviceMemoryReading, Model, ModelFormat, TensorSpec
from pyinfer.backends.tensorflow import TensorFlowModel
from pyinfer.backends.torch import TorchModel
from pyinfer.errors import DeviceError, InvalidArgumentError, OutOfMemoryError
from pyinfer.profiling import MIN_THROUGHPUT_CALLS, PerformanceProfiler, ProfilerSettings
from pyinfer.profiling import stopping as _stopping
from pyinfer.profiling.stopping import StoppingRule, WarmupPolicy, collect, warm_up
from pyinfer.profiling.sweep import finish_curve as _finish_curve
from pyinfer.report import BatchCurve, BatchPoint, ProfileReport

# ---- synthetic sample streams with a fake clock -----------------------------------------------


class FakeStream:
    """A sample source over a fixed sequence (ns) whose clock advances by the samples it gives."""

    def __init__(self, values: Iterator[float]) -> None:
        self.values = values
        self.now_s = 0.0
        self.calls: list[int] = []

    def clock(self) -> float:
        return self.now_s

    def __call__(self, n: int) -> np.ndarray:
        self.calls.append(n)
        chunk = np.array([next(self.values) for _ in range(n)], dtype=np.float64)
        self.now_s += float(chunk.sum()) / 1e9
        return chunk


def stable_values(ms: float = 1.0, jitter: float = 0.001) -> Iterator[float]:
    i = 0
    while True:  # +-0.1% deterministic jitter
        yield ms * 1e6 * (1.0 + jitter * (1 if i % 2 else -1))
        i += 1


def noisy_values(seed: int = 1, sigma: float = 0.5) -> Iterator[float]:
    rng = np.random.default_rng(seed)
    while True:
        yield float(rng.lognormal(np.log(1e6), sigma))


def test_a_stable_stream_stops_exactly_at_the_minimum_count() -> None:
    stream = FakeStream(stable_values())
    rule = StoppingRule(min_iterations=100, min_time_s=0.01, stability_metric="cv")
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    assert run.samples_ns.size == 100
    assert run.decision.stable
    assert run.decision.reason.startswith("stable: cv 0.10% <= 1.00% target after 100 samples")
    assert run.elapsed_s == pytest.approx(0.1)
    assert run.decision.stability_value == pytest.approx(np.std(run.samples_ns, ddof=1) / 1e6)


def test_the_minimum_time_holds_the_run_until_it_has_passed() -> None:
    stream = FakeStream(stable_values())
    rule = StoppingRule(min_iterations=10, min_time_s=0.5)
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    # 1 ms per call: the chunks stop exactly where 0.5 s is reached.
    assert run.samples_ns.size == 500
    assert run.decision.stable
    assert max(stream.calls) <= round(_stopping.CHUNK_TIME_S / 1e-3)


def test_a_noisy_stream_runs_to_the_cap_and_is_flagged_unstable() -> None:
    stream = FakeStream(noisy_values())
    rule = StoppingRule(
        min_iterations=50,
        min_time_s=0.0,
        max_iterations=2000,
        max_time_s=100.0,
        stability_target=0.05,
        stability_metric="cv",
    )
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    assert run.samples_ns.size == 2000  # every sample kept
    assert not run.decision.stable
    assert "NOT stable: cv" in run.decision.reason
    assert "stopped at the iteration cap (2000) after 2000 samples" in run.decision.reason
    assert run.decision.stability_value > 0.4  # lognormal sigma 0.5: cv ~ 0.53


def test_the_time_cap_stops_a_noisy_run() -> None:
    stream = FakeStream(noisy_values(2))
    rule = StoppingRule(min_iterations=10, min_time_s=0.0, max_time_s=0.3, stability_metric="cv")
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    assert "time cap (0.3 s)" in run.decision.reason
    assert 0.3 <= run.elapsed_s < 0.3 + _stopping.CHUNK_TIME_S * 2
    assert not run.decision.stable


def test_the_median_interval_converges_on_a_noisy_stream() -> None:
    stream = FakeStream(noisy_values(3))
    rule = StoppingRule(
        min_iterations=20,
        min_time_s=0.0,
        max_iterations=100_000,
        max_time_s=1000.0,
        stability_target=0.05,
        stability_metric="median_ci",
    )
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    assert run.decision.stable
    assert run.decision.reason.startswith("stable: median 95% CI")
    # Half-width ~ 1.96 * sigma * sqrt(pi/2) / (2 sqrt(n)) for a lognormal: 5% needs ~150.
    assert 50 < run.samples_ns.size < 1000


def test_a_failing_source_keeps_its_partial_samples() -> None:
    values = stable_values()

    def source(n: int) -> np.ndarray:
        if source.taken >= 30:  # type: ignore[attr-defined]
            raise RuntimeError("device lost")
        source.taken += n  # type: ignore[attr-defined]
        return np.array([next(values) for _ in range(n)])

    source.taken = 0  # type: ignore[attr-defined]
    clock = iter(range(10_000)).__next__
    with pytest.raises(RuntimeError, match="device lost") as info:
        collect(source, StoppingRule(min_iterations=1000, min_time_s=0.0), lambda: clock() * 1e-3)
    partial = info.value.partial_samples_ns  # type: ignore[attr-defined]
    assert partial.size >= 30
    assert np.all(partial == pytest.approx(1e6, rel=1e-2))


def test_a_source_returning_the_wrong_count_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match=r"returned \(3,\) samples for 1 calls"):
        collect(lambda n: np.ones(3), StoppingRule(), lambda: 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_iterations": 0}, "min_iterations must be at least 1, got 0"),
        ({"min_iterations": 10, "max_iterations": 5}, "max_iterations (5) must be at least"),
        ({"min_time_s": 2.0, "max_time_s": 1.0}, "max_time_s (1.0) must be at least min_time_s"),
        ({"min_time_s": -1.0}, "min_time_s must be finite and >= 0"),
        ({"min_time_s": math.inf, "max_time_s": math.inf}, "min_time_s must be finite and >= 0"),
        ({"stability_target": 0.0}, "stability_target must be above 0"),
        ({"stability_metric": "iqr"}, "unknown stability_metric 'iqr'"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        StoppingRule(**kwargs)


def test_without_a_time_cap_the_count_bounds_the_run() -> None:
    stream = FakeStream(noisy_values())
    rule = StoppingRule(min_iterations=10, min_time_s=0.0, max_iterations=300, max_time_s=math.inf)
    run = collect(stream, rule, stream.clock, typical_ns=1e6)
    assert run.samples_ns.size == 300
    assert "iteration cap (300)" in run.decision.reason


def test_chunks_never_cross_a_boundary() -> None:
    rule = StoppingRule(min_iterations=100, min_time_s=1.0, max_iterations=1000, max_time_s=5.0)
    assert rule.chunk_size(0, 0.0, None) == 1  # nothing known yet: one call
    assert rule.chunk_size(0, 0.0, 1e6) == 100  # 0.1 s of 1 ms calls, = the minimum count
    assert rule.chunk_size(90, 0.09, 1e6) == 10  # up to the minimum count only
    assert rule.chunk_size(100, 0.95, 1e6) == 50  # then up to the minimum time only
    assert rule.chunk_size(990, 2.0, 1e6) == 10  # never past the count cap
    assert rule.chunk_size(500, 4.99, 1e6) == 10  # nor (by much) past the time cap
    assert rule.chunk_size(500, 2.0, 1e9) == 1  # one-second calls: one at a time


# ---- warm-up ----------------------------------------------------------------------------------


def transient_values() -> Iterator[float]:
    """10 ms decaying to 1 ms over ~40 calls, then 1 ms +- 0.1%."""
    i = 0
    while True:
        decay = 9.0 * np.exp(-i / 6.0)
        yield 1e6 * (1.0 + decay + 0.001 * (1 if i % 2 else -1))
        i += 1


def test_a_warmup_transient_is_detected_and_skipped() -> None:
    stream = FakeStream(transient_values())
    warm = warm_up(stream, WarmupPolicy(iterations=5, until_settled=True), stream.clock)
    assert warm.settled is True
    assert 40 <= warm.iterations <= 200  # windows grow to 50 calls (0.05 s) as it speeds up
    assert warm.samples_ns.max() > 5e6  # the transient was in the warm-up...
    run = collect(stream, StoppingRule(min_iterations=50, min_time_s=0.0), stream.clock)
    assert run.samples_ns.max() < 1.02e6  # ...and none of it in the measurement
    assert run.decision.stable


def test_without_settling_the_transient_stays_in_the_samples() -> None:
    stream = FakeStream(transient_values())
    warm = warm_up(stream, WarmupPolicy(iterations=5, until_settled=False), stream.clock)
    assert warm.settled is None
    assert warm.iterations == 5
    run = collect(
        stream, StoppingRule(min_iterations=50, min_time_s=0.0, stability_metric="cv"), stream.clock
    )
    assert run.samples_ns.max() > 2e6


def test_a_warmup_that_never_settles_stops_at_its_cap(caplog: pytest.LogCaptureFixture) -> None:
    def drifting() -> Iterator[float]:
        i = 0
        while True:  # 5% slower every call: no two windows agree
            yield 1e6 * 1.05**i
            i += 1

    stream = FakeStream(drifting())
    with caplog.at_level(logging.WARNING, logger="pyinfer.profiling.stopping"):
        warm = warm_up(
            stream, WarmupPolicy(iterations=0, until_settled=True, max_iterations=60), stream.clock
        )
    assert warm.settled is False
    assert warm.iterations == 60
    assert "warm-up did not settle within 60 calls" in caplog.text


def test_a_negative_warmup_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="warmup_iterations must be 0 or more, got -1"):
        ProfilerSettings(warmup_iterations=-1)


# ---- busy-wait models: known durations through the real profiler ------------------------------


def spin(ns: float) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


class SpinModel(Model):
    """Busy-waits ``base_ns + per_item_ns * batch`` per call; optional failures and allocations."""

    def __init__(
        self,
        base_ns: float = 2e6,
        per_item_ns: float = 0.0,
        *,
        shape: tuple[Any, ...] = ("batch", 4),
        oom_from_batch: int | None = None,
        fail_at_batch: int | None = None,
        allocate_bytes: int = 0,
        first_call_ns: float = 0.0,
    ) -> None:
        super().__init__(
            name="spin",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", shape)],
            outputs=[TensorSpec("y", shape)],
            parameter_count=10,
            parameter_bytes=40,
            options={"intra_op_threads": 1},
        )
        self.base_ns, self.per_item_ns = base_ns, per_item_ns
        self.oom_from_batch, self.fail_at_batch = oom_from_batch, fail_at_batch
        self.allocate_bytes, self.first_call_ns = allocate_bytes, first_call_ns
        self.calls = 0
        self.durations_ns: list[int] = []

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        start = time.perf_counter_ns()
        x = inputs["x"]
        batch = x.shape[0]
        if self.oom_from_batch is not None and batch >= self.oom_from_batch:
            raise RuntimeError(f"CUDA out of memory. Tried to allocate {batch} GiB")
        if self.fail_at_batch == batch:
            raise ValueError(f"bad batch {batch}")
        self.calls += 1
        if self.calls == 1 and self.first_call_ns:
            spin(self.first_call_ns)
        if self.allocate_bytes:
            scratch = np.ones(self.allocate_bytes, dtype=np.uint8)  # touched: resident
            x = x + float(scratch[-1]) - 1.0
        spin(self.base_ns + self.per_item_ns * batch)
        self.durations_ns.append(time.perf_counter_ns() - start)
        return {"y": x}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in outputs.items()}


FAST = ProfilerSettings(
    warmup_iterations=3,
    warmup_until_settled=False,
    min_iterations=20,
    min_time_s=0.02,
    max_iterations=400,
    max_time_s=0.3,
    throughput_time_s=0.05,
    memory_runs=2,
)


def fast(**changes: Any) -> ProfilerSettings:
    from dataclasses import replace

    return replace(FAST, **changes)


def test_a_known_workload_is_measured_within_2_percent_at_the_median() -> None:
    model = SpinModel(base_ns=2e6)
    settings = fast(min_iterations=40, min_time_s=0.1, max_time_s=1.0)
    latency = PerformanceProfiler(model, settings).measure_latency()
    n = latency.iterations
    assert n >= 40
    # The truth: each call's duration as the workload itself saw it, from inside the call. On a
    # quiet machine it is the 2 ms busy wait; on a loaded one the scheduler stretches some calls,
    # and the profiler must see exactly those stretched durations, not 2 ms.
    truth = np.array(model.durations_ns[-n:], dtype=np.float64)
    assert truth.min() >= 2e6
    assert latency.stats.median_ms == pytest.approx(np.median(truth) / 1e6, rel=0.02)
    assert latency.stats.min_ms >= 2.0  # a busy wait cannot end early
    # Call by call: the profiler's sample is the call's own duration plus the call overhead.
    samples = np.array(latency.samples_ns)
    assert np.all(samples >= truth)
    assert np.median(samples - truth) < 20_000  # microseconds of overhead, not milliseconds
    assert latency.timing_method.startswith("host timed loop")
    assert len(latency.samples_ns) == latency.stats.count


def test_an_engine_lends_its_model_and_batch_size() -> None:
    class Engine:
        def __init__(self, model: Model) -> None:
            self.model = model
            self.batch_size = 3

    profiler = PerformanceProfiler(Engine(SpinModel(base_ns=2e5)), FAST)
    latency = profiler.measure_latency()
    assert latency.batch_size == 3
    assert profiler.measure_latency(5).batch_size == 5


def test_something_without_a_model_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"needs a pyinfer Model .* not str"):
        PerformanceProfiler("resnet50.onnx")


def test_settings_are_checked_against_the_model() -> None:
    with pytest.raises(InvalidArgumentError, match="cuda_graphs needs a torch model on CUDA"):
        PerformanceProfiler(SpinModel(), fast(cuda_graphs=True))
    with pytest.raises(InvalidArgumentError, match="timing='cuda-events' needs a CUDA model"):
        PerformanceProfiler(SpinModel(), fast(timing="cuda-events"))
    with pytest.raises(InvalidArgumentError, match="unknown timing 'gpu'"):
        ProfilerSettings(timing="gpu")
    with pytest.raises(InvalidArgumentError, match="batch_size must be at least 1, got 0"):
        ProfilerSettings(batch_size=0)
    with pytest.raises(InvalidArgumentError, match="throughput_time_s must be above 0"):
        ProfilerSettings(throughput_time_s=0)
    with pytest.raises(InvalidArgumentError, match="memory_runs must be at least 1"):
        ProfilerSettings(memory_runs=0)
    with pytest.raises(InvalidArgumentError, match="batch_size must be at least 1, got 0"):
        PerformanceProfiler(SpinModel(), FAST).measure_latency(0)


def test_a_fixed_batch_model_runs_its_own_batch_and_refuses_others() -> None:
    model = SpinModel(base_ns=1e5, shape=(2, 4))
    profiler = PerformanceProfiler(model, FAST)
    assert profiler.measure_latency().batch_size == 2  # default batch 1 gives way
    with pytest.raises(InvalidArgumentError, match=r"fixed batch size of 2 \(input 'x' \(2, 4\)\)"):
        profiler.measure_latency(4)
    with pytest.raises(InvalidArgumentError, match="a batch sweep needs a dynamic batch"):
        profiler.sweep_batch_sizes([1, 2])


def test_throughput_counts_items_and_calls_over_the_wall_time() -> None:
    model = SpinModel(base_ns=1e6)
    tput = PerformanceProfiler(model, FAST).measure_throughput(2, duration_s=0.1)
    assert tput.calls >= MIN_THROUGHPUT_CALLS
    assert tput.items == 2 * tput.calls
    assert tput.fps == pytest.approx(tput.items / tput.wall_s)
    assert tput.rps == pytest.approx(tput.calls / tput.wall_s)
    # 1 ms per call of 2 items: at most 2000 items/s; well under it only on a loaded machine.
    assert 500 < tput.fps <= 2000 * 1.01
    assert tput.gpu_utilization.unavailable == "the model runs on the CPU"
    with pytest.raises(InvalidArgumentError, match="duration_s must be above 0"):
        PerformanceProfiler(model, FAST).measure_throughput(duration_s=-1)


def test_a_throughput_run_keeps_to_its_duration_when_calls_slow_down() -> None:
    class Slowing(SpinModel):
        def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
            self.base_ns = 1e5 if self.calls < 20 else 5e6  # the probe sees 0.1 ms calls
            return super().run_native(inputs)

    started = time.perf_counter()
    tput = PerformanceProfiler(Slowing(), FAST).measure_throughput(duration_s=0.1)
    assert time.perf_counter() - started < 1.0  # sized by the probe alone: 1000 x 5 ms = 5 s
    assert 0.1 <= tput.wall_s < 0.6
    assert tput.calls < 200


def test_a_throughput_run_after_a_latency_run_does_not_probe_again() -> None:
    model = SpinModel(base_ns=1e5)
    profiler = PerformanceProfiler(model, fast(warmup_iterations=50))
    profiler.measure_throughput(duration_s=0.02)
    cold_calls = model.calls
    # The first run: one first call, then the 50-call probe, then at least 5 timed calls.
    assert cold_calls >= 1 + 50 + MIN_THROUGHPUT_CALLS

    model = SpinModel(base_ns=1e5)
    profiler = PerformanceProfiler(model, fast(warmup_iterations=50))
    latency = profiler.measure_latency()
    before = model.calls
    tput = profiler.measure_throughput(duration_s=0.02)
    # Warm, and the latency run timed a call: the chunks start from that, with no 50-call probe
    # (one synchronised call precedes every measurement).
    assert model.calls - before == tput.calls + 1
    assert latency.iterations >= 20


def test_the_memory_pass_sees_what_a_call_allocates() -> None:
    model = SpinModel(base_ns=1e4, allocate_bytes=64 * 1024 * 1024)
    memory = PerformanceProfiler(model, FAST).measure_memory()
    assert memory.parameter_bytes == 40
    assert memory.peak_activation_bytes is not None
    assert memory.peak_activation_bytes >= 60 * 1024 * 1024
    assert memory.process_peak_rss_bytes is not None
    assert memory.process_peak_rss_bytes >= memory.peak_activation_bytes
    assert memory.runs == 2
    assert memory.total[0] == "Process Peak RSS"
    assert memory.activation_method.startswith("peak RSS over the pre-run RSS across 2 calls")
    with pytest.raises(InvalidArgumentError, match="runs must be at least 1, got 0"):
        PerformanceProfiler(model, FAST).measure_memory(runs=0)


def test_out_of_memory_is_one_error_type() -> None:
    profiler = PerformanceProfiler(SpinModel(oom_from_batch=1), FAST)
    for measure in (profiler.measure_latency, profiler.measure_throughput, profiler.measure_memory):
        with pytest.raises(OutOfMemoryError, match="CUDA out of memory"):
            measure()


def test_a_sweep_records_failures_and_stops_at_out_of_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = SpinModel(base_ns=1e5, per_item_ns=2e4, oom_from_batch=8, fail_at_batch=2)
    with caplog.at_level(logging.WARNING, logger="pyinfer.profiling.sweep"):
        curve = PerformanceProfiler(model, FAST).sweep_batch_sizes([16, 4, 1, 2, 8, 4])
    assert [p.batch_size for p in curve.points] == [1, 2, 4, 8]  # sorted, deduplicated, 16 never
    one, two, four, eight = curve.points
    assert one.ok
    assert four.ok
    assert two.error == "ValueError: bad batch 2"
    assert not two.out_of_memory
    assert eight.out_of_memory
    assert eight.error is not None
    assert eight.error.startswith("out of memory: RuntimeError: CUDA out of memory")
    assert four.latency_mean_ms is not None
    assert four.latency_mean_ms >= 0.18
    assert four.throughput_fps is not None
    assert four.throughput_fps <= 4 / 0.18e-3
    assert curve.knee_batch_size in {1, 4}
    assert curve.best_batch_size == 4
    assert "batch 8: out of memory; the sweep stops here" in caplog.text
    with pytest.raises(InvalidArgumentError, match="one or more sizes of at least 1"):
        PerformanceProfiler(model, FAST).sweep_batch_sizes([])
    with pytest.raises(InvalidArgumentError, match="latency_budget_ms must be above 0"):
        PerformanceProfiler(model, FAST).sweep_batch_sizes([1], latency_budget_ms=0)


def points(*rows: tuple[int, float, float]) -> list[BatchPoint]:
    return [
        BatchPoint(
            b,
            latency_mean_ms=p95 * 0.9,
            latency_median_ms=p95 * 0.9,
            latency_p95_ms=p95,
            throughput_fps=fps,
            stable=True,
        )
        for b, p95, fps in rows
    ]


def test_knee_and_best_batch_follow_their_rules() -> None:
    curve_points = points(
        (1, 4.5, 238),
        (2, 5.5, 392),
        (4, 8.0, 548),
        (8, 13.0, 678),
        (16, 22.0, 780),
        (32, 40.0, 837),
    )
    curve = _finish_curve(curve_points, None)
    assert curve.knee_batch_size == 16  # 780 >= 0.9 * 837 = 753.3; 678 is not
    assert curve.best_batch_size == 32
    assert curve.best_reason.startswith("batch 32: the highest throughput, 837.0 FPS")
    budget = _finish_curve(curve_points, 15.0)
    assert budget.best_batch_size == 8
    assert budget.best_reason == "batch 8: 678.0 FPS with P95 13.000 ms within the 15 ms budget"
    none = _finish_curve(curve_points, 4.0)
    assert none.best_batch_size is None
    assert none.best_reason == (
        "none: no batch size has P95 <= 4 ms (the lowest is 4.500 ms at batch 1)"
    )
    failed = _finish_curve([BatchPoint(1, error="x")], None)
    assert failed.knee_batch_size is None
    assert failed.best_reason == "no batch size was measured"


def test_profile_reports_everything_in_the_specification_layout() -> None:
    model = SpinModel(base_ns=5e5, first_call_ns=2e7)
    model.load_time_s = 0.25
    report = PerformanceProfiler(model, FAST).profile(batch_size=2, batch_sizes=[1, 2])
    assert report.cold_start.load_time_s == 0.25
    assert report.cold_start.first_inference_ms is not None
    assert report.cold_start.first_inference_ms >= 20.0  # the first call is timed alone
    assert report.latency.stats.min_ms >= 0.5  # and kept out of the latency
    assert report.input_shapes == {"x": (2, 4)}
    assert report.input_dtypes == {"x": "float32"}
    assert report.environment.model_options == {"intra_op_threads": 1}
    assert report.environment.threads["model.intra_op_threads"] == 1
    lines = report.to_text().splitlines()
    s = report.latency.stats
    assert lines[:8] == [
        "Profiling Results:",
        "==================",
        "Model: spin",
        f"Device: {report.device_name}",
        "Input Shape: (2, 4)",
        f"Iterations: {s.count} (3 warmup)",
        "",
        "Latency Statistics:",
    ]
    assert report.device_name.startswith("CPU (")
    assert lines[8] == f"  Mean:   {s.mean_ms:.2f} ms"
    assert "  Model Parameters: 0.0 MB" in lines
    assert any(line.startswith("  Process Peak RSS: ") for line in lines)
    assert f"Throughput: {report.throughput_fps:.1f} FPS" in lines
    assert report.batch_curve is not None
    assert len(report.batch_curve.points) == 2
    assert ProfileReport.from_json(report.to_json()) == report


def test_public_names_are_served_lazily() -> None:
    assert pyinfer.PerformanceProfiler is PerformanceProfiler
    assert pyinfer.ProfilerSettings is ProfilerSettings
    assert pyinfer.ProfileReport is ProfileReport


# ---- real tiny models -------------------------------------------------------------------------

REAL = fast(min_iterations=20, max_time_s=2.0, memory_runs=2)


def tiny_torch(torch: ModuleType) -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )


def check_real_report(report: ProfileReport, framework: str, batch: int) -> None:
    assert report.framework == framework
    assert report.batch_size == batch
    assert report.latency.stats.count >= 20
    assert 0 < report.latency.stats.min_ms <= report.latency.stats.median_ms
    assert report.memory is not None
    assert report.memory.peak_activation_bytes is not None
    assert report.memory.peak_activation_bytes >= 0
    assert report.throughput is not None
    assert report.throughput.fps > 0
    assert report.cold_start.load_time_s is not None
    assert report.cold_start.load_time_s > 0
    assert ProfileReport.from_json(report.to_json()) == report


def test_profile_a_tiny_torch_model(torch_module: ModuleType) -> None:
    model = pyinfer.PyTorchModelLoader(input_shapes=(None, 3, 16, 16)).from_module(
        tiny_torch(torch_module)
    )
    report = PerformanceProfiler(model, REAL).profile(batch_size=2)
    check_real_report(report, "torch", 2)
    assert report.memory is not None
    assert report.memory.parameter_bytes == (8 * 27 + 8 + 36) * 4
    assert report.environment.threads["torch_threads"] == torch_module.get_num_threads()
    assert report.label == "PyTorch (FP32)"


def test_profile_a_tiny_onnx_model(
    torch_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    from pyinfer.export import export_onnx

    export_onnx(
        tiny_torch(torch_module),
        tmp_path / "tiny.onnx",
        torch_module.randn(1, 3, 16, 16),
        dynamo=False,
    )
    model = pyinfer.load_model(tmp_path / "tiny.onnx")
    report = PerformanceProfiler(model, REAL).profile(batch_size=4, batch_sizes=[1, 4])
    check_real_report(report, "onnxruntime", 4)
    assert report.label == "ONNX (FP32)"
    assert report.batch_curve is not None
    assert [p.batch_size for p in report.batch_curve.measured] == [1, 4]


def test_profile_a_tiny_keras_model(keras_module: ModuleType, tmp_path: Path) -> None:
    from pyinfer.export import export_keras

    keras = keras_module
    net = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    path = export_keras(net, tmp_path / "tiny.keras")
    model = pyinfer.load_model(path)
    report = PerformanceProfiler(model, REAL).profile(batch_size=3)
    check_real_report(report, "tensorflow", 3)
    assert report.memory is not None
    assert report.memory.parameter_bytes == (8 * 16 + 16 + 34) * 4


def test_profile_through_an_inference_engine(torch_module: ModuleType) -> None:
    """The engine is duck-typed: its model is profiled at the engine's batch size."""
    model = pyinfer.PyTorchModelLoader(input_shapes=(None, 3, 16, 16)).from_module(
        tiny_torch(torch_module)
    )
    engine = pyinfer.InferenceEngine(model, batch_size=3, progress=False)
    profiler = PerformanceProfiler(engine, REAL)
    assert profiler.model is model
    report = profiler.profile()
    check_real_report(report, "torch", 3)
    assert list(report.input_shapes.values()) == [(3, 3, 16, 16)]
    # What the engine returns for those inputs is what the profiled call computes.
    x = model.example_inputs(3, seed=0)
    np.testing.assert_array_equal(
        engine.predict_batch(x)[model.output_names()[0]], model(x)[model.output_names()[0]]
    )


# ---- GPU (pytest -m gpu) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cuda_torch() -> ModuleType:
    if not pyinfer.cuda_available():
        pytest.skip(f"CUDA is unavailable: {pyinfer.cuda_unavailable_reason()}")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def sleeper(torch: ModuleType, cycles: int) -> Any:
    class Sleep(torch.nn.Module):  # type: ignore[name-defined,misc]
        def forward(self, x: Any) -> Any:
            torch.cuda._sleep(cycles)
            return x * 2

    return Sleep()


@pytest.mark.gpu
def test_cuda_events_time_the_gpu_work_not_the_launch(cuda_torch: ModuleType) -> None:
    torch = cuda_torch
    model = pyinfer.PyTorchModelLoader(input_shapes=(None, 8)).from_module(
        sleeper(torch, 2_000_000), device="cuda"
    )
    report = PerformanceProfiler(model, fast(min_time_s=0.1, max_time_s=2.0)).profile()
    lat = report.latency
    assert lat.timing_method.startswith("CUDA events")
    assert lat.host_mean_ms is not None
    assert lat.host_mean_ms >= lat.stats.median_ms * 0.9
    assert lat.stats.median_ms > 0.1  # ~2M cycles: about a millisecond on any recent GPU
    assert report.memory is not None
    assert report.memory.gpu_reserved_bytes is not None
    assert report.memory.device_used_bytes is not None
    assert report.device_name.startswith("CUDA (")
    assert report.environment.gpu_name
    assert report.environment.gpu_driver
    util = report.throughput.gpu_utilization if report.throughput else None
    assert util is not None
    assert util.samples > 0 or util.unavailable


@pytest.mark.gpu
def test_cuda_graphs_replay_the_same_work(cuda_torch: ModuleType) -> None:
    torch = cuda_torch
    net = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(20)])
    model = pyinfer.PyTorchModelLoader(input_shapes=(None, 64)).from_module(net, device="cuda")
    eager = PerformanceProfiler(model, fast(max_time_s=1.0)).measure_latency(1)
    graphs = PerformanceProfiler(model, fast(max_time_s=1.0, cuda_graphs=True)).measure_latency(1)
    assert graphs.timing_method.startswith("CUDA graph replay")
    # Replay removes the 20 launches' host overhead; the GPU time cannot grow much.
    assert graphs.stats.median_ms <= eager.stats.median_ms * 1.2


@pytest.mark.gpu
def test_host_timing_on_cuda_synchronises_each_call(cuda_torch: ModuleType) -> None:
    torch = cuda_torch
    model = pyinfer.PyTorchModelLoader(input_shapes=(None, 8)).from_module(
        sleeper(torch, 2_000_000), device="cuda"
    )
    events = PerformanceProfiler(model, fast(max_time_s=1.0)).measure_latency()
    host = PerformanceProfiler(model, fast(max_time_s=1.0, timing="host")).measure_latency()
    assert host.timing_method.startswith("host clock, synchronising after each call")
    assert host.stats.median_ms == pytest.approx(events.stats.median_ms, rel=0.2)


def test_graph_capture_failure_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The capture path's error handling, driven with a stand-in torch (no GPU needed)."""
    import sys

    class FakeCuda:
        Stream = staticmethod(lambda device: (_ for _ in ()).throw(RuntimeError("no stream")))

    class FakeTorch:
        cuda = FakeCuda
        device = staticmethod(lambda name: name)

    monkeypatch.setitem(sys.modules, "torch", FakeTorch)
    model = SpinModel(base_ns=1e4)
    profiler = PerformanceProfiler(model, FAST)
    prep = profiler._prepare(1)
    with pytest.raises(DeviceError, match="capturing model 'spin' into a CUDA graph failed"):
        profiler._capture_graph(prep)


# ---- the CUDA paths on stand-ins (run everywhere; the real GPU tests are above) ---------------
#
# These drive the profiler's CUDA orchestration with stand-ins for the event timer, NVML, torch's
# allocator statistics and TensorFlow's memory info, so that what the profiler does with their
# answers is checked exactly on any machine. What real drivers answer is checked by the `gpu`
# tests and scripts/gpu_check.sh.


class FakeEventTimer:
    """Stands in for pyinfer.CudaEventTimer: each call "takes" 0.5 ms of GPU time."""

    made: list[tuple[int, int]] = []  # noqa: RUF012 - shared on purpose, reset per test

    def __init__(self, stream: int, device: int) -> None:
        FakeEventTimer.made.append((stream, device))

    def time_calls(self, fn: Any, iterations: int, warmup: int = 0) -> tuple[np.ndarray, Any]:
        for _ in range(iterations):
            fn()
        return np.full(iterations, 0.5), None


class FakeNvml(ModuleType):
    def __init__(self, used: list[int], util: float = 87.0, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.used, self.util, self.fail_init = used, util, fail_init
        self.handles: list[int] = []
        self.open = 0

    def nvmlInit(self) -> None:  # noqa: N802 - NVML's names
        if self.fail_init:
            raise RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED")
        self.open += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.open -= 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        self.handles.append(index)
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:  # noqa: N802
        return type("Rates", (), {"gpu": self.util})()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:  # noqa: N802
        used = self.used.pop(0) if len(self.used) > 1 else self.used[0]
        return type("Info", (), {"used": used, "total": 80 * MB_})()


MB_ = 1024 * 1024


class FakeCudaModel(SpinModel):
    def __init__(self, framework: str, stream: int | None = 77, **kwargs: Any) -> None:
        super().__init__(base_ns=1e4, **kwargs)
        self.framework = framework
        self.device = Device("cuda", 1)
        self._stream = stream
        self.syncs = 0

    @property
    def stream_handle(self) -> int | None:
        return self._stream

    def synchronize(self) -> None:
        self.syncs += 1

    # The hooks a torch or TensorFlow model answers, taken from TorchModel and TensorFlowModel
    # and run on the stand-in framework module the test installs in sys.modules.

    @property
    def _torch(self) -> Any:
        return sys.modules["torch"]

    @property
    def _torch_device(self) -> Any:
        return self._torch.device(str(self.device))

    @property
    def _tf(self) -> Any:
        return sys.modules["tensorflow"]

    @property
    def supports_cuda_graphs(self) -> bool:
        return self.framework == "torch"

    def release_cached_memory(self) -> None:
        if self.framework == "torch":
            TorchModel.release_cached_memory(self)  # type: ignore[arg-type]

    def measure_device_memory(self, run: Any, runs: int) -> DeviceMemoryReading | None:
        hook = {"torch": TorchModel, "tensorflow": TensorFlowModel}.get(self.framework, Model)
        return hook.measure_device_memory(self, run, runs)  # type: ignore[arg-type]


def fake_torch(model: FakeCudaModel) -> ModuleType:
    torch = ModuleType("torch")
    stats = {"allocated": 100 * MB_, "peak": 100 * MB_, "emptied": 0}

    class Cuda:
        @staticmethod
        def memory_allocated(device: str) -> int:
            return stats["allocated"]

        @staticmethod
        def reset_peak_memory_stats(device: str) -> None:
            stats["peak"] = stats["allocated"]

        @staticmethod
        def max_memory_allocated(device: str) -> int:
            return stats["allocated"] + 30 * MB_  # the calls peaked 30 MB above

        @staticmethod
        def memory_reserved(device: str) -> int:
            return 160 * MB_

        @staticmethod
        def empty_cache() -> None:
            stats["emptied"] += 1

    torch.cuda = Cuda  # type: ignore[attr-defined]
    torch.device = lambda name: name  # type: ignore[attr-defined]
    torch.stats = stats  # type: ignore[attr-defined]
    return torch


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    from pyinfer import core as _core

    FakeEventTimer.made = []
    monkeypatch.setattr(_core, "CudaEventTimer", FakeEventTimer)
    monkeypatch.setattr(_core, "cuda_device_name", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(_core, "cuda_driver_version", lambda: 13000)
    monkeypatch.setattr(_core, "cuda_device_total_memory", lambda index: 80 * MB_)
    nvml = FakeNvml(used=[500 * MB_, 540 * MB_])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return nvml


def test_torch_on_cuda_times_with_events_and_reads_its_allocator(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FakeCudaModel("torch")
    torch = fake_torch(model)
    monkeypatch.setitem(sys.modules, "torch", torch)
    report = PerformanceProfiler(model, FAST).profile()
    lat = report.latency
    assert FakeEventTimer.made[0] == (77, 1)  # the model's stream, the model's device
    assert lat.stats.median_ms == 0.5  # GPU times, not host times
    assert lat.timing_method == "CUDA events on the model's stream, one synchronisation per chunk"
    assert lat.host_mean_ms is not None
    assert lat.host_mean_ms > 0
    memory = report.memory
    assert memory is not None
    assert memory.peak_activation_bytes == 30 * MB_
    assert memory.gpu_allocated_bytes == 100 * MB_
    assert memory.gpu_reserved_bytes == 160 * MB_
    assert memory.device_total_bytes == 80 * MB_
    assert memory.total == ("Total GPU", 160 * MB_)
    assert report.throughput is not None
    util = report.throughput.gpu_utilization
    assert (util.mean_percent, util.max_percent) == (87.0, 87.0)
    assert util.samples >= 1
    assert fake_gpu.open == 0  # every nvmlInit was shut down
    assert report.device_name == "CUDA (Fake GPU 1)"
    assert (report.environment.gpu_name, report.environment.gpu_driver) == ("Fake GPU 1", "13.0")
    assert "  Total GPU:        160.0 MB" in report.to_text().splitlines()


def test_onnxruntime_on_cuda_measures_the_growth_of_device_memory(fake_gpu: FakeNvml) -> None:
    report = PerformanceProfiler(FakeCudaModel("onnxruntime"), FAST).profile(throughput=False)
    assert report.memory is not None
    assert report.memory.peak_activation_bytes == 40 * MB_  # 540 MB after, 500 MB before
    assert report.memory.activation_method.startswith("growth of device-wide used memory")
    assert report.memory.total == ("Total GPU", 540 * MB_)


def test_tensorflow_on_cuda_is_timed_on_the_host_and_reads_its_own_peak(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf = ModuleType("tensorflow")
    calls: list[str] = []

    class Experimental:
        @staticmethod
        def reset_memory_stats(name: str) -> None:
            calls.append(name)

        @staticmethod
        def get_memory_info(name: str) -> dict[str, int]:
            return {"current": 10 * MB_, "peak": 25 * MB_}

    tf.config = type("Config", (), {"experimental": Experimental})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    model = FakeCudaModel("tensorflow", stream=None)
    report = PerformanceProfiler(model, FAST).profile(throughput=False)
    assert report.latency.timing_method.startswith("host clock, synchronising after each call")
    assert not FakeEventTimer.made
    assert model.syncs >= report.latency.stats.count  # one synchronisation per timed call
    assert report.memory is not None
    assert calls == ["GPU:1"]
    assert report.memory.tf_peak_bytes == 25 * MB_
    assert report.memory.peak_activation_bytes == 15 * MB_

    def broken(name: str) -> None:
        raise ValueError("memory stats are not supported")

    monkeypatch.setattr(Experimental, "reset_memory_stats", broken)
    memory = PerformanceProfiler(model, FAST).measure_memory()
    assert memory.peak_activation_bytes is None
    assert memory.activation_method.startswith("unavailable: TensorFlow reports no GPU memory")
    with pytest.raises(InvalidArgumentError, match="exposing one; use timing='host'"):
        PerformanceProfiler(model, fast(timing="cuda-events"))


def test_without_nvml_utilisation_is_unavailable_and_memory_comes_from_the_driver(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyinfer import core as _core

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(_core, "cuda_mem_get_info", lambda index: (30 * MB_, 80 * MB_))
    prof = PerformanceProfiler(FakeCudaModel("onnxruntime"), FAST)
    tput = prof.measure_throughput(duration_s=0.01)
    assert tput.gpu_utilization.unavailable == (
        'pynvml is not installed (pip install "pyinfer-toolkit[gpu]")'
    )
    assert tput.gpu_utilization.text().startswith("unavailable: pynvml is not installed")
    memory = prof.measure_memory()
    assert (memory.device_used_bytes, memory.device_total_bytes) == (50 * MB_, 80 * MB_)

    def no_driver(index: int) -> tuple[int, int]:
        raise pyinfer.CudaUnavailableError("libcuda.so.1 not found")

    monkeypatch.setattr(_core, "cuda_mem_get_info", no_driver)
    memory = prof.measure_memory()
    assert memory.device_used_bytes is None
    assert memory.peak_activation_bytes is None


def test_an_nvml_failure_costs_the_figure_not_the_run(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gpu.fail_init = True
    tput = PerformanceProfiler(FakeCudaModel("onnxruntime"), FAST).measure_throughput(
        duration_s=0.01
    )
    assert tput.gpu_utilization.unavailable == "NVML failed: NVML_ERROR_DRIVER_NOT_LOADED"
    fake_gpu.fail_init = False

    def broken(handle: int) -> Any:
        raise RuntimeError("GPU is lost")

    monkeypatch.setattr(fake_gpu, "nvmlDeviceGetUtilizationRates", broken)
    tput = PerformanceProfiler(FakeCudaModel("onnxruntime"), FAST).measure_throughput(
        duration_s=0.01
    )
    assert tput.gpu_utilization.unavailable == "NVML failed: GPU is lost"
    assert tput.calls >= MIN_THROUGHPUT_CALLS


def test_nvml_counts_the_gpus_cuda_visible_devices_hides(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,2")
    PerformanceProfiler(FakeCudaModel("onnxruntime"), FAST).measure_throughput(duration_s=0.01)
    # cuda:1 is the machine's GPU 2: the utilisation sampler's and the energy meter's handle
    assert fake_gpu.handles == [2, 2]


def test_cuda_graphs_capture_once_and_time_the_replay(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FakeCudaModel("torch")
    torch = fake_torch(model)
    events: list[str] = []

    class Stream:
        def __init__(self, device: str) -> None:
            events.append(f"stream {device}")

        def wait_stream(self, other: Any) -> None:
            events.append("wait")

    class Context:
        def __init__(self, *args: Any) -> None:
            pass

        def __enter__(self) -> None:
            events.append("enter")

        def __exit__(self, *exc: object) -> None:
            events.append("exit")

    class Graph:
        replays = 0

        def replay(self) -> None:
            Graph.replays += 1

    torch.cuda.Stream = Stream  # type: ignore[attr-defined]
    torch.cuda.current_stream = Stream  # type: ignore[attr-defined]
    torch.cuda.stream = Context  # type: ignore[attr-defined]
    torch.cuda.graph = Context  # type: ignore[attr-defined]
    torch.cuda.CUDAGraph = Graph  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    profiler = PerformanceProfiler(model, fast(cuda_graphs=True))
    latency = profiler.measure_latency()
    assert latency.timing_method.startswith("CUDA graph replay timed with CUDA events")
    assert Graph.replays >= latency.stats.count  # the timed calls are replays
    calls_after_capture = model.calls
    assert calls_after_capture == 1 + 3 + 1  # first inference, 3 side-stream calls, capture
    profiler.measure_throughput(duration_s=0.01)
    assert model.calls == calls_after_capture  # the graph is reused, not captured again


def test_a_cuda_sweep_frees_the_cache_after_running_out_of_memory(
    fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FakeCudaModel("torch", oom_from_batch=2)
    torch = fake_torch(model)
    monkeypatch.setitem(sys.modules, "torch", torch)
    curve = PerformanceProfiler(model, FAST).sweep_batch_sizes([1, 2, 4])
    assert [p.out_of_memory for p in curve.points] == [False, True]
    assert torch.stats["emptied"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 2.5}, "batch_size must be an integer, got 2.5"),
        ({"batch_size": True}, "batch_size must be an integer, got True"),
        ({"seed": -1}, "seed must be an integer of 0 or more, got -1"),
        ({"input_dims": {"seq": 0}}, "input_dims must map dimension names to sizes of at least"),
        ({"input_dims": {"seq": "8"}}, "sizes of at least 1, got 'seq': '8'"),
        ({"throughput_time_s": math.inf}, "throughput_time_s must be above 0 and finite"),
        ({"min_iterations": 10.5}, "min_iterations must be an integer, got 10.5"),
        ({"warmup_iterations": 2.5}, "warmup_iterations must be an integer, got 2.5"),
        ({"memory_runs": True}, "memory_runs must be an integer, got True"),
        ({"max_time_s": "5"}, "max_time_s must be a number, got '5'"),
        ({"stability_target": None}, "stability_target must be a number, got None"),
    ],
)
def test_settings_that_would_measure_something_else_or_never_end_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        fast(**changes)


def test_batch_sizes_are_plain_integers_and_numpy_ones_are_accepted() -> None:
    profiler = PerformanceProfiler(SpinModel(base_ns=1e4), FAST)
    assert fast(batch_size=np.int64(2)).batch_size == 2
    assert type(fast(batch_size=np.int64(2)).batch_size) is int
    latency = profiler.measure_latency(np.int64(3))  # type: ignore[arg-type]
    assert type(latency.batch_size) is int  # a report of it must serialise to JSON
    with pytest.raises(InvalidArgumentError, match=r"batch_size must be an integer, got 2\.0"):
        profiler.measure_latency(2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"each of batch_sizes must be an integer"):
        profiler.sweep_batch_sizes([1, 1.5])  # type: ignore[list-item]
    curve = profiler.sweep_batch_sizes(b for b in (2, 1))  # type: ignore[arg-type]
    assert [p.batch_size for p in curve.points] == [1, 2]


def test_profile_checks_its_sweep_before_measuring_anything() -> None:
    model = SpinModel(base_ns=1e4, shape=(2, 4))
    with pytest.raises(InvalidArgumentError, match="a batch sweep needs a dynamic batch"):
        PerformanceProfiler(model, FAST).profile(batch_sizes=[1, 2])
    assert model.calls == 0
    dynamic = SpinModel(base_ns=1e4)
    with pytest.raises(InvalidArgumentError, match="latency_budget_ms must be above 0"):
        PerformanceProfiler(dynamic, FAST).profile(batch_sizes=[1], latency_budget_ms=-1.0)
    assert dynamic.calls == 0


def test_a_missing_dimension_size_says_how_to_give_it_to_the_profiler() -> None:
    named = SpinModel(base_ns=1e4, shape=("batch", "sequence"))
    with pytest.raises(InvalidArgumentError) as info:
        PerformanceProfiler(named, fast(input_dims={"seq": 8})).measure_latency()
    assert str(info.value) == (
        "input 'x' of model 'spin' has dynamic dimension 1 in shape (batch, sequence); give its "
        "size to the profiler as ProfilerSettings(input_dims={'sequence': N}) (input_dims "
        "['seq'] name no dimension of it)"
    )
    latency = PerformanceProfiler(named, fast(input_dims={"sequence": 8})).measure_latency(2)
    assert latency.batch_size == 2
    unnamed = SpinModel(base_ns=1e4, shape=("batch", None))
    with pytest.raises(InvalidArgumentError, match=r"unnamed, .*input_shapes=\{'x': \(\.\.\.\)\}"):
        PerformanceProfiler(unnamed, FAST).measure_latency()


_REUSED_HEAP = """
import numpy as np
from pyinfer import PerformanceProfiler
from test_profiler import FAST, SpinModel

MB = 1024 * 1024
freed = np.ones(32 * MB, dtype=np.uint8)
del freed  # glibc now keeps blocks up to 32 MB on its heap, and freed ones resident
profiler = PerformanceProfiler(SpinModel(base_ns=1e4, allocate_bytes=16 * MB), FAST)
print([profiler.measure_memory().peak_activation_bytes // MB for _ in range(3)])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc heap behaviour")
def test_a_memory_pass_after_other_work_still_sees_what_a_call_allocates() -> None:
    # In a process of its own: the test changes glibc's thresholds for the rest of the process.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, str(Path(__file__).parent)])}
    out = subprocess.run(
        [sys.executable, "-c", _REUSED_HEAP], env=env, capture_output=True, text=True, check=True
    )
    peaks = [int(v) for v in out.stdout.strip().strip("[]").split(",")]
    assert all(p >= 15 for p in peaks), peaks  # was [16, 0, 0]: the calls reused freed pages


# ---- Ctrl-C keeps what was measured -----------------------------------------------------------


class InterruptedModel(SpinModel):
    """A SpinModel whose ``interrupt_at``-th call (of batch ``only_batch``, if given) raises
    KeyboardInterrupt, as Ctrl-C would."""

    def __init__(self, interrupt_at: int, only_batch: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interrupt_at, self.only_batch = interrupt_at, only_batch
        self.attempts = 0

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.only_batch in (None, inputs["x"].shape[0]):
            self.attempts += 1
            if self.attempts == self.interrupt_at:
                raise KeyboardInterrupt
        return super().run_native(inputs)


def test_ctrl_c_between_chunks_keeps_the_samples() -> None:
    stream = FakeStream(stable_values())
    reads = [0]

    def clock() -> float:
        reads[0] += 1
        if reads[0] == 5:  # after two chunks: start and end of each
            raise KeyboardInterrupt
        return stream.clock()

    with pytest.raises(KeyboardInterrupt) as info:
        collect(stream, StoppingRule(min_iterations=1000, min_time_s=0.0), clock, typical_ns=1e6)
    partial = info.value.partial_samples_ns  # type: ignore[attr-defined]
    assert partial.size == sum(stream.calls[:2])


# FAST, but no stop as stable before 5 s: on a loaded machine 20 calls of 0.1 ms can take
# FAST's 0.02 s minimum, and the run would stop stable before the call that interrupts it.
UNTIL_INTERRUPTED = dataclasses.replace(FAST, min_time_s=5.0, max_time_s=10.0)


def test_an_interrupted_latency_measurement_keeps_its_samples_not_stable() -> None:
    # Calls: 1 first inference, 3 warm-up, then a chunk of 20 (the minimum count), then the
    # interrupted chunk: its 15 calls before the one that raised are kept too (the timed loop
    # attaches them to the KeyboardInterrupt), so 35 samples.
    model = InterruptedModel(40, base_ns=1e5)
    with pytest.raises(KeyboardInterrupt) as info:
        PerformanceProfiler(model, UNTIL_INTERRUPTED).measure_latency(batch_size=2)
    partial = info.value.partial_result  # type: ignore[attr-defined]
    assert partial.iterations == 35
    assert partial.batch_size == 2
    assert partial.stable is False
    assert partial.stability_reason == "interrupted after 35 samples"
    assert partial.warmup_iterations == 3
    assert partial.stats.min_ms >= 0.1
    assert partial.wall_s == pytest.approx(sum(partial.samples_ns) / 1e9)


def test_profile_interrupted_attaches_a_partial_report() -> None:
    # 2 memory calls (the first is the cold start), 1 + 3 latency calls before the samples.
    model = InterruptedModel(40, base_ns=1e5)
    with pytest.raises(KeyboardInterrupt) as info:
        PerformanceProfiler(model, UNTIL_INTERRUPTED).profile(batch_size=2)
    report = info.value.partial_result  # type: ignore[attr-defined]
    assert isinstance(report, ProfileReport)
    assert report.memory is not None
    assert report.memory.runs == 2
    assert report.throughput is None
    assert not report.stable
    assert report.stability_reason == f"interrupted after {report.latency.iterations} samples"
    assert report.input_shapes == {"x": (2, 4)}
    assert "  Stability: interrupted after" in report.to_text()
    assert ProfileReport.from_json(report.to_json()) == report


@pytest.mark.parametrize("interrupt_at", [2, 7])  # in the memory pass; before any sample
def test_profile_interrupted_before_samples_has_no_report(interrupt_at: int) -> None:
    model = InterruptedModel(interrupt_at, base_ns=1e5)
    with pytest.raises(KeyboardInterrupt) as info:
        PerformanceProfiler(model, FAST).profile()
    assert getattr(info.value, "partial_result", None) is None


def test_profile_interrupted_in_its_sweep_keeps_the_report_and_the_curve_so_far() -> None:
    model = SpinModel(base_ns=1e5)
    profiler = PerformanceProfiler(model, FAST)
    real = profiler.measure_latency
    sizes: list[int | None] = []

    def measure(batch_size: int | None = None) -> Any:
        sizes.append(batch_size)
        if len(sizes) == 3:  # the profile's own latency, then batch 1, then batch 2
            exc = KeyboardInterrupt()
            exc.partial_result = None  # type: ignore[attr-defined]
            raise exc
        return real(batch_size)

    profiler.measure_latency = measure  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt) as info:
        profiler.profile(batch_size=1, batch_sizes=[1, 2, 4])
    report = info.value.partial_result  # type: ignore[attr-defined]
    assert report.throughput is not None
    curve = report.batch_curve
    assert [p.batch_size for p in curve.points] == [1, 2]
    assert curve.points[0].ok
    assert curve.points[1].error == "interrupted after 0 samples"
    assert curve.knee_batch_size == 1


def test_a_sweep_interrupted_attaches_the_curve_so_far() -> None:
    # Batch 2: 1 first call + 3 warm-up + a chunk of 20, then 15 calls of the interrupted chunk.
    model = InterruptedModel(40, only_batch=2, base_ns=1e5)
    with pytest.raises(KeyboardInterrupt) as info:
        PerformanceProfiler(model, UNTIL_INTERRUPTED).sweep_batch_sizes([1, 2, 4])
    curve = info.value.partial_result  # type: ignore[attr-defined]
    assert [p.batch_size for p in curve.points] == [1, 2]
    # The batch in progress is kept as a point: the 35 calls it timed, not stable.
    second = curve.points[1]
    assert (second.ok, second.interrupted, second.stable, second.samples) == (True, True, False, 35)
    assert second.latency_mean_ms is not None
    assert second.latency_mean_ms >= 0.1
    assert second.throughput_fps is not None
    assert second.throughput_fps > 0
    assert curve.points[0].samples is not None
    assert not curve.points[0].interrupted
    assert BatchCurve.from_json(curve.to_json()) == curve
