"""Reports: statistics, the specification's text layout, JSON round trip and schema checks,
CSV/Markdown, the box tables, plots, atomic writes, compare() of reports without repetitions."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyinfer.backends.frameworks import physical_cores
from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError
from pyinfer.report import (
    SCHEMA_VERSION,
    BatchCurve,
    BatchPoint,
    ColdStart,
    GpuUtilization,
    LatencyMeasurement,
    LatencyStats,
    MemoryStats,
    ProfileReport,
    Throughput,
    compare,
    comparison_table,
    reports_to_csv,
    write_atomic,
)
from pyinfer.report import stats as _stats
from pyinfer.report.environment import collect_environment, cpu_model

MB = 1024 * 1024

# ---- statistics -------------------------------------------------------------------------------


def test_latency_stats_match_numpy(rng: np.random.Generator) -> None:
    samples = rng.lognormal(np.log(4e6), 0.1, size=1234)
    s = LatencyStats.from_samples_ns(samples)
    ms = samples / 1e6
    assert s.count == 1234
    assert s.mean_ms == pytest.approx(ms.mean(), rel=1e-12)
    assert s.std_ms == pytest.approx(ms.std(ddof=1), rel=1e-9)
    assert s.median_ms == pytest.approx(np.percentile(ms, 50), rel=1e-12)
    for p, value in ((90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms), (99.9, s.p999_ms)):
        assert value == pytest.approx(np.percentile(ms, p), rel=1e-12)
    assert (s.min_ms, s.max_ms) == (ms.min(), ms.max())
    assert s.std_percent == pytest.approx(100 * ms.std(ddof=1) / ms.mean())
    assert s.unsupported_percentiles == ("P99.9",)  # 1234 >= 1000 for P99, < 10000 for P99.9
    single = LatencyStats.from_samples_ns([2e6])
    assert (single.count, single.std_ms, single.p99_ms) == (1, 0.0, 2.0)
    with pytest.raises(InvalidArgumentError, match="no samples"):
        LatencyStats.from_samples_ns([])


def test_the_percentile_sample_count_rule() -> None:
    assert [_stats.min_samples_for_percentile(p) for p in (50, 90, 95, 99, 99.9)] == [
        20,
        100,
        200,
        1000,
        10000,
    ]
    assert _stats.percentile_supported(99, 1000)
    assert not _stats.percentile_supported(99, 999)
    assert LatencyStats.from_samples_ns(np.ones(50)).unsupported_percentiles == (
        "P90",
        "P95",
        "P99",
        "P99.9",
    )
    with pytest.raises(InvalidArgumentError, match=r"must be in \[0, 100\), got 100"):
        _stats.min_samples_for_percentile(100)


def test_stability_measures_on_hand_checked_values() -> None:
    # std(ddof=1) of 1..4 is sqrt(5/3) = 1.2910; over the mean 2.5.
    assert _stats.coefficient_of_variation([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3) / 2.5)
    assert _stats.coefficient_of_variation([5.0]) == math.inf
    # n = 10: ranks 10/2 -+ 1.96 sqrt(10)/2 = 5 -+ 3.099 -> order statistics 2 and 9 (1-based);
    # (9 - 2) / 2 over the median 5.5.
    assert _stats.median_ci_relative(list(range(1, 11))) == pytest.approx(3.5 / 5.5)
    assert _stats.median_ci_relative([1.0, 2.0]) == math.inf
    with pytest.raises(InvalidArgumentError, match="samples must be finite"):
        _stats.coefficient_of_variation([1.0, math.nan])


def test_knee_index() -> None:
    assert _stats.knee_index([238, 392, 548, 678, 780, 837]) == 4
    assert _stats.knee_index([5.0], 1.0) == 0
    with pytest.raises(InvalidArgumentError, match="knee fraction must be in"):
        _stats.knee_index([1.0], 0.0)
    with pytest.raises(InvalidArgumentError, match="knee of an empty curve"):
        _stats.knee_index([])


# ---- a report built by hand: the specification's example --------------------------------------


def spec_samples() -> np.ndarray:
    """1000 samples whose statistics are the specification's example, within rounding."""
    rng = np.random.default_rng(7)
    return rng.normal(4.23e6, 0.21e6, size=1000)


def make_report(samples_ns: np.ndarray | None = None, **changes: object) -> ProfileReport:
    samples = spec_samples() if samples_ns is None else samples_ns
    latency = LatencyMeasurement(
        batch_size=1,
        stats=LatencyStats.from_samples_ns(samples),
        samples_ns=tuple(float(v) for v in samples),
        warmup_iterations=100,
        warmup_settled=True,
        stable=True,
        stability_reason="stable: median 95% CI 0.40% <= 1.00% target after 1000 samples",
        stability_metric="median_ci",
        stability_value=0.004,
        timing_method="CUDA events on the model's stream, one synchronisation per chunk",
        wall_s=4.3,
        host_mean_ms=4.4,
    )
    report = ProfileReport(
        model="ResNet50",
        format="pytorch",
        framework="torch",
        device="cuda:0",
        device_name="CUDA (Tesla V100-SXM2-32GB)",
        batch_size=1,
        input_shapes={"input": (1, 3, 224, 224)},
        input_dtypes={"input": "float32"},
        latency=latency,
        environment=collect_environment(model_options={"channels_last": True}),
        throughput=Throughput(1, 2364, 10.0, GpuUtilization(93.5, 100.0, 100)),
        memory=MemoryStats(
            parameter_bytes=int(97.5 * MB),
            peak_activation_bytes=int(125.3 * MB),
            activation_method="torch peak allocated over the post-load allocated, 3 calls",
            runs=3,
            gpu_allocated_bytes=int(200 * MB),
            gpu_reserved_bytes=int(350.8 * MB),
            device_used_bytes=int(900 * MB),
            device_total_bytes=int(32000 * MB),
        ),
        cold_start=ColdStart(load_time_s=1.25, first_inference_ms=850.0),
        batch_curve=BatchCurve(
            (
                BatchPoint(1, 4.2, 4.18, 4.5, 238.0, True),
                BatchPoint(2, 5.1, 5.0, 5.6, 392.0, True),
                BatchPoint(64, error="out of memory: CUDA out of memory", out_of_memory=True),
            ),
            knee_batch_size=2,
            latency_budget_ms=None,
            best_batch_size=2,
            best_reason="batch 2: the highest throughput, 392.0 FPS (no latency budget given)",
        ),
    )
    return replace(report, **changes)  # type: ignore[arg-type]


def test_text_follows_the_specification_layout_line_for_line() -> None:
    report = make_report()
    s = report.latency.stats
    text = report.to_text()
    lines = text.splitlines()
    assert lines[:24] == [
        "Profiling Results:",
        "==================",
        "Model: ResNet50",
        "Device: CUDA (Tesla V100-SXM2-32GB)",
        "Input Shape: (1, 3, 224, 224)",
        "Iterations: 1000 (100 warmup)",
        "",
        "Latency Statistics:",
        f"  Mean:   {s.mean_ms:.2f} ms",
        f"  Median: {s.median_ms:.2f} ms",
        f"  Std:    {s.std_ms:.2f} ms ({s.std_percent:.1f}%)",
        f"  Min:    {s.min_ms:.2f} ms",
        f"  Max:    {s.max_ms:.2f} ms",
        f"  P95:    {s.p95_ms:.2f} ms",
        f"  P99:    {s.p99_ms:.2f} ms",
        "",
        "Memory Usage:",
        "  Model Parameters: 97.5 MB",
        "  Peak Activation:  125.3 MB",
        "  Total GPU:        350.8 MB",
        "",
        "Throughput: 236.4 FPS",
        "",
        "Details:",
    ]
    assert "  P90:    " in text
    assert "  Host end-to-end: 4.40 ms per call" in lines
    assert "  Cold start: load 1.250 s, first inference 850.00 ms" in lines
    assert "  GPU utilisation: mean 93.5%, max 100.0% (100 samples)" in lines
    assert "  Too few samples for P99.9 (1,000 taken; P99.9 needs 10,000): read them as rough" in (
        lines
    )
    assert "  Knee of the batch curve: batch 2" in lines


def test_text_on_the_cpu_names_its_memory_line_and_small_latencies_keep_digits() -> None:
    memory = MemoryStats(
        parameter_bytes=MB,
        peak_activation_bytes=None,
        activation_method="x",
        runs=1,
        process_peak_rss_bytes=512 * MB,
    )
    report = make_report(np.full(30, 25_000.0), memory=memory, throughput=None, batch_curve=None)
    lines = report.to_text().splitlines()
    assert "  Mean:   0.0250 ms" in lines
    assert "  Peak Activation:  n/a" in lines
    assert "  Process Peak RSS: 512.0 MB" in lines
    assert f"Throughput: {1 * 30 / 4.3:.1f} FPS" in lines  # the latency run's, without a run
    assert not any(line.startswith("  GPU utilisation") for line in lines)


# ---- JSON -------------------------------------------------------------------------------------


def test_json_round_trips_exactly(tmp_path: Path) -> None:
    report = make_report()
    report = replace(report, latency=replace(report.latency, stability_value=math.inf))
    text = report.to_json()
    payload = json.loads(text)
    assert payload["schema_version"] == SCHEMA_VERSION
    assert payload["latency"]["stability_value"] == "inf"  # strict JSON: no Infinity literal
    assert payload["input_shapes"] == {"input": [1, 3, 224, 224]}
    back = ProfileReport.from_json(text)
    assert back == report
    assert back.input_shapes["input"] == (1, 3, 224, 224)
    assert back.batch_curve is not None
    assert back.batch_curve.points[2].out_of_memory
    path = report.save(tmp_path / "r.json")
    assert ProfileReport.load(path) == report


def test_a_newer_major_schema_is_refused_with_a_clear_error() -> None:
    payload = make_report().to_dict()
    payload["schema_version"] = "2.0"
    with pytest.raises(InvalidArgumentError, match=r"schema 2\.0 is newer .* upgrade pyinfer"):
        ProfileReport.from_dict(payload)
    payload["schema_version"] = "0.9"
    with pytest.raises(InvalidArgumentError, match=r"schema 0\.9 is older"):
        ProfileReport.from_dict(payload)
    payload["schema_version"] = None
    with pytest.raises(InvalidArgumentError, match="not a pyinfer profile report"):
        ProfileReport.from_dict(payload)


def test_a_newer_minor_schema_is_read_ignoring_new_fields() -> None:
    report = make_report()
    payload = report.to_dict()
    payload["schema_version"] = "1.7"
    payload["latency"]["energy_joules"] = 3.0
    assert ProfileReport.from_dict(payload) == replace(report, schema_version="1.7")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["latency"].pop("stats"), "report.latency: field 'stats' is missing"),
        (
            lambda d: d["latency"]["stats"].update(mean_ms="fast"),
            "report.latency.stats.mean_ms: expected a number, got 'fast'",
        ),
        (lambda d: d.update(batch_size=True), "report.batch_size: expected an integer"),
        (lambda d: d.update(model=3), "report.model: expected a string, got 3"),
        (lambda d: d["latency"].update(stable="yes"), "report.latency.stable: expected true"),
        (lambda d: d.update(input_shapes=[1]), "report.input_shapes: expected an object"),
        (lambda d: d.update(latency=[]), "report.latency: expected an object"),
        (
            lambda d: d["latency"].update(samples_ns=5),
            "report.latency.samples_ns: expected a list",
        ),
    ],
)
def test_a_damaged_report_names_the_field(edit: object, message: str) -> None:
    payload = make_report().to_dict()
    edit(payload)  # type: ignore[operator]
    with pytest.raises(InvalidArgumentError) as info:
        ProfileReport.from_dict(payload)
    assert message in str(info.value)


def test_not_json_and_not_an_object_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        ProfileReport.from_json("{")
    with pytest.raises(InvalidArgumentError, match="must be a JSON object, not list"):
        ProfileReport.from_json("[]")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InvalidArgumentError, match=r"bad\.json: not a pyinfer profile report"):
        ProfileReport.load(bad)


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage\x80",
        '{"model": "\u00e9"}'.encode("latin-1"),
        b"\x00" * 10,
        b"[" * 100_000,
    ],
    ids=["binary", "latin-1", "zeros", "nested"],
)
def test_a_damaged_file_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "damaged.json"
    bad.write_bytes(content)
    with pytest.raises(InvalidArgumentError, match=r"damaged\.json: profile report is not valid"):
        ProfileReport.load(bad)


# ---- CSV, Markdown, tables --------------------------------------------------------------------


def test_csv_has_one_row_per_report() -> None:
    a = make_report()
    b = make_report(model="MobileNetV2", memory=None)
    rows = list(csv.DictReader(io.StringIO(reports_to_csv([a, b]))))
    assert [r["model"] for r in rows] == ["ResNet50", "MobileNetV2"]
    assert float(rows[0]["median_ms"]) == a.latency.stats.median_ms
    assert rows[0]["parameter_bytes"] == str(int(97.5 * MB))
    assert rows[1]["parameter_bytes"] == ""
    assert rows[0]["stable"] == "True"
    assert float(rows[0]["throughput_fps"]) == pytest.approx(236.4)
    assert next(iter(csv.DictReader(io.StringIO(a.to_csv())))) == rows[0]
    with pytest.raises(InvalidArgumentError, match="at least one report"):
        reports_to_csv([])


def test_markdown_has_the_metrics_and_batch_tables() -> None:
    md = make_report().to_markdown()
    assert md.startswith("## ResNet50 (PyTorch (FP32))\n")
    assert "| Iterations | 1000 (100 warmup) |" in md
    assert "| Throughput | 236.4 FPS |" in md
    tail = next(line for line in md.splitlines() if line.startswith("| P90 / P95"))
    assert tail.endswith(" ms (too few samples for P99.9: rough) |")  # 1000 samples
    assert "| 2 | 5.10 | 392.0 |" in md
    assert "| 64 | failed: out of memory: CUDA out of memory | |" in md


def test_a_failure_message_on_several_lines_keeps_the_tables_whole() -> None:
    curve = BatchCurve((BatchPoint(4, error="RuntimeError: shape | mismatch\n  at node 'fc'"),))
    md = make_report(batch_curve=curve).to_markdown().splitlines()
    assert md[-1] == "| 4 | failed: RuntimeError: shape \\| mismatch at node 'fc' | |"
    table = curve.to_table().splitlines()
    assert len(table) == 4
    assert table[2].endswith("failed [1]")
    assert table[3] == "[1] batch 4 failed: RuntimeError: shape | mismatch at node 'fc'"


SPEC_HEADER = "Model Format    │ Latency (ms) │ Throughput (FPS) │ Memory (MB)"
SPEC_RULE = "────────────────┼──────────────┼──────────────────┼────────────"


def test_comparison_table_has_the_specifications_header_and_rule() -> None:
    a = make_report()
    onnx = make_report(
        format="onnx", memory=replace(a.memory, peak_activation_bytes=int(10.7 * MB))
    )
    table = comparison_table([a, onnx]).splitlines()
    assert table[0] == SPEC_HEADER
    assert table[1] == SPEC_RULE
    mean = f"{a.latency.stats.mean_ms:.1f}"
    assert table[2] == f"PyTorch (FP32)  │{mean:^14}│{'236.4':^18}│{'223':^12}".rstrip()
    assert table[3].startswith("ONNX (FP32)     │")
    assert table[3].endswith("│    108")  # 97.5 MB of weights + 10.7 MB of activations
    named = comparison_table([a], labels=["a much longer label than sixteen"]).splitlines()
    assert named[0].startswith("Model Format" + " " * 22 + "│")  # the column grows to fit
    with pytest.raises(InvalidArgumentError, match="1 labels given for 2 reports"):
        comparison_table([a, a], labels=["x"])
    with pytest.raises(InvalidArgumentError, match="at least one report"):
        comparison_table([])


def test_comparison_rows_of_one_format_on_two_devices_can_be_told_apart() -> None:
    gpu = make_report(format="onnx")
    cpu = make_report(format="onnx", device="cpu", device_name="CPU (EPYC, 2 cores)")
    torch_gpu = make_report()
    table = comparison_table([cpu, gpu, torch_gpu]).splitlines()
    assert [row.split("│")[0].rstrip() for row in table[2:]] == [
        "ONNX (FP32) cpu",
        "ONNX (FP32) cuda:0",
        "PyTorch (FP32)",  # unique already: left as the specification writes it
    ]
    other = make_report(format="onnx", model="MobileNetV2", batch_size=8)
    rows = comparison_table([gpu, other]).splitlines()[2:]
    assert [row.split("│")[0].rstrip() for row in rows] == [
        "ONNX (FP32) cuda:0 ResNet50 b1",
        "ONNX (FP32) cuda:0 MobileNetV2 b8",
    ]


def test_batch_table_and_csv() -> None:
    curve = make_report().batch_curve
    assert curve is not None
    lines = curve.to_table().splitlines()
    assert lines[0] == "Batch Size │ Latency (ms) │ Throughput (FPS) │ Batches/s (RPS)"
    # The failure is a note under the table, which keeps its widths.
    assert lines[1] == "───────────┼──────────────┼──────────────────┼" + "─" * 16
    assert lines[2] == f"{'1':^11}│{'4.20':^14}│{'238.0':^18}│{'238.0':^16}".rstrip()
    assert lines[4] == f"{'64':^11}│{'-':^14}│{'-':^18}│{'failed [1]':^16}".rstrip()
    assert lines[5:] == ["[1] batch 64 failed: out of memory: CUDA out of memory"]
    rows = list(csv.DictReader(io.StringIO(curve.to_csv())))
    assert rows[1]["throughput_fps"] == "392.0"
    assert rows[2]["out_of_memory"] == "True"
    assert rows[2]["latency_mean_ms"] == ""


# ---- files and plots --------------------------------------------------------------------------


def test_save_picks_the_format_from_the_suffix(tmp_path: Path) -> None:
    report = make_report()
    assert report.save(tmp_path / "r.txt").read_text() == report.to_text()
    assert report.save(tmp_path / "r.csv").read_text() == report.to_csv()
    assert report.save(tmp_path / "r.md").read_text() == report.to_markdown()
    assert report.save(tmp_path / "r.out", format="json").read_text() == report.to_json()
    with pytest.raises(InvalidArgumentError, match=r"cannot tell the report format of .*r\.xls"):
        report.save(tmp_path / "r.xls")


def test_write_atomic_replaces_or_leaves_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would, not mkstemp's 0600

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "half")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = make_report()
    assert report.batch_curve is not None
    curve_png = report.batch_curve.plot(tmp_path / "curve.png", title="ResNet50")
    latency_png = report.plot_latency(tmp_path / "latency.png")
    for path in (curve_png, latency_png):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000  # axes, lines and labels, not an empty canvas
    empty = BatchCurve((BatchPoint(1, error="x"),))
    with pytest.raises(InvalidArgumentError, match="no measured point to plot"):
        empty.plot(tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    stripped = replace(report, latency=replace(report.latency, samples_ns=()))
    with pytest.raises(InvalidArgumentError, match="'ResNet50' holds no raw latency samples"):
        stripped.plot_latency(tmp_path / "stripped.png")


def test_plots_without_matplotlib_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(FrameworkNotInstalledError, match=r'pip install "pyinfer-toolkit\[plot\]"'):
        make_report().plot_latency(tmp_path / "x.png")


# ---- compare ----------------------------------------------------------------------------------


def test_compare_of_single_runs_gives_the_ratio_and_no_verdict(rng: np.random.Generator) -> None:
    # One process each: however many calls, run-to-run variation is not measured, so a 10%
    # shift of the per-call samples is not called slower (the verdicts on run medians are in
    # tests/test_comparison_runs.py).
    base = rng.lognormal(np.log(4e6), 0.05, size=500)
    slower = base * 1.10
    worse = compare(make_report(base), make_report(slower))
    assert worse.verdict == "cannot tell from run-to-run noise"
    assert (worse.ratio_low, worse.ratio_high, worse.runs_before, worse.runs_after) == (
        None,
        None,
        1,
        1,
    )
    assert worse.ratio == pytest.approx(1.10, rel=1e-9)
    median = next(c for c in worse.changes if c.name == "median")
    assert median.change_percent == pytest.approx(10.0, rel=1e-9)
    assert "median (ms)" in worse.to_text()
    assert "Verdict: cannot tell from run-to-run noise: after/before latency 1.10x" in (
        worse.to_text()
    )


def test_compare_says_when_the_batch_sizes_differ() -> None:
    same = compare(make_report(), make_report())
    assert len(same.notes) == 1
    assert same.notes[0].startswith("one run per report cannot tell a change")
    mixed = compare(make_report(), make_report(batch_size=8))
    assert mixed.to_text().splitlines()[-1] == (
        "Note: the batch sizes differ (1 vs 8): the latencies (and the verdict) are of calls of "
        "different sizes; throughput is the like-for-like figure"
    )


def test_compare_says_when_the_models_differ_and_keeps_its_columns_apart(
    rng: np.random.Generator,
) -> None:
    base = rng.lognormal(np.log(0.007e6), 0.05, size=500)
    other = make_report(rng.lognormal(np.log(11.7e6), 0.05, size=500), model="MobileNetV2")
    lines = compare(make_report(base), other).to_text().splitlines()
    assert lines[-1] == (
        "Note: the models differ (ResNet50 vs MobileNetV2): the change is between two models, "
        "not two runs of one"
    )
    # A change of +167000% still has a space before it.
    mean = lines[1]
    assert re.fullmatch(r"mean \(ms\) +[\d.e+-]+ +[\d.e+-]+ \+\d+\.\d%", mean), mean
    assert len(lines[0]) == 50
    assert lines[0].endswith("    change")


def test_thousands_of_calls_apart_are_not_a_verdict(rng: np.random.Generator) -> None:
    base = rng.normal(4e6, 0.01e6, size=5000)
    result = compare(make_report(base), make_report(base * 1.005))
    # A U test on these calls gave p < 1e-6; the calls of one process are not independent
    # runs, so nothing is decided on them.
    assert result.verdict == "cannot tell from run-to-run noise"
    assert not result.regression(0.0)


# ---- environment ------------------------------------------------------------------------------


def test_environment_records_the_machine() -> None:
    env = collect_environment(model_options={"intra_op_threads": 2, "providers": ("CPU",)})
    assert env.logical_cores == os.cpu_count()
    assert env.affinity == len(os.sched_getaffinity(0))
    assert env.cpu_model == cpu_model()
    assert env.cpu_model
    assert env.physical_cores == physical_cores()
    assert env.threads["model.intra_op_threads"] == 2
    assert env.model_options == {"intra_op_threads": 2, "providers": ["CPU"]}
    assert "numpy" in env.versions
    assert env.clock["timed_loop_clock"]
    assert env.gpu_name == ""
    assert env.gpu_memory_bytes == 0
    assert env.timestamp.endswith("+00:00")


def test_stats_from_a_core_summary_need_the_reported_percentiles() -> None:
    from pyinfer import core

    summary = core.summarize(np.array([1e6, 2e6, 3e6]))
    assert LatencyStats.from_summary(summary).median_ms == 2.0
    with pytest.raises(InvalidArgumentError, match=r"lacks percentile\(s\) 90, 95, 99, 99.9"):
        LatencyStats.from_summary(core.summarize(np.array([1e6]), [50.0]))


def test_a_batch_curve_round_trips_through_json() -> None:
    curve = BatchCurve(
        (
            BatchPoint(1, 0.5, 0.45, 0.6, 2000.0, stable=True),
            BatchPoint(2, 0.8, 0.75, math.inf, 2500.0, stable=False),
            BatchPoint(4, error="out of memory: CUDA out of memory", out_of_memory=True),
        ),
        knee_batch_size=2,
        latency_budget_ms=1.0,
        best_batch_size=1,
        best_reason="batch 1: 2000.0 FPS with P95 0.600 ms within the 1 ms budget",
    )
    text = curve.to_json()
    assert json.loads(text)["points"][1]["latency_p95_ms"] == "inf"
    assert BatchCurve.from_json(text) == curve
    assert BatchCurve.from_dict(curve.to_dict()) == curve
    with pytest.raises(InvalidArgumentError, match=r"batch curve.points\[0\].batch_size: expected"):
        BatchCurve.from_json(text.replace('"batch_size": 1,', '"batch_size": "one",'))
    with pytest.raises(InvalidArgumentError, match="batch curve is not valid JSON"):
        BatchCurve.from_json(text[:-2])


def _drawn_labels(axis: Any) -> list[str]:
    axis.figure.canvas.draw()
    labels = axis.get_ticklabels(which="both")
    return [t.get_text() for t in labels if t.get_text() and t.get_visible()]


@pytest.mark.parametrize(("low_ms", "high_ms"), [(11.5, 13.0), (0.05, 0.4), (3.0, 2500.0)])
def test_the_cdf_log_axis_reads_plain_numbers(low_ms: float, high_ms: float) -> None:
    pytest.importorskip("matplotlib")
    from pyinfer.report.plots import latency_figure

    samples = np.geomspace(low_ms, high_ms, 300) * 1e6
    fig = latency_figure(make_report(samples))
    labels = _drawn_labels(fig.axes[1].xaxis)
    assert labels
    for text in labels:
        assert "10^" not in text
        assert "times" not in text
        float(text)  # "12", "0.1", "1000": plain numbers


def test_the_histogram_note_counts_only_the_calls_it_leaves_out() -> None:
    pytest.importorskip("matplotlib")
    from pyinfer.report.plots import latency_figure

    rng = np.random.default_rng(1)
    body = rng.normal(12.0, 0.2, 2000)
    # No outlier: every call is drawn, the axis ends at the slowest, and there is no note.
    fig = latency_figure(make_report(body * 1e6))
    hist = fig.axes[0]
    assert hist.get_title() == ""
    counts = sum(patch.get_height() for patch in hist.patches)
    assert counts == 2000
    # One preempted call: the calls over P99.9 (a sample) are left out, counted exactly, and
    # the slowest is named.
    slow = np.concatenate([body, [90.0]])
    fig = latency_figure(make_report(slow * 1e6))
    hist = fig.axes[0]
    upper = float(np.sort(slow)[int(0.999 * 2000)])
    beyond = int(np.count_nonzero(slow > upper))
    assert beyond == 2  # the outlier and the body's slowest
    assert hist.get_title() == (
        f"2 calls over P99.9 ({upper:.4g} ms) not shown: the slowest took 90 ms"
    )
    assert sum(patch.get_height() for patch in hist.patches) == 2001 - beyond
    assert hist.get_xlim()[1] < 14.0


def test_the_batch_plot_labels_the_batch_sizes() -> None:
    pytest.importorskip("matplotlib")
    from pyinfer.report.plots import batch_curve_figure

    curve = BatchCurve(
        tuple(
            BatchPoint(b, 1.0 * b, 1.0 * b, 1.2 * b, 900.0 + b, stable=True) for b in (1, 3, 8, 64)
        )
    )
    fig = batch_curve_figure(curve, title="mlp")
    assert _drawn_labels(fig.axes[0].xaxis) == ["1", "3", "8", "64"]


def test_every_json_record_names_an_unreadable_file(tmp_path: Path) -> None:
    """ProfileReport, SweepReport and BatchCurve (and the bench results) share one loader: a
    missing file is a typed error naming it, as is a damaged one."""
    from pyinfer.report import BatchCurve, JsonRecord, SweepReport

    missing = tmp_path / "missing.json"
    for cls in (ProfileReport, SweepReport, BatchCurve):
        assert issubclass(cls, JsonRecord)
        with pytest.raises(InvalidArgumentError) as info:
            cls.load(missing)
        assert str(info.value) == (
            f"cannot read the {cls.JSON_WHAT} {missing}: No such file or directory"
        )
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{")
    with pytest.raises(InvalidArgumentError, match=rf"^{damaged}: sweep report is not valid JSON"):
        SweepReport.load(damaged)
