"""The suite and the format comparison in worker processes: isolation, interleaving, ratios."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._settings import FAST_RUNS, NEVER_STABLE

from pyinfer import cli, suite
from pyinfer.errors import FrameworkNotInstalledError, InferenceError, InvalidArgumentError
from pyinfer.profiling import jobs, repeat, worker
from pyinfer.suite import FormatEntry, FormatsResult, LatencyRatio, SuiteConfig, SuiteResult
from pyinfer.suite import models as suite_models
from pyinfer.suite import ratios as suite_ratios
from pyinfer.suite import runner as suite_runner
from pyinfer.suite import settings as suite_settings

# ---- the ratio and its interval -----------------------------------------------------------------


def test_the_suite_ratio_is_the_shared_one_and_needs_4_runs_a_side() -> None:
    # The exact distribution and the interval ranks are tested in tests/test_repetitions.py.
    assert suite_ratios.min_runs_for_interval() == 4
    assert suite.ratio_between([1.0] * 3, [2.0] * 3)[1] is None
    assert suite.ratio_between([1.0] * 4, [2.0] * 4)[1] == pytest.approx(2.0)


def test_ratio_between_is_the_hodges_lehmann_estimate_with_its_interval() -> None:
    before = [10.0, 11.0, 9.5, 10.5, 10.2]
    after = [12.0, 12.5, 11.8, 13.0, 12.2]
    ratio, low, high = suite.ratio_between(before, after)
    logs = sorted(math.log(a) - math.log(b) for b in before for a in after)
    assert ratio == pytest.approx(math.exp(logs[12]))  # the median of 25 differences
    assert low == pytest.approx(math.exp(logs[2]))  # k = 3 for 5 + 5 runs
    assert high == pytest.approx(math.exp(logs[22]))
    assert low is not None
    assert high is not None
    assert 1.0 < low < ratio < high


def test_too_few_runs_give_the_ratio_without_an_interval() -> None:
    assert suite.ratio_between([10.0], [5.0]) == (pytest.approx(0.5), None, None)
    ratio, low, high = suite.ratio_between([10.0, 10.0, 10.0], [20.0, 20.0, 20.0])
    assert (ratio, low, high) == (pytest.approx(2.0), None, None)
    entry = LatencyRatio.between("PyTorch (FP32)", [10.0, 10.0], [7.0, 7.0])
    assert entry.text() == "0.70x"
    assert not entry.has_interval
    with_interval = LatencyRatio("PyTorch (FP32)", 0.7, 0.65, 0.76, 5, 5)
    assert with_interval.text() == "0.70x (0.65-0.76)"


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ([], [1.0], r"ratio interval \(first set\): no samples"),
        ([1.0], [0.0], r"ratio interval \(second set\): values must be above 0"),
        ([math.nan], [1.0], r"ratio interval \(first set\): samples must be finite numbers"),
    ],
)
def test_ratio_between_refuses_bad_medians(
    before: list[float], after: list[float], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        suite.ratio_between(before, after)


def test_a_ratio_with_a_known_truth_has_it_within_its_interval() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        before = 10.0 * np.exp(rng.normal(0.0, 0.05, 6))
        after = 13.0 * np.exp(rng.normal(0.0, 0.05, 6))
        _, low, high = suite.ratio_between(before, after)
        assert low is not None
        assert high is not None
        covered += low <= 1.3 <= high
    assert covered >= 180  # a 95% interval (about 96% for 6 + 6 runs, being conservative)


# ---- models made in code ------------------------------------------------------------------------


def test_a_model_made_in_code_is_rebuilt_identically_in_a_worker(torchvision_module: Any) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    first = suite_models.mobilenet_v2(0, "cpu")
    second = suite_models.mobilenet_v2(0, "cpu")
    other = suite_models.mobilenet_v2(1, "cpu")
    expected = first({"x": x})
    np.testing.assert_array_equal(second({"x": x})["output"], expected["output"])
    assert not np.array_equal(other({"x": x})["output"], expected["output"])
    job = jobs.WorkerJob(
        load=None,
        settings=dataclasses.replace(FAST_RUNS, input_dims={"height": 32, "width": 32}),
        memory=False,
        throughput=False,
        parity_inputs=(x,),
        build=functools.partial(suite_models.mobilenet_v2, 0, "cpu"),
        label="built",
    )
    result = repeat.run_worker(job)
    assert result.pid != os.getpid()
    assert result.outputs is not None
    np.testing.assert_array_equal(result.outputs["output"], expected["output"])


def test_bert_and_resnet_builds_are_seeded(torchvision_module: Any) -> None:
    pytest.importorskip("transformers")
    tiny = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2}
    tiny |= {"intermediate_size": 32, "max_position_embeddings": 16}
    ids = np.arange(8, dtype=np.int64).reshape(1, 8)
    tokens = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    a, b = (suite_models.bert_base(3, tiny, "cpu")(tokens) for _ in range(2))
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    image = np.ones((1, 3, 32, 32), np.float32)
    r1, r2 = (suite_models.resnet50_eager(0, 32, "cpu")({"x": image}) for _ in range(2))
    np.testing.assert_array_equal(next(iter(r1.values())), next(iter(r2.values())))


# ---- the suite in workers -----------------------------------------------------------------------


@dataclasses.dataclass
class _InProcess:
    """``run_worker`` stand-in: runs each job here, records it, fails or stops where told."""

    jobs: list[jobs.WorkerJob] = dataclasses.field(default_factory=list)
    fail: str = ""
    interrupt_at: int = 0

    def __call__(self, job: jobs.WorkerJob, folder: Path | None = None) -> jobs.WorkerResult:
        self.jobs.append(job)
        if len(self.jobs) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail and job.label.startswith(self.fail):
            raise InferenceError(f"{job.label}: boom")
        result = worker.run_job(job)
        assert result.failure is None, result.failure
        return result

    @property
    def labels(self) -> list[str]:
        return [job.label for job in self.jobs]


@pytest.fixture
def tiny_models(torch_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The suite's image models replaced by a tiny seeded net (same builders, same inputs)."""
    from tests import _bench_nets

    monkeypatch.setattr(suite_models, "torch_resnet50", _bench_nets.tiny_resnet)
    monkeypatch.setattr(suite_runner, "mobilenet_v2", _bench_nets.tiny_mobilenet)
    return _bench_nets


def _mobilenets(**kwargs: Any) -> SuiteConfig:
    options: dict[str, Any] = {
        "models": ("mobilenetv2",),
        "input_sizes": (32, 40),
        "devices": ("cpu",),
        "settings": FAST_RUNS,
        "repetitions": 2,
    }
    return SuiteConfig(**(options | kwargs))


def test_suite_entries_alternate_in_each_round_and_merge_their_runs(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _InProcess()
    monkeypatch.setattr(repeat, "run_worker", fake)
    lines: list[str] = []
    result = suite.run_suite(_mobilenets(), progress=lines.append)
    assert fake.labels == [
        "32x32, run 1 of 2",
        "40x40, run 1 of 2",
        "32x32, run 2 of 2",
        "40x40, run 2 of 2",
    ]
    # The first run of each entry makes the memory pass and the throughput run; the second
    # measures the latency only, with as many calls as the first took.
    first, _, second, _ = fake.jobs
    assert (first.memory, first.throughput, second.memory, second.throughput) == (
        True,
        True,
        False,
        False,
    )
    entries = result.entries
    assert [e.status for e in entries] == ["ok", "ok"]
    for entry in entries:
        assert entry.report is not None
        reps = entry.report.repetitions
        assert reps is not None
        assert reps.count == 2
        assert reps.runs[1].samples == reps.runs[0].samples
        assert entry.report.memory is not None
    assert second.settings.min_iterations == second.settings.max_iterations
    assert second.settings.min_iterations == entries[0].report.repetitions.runs[0].samples  # type: ignore[union-attr]
    assert result.settings["repetitions"] == 2
    starts = [re.sub(r"elapsed \d+ s", "elapsed N s", x) for x in lines if "(elapsed" in x]
    assert starts == [
        "[1/2] cpu MobileNetV2 32x32, run 1 of 2 (elapsed N s)",
        "[2/2] cpu MobileNetV2 40x40, run 1 of 2 (elapsed N s)",
        "[1/2] cpu MobileNetV2 32x32, run 2 of 2 (elapsed N s)",
        "[2/2] cpu MobileNetV2 40x40, run 2 of 2 (elapsed N s)",
    ]
    assert "2 runs of each in fresh processes" in result.summary_line()


def test_a_failing_entry_stops_and_keeps_the_others(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _InProcess(fail="32x32")
    monkeypatch.setattr(repeat, "run_worker", fake)
    result = suite.run_suite(_mobilenets(repetitions=3))
    # The failed entry is not run again; the other one makes its three runs.
    assert fake.labels == [
        "32x32, run 1 of 3",
        "40x40, run 1 of 3",
        "40x40, run 2 of 3",
        "40x40, run 3 of 3",
    ]
    assert [(e.label, e.status) for e in result.entries] == [("32x32", "failed"), ("40x40", "ok")]
    assert result.entries[0].reason == "InferenceError: 32x32, run 1 of 3: boom"
    assert result.outcome is suite.Outcome.FAILED


def test_a_missing_framework_in_a_worker_skips_the_entry(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(job: jobs.WorkerJob, folder: Path | None = None) -> jobs.WorkerResult:
        raise FrameworkNotInstalledError(f"{job.label}: MobileNetV2 needs torchvision")

    monkeypatch.setattr(repeat, "run_worker", missing)
    result = suite.run_suite(_mobilenets(input_sizes=(32,), repetitions=1))
    (entry,) = result.entries
    assert (entry.status, entry.reason) == (
        "skipped",
        "not installed: 32x32: MobileNetV2 needs torchvision",
    )


@pytest.mark.parametrize(
    ("repetitions", "interrupt_at", "kept"),
    [(1, 2, [("32x32", None)]), (2, 3, [("32x32", 1), ("40x40", 1)])],
)
def test_ctrl_c_keeps_the_runs_finished(
    tiny_models: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    repetitions: int,
    interrupt_at: int,
    kept: list[tuple[str, int | None]],
) -> None:
    monkeypatch.setattr(repeat, "run_worker", _InProcess(interrupt_at=interrupt_at))
    result = suite.run_suite(_mobilenets(repetitions=repetitions))
    assert result.interrupted
    got = [
        (e.label, e.report.repetitions.count if e.report and e.report.repetitions else None)
        for e in result.entries
    ]
    assert got == kept
    dropped = "the entry running then" if repetitions == 1 else "the run going on then"
    assert f"(interrupted: {dropped} was dropped)" in result.summary_line()


def test_resnet_formats_get_their_ratio_to_pytorch_eager(
    tiny_models: Any, onnx_module: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _InProcess()
    monkeypatch.setattr(repeat, "run_worker", fake)
    config = SuiteConfig(
        models=("resnet50",),
        formats=("pytorch", "onnx"),
        batch_sizes=(1,),
        image_size=32,
        devices=("cpu",),
        settings=FAST_RUNS,
        repetitions=2,
        work_dir=tmp_path,
    )
    result = suite.run_suite(config)
    eager, onnx, sweep = result.entries
    assert [e.key for e in result.entries] == ["pytorch", "onnx", "sweep"]
    # Eager ResNet50 is built in the worker; ONNX is the parent's export, loaded by the worker.
    assert fake.jobs[0].build is not None
    assert fake.jobs[0].load is None
    assert fake.jobs[1].load is not None
    assert fake.jobs[1].load.path == str(tmp_path / "resnet50.onnx")
    assert (eager.ratio, sweep.ratio) == (None, None)
    assert onnx.ratio is not None
    assert onnx.report is not None
    assert eager.report is not None
    assert onnx.ratio == LatencyRatio.between(
        "PyTorch (FP32)",
        [r.median_ms for r in eager.report.repetitions.runs],  # type: ignore[union-attr]
        [r.median_ms for r in onnx.report.repetitions.runs],  # type: ignore[union-attr]
    )
    lines = result.to_text().splitlines()
    assert f"Latency against PyTorch (FP32): ONNX (FP32) {onnx.ratio.text()}" in lines
    assert (
        "Latency ratio: the latency over PyTorch (FP32)'s, estimated from the runs' medians "
        "(fresh processes, interleaved), with its 95% interval; no interval from 2 run(s) a "
        "side: it needs --repeat 4 or more" in lines
    )
    row = next(r for r in result.rows() if r["row"] == "ONNX (FP32)")
    assert (row["latency_ratio"], row["latency_ratio_low"]) == (onnx.ratio.ratio, None)
    again = SuiteResult.from_json(result.to_json())
    assert again == result
    raw = result.to_dict()
    assert (raw["schema_version"], raw["outcome"]) == ("1.2", result.outcome.name.lower())


def test_real_workers_for_the_suite_are_fresh_processes(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids: list[int] = []
    real = repeat.run_worker

    def recording(job: jobs.WorkerJob, folder: Path | None = None) -> jobs.WorkerResult:
        result = real(job, folder)
        pids.append(result.pid)
        return result

    monkeypatch.setattr(repeat, "run_worker", recording)
    result = suite.run_suite(_mobilenets(repetitions=1))
    assert [e.status for e in result.entries] == ["ok", "ok"]
    assert len(set(pids)) == 2
    assert os.getpid() not in pids


# ---- formats in workers -------------------------------------------------------------------------


def test_formats_run_in_fresh_workers_interleaved_with_parity_from_their_outputs(
    torch_module: Any, onnx_module: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch_module.manual_seed(0)
    net = torch_module.nn.Sequential(torch_module.nn.Linear(8, 4), torch_module.nn.Tanh())
    path = tmp_path / "mlp.pt"
    torch_module.save(net, path)
    jobs: list[jobs.WorkerJob] = []
    pids: list[int] = []
    real = repeat.run_worker

    def recording(job: jobs.WorkerJob, folder: Path | None = None) -> jobs.WorkerResult:
        jobs.append(job)
        result = real(job, folder)
        pids.append(result.pid)
        return result

    monkeypatch.setattr(repeat, "run_worker", recording)
    result = suite.compare_formats(
        path,
        formats=["onnx"],
        input_shape=[8],
        settings=dataclasses.replace(FAST_RUNS, repetitions=2),
        trust_code=True,
    )
    assert [j.label for j in jobs] == [
        "PyTorch (FP32), run 1 of 2",
        "ONNX (FP32), run 1 of 2",
        "PyTorch (FP32), run 2 of 2",
        "ONNX (FP32), run 2 of 2",
    ]
    assert len(set(pids)) == 4  # a fresh process each
    assert os.getpid() not in pids
    # Only the export's first run computes outputs for the parity check.
    assert [j.parity_inputs is not None for j in jobs] == [False, True, False, False]
    eager, onnx = result.entries
    assert (eager.status, onnx.status) == ("ok", "ok")
    assert (eager.parity, onnx.parity) == (None, True)
    assert onnx.relative_error is not None
    assert onnx.relative_error <= suite.PARITY_TOLERANCE
    assert onnx.report is not None
    assert onnx.report.repetitions is not None
    assert onnx.report.repetitions.count == 2
    assert onnx.ratio is not None
    assert (onnx.ratio.reference, onnx.ratio.runs, onnx.ratio.reference_runs) == (
        "PyTorch (FP32)",
        2,
        2,
    )
    assert eager.ratio is None
    assert result.settings["repetitions"] == 2
    lines = result.to_text().splitlines()
    header = lines.index(
        "Model Format    │ Latency (ms) │ Throughput (FPS) │ Memory (MB) │ Latency ratio     "
        "│ Parity"
    )
    cells = [[c.strip() for c in line.split("│")] for line in lines[header + 2 : header + 4]]
    assert [c[4] for c in cells] == ["1.00x", onnx.ratio.text()]
    assert FormatsResult.from_json(result.to_json()) == result


def test_a_parity_check_that_cannot_compare_fails_the_format(
    torch_module: Any, onnx_module: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch_module.manual_seed(0)
    path = tmp_path / "lin.pt"
    torch_module.save(torch_module.nn.Linear(8, 4), path)
    real = worker.run_job
    fake = _InProcess()

    def wrong_outputs(job: jobs.WorkerJob) -> jobs.WorkerResult:
        result = real(job)
        if job.parity_inputs is None:
            return result
        return dataclasses.replace(result, outputs={"a": np.zeros(1), "b": np.zeros(1)})

    monkeypatch.setattr(worker, "run_job", wrong_outputs)
    monkeypatch.setattr(repeat, "run_worker", fake)
    result = suite.compare_formats(
        path,
        formats=["onnx"],
        input_shape=[8],
        settings=dataclasses.replace(FAST_RUNS, repetitions=2),
        trust_code=True,
    )
    eager, onnx = result.entries
    assert eager.status == "ok"
    assert onnx.status == "failed"
    assert onnx.reason == (
        "parity check failed: InvalidArgumentError: 2 outputs (a, b) against the original's 1 "
        "(output)"
    )
    assert [j.label for j in fake.jobs] == [
        "PyTorch (FP32), run 1 of 2",
        "ONNX (FP32), run 1 of 2",
        "PyTorch (FP32), run 2 of 2",
    ]


def test_a_formats_json_of_schema_1_1_still_loads() -> None:
    from pyinfer.report.environment import collect_environment

    entries = (
        FormatEntry("eager", "PyTorch (FP32)", "ok", original=True),
        FormatEntry(
            "onnx",
            "ONNX (FP32)",
            "ok",
            parity=True,
            ratio=LatencyRatio("PyTorch (FP32)", 0.8, 0.7, 0.9, 5, 5),
        ),
    )
    result = FormatsResult("m.pt", "pickle", "cpu", 1, entries, "", collect_environment(), {}, 1.0)
    assert FormatsResult.from_json(result.to_json()) == result
    data = result.to_dict()
    data["schema_version"] = "1.1"
    for entry in data["entries"]:
        del entry["ratio"]
    del data["outcome"]
    loaded = FormatsResult.from_dict(data)
    assert loaded.entries[1].ratio is None
    assert loaded.entries[1].parity is True


# ---- settings and the command line --------------------------------------------------------------


def test_the_suites_settings_are_spread_over_its_runs() -> None:
    assert SuiteConfig(quick=True).runs == suite.QUICK_REPETITIONS
    assert SuiteConfig().runs == suite.SUITE_REPETITIONS
    assert SuiteConfig(settings=dataclasses.replace(FAST_RUNS, repetitions=3)).runs == 3
    spread = SuiteConfig(repetitions=4).profiler_settings()
    assert spread == suite.full_settings().spread_over(4)
    explicit = SuiteConfig(settings=FAST_RUNS, repetitions=4, cpus=(0,)).profiler_settings()
    assert explicit == dataclasses.replace(FAST_RUNS, repetitions=4, cpus=(0,))
    with pytest.raises(InvalidArgumentError, match="--repeat must be an integer of at least 1"):
        SuiteConfig(repetitions=0)


@pytest.mark.parametrize(
    ("strict", "quick", "code"), [(False, True, 0), (True, True, 3), (False, False, 0)]
)
def test_an_unstable_entry_warns_and_exits_0_unless_strict(
    tiny_models: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    *,
    strict: bool,
    quick: bool,
    code: int,
) -> None:
    monkeypatch.setattr(suite_settings, "quick_settings", lambda: NEVER_STABLE)
    monkeypatch.setattr(suite_settings, "full_settings", lambda: NEVER_STABLE)
    monkeypatch.setattr(repeat, "run_worker", _InProcess())
    argv = ["bench", "--only", "mobilenetv2", "--input-sizes", "32", "--device", "cpu"]
    argv += ["--json", str(tmp_path / "b.json"), "--repeat", "1"]
    argv += ["--strict"] * strict + ["--quick"] * quick
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    status = "exit status 3 (--strict)" if strict else "exit status 0 (--strict makes it 3)"
    longer = "more time (leave out --quick), " if quick else ""
    assert err.endswith(
        "warning: pyinfer bench: NOT stable: cpu MobileNetV2 32x32 missed the stability or "
        "reproducibility target (marked ~); the figures are what was measured: give them "
        f"{longer}more runs (--repeat) or a quieter machine; {status}\n"
    )
    saved = SuiteResult.load(tmp_path / "b.json")
    assert saved.outcome is suite.Outcome.UNSTABLE
    assert saved.to_dict()["exit_code"] == 3


def test_repeat_and_cpus_reach_the_workers(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _InProcess()
    monkeypatch.setattr(repeat, "run_worker", fake)
    cpu = min(os.sched_getaffinity(0))
    argv = ["bench", "--only", "mobilenetv2", "--input-sizes", "32", "--quick", "--device", "cpu"]
    assert cli.main([*argv, "--repeat", "2", "--cpus", str(cpu)]) == 0
    capsys.readouterr()
    assert fake.labels == ["32x32, run 1 of 2", "32x32, run 2 of 2"]
    assert {job.cpus for job in fake.jobs} == {(cpu,)}
    quick = suite.quick_settings().spread_over(2)
    assert fake.jobs[0].settings.max_time_s == quick.max_time_s
    fake.jobs.clear()
    cli.main(argv)
    capsys.readouterr()
    assert fake.labels == ["32x32"]  # --quick: one run, still in a worker
