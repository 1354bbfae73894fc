"""Repetitions: the statistics of runs in fresh processes, their lines in the reports, baselines.

Student's t quantile and the Mann-Whitney U distribution are checked against independent
values (high-precision quantiles, brute-force enumeration, the published table of critical
values); ``summarize_runs`` and ``ratio_interval`` on hand-computed examples.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests._reports import report_with_runs

from pyinfer.errors import InvalidArgumentError
from pyinfer.report import (
    DEFAULT_BASELINE_DIR,
    ProfileReport,
    Repetitions,
    RunSummary,
    baseline_names,
    baseline_path,
    load_baseline,
    save_baseline,
    summarize_runs,
)
from pyinfer.report.stats import (
    EXACT_U_MAX_PAIRS,
    ratio_interval,
    student_t_quantile,
    u_distribution,
)
from pyinfer.report.text import repetition_lines

# ---- Student's t ------------------------------------------------------------------------------

# Two-sided 95% quantiles (the 0.975 quantile), computed to 15 digits with mpmath's regularized
# incomplete beta function; 2.776445 for df 4 is the textbook value.
T_975 = {
    1: 12.7062047361747,
    2: 4.30265272974946,
    3: 3.18244630528371,
    4: 2.77644510519779,
    5: 2.57058183563632,
    7: 2.36462425159278,
    10: 2.22813885198627,
    30: 2.04227245630124,
    31: 2.03951344639641,
    120: 1.97993040508244,
    1000: 1.96233908082641,
}


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_student_t_quantile_matches_high_precision_values(df: int, expected: float) -> None:
    assert student_t_quantile(0.95, df) == pytest.approx(expected, rel=1e-11)


def test_student_t_quantile_at_other_levels_and_bad_input() -> None:
    assert student_t_quantile(0.90, 4) == pytest.approx(2.13184678632665, rel=1e-11)
    assert student_t_quantile(0.99, 4) == pytest.approx(4.60409487134999, rel=1e-11)
    assert round(student_t_quantile(0.95, 4), 6) == 2.776445
    with pytest.raises(InvalidArgumentError, match=r"confidence must be between 0 and 1, got 1\.0"):
        student_t_quantile(1.0, 4)
    with pytest.raises(InvalidArgumentError, match="integer of 1 or more, got 0"):
        student_t_quantile(0.95, 0)
    with pytest.raises(InvalidArgumentError, match="integer of 1 or more, got True"):
        student_t_quantile(0.95, True)


# ---- the U distribution and the ratio interval ------------------------------------------------


def _brute_force_u_cdf(n: int, m: int) -> list[float]:
    """P(U <= u) by listing every placement of the first set's n ranks among n + m."""
    counts = [0] * (n * m + 1)
    for first in itertools.combinations(range(n + m), n):
        second = [r for r in range(n + m) if r not in first]
        counts[sum(1 for x in first for y in second if x > y)] += 1
    total = math.comb(n + m, n)
    return [c / total for c in itertools.accumulate(counts)]


@pytest.mark.parametrize(
    ("n", "m"), [(1, 1), (1, 5), (2, 3), (3, 3), (4, 4), (5, 5), (3, 7), (6, 4)]
)
def test_u_distribution_is_exactly_the_enumerated_one(n: int, m: int) -> None:
    assert u_distribution(n, m).tolist() == _brute_force_u_cdf(n, m)


def test_u_distribution_known_values_and_bad_input() -> None:
    # 5 + 5: 252 placements; U = 0, 1, 2 in 1, 1 and 2 of them.
    assert u_distribution(5, 5)[:3].tolist() == [1 / 252, 2 / 252, 4 / 252]
    assert u_distribution(20, 20)[-1] == 1.0
    with pytest.raises(InvalidArgumentError, match="sets of 0 and 3 values: need 1 or more"):
        u_distribution(0, 3)
    with pytest.raises(InvalidArgumentError, match="101 x 100 pairs: too many"):
        u_distribution(101, 100)


# Published critical values of U, two-sided 5% (reject when U <= c), for n = m = 5 .. 20.
CRITICAL_U = [2, 5, 8, 13, 17, 23, 30, 37, 45, 55, 64, 75, 87, 99, 113, 127]


def test_the_interval_rank_follows_the_published_critical_values() -> None:
    ranks = [ratio_interval(np.ones(n), np.ones(n)).rank for n in range(5, 21)]
    assert ranks == [c + 1 for c in CRITICAL_U]  # k = c + 1: P(U <= k - 1) <= 2.5%
    assert ratio_interval(np.ones(4), np.ones(4)).rank == 1  # 1/70 <= 2.5% < 2/70
    assert ratio_interval(np.ones(3), np.ones(3)).rank == 0  # 1/20 > 2.5%: no interval
    assert ratio_interval(np.ones(1), np.ones(39)).rank == 1  # 1/40 is exactly 2.5%
    assert ratio_interval(np.ones(1), np.ones(38)).rank == 0  # 1/39 is over it


def test_the_normal_approximation_takes_over_beyond_the_exact_table() -> None:
    exact = ratio_interval(np.ones(20), np.ones(20))
    assert (EXACT_U_MAX_PAIRS, exact.rank, exact.exact) == (400, 128, True)
    approx = ratio_interval(np.ones(20), np.ones(21))
    assert (approx.rank, approx.exact) == (135, False)
    # ... where the exact distribution gives the same rank.
    assert int(np.count_nonzero(u_distribution(20, 21) <= 0.025)) == 135


def test_ratio_interval_on_a_hand_computed_example() -> None:
    before = [1.0, 1.1, 0.9, 1.05, 0.95]
    after = [1.3, 1.4, 1.35, 1.2, 1.5]
    r = ratio_interval(before, after)
    # The 25 ratios after/before, sorted: 1.2/1.1, 1.2/1.05, 1.3/1.1 (k = 3), ... ,
    # 1.4/0.9 (the 3rd largest), 1.5/0.95, 1.5/0.9; the 13th is 1.35/1.0.
    assert r.estimate == pytest.approx(1.35, rel=1e-12)
    assert r.low == pytest.approx(1.3 / 1.1, rel=1e-12)
    assert r.high == pytest.approx(1.4 / 0.9, rel=1e-12)
    assert (r.rank, r.exact, r.bounded, r.before_count, r.after_count) == (3, True, True, 5, 5)
    few = ratio_interval(before[:3], after[:3])
    assert (few.low, few.high, few.rank, few.bounded) == (None, None, 0, False)
    assert few.estimate == pytest.approx(1.35 / 1.0, rel=1e-12)


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ([], [1.0], r"ratio interval \(first set\): no samples"),
        ([1.0], [math.nan], r"ratio interval \(second set\): samples must be finite"),
        ([1.0, 0.0], [1.0], r"ratio interval \(first set\): values must be above 0"),
        ([1.0], [-2.0], r"ratio interval \(second set\): values must be above 0"),
    ],
)
def test_ratio_interval_refuses_bad_sets(
    before: list[float], after: list[float], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        ratio_interval(before, after)


def test_ratio_interval_covers_the_truth_at_least_95_percent_of_the_time(
    rng: np.random.Generator,
) -> None:
    misses = 0
    for _ in range(2000):
        a = rng.lognormal(np.log(5.0), 0.08, size=5)
        b = rng.lognormal(np.log(6.5), 0.08, size=6)
        r = ratio_interval(a, b)
        assert r.low is not None
        assert r.high is not None
        misses += not r.low <= 1.3 <= r.high
    assert misses / 2000 <= 0.05  # the exact level is 1 - 2 * P(U <= 2 | 5, 6) = 0.9827


# ---- summarize_runs ---------------------------------------------------------------------------


def test_summarize_runs_on_hand_computed_values() -> None:
    runs = [[4e6, 5e6, 6e6], [5.5e6, 5.5e6], [4e6, 4.5e6, 5e6]]
    reps = summarize_runs(runs, stable=[True, False, True], wall_s=[1.0, 2.0, 3.0])
    assert reps.runs == (
        RunSummary(5.0, 3, True, 1.0),
        RunSummary(5.5, 2, False, 2.0),
        RunSummary(4.5, 3, True, 3.0),
    )
    # Pooled: 4, 4, 4.5, 5, 5, 5.5, 5.5, 6 -> 5.0.
    assert reps.median_ms == 5.0
    s = float(np.std(np.log([5.0, 5.5, 4.5]), ddof=1))
    t = 4.30265272974946  # 2 degrees of freedom
    assert reps.interval_low_ms == pytest.approx(5.0 * math.exp(-t * s / math.sqrt(3)))
    assert reps.interval_high_ms == pytest.approx(5.0 * math.exp(t * s / math.sqrt(3)))
    assert reps.reproducibility == pytest.approx(math.exp(t * s * math.sqrt(2 / 3)) - 1)
    assert reps.spread == pytest.approx(5.5 / 4.5)
    assert reps.cv_percent == pytest.approx(10.0)  # std 0.5 (ddof=1) over the mean 5.0
    assert reps.method == "t interval over 3 run medians, log scale"
    assert (reps.count, reps.within_run_stable, reps.run_medians_ms) == (3, False, (5.0, 5.5, 4.5))
    assert reps.reproducible is False  # +-37% against 10%
    assert replace(reps, reproducibility_target=0.5).reproducible is True


def test_summarize_runs_with_one_run_measures_no_variation() -> None:
    reps = summarize_runs([np.full(10, 2e6)], stable=[True], wall_s=[0.5], target=0.05)
    assert reps == Repetitions(
        (RunSummary(2.0, 10, True, 0.5),), 2.0, None, None, 1.0, None, None, 0.05, "one run"
    )
    assert reps.reproducible is None


@pytest.mark.parametrize(
    ("runs", "stable", "wall", "target", "message"),
    [
        ([], [], [], 0.1, "repetitions: no runs"),
        ([[1.0], []], [True, True], [1.0, 1.0], 0.1, "run 2 has no samples"),
        ([[1.0, math.inf]], [True], [1.0], 0.1, "run 1 has a sample that is not finite"),
        ([[0.0, 0.0, 1.0]], [True], [1.0], 0.1, "run 1 has a median of 0 or less"),
        ([[1.0], [1.0]], [True], [1.0, 1.0], 0.1, "2 runs of samples, but 1 stability flags"),
        ([[1.0]], [True], [1.0, 2.0], 0.1, "and 2 wall times"),
        ([[1.0]], [True], [math.nan], 0.1, "wall times must be finite and 0 or more"),
        ([[1.0]], [True], [1.0], 0.0, "reproducibility target must be above 0 and finite"),
    ],
)
def test_summarize_runs_refuses_bad_input(
    runs: list[list[float]], stable: list[bool], wall: list[float], target: float, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        summarize_runs(runs, stable=stable, wall_s=wall, target=target)


# ---- in the reports ---------------------------------------------------------------------------


def _report(reps: Repetitions | None) -> ProfileReport:
    return replace(report_with_runs(None), repetitions=reps)


def _five_runs() -> Repetitions:
    medians = [4.91, 4.95, 5.02, 7.31, 4.88]
    return summarize_runs(
        [np.full(3, m * 1e6) for m in medians], stable=[True] * 5, wall_s=[1.0] * 5
    )


def test_details_lines_of_five_runs() -> None:
    reps = _five_runs()
    lines = repetition_lines(_report(reps))
    # CV: std (ddof=1) 1.0612 over the mean 5.414; the interval and the reproducibility as in
    # the test above, with t = 2.776445 (4 degrees of freedom) and s = 0.1756 over the logs.
    assert lines == [
        "  Runs: 5 in fresh processes; medians 4.91 4.95 5.02 7.31 4.88 ms",
        "  Between runs: spread 1.50x, CV 19.6%; median 95% interval 3.98-6.16 ms "
        "(t interval over 5 run medians, log scale)",
        "  Reproducible within +-36.1% (target 10%): NO",
    ]
    text = _report(reps).to_text().splitlines()
    at = text.index(next(line for line in text if line.startswith("  Median 95% CI:")))
    assert text[at + 1 : at + 4] == lines  # right after the within-run interval


def test_details_lines_without_repetitions_with_one_and_with_unstable_runs() -> None:
    assert repetition_lines(_report(None)) == [
        "  Runs: 1, in this process: run-to-run variation not measured (--repeat N measures it)"
    ]
    one = summarize_runs([[3e6]], stable=[True], wall_s=[1.0])
    assert repetition_lines(_report(one)) == [
        "  Runs: 1 in a fresh process; median 3.00 ms",
        "  Between runs: run-to-run variation not measured with one run (--repeat N measures it)",
    ]
    steady = summarize_runs(
        [[5e6], [5.1e6], [5.05e6], [5e6]], stable=[True, False, True, True], wall_s=[1.0] * 4
    )
    lines = repetition_lines(_report(steady))
    assert lines[0] == (
        "  Runs: 4 in fresh processes; medians 5.00 5.10~ 5.05 5.00 ms "
        "(~: the run missed its own stability target)"
    )
    assert lines[2].endswith("(target 10%): yes")


def test_markdown_and_csv_carry_the_runs() -> None:
    reps = _five_runs()
    md = _report(reps).to_markdown()
    row = next(line for line in md.splitlines() if line.startswith("| Runs |"))
    assert row.startswith("| Runs | 5 in fresh processes: median 95% interval ")
    assert row.endswith("(target 10%): NO |")
    assert row == (
        "| Runs | 5 in fresh processes: median 95% interval 3.98-6.16 ms, spread 1.50x, "
        "CV 19.6%; reproducible within +-36.1% (target 10%): NO |"
    )
    assert "| Runs | 1, in this process: run-to-run variation not measured |" in (
        _report(None).to_markdown()
    )
    rows = list(csv.DictReader(io.StringIO(_report(reps).to_csv())))
    assert rows[0]["runs"] == "5"
    assert float(rows[0]["median_low_ms"]) == reps.interval_low_ms
    assert float(rows[0]["run_spread"]) == reps.spread
    assert float(rows[0]["reproducibility_percent"]) == pytest.approx(
        (reps.reproducibility or 0) * 100
    )
    assert rows[0]["reproducible"] == "False"
    plain = next(iter(csv.DictReader(io.StringIO(_report(None).to_csv()))))
    assert (plain["runs"], plain["median_low_ms"], plain["reproducible"]) == ("1", "", "")


def test_a_report_with_repetitions_round_trips_through_json() -> None:
    report = _report(_five_runs())
    assert ProfileReport.from_json(report.to_json()) == report


def test_runs_in_one_process_are_said_so_and_kept_in_json() -> None:
    medians = [4.91, 4.95, 5.02]
    reps = summarize_runs(
        [np.full(3, m * 1e6) for m in medians],
        stable=[True] * 3,
        wall_s=[1.0] * 3,
        in_one_process=True,
    )
    assert reps.in_one_process
    assert (
        repetition_lines(_report(reps))[0] == "  Runs: 3 in one process; medians 4.91 4.95 5.02 ms"
    )
    report = _report(reps)
    data = json.loads(report.to_json())
    assert data["schema_version"] == "1.3"
    assert data["repetitions"]["in_one_process"] is True
    assert ProfileReport.from_json(report.to_json()) == report
    # A report of schema 1.1 has no such field: its runs were in fresh processes.
    del data["repetitions"]["in_one_process"]
    data["schema_version"] = "1.1"
    older = ProfileReport.from_json(json.dumps(data))
    assert older.repetitions is not None
    assert not older.repetitions.in_one_process
    assert repetition_lines(replace(report, repetitions=older.repetitions))[0].startswith(
        "  Runs: 3 in fresh processes;"
    )


# ---- baselines --------------------------------------------------------------------------------


def test_baselines_are_saved_listed_and_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "baselines"
    report = _report(_five_runs())
    path = save_baseline(report, "main", folder)  # the folder is made
    assert path == folder / "main.json"
    save_baseline(_report(None), "v1.2_rc-1", folder)
    (folder / "notes.txt").write_text("x")
    (folder / ".main.json.abcdefgh.tmp").write_text("x")
    assert baseline_names(folder) == ("main", "v1.2_rc-1")
    assert load_baseline("main", folder) == report
    save_baseline(_report(None), "main", folder)  # replaced
    assert load_baseline("main", folder).repetitions is None
    assert baseline_names(tmp_path / "none") == ()
    assert baseline_path("main") == DEFAULT_BASELINE_DIR / "main.json"
    assert Path(".pyinfer/baselines") == DEFAULT_BASELINE_DIR


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", ".hidden", "", "x" * 101, "a b", "a\\b"])
def test_a_baseline_name_must_be_a_plain_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"use letters, digits, '\.', '_' and '-'"):
        save_baseline(_report(None), name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_baseline_lists_those_that_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        load_baseline("main", tmp_path)
    assert str(info.value) == (
        f"no baseline 'main' in {tmp_path}: none is saved there yet "
        "('pyinfer compare REPORT --save-baseline main' saves one)"
    )
    save_baseline(_report(None), "release", tmp_path)
    save_baseline(_report(None), "nightly", tmp_path)
    with pytest.raises(InvalidArgumentError) as info:
        load_baseline("main", tmp_path)
    assert (
        str(info.value)
        == f"no baseline 'main' in {tmp_path}: the baselines there: nightly, release"
    )


def test_a_damaged_baseline_or_an_unwritable_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidArgumentError, match=r"bad\.json: profile report is not valid JSON"):
        load_baseline("bad", tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidArgumentError, match=r"cannot save baseline 'main' to .*file/main"):
        save_baseline(_report(None), "main", blocker)
