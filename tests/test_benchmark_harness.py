"""The C++ benchmark harness (pyinfer/benchmark.hpp): its reports are pyinfer profile reports.

tests/cpp/harness/benchmarks.cpp is built against this checkout's headers under strict warnings
(and once without exceptions), then run benchmark by benchmark (``--filter '^name$'``); its
JSON reports are loaded with ``ProfileReport`` and judged with ``pyinfer compare``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyinfer import ProfileReport
from pyinfer.report.repetitions import summarize_runs

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "src" / "cpp" / "include"
SOURCE = ROOT / "tests" / "cpp" / "harness" / "benchmarks.cpp"
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
STRICT = [
    "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wsign-conversion", "-Wold-style-cast",
    "-Wshadow", "-Werror",
]  # fmt: skip

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH")


def build(out: Path, *flags: str) -> Path:
    command = [
        str(CXX), "-std=c++17", "-O2", *STRICT, *flags, f"-I{INCLUDE}", str(SOURCE),
        "-o", str(out), "-pthread",
    ]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("harness") / "benchmarks")


def run(program: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), *args], check=False, capture_output=True, text=True, timeout=300
    )


def measure(program: Path, name: str, path: Path, *args: str) -> dict[str, Any]:
    result = run(program, "--filter", f"^{name}$", "--json", str(path), *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{name}: median ")
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_a_report_is_a_profile_report_with_exact_figures(program: Path, tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    data = measure(program, "chain_1x", path, "--repetitions", "4", "--min-time", "0.05")
    report = ProfileReport.load(path)
    assert (report.model, report.format, report.device, report.batch_size) == (
        "chain_1x", "c++", "cpu", 1000,
    )  # fmt: skip
    samples = np.asarray(report.latency.samples_ns)
    stats = report.latency.stats
    assert stats.count == samples.size == data["harness"]["samples"]
    assert stats.median_ms == pytest.approx(np.median(samples) / 1e6, rel=1e-12)
    assert stats.mean_ms == pytest.approx(samples.mean() / 1e6, rel=1e-9)
    assert stats.std_ms == pytest.approx(samples.std(ddof=1) / 1e6, rel=1e-9)
    for p, value in ((90, stats.p90_ms), (99, stats.p99_ms), (99.9, stats.p999_ms)):
        assert value == pytest.approx(np.percentile(samples, p) / 1e6, rel=1e-12)
    assert (stats.min_ms, stats.max_ms) == (samples.min() / 1e6, samples.max() / 1e6)
    assert report.latency.timing_method.endswith("one call per sample")
    assert data["harness"]["batch"] == 1
    assert data["harness"]["batch_mode"] == "per-call (chosen)"
    assert report.throughput is not None
    assert data["harness"]["iterations"] == samples.size == report.throughput.calls

    # Repetitions: the same figures as the Python profiler's, from the same samples.
    reps = report.repetitions
    assert reps is not None
    assert reps.count == 4
    assert reps.in_one_process
    assert data["repetitions"]["in_one_process"] is True
    assert any(
        line.startswith("  Runs: 4 in one process; medians ")
        for line in report.to_text().splitlines()
    )
    sizes = [run.samples for run in reps.runs]
    runs = np.split(samples, np.cumsum(sizes)[:-1])
    expected = summarize_runs(
        runs, stable=[r.stable for r in reps.runs], wall_s=[r.wall_s for r in reps.runs]
    )
    assert reps.run_medians_ms == pytest.approx(expected.run_medians_ms, rel=1e-12)
    for name in ("median_ms", "interval_low_ms", "interval_high_ms", "spread", "cv_percent"):
        assert getattr(reps, name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-12)
    assert reps.reproducibility == pytest.approx(expected.reproducibility, rel=1e-9, abs=1e-12)
    medians = np.asarray(data["harness"]["run_medians_ns"])
    assert medians / 1e6 == pytest.approx(expected.run_medians_ms, rel=1e-12)
    aggregates = data["harness"]["aggregates"]
    assert aggregates["mean_ns"] == pytest.approx(medians.mean(), rel=1e-12)
    assert aggregates["median_ns"] == pytest.approx(np.median(medians), rel=1e-12)
    assert aggregates["stddev_ns"] == pytest.approx(medians.std(ddof=1), rel=1e-9, abs=1e-9)
    assert aggregates["cv"] == pytest.approx(
        medians.std(ddof=1) / medians.mean(), rel=1e-9, abs=1e-12
    )

    # Counters: per iteration, over the median iteration for rates.
    seconds = float(np.median(samples)) / 1e9
    assert data["harness"]["items_per_second"] == pytest.approx(1000 / seconds, rel=1e-12)
    assert data["harness"]["bytes_per_second"] == pytest.approx(8000 / seconds, rel=1e-12)
    assert data["harness"]["counters"] == {
        "steps": {"value": pytest.approx(1000 / seconds, rel=1e-12), "rate": True},
        "constant": {"value": 42.0, "rate": False},
    }
    assert data["environment"]["versions"]["pyinfer"] == __import__("pyinfer").__version__


def test_the_ci_gate_reads_cpp_reports(program: Path, tmp_path: Path) -> None:
    args = ("--repetitions", "5", "--min-time", "0.05")
    a, b, slow = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "slow.json"
    measure(program, "chain_1x", a, *args)
    measure(program, "chain_2x", slow, *args)
    measure(program, "chain_1x", b, *args)

    def compare(
        before: Path, after: Path, threshold: str = "5%"
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pyinfer", "compare", str(before), str(after)]
        return subprocess.run(
            [*command, "--fail-if-slower", threshold],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    # The same program twice: a 95% gate at 5% flags about one such pair in twenty on this
    # machine's speed states (measured: 1 of 20), so the A/A side gates at 50%, which the
    # 2x-slower program still fails with 5% below.
    same = compare(a, b, "50%")
    assert same.returncode == 0, same.stdout + same.stderr
    slower = compare(a, slow)
    assert slower.returncode == 4, slower.stdout + slower.stderr
    assert re.search(r"chain_2x is \d+\.\d+x slower than chain_1x", slower.stdout), slower.stdout
    assert "slower beyond 5%" in slower.stderr


def test_short_bodies_are_batched_and_the_report_says_so(program: Path, tmp_path: Path) -> None:
    auto = measure(program, "noop", tmp_path / "auto.json", "--min-time", "0.05")
    forced = measure(program, "noop_batch_8", tmp_path / "forced.json", "--min-time", "0.05")
    per_call = measure(program, "noop_per_call", tmp_path / "one.json", "--min-time", "0.05")
    k = auto["harness"]["batch"]
    assert k >= 2
    assert k & (k - 1) == 0
    assert auto["harness"]["batch_mode"] == "batch (chosen)"
    assert re.fullmatch(
        rf"C\+\+ timed loop \((TSC|CLOCK_MONOTONIC)\), batches of {k} calls per sample, divided "
        r"\(chosen: a call took [\d.e+-]+ ns, under 50 ns\)",
        auto["latency"]["timing_method"],
    )
    assert auto["harness"]["warmup_median_ns"] < 50.0
    count = auto["latency"]["stats"]["count"]
    assert auto["harness"]["iterations"] == count * k == auto["throughput"]["calls"]
    assert forced["harness"]["batch"] == 8
    assert forced["harness"]["batch_mode"] == "batch (forced)"
    assert forced["latency"]["timing_method"].endswith(
        "batches of 8 calls per sample, divided (forced)"
    )
    assert per_call["harness"]["batch"] == 1
    assert per_call["harness"]["batch_mode"] == "per-call (forced)"
    # Per call, each sample holds a clock read; a batch spreads it over k calls.
    assert auto["latency"]["stats"]["median_ms"] < per_call["latency"]["stats"]["median_ms"] / 2
    for data in (auto, forced, per_call):
        ProfileReport.from_dict(data)


def test_the_stopping_rule(program: Path, tmp_path: Path) -> None:
    exact = measure(program, "exact_count", tmp_path / "exact.json")
    assert exact["latency"]["stats"]["count"] == 250
    assert exact["latency"]["stable"] is True
    assert re.fullmatch(
        r"stable: cv [\d.]+%, no target after 250 samples in [\d.]+ s",
        exact["latency"]["stability_reason"],
    )
    cap = measure(program, "iteration_cap", tmp_path / "cap.json")
    assert cap["latency"]["stats"]["count"] == 300
    assert cap["latency"]["stable"] is False
    assert re.fullmatch(
        r"NOT stable: cv [\d.]+% > 0\.00% target, stopped at the iteration cap \(300\) after "
        r"300 samples",
        cap["latency"]["stability_reason"],
    )
    timed = measure(program, "time_cap", tmp_path / "time.json")
    assert timed["latency"]["stable"] is False
    assert "stopped at the time cap (0.05 s)" in timed["latency"]["stability_reason"]
    assert 0.05 <= timed["latency"]["wall_s"] < 1.0
    minimum = measure(program, "chain_1x", tmp_path / "min.json", "--min-time", "0.3")
    assert minimum["latency"]["wall_s"] >= 0.3
    assert minimum["latency"]["stability_reason"].startswith("stable: ")
    assert minimum["repetitions"] is None


def test_statistics_without_samples(program: Path, tmp_path: Path) -> None:
    data = measure(program, "no_samples", tmp_path / "s.json")
    assert data["latency"]["samples_ns"] == []
    report = ProfileReport.from_dict(data)
    assert report.latency.stats.count == 100
    assert math.isfinite(report.latency.stats.median_ms)


def test_the_command_line(program: Path, tmp_path: Path) -> None:
    assert run(program, "--bogus", "1").returncode == 2
    assert "unknown option --bogus" in run(program, "--bogus", "1").stderr
    assert run(program, "--repetitions", "0").returncode == 2
    assert run(program, "--filter", "(").returncode == 2
    assert run(program, "--filter", "^nothing$").returncode == 2
    two = run(program, "--filter", "^noop", "--json", str(tmp_path / "x.json"))
    assert two.returncode == 2
    assert "put {name} in FILE" in two.stderr
    never = run(program, "--filter", "^never_runs$")
    assert never.returncode == 1
    assert "benchmark never_runs never called bench.run()" in never.stderr
    many = run(
        program, "--filter", "^(exact_count|no_samples)$", "--json", str(tmp_path / "{name}.json")
    )
    assert many.returncode == 0, many.stderr
    assert [line.split(":")[0] for line in many.stdout.splitlines()] == [
        "exact_count", "no_samples",
    ]  # fmt: skip
    assert re.fullmatch(
        r"exact_count: median [\d.e+]+ ns, p99 [\d.e+]+ ns, 250 samples, per call",
        many.stdout.splitlines()[0],
    )
    for name in ("exact_count", "no_samples"):
        ProfileReport.load(tmp_path / f"{name}.json")


def test_the_harness_builds_and_runs_without_exceptions(tmp_path: Path) -> None:
    exe = build(tmp_path / "noexcept", "-fno-exceptions")
    data = measure(exe, "exact_count", tmp_path / "e.json")
    assert data["latency"]["stats"]["count"] == 250


def test_the_documented_example_builds_and_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "native.md").read_text()
    section = text.split("### Benchmark programs", 1)[1]
    source = tmp_path / "bench.cpp"
    source.write_text(section.split("```cpp\n", 1)[1].split("```", 1)[0])
    exe = tmp_path / "bench"
    command = [str(CXX), "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}"]
    built = subprocess.run(
        [*command, str(source), "-o", str(exe), "-pthread", "-ldl"],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    out = tmp_path / "{name}.json"
    result = run(exe, "--repetitions", "2", "--min-time", "0.02", "--json", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["matmul_64", "noop"]
    assert " items/s, " in lines[0]
    assert ", flop " in lines[0]
    assert re.search(r", batch \d+, 2 repetitions", lines[1])
    for name in ("matmul_64", "noop"):
        assert ProfileReport.load(tmp_path / f"{name}.json").repetitions is not None


def test_the_median_ci_stability_measure(program: Path, tmp_path: Path) -> None:
    # The same measure, by the same name, as the Python stopping rule's.
    from pyinfer.report.stats import median_ci_relative

    data = measure(program, "median_ci_target", tmp_path / "ci.json")
    latency = data["latency"]
    assert latency["stability_metric"] == "median_ci"
    assert latency["stats"]["count"] == 200
    expected = median_ci_relative(np.asarray(latency["samples_ns"]))
    assert latency["stability_value"] == pytest.approx(expected, rel=1e-12)
    assert latency["stable"] is (expected <= 0.5)
    verdict = "stable" if expected <= 0.5 else "NOT stable"
    assert latency["stability_reason"].startswith(f"{verdict}: median 95% CI ")
    assert ProfileReport.from_dict(data).latency.stability_metric == "median_ci"


def test_an_unknown_stability_measure_is_refused(program: Path, tmp_path: Path) -> None:
    result = run(program, "--filter", "^unknown_metric$")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "unknown stability_metric 'iqr'; use one of 'cv', 'median_ci'\n"


def test_the_report_carries_the_machine_context(program: Path, tmp_path: Path) -> None:
    # The Python reports' Environment.system, key for key, plus the load and the caches.
    from pyinfer.report.system import read_system_tuning

    path = tmp_path / "context.json"
    measure(program, "no_samples", path)
    system = ProfileReport.load(path).environment.system
    expected = read_system_tuning().to_dict()
    assert {k: system[k] for k in expected} == expected
    load = system["load_average"]
    assert len(load) == 3
    assert all(v >= 0.0 for v in load)
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        caches.append({"level": int(level), "type": kind, "size": size})
    caches.sort(key=lambda c: (c["level"], c["type"]))
    assert sorted(system["caches"], key=lambda c: (c["level"], c["type"])) == caches


def test_warm_up_until_settled(program: Path, tmp_path: Path) -> None:
    # As the Python profiler's warm-up: windows of samples until two medians agree.
    data = measure(program, "settling", tmp_path / "settle.json")
    assert data["latency"]["warmup_settled"] is True
    assert data["latency"]["warmup_iterations"] == 300
    assert ProfileReport.from_dict(data).latency.warmup_settled is True
    fixed = measure(program, "exact_count", tmp_path / "fixed.json")
    assert fixed["latency"]["warmup_settled"] is None
    assert fixed["latency"]["warmup_iterations"] == 10
