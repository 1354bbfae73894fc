"""pyinfer.measure: samples of a block the caller runs, summarised into a profile report."""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling import ProfilerSettings
from pyinfer.profiling.code_timing import MEASURE_TIMING, Measurement, measure
from pyinfer.report import LatencyStats, ProfileReport

#: A rule that five samples and no time satisfy, when they agree.
FIVE = ProfilerSettings(min_iterations=5, min_time_s=0.0, max_iterations=1000)

EMPTY = (
    "measure 'work' has no samples to report ({count} recorded, {warmup} of them warm-up): "
    "time the block with `with m.time():`, decorate a function with the measurement, or add "
    "durations with m.sample()"
)


def test_timed_blocks_are_one_sample_each_at_least_as_long_as_the_block() -> None:
    with measure("sleep", settings=FIVE) as m:
        for _ in range(6):
            with m.time():
                time.sleep(0.002)
    assert m.count == 6
    samples = m.samples_ns
    assert samples.shape == (6,)
    assert np.all(samples >= 2e6)  # sleep never returns early
    report = m.report
    assert report.model == "sleep"
    assert report.latency.stats == LatencyStats.from_samples_ns(samples)
    assert report.latency.timing_method == MEASURE_TIMING
    assert report.cold_start.first_inference_ms == samples[0] / 1e6


def test_statistics_of_given_durations_match_numpy() -> None:
    durations = [0.004, 0.001, 0.002, 0.003, 0.005, 0.002]
    m = measure("given", warmup=1)
    for d in durations:
        m.sample(d)
    report = m.report
    kept = np.asarray(durations[1:]) * 1e3
    stats = report.latency.stats
    assert stats.count == 5
    assert math.isclose(stats.mean_ms, float(np.mean(kept)))
    assert math.isclose(stats.median_ms, float(np.median(kept)))
    assert math.isclose(stats.std_ms, float(np.std(kept, ddof=1)))
    assert (stats.min_ms, stats.max_ms) == (1.0, 5.0)
    assert report.latency.warmup_iterations == 1
    assert report.cold_start.first_inference_ms == 4.0  # the first sample, warm-up or not
    assert math.isclose(report.latency.wall_s, 0.013)
    assert math.isclose(report.throughput_fps, 1e3 / float(np.mean(kept)))


def test_too_few_samples_are_reported_not_stable_with_the_rule_minimum() -> None:
    m = measure("few")
    for _ in range(3):
        m.sample(0.001)
    assert not m.report.stable
    assert m.report.stability_reason == (
        "NOT stable: 3 samples in 0.00 s, under the stopping rule's minimum of 100 samples and "
        "1 s of timed blocks (median 95% CI 0.00%; measure(settings=...) sets the rule)"
    )
    enough = measure(
        "long", settings=ProfilerSettings(stability_metric="cv", stability_target=0.05)
    )
    for d in (0.001, 0.003) * 60:
        enough.sample(d)
    assert enough.report.stability_reason == (
        "NOT stable: 120 samples in 0.24 s, under the stopping rule's minimum of 1 s of timed "
        "blocks (cv 50.21%; measure(settings=...) sets the rule)"
    )


def test_agreeing_samples_over_the_minimum_are_stable() -> None:
    m = measure("steady", settings=FIVE)
    for _ in range(5):
        m.sample(0.001)
    report = m.report
    assert report.stable
    assert report.stability_reason == (
        "stable: median 95% CI 0.00% <= 1.00% target after 5 samples in 0.01 s"
    )
    assert report.latency.stability_value == 0.0


def test_the_report_is_made_again_after_new_samples() -> None:
    m = measure("grows")
    m.sample(0.001)
    first = m.report
    assert m.report is first
    m.sample(0.003)
    assert m.report.latency.stats.count == 2
    assert m.report.latency.stats.max_ms == 3.0


def test_an_empty_block_is_marked_empty_and_its_report_says_why() -> None:
    with measure("work") as m:
        pass  # the loop ran over nothing
    assert m.empty
    assert m.count == 0
    with pytest.raises(InvalidArgumentError, match=re.escape(EMPTY.format(count=0, warmup=0))):
        _ = m.report
    only_warmup = measure("work", warmup=2)
    only_warmup.sample(0.001)
    only_warmup.sample(0.001)
    assert only_warmup.empty
    with pytest.raises(InvalidArgumentError, match=re.escape(EMPTY.format(count=2, warmup=2))):
        _ = only_warmup.report


def look_up_each(m: Measurement, keys: tuple[str, ...]) -> None:
    with m:
        for key in keys:
            with m.time():
                {"a": 1, "b": 2}[key]


def test_an_error_in_the_block_passes_through_and_the_samples_stay() -> None:
    m = measure("fails")
    with pytest.raises(KeyError, match="'missing'"):
        look_up_each(m, ("a", "b", "missing"))
    assert m.count == 3  # the failing run was timed too
    assert m.report.latency.stats.count == 3


def test_as_a_decorator_each_call_is_a_sample() -> None:
    m = measure("double")

    @m
    def double(x: int) -> int:
        """Twice x."""
        if x < 0:
            raise ValueError("negative")
        return 2 * x

    assert [double(1), double(2)] == [2, 4]
    with pytest.raises(ValueError, match="negative"):
        double(-1)
    assert double.measurement is m  # type: ignore[attr-defined]
    assert (double.__name__, double.__doc__) == ("double", "Twice x.")
    assert m.count == 3


def test_the_report_renders_and_round_trips() -> None:
    m = measure("json", settings=FIVE)
    for d in (0.001, 0.002, 0.001, 0.002, 0.001):
        m.sample(d)
    report = m.report
    assert (report.format, report.framework, report.device) == ("python", "python", "cpu")
    text = report.to_text()
    assert "Model: json\n" in text
    assert f"  Timing: {MEASURE_TIMING}\n" in text
    assert ProfileReport.from_json(report.to_json()) == report


def test_the_machine_load_is_sampled_during_the_with_block() -> None:
    with measure("load") as m:
        m.sample(0.001)
        time.sleep(0.05)
    assert m.report.noise is not None


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf, "1", True, None])
def test_a_bad_duration_is_refused(bad: object) -> None:
    m = measure("work")
    with pytest.raises(
        InvalidArgumentError,
        match=re.escape(
            "a sample of measure 'work' must be a finite number of seconds of 0 or more, got "
            f"{bad!r}"
        ),
    ):
        m.sample(bad)  # type: ignore[arg-type]
    assert m.count == 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="measure needs a non-empty name, got ' '"):
        measure(" ")
    with pytest.raises(
        InvalidArgumentError, match="warmup must be an integer of 0 or more, got -1"
    ):
        measure("x", warmup=-1)


def test_exported_from_pyinfer() -> None:
    assert pyinfer.measure is measure
    assert isinstance(pyinfer.measure("x"), Measurement)
