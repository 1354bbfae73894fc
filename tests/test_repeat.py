"""Repetitions in fresh worker processes: the worker, the parent, the merge, the settings."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._settings import FAST_RUNS

import pyinfer
from pyinfer.backends.base import LoadRequest
from pyinfer.errors import CorruptModelError, InferenceError, InvalidArgumentError
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings, jobs, merge, repeat, worker
from pyinfer.profiling.settings import MIN_CALLS_PER_RUN
from pyinfer.report import BatchCurve, BatchPoint, LatencyMeasurement, LatencyStats


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(8, 4) / 32.0, name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("repeat") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def _load(path: Path) -> pyinfer.Model:
    return pyinfer.load_model(path, intra_op_threads=1)


# ---- the load request ---------------------------------------------------------------------------


def test_a_loaded_model_remembers_how_it_was_loaded(tiny_onnx: Path) -> None:
    model = _load(tiny_onnx)
    assert model.load_request == LoadRequest(
        path=str(tiny_onnx.absolute()),
        format="onnx",
        device="cpu",
        name="tiny",
        options={"intra_op_threads": 1},
    )


def test_a_model_built_in_memory_cannot_be_repeated(tiny_onnx: Path) -> None:
    model = _load(tiny_onnx)
    model.load_request = None
    with pytest.raises(InvalidArgumentError, match="model 'tiny' was not loaded from a file"):
        PerformanceProfiler(model, dataclasses.replace(FAST_RUNS, repetitions=2)).profile()


# ---- the worker ---------------------------------------------------------------------------------


def test_run_job_in_this_process_profiles_and_returns_the_parity_outputs(tiny_onnx: Path) -> None:
    request = _load(tiny_onnx).load_request
    assert request is not None
    x = np.ones((2, 8), dtype=np.float32)
    job = jobs.WorkerJob(
        load=request, settings=FAST_RUNS, batch_size=2, memory=False, parity_inputs=(x,)
    )
    result = worker.run_job(job)
    assert result.failure is None
    assert not result.interrupted
    assert result.pid == os.getpid()
    assert isinstance(result.report, pyinfer.ProfileReport)
    assert result.report.batch_size == 2
    assert result.report.memory is None
    assert result.outputs is not None
    expected = x @ (np.arange(32, dtype=np.float32).reshape(8, 4) / 32.0)
    np.testing.assert_allclose(result.outputs["y"], expected, rtol=1e-6)


def test_parity_inputs_go_by_position_since_an_export_may_rename_them(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    # As a TFLite or SavedModel export names its input: not as the original did.
    graph = helper.make_graph(
        [helper.make_node("Neg", ["serving_default_x:0"], ["y"])],
        "renamed",
        [helper.make_tensor_value_info("serving_default_x:0", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "renamed.onnx"
    onnx.save(model, str(path))
    request = _load(path).load_request
    x = np.array([[1.0, -2.0, 3.5]], dtype=np.float32)
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, memory=False, parity_inputs=(x,))
    result = worker.run_job(job)
    assert result.failure is None
    assert result.outputs is not None
    np.testing.assert_array_equal(result.outputs["y"], -x)


def test_a_worker_is_a_fresh_process_pinned_where_asked(tiny_onnx: Path) -> None:
    request = _load(tiny_onnx).load_request
    assert request is not None
    cpu = min(os.sched_getaffinity(0))
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, memory=False, cpus=(cpu,), label="w")
    result = repeat.run_worker(job)
    assert result.pid != os.getpid()
    assert result.cpus == (cpu,)
    assert isinstance(result.report, pyinfer.ProfileReport)


def test_a_worker_can_build_its_model_with_a_function(tiny_onnx: Path) -> None:
    build = functools.partial(pyinfer.load_model, str(tiny_onnx), name="built")
    job = jobs.WorkerJob(load=None, settings=FAST_RUNS, memory=False, build=build, label="b")
    result = repeat.run_worker(job)
    assert isinstance(result.report, pyinfer.ProfileReport)
    assert result.report.model == "built"
    with pytest.raises(InvalidArgumentError, match=r"^b: the job names no model \(no load"):
        repeat.run_worker(dataclasses.replace(job, build=None))


def test_a_workers_error_is_raised_with_its_type_and_the_run(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"\xff" * 64)
    request = LoadRequest(path=str(broken), format="onnx", device="cpu", name="broken")
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, label="run 2 of 3")
    with pytest.raises(CorruptModelError, match=r"^run 2 of 3: .*broken\.onnx"):
        repeat.run_worker(job)


def test_a_worker_that_dies_is_an_inference_error(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _load(tiny_onnx).load_request
    assert request is not None
    monkeypatch.setattr(
        repeat, "WORKER_COMMAND", ("-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    )
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, label="run 1 of 2")
    with pytest.raises(
        InferenceError, match="run 1 of 2: the worker process was killed by signal SIGKILL"
    ):
        repeat.run_worker(job)


def test_options_that_cannot_reach_a_worker_are_refused(tiny_onnx: Path) -> None:
    request = LoadRequest(
        path=str(tiny_onnx), format="onnx", device="cpu", name="t", options={"f": lambda: 1}
    )
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, label="run 1 of 2")
    with pytest.raises(InvalidArgumentError, match="cannot be passed to a worker process"):
        repeat.run_worker(job)


def test_the_worker_entry_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert worker.main([]) == 2
    not_a_job = tmp_path / "job.pickle"
    import pickle

    not_a_job.write_bytes(pickle.dumps({"a": 1}))
    assert worker.main([str(not_a_job), str(tmp_path / "out")]) == 2
    assert "does not hold a pyinfer worker job" in capsys.readouterr().err


# ---- the repeated profile -----------------------------------------------------------------------


def test_profile_repeated_in_fresh_processes(tiny_onnx: Path) -> None:
    model = _load(tiny_onnx)
    settings = dataclasses.replace(FAST_RUNS, repetitions=3)
    report = PerformanceProfiler(model, settings).profile(batch_size=4)
    reps = report.repetitions
    assert reps is not None
    assert reps.count == 3
    counts = [run.samples for run in reps.runs]
    # Runs after the first make as many calls as the first did: each weighs the same.
    assert counts == [counts[0]] * 3
    assert MIN_CALLS_PER_RUN > 0
    assert report.latency.iterations == sum(counts) == len(report.latency.samples_ns)
    assert report.batch_size == 4
    # The memory pass and the throughput run come from the first run only.
    assert report.memory is not None
    assert report.throughput is not None
    # Its energy reading (or why there is none) came back from the worker.
    assert report.throughput.energy is not None
    assert report.throughput.energy.inferences == report.throughput.items
    assert reps.interval_low_ms is not None
    assert reps.interval_high_ms is not None
    assert reps.interval_low_ms <= report.latency.stats.median_ms <= reps.interval_high_ms
    assert math.isclose(reps.median_ms, report.latency.stats.median_ms, rel_tol=1e-9)
    again = pyinfer.ProfileReport.from_json(report.to_json())
    assert again.repetitions == reps


def test_sweep_repeated_gives_each_point_its_run_medians(tiny_onnx: Path) -> None:
    model = _load(tiny_onnx)
    settings = dataclasses.replace(FAST_RUNS, repetitions=2)
    curve = PerformanceProfiler(model, settings).sweep_batch_sizes([1, 4])
    assert [p.batch_size for p in curve.points] == [1, 4]
    for p in curve.points:
        assert p.ok
        assert len(p.run_medians_ms) == 2
        assert p.latency_median_ms == pytest.approx(float(np.median(p.run_medians_ms)))
        assert p.reproducibility is not None


def test_ctrl_c_keeps_the_runs_made(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _load(tiny_onnx)
    real = repeat.run_worker
    calls: list[str] = []

    def interrupted_second(job: jobs.WorkerJob, folder: Path | None = None) -> Any:
        calls.append(job.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, folder)

    monkeypatch.setattr(repeat, "run_worker", interrupted_second)
    settings = dataclasses.replace(FAST_RUNS, repetitions=3)
    with pytest.raises(KeyboardInterrupt) as caught:
        PerformanceProfiler(model, settings).profile(memory=False)
    partial = caught.value.partial_result  # type: ignore[attr-defined]
    assert calls == ["run 1 of 3", "run 2 of 3"]
    assert isinstance(partial, pyinfer.ProfileReport)
    assert partial.repetitions is not None
    assert partial.repetitions.count == 1


# ---- merging runs -------------------------------------------------------------------------------


def _run(samples_ms: list[float], *, stable: bool = True, warmup: int = 5) -> LatencyMeasurement:
    ns = np.asarray(samples_ms) * 1e6
    return LatencyMeasurement(
        batch_size=1,
        stats=LatencyStats.from_samples_ns(ns),
        samples_ns=tuple(float(x) for x in ns),
        warmup_iterations=warmup,
        warmup_settled=True,
        stable=stable,
        stability_reason="stable",
        stability_metric="median_ci",
        stability_value=0.01,
        timing_method="host timed loop",
        wall_s=float(ns.sum() / 1e9),
    )


def test_merged_latency_pools_the_samples_and_counts_each_run_once() -> None:
    runs = [_run([1.0, 1.1, 1.2]), _run([1.05, 1.15, 1.25], warmup=7)]
    settings = ProfilerSettings(stability_target=0.5, reproducibility_target=0.5)
    merged, reps = merge.merge_latency(runs, settings)
    assert merged.iterations == 6
    assert merged.stats.median_ms == pytest.approx(1.125)
    assert merged.warmup_iterations == 12
    assert merged.wall_s == pytest.approx(runs[0].wall_s + runs[1].wall_s)
    assert reps.count == 2
    assert merged.stable
    # 6 pooled calls: the median's interval spans ranks 1 to 6 (1.0 to 1.25) around 1.125.
    assert merged.stability_value == pytest.approx(0.25 / 2 / 1.125)
    assert merged.stability_reason.startswith(
        "stable: the 6 calls of 2 runs pin the median: median 95% CI 11.11% <= 50.00% target;"
    )


def test_merged_latency_is_unstable_when_the_calls_or_the_runs_disagree() -> None:
    loose = ProfilerSettings(stability_target=0.5, reproducibility_target=10.0)
    runs = [_run([1.0, 1.5, 2.0, 1.2]), _run([1.1, 1.9, 1.3, 1.6])]
    assert merge.merge_latency(runs, loose)[0].stable
    tight = dataclasses.replace(loose, stability_target=0.01)
    within = merge.merge_latency(runs, tight)[0]
    assert not within.stable
    assert within.stability_reason.startswith("NOT stable: the 8 calls of 2 runs pin the median")
    assert "> 1.00% target" in within.stability_reason
    strict = ProfilerSettings(stability_target=0.5, reproducibility_target=0.10)
    apart = merge.merge_latency([_run([1.0, 1.01]), _run([2.0, 2.02])], strict)[0]
    assert not apart.stable
    assert "NOT within the 10% target" in apart.stability_reason


def test_a_run_is_marked_when_its_own_calls_pin_its_median_less_than_its_share() -> None:
    settings = ProfilerSettings(stability_target=0.05, reproducibility_target=10.0)
    steady = _run([1.0, 1.0, 1.0, 1.0, 1.0])
    scattered = _run([1.0, 2.0, 3.0, 4.0, 5.0])
    reps = merge.merge_latency([steady, scattered], settings)[1]
    assert [run.stable for run in reps.runs] == [True, False]


def test_merged_curves_take_the_median_of_the_runs_and_keep_failures() -> None:
    def curve(*points: BatchPoint) -> BatchCurve:
        return BatchCurve(points)

    def ok(size: int, median: float, fps: float) -> BatchPoint:
        return BatchPoint(size, median, median, median * 1.1, fps, True, samples=10)

    merged = merge.merge_curves(
        [
            curve(ok(1, 1.0, 100.0), ok(2, 1.5, 130.0)),
            curve(ok(1, 1.2, 90.0), BatchPoint(2, error="out of memory: x", out_of_memory=True)),
            curve(ok(1, 1.1, 95.0), ok(2, 1.6, 125.0)),
        ],
        target=0.5,
    )
    one, two = merged.points
    assert one.latency_median_ms == pytest.approx(1.1)
    assert one.throughput_fps == 95.0
    assert one.run_medians_ms == (1.0, 1.2, 1.1)
    assert one.samples == 30
    assert not two.ok
    assert two.out_of_memory
    assert two.error == "out of memory: x"
    assert merged.knee_batch_size == 1
    assert merged.best_batch_size == 1


# ---- settings -----------------------------------------------------------------------------------


def test_spread_over_shares_one_runs_budget_among_the_runs() -> None:
    base = ProfilerSettings()
    five = base.spread_over(5)
    assert five.repetitions == 5
    assert (five.min_iterations, five.max_iterations) == (MIN_CALLS_PER_RUN, 2000)
    assert (five.min_time_s, five.max_time_s) == (0.2, 6.0)
    assert five.warmup_iterations == 5
    assert five.stability_target == base.stability_target  # for the calls of all runs
    assert ProfilerSettings(warmup_iterations=40).spread_over(4).warmup_iterations == 10
    assert base.spread_over(1) == base
    with pytest.raises(InvalidArgumentError, match="repetitions must be at least 1, got 0"):
        base.spread_over(0)


def test_later_runs_repeat_the_first_runs_calls_and_share_its_warm_up() -> None:
    settings = ProfilerSettings(repetitions=5).spread_over(5)
    first = repeat.per_run_settings(settings)
    assert first.repetitions == 1
    assert first.stability_target == math.inf  # the pooled calls of all runs are judged
    assert (first.warmup_iterations, first.warmup_until_settled) == (5, True)
    later = repeat.per_run_settings(settings, calls=37, warmup=48)
    assert (later.min_iterations, later.max_iterations, later.min_time_s) == (37, 37, 0.0)
    # The first run's 48 warm-up calls shared among 5 runs: 10 each, without settling.
    assert (later.warmup_iterations, later.warmup_until_settled) == (10, False)
    # At least the settings' own count: 5 a run, or what the user asked for each run.
    assert repeat.per_run_settings(settings, 37, 12).warmup_iterations == 5
    asked = ProfilerSettings(repetitions=5, warmup_iterations=30)
    assert repeat.per_run_settings(asked, 37, 60).warmup_iterations == 30
    # A single run keeps its own stopping rule and warm-up.
    alone = repeat.per_run_settings(ProfilerSettings())
    assert alone == ProfilerSettings()


def test_a_repeated_profile_gives_later_runs_a_share_of_the_first_warm_up(tiny_onnx: Path) -> None:
    model = _load(tiny_onnx)
    settings = dataclasses.replace(FAST_RUNS, repetitions=3, warmup_until_settled=True)
    report = PerformanceProfiler(model, settings).profile(memory=False, throughput=False)
    total = report.latency.warmup_iterations
    # The first run settles (2 calls, then windows of at least 5 until the median holds), w
    # calls in all; each later run makes max(2, ceil(w / 3)) without settling again.
    first = next(w for w in range(total + 1) if w + 2 * max(2, math.ceil(w / 3)) == total)
    assert first >= 2 + 5
    assert report.latency.warmup_settled is not None  # the first run's verdict


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repetitions": 0}, "repetitions must be at least 1, got 0"),
        ({"repetitions": 2.5}, "repetitions must be an integer, got 2.5"),
        ({"reproducibility_target": 0.0}, "reproducibility_target must be above 0"),
        ({"cpus": (0, 0)}, "cpus must be distinct CPU numbers of 0 or more, got [0, 0]"),
        ({"cpus": (-1,)}, "cpus must be distinct CPU numbers of 0 or more, got [-1]"),
    ],
)
def test_repetition_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        ProfilerSettings(**kwargs)
    assert message in str(caught.value)


# ---- several models, alternating ----------------------------------------------------------------


def test_compare_measure_alternates_the_models_runs(
    tiny_onnx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pyinfer import cli

    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.read_bytes())
    real = repeat.run_worker
    labels: list[str] = []

    def recording(job: jobs.WorkerJob, folder: Path | None = None) -> Any:
        labels.append(job.label)
        return real(job, folder)

    monkeypatch.setattr(repeat, "run_worker", recording)
    argv = ["compare", "--measure", str(tiny_onnx), str(other), "--repeat", "2"]
    argv += ["--warmup", "1", "--iterations", "10", "--option", "intra_op_threads=1"]
    code = cli.main([*argv, "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert labels == [
        "tiny: run 1 of 2",
        "other: run 1 of 2",
        "tiny: run 2 of 2",
        "other: run 2 of 2",
    ]
    assert "over 2+2 runs" in out or "cannot tell" in out
    import json

    document = json.loads((tmp_path / "c.json").read_text())
    (comparison,) = document["comparisons"]
    assert (comparison["runs_before"], comparison["runs_after"]) == (2, 2)


def test_compare_measure_needs_two_models_or_a_baseline(
    tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyinfer import cli

    assert cli.main(["compare", "--measure", str(tiny_onnx)]) == 2
    assert "--measure compares model files: give two or more" in capsys.readouterr().err


# ---- progress and Ctrl-C through real processes ------------------------------------------------


def test_a_workers_progress_is_relayed_while_it_runs(
    tiny_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = _load(tiny_onnx).load_request
    assert request is not None
    job = jobs.WorkerJob(load=request, settings=FAST_RUNS, memory=False, label="run 1 of 1")
    with caplog.at_level(logging.INFO, logger="pyinfer"):
        repeat.run_worker(job)
    relayed = [r for r in caplog.records if r.name == "pyinfer.profiling.repeat"]
    first = next(r for r in relayed if "first inference of 'tiny'" in r.getMessage())
    assert first.levelno == logging.INFO
    assert first.getMessage().startswith("run 1 of 1: first inference of 'tiny': ")


def test_a_real_ctrl_c_during_the_runs_writes_the_runs_made(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    path = tmp_path / "interrupted.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pyinfer", "--verbose", "profile", str(tiny_onnx),
            "--repeat", "3", "--warmup", "1", "--iterations", "30", "--no-memory",
            "--json", str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # run 2 starts once run 1 has finished
        seen.append(line)
        if "run 2 of 3 in a fresh process" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + err
    report = pyinfer.ProfileReport.load(path)
    assert report.repetitions is not None
    assert report.repetitions.count in (1, 2)  # run 2 may have written what it had
    assert out.startswith("Profiling Results:\n")
    assert f"interrupted: results so far written to {path}" in err
