"""``compare`` decides on run medians: verdicts on synthetic repetition sets with a known truth,
the false-alarm and detection rates of the gate, and ``pyinfer compare``'s gate and baselines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests._reports import report_with_runs as make

from pyinfer import cli
from pyinfer.cli.common import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from pyinfer.errors import InvalidArgumentError
from pyinfer.report import Comparison, ProfileReport, compare, comparison_table, save_baseline
from pyinfer.report.comparison import FASTER, NO_CHANGE, SLOWER, UNDECIDED

RUNS_A = (5.0, 5.1, 4.9, 5.05, 4.95)


def scaled(factor: float, runs: Sequence[float] = RUNS_A) -> list[float]:
    return [m * factor for m in runs]


# ---- verdicts on exact examples ---------------------------------------------------------------
# B = A * 1.38: the pairwise ratios are 1.38 * A_j / A_i, whose median is 1.38 and whose 3rd
# smallest and 3rd largest (k = 3 for 5 + 5 runs) are 1.38 * 4.95/5.1 and 1.38 * 5.1/4.95.


def test_a_slowdown_is_named_with_its_interval() -> None:
    c = compare(make(RUNS_A), make(scaled(1.38)))
    assert c.verdict == SLOWER
    assert c.ratio == pytest.approx(1.38)
    assert c.ratio_low == pytest.approx(1.38 * 4.95 / 5.1)
    assert c.ratio_high == pytest.approx(1.38 * 5.1 / 4.95)
    assert (c.runs_before, c.runs_after, c.decidable) == (5, 5, True)
    assert c.summary == "after is 1.38x slower than before, 95% interval 1.34-1.42x, over 5+5 runs"
    assert c.to_text().splitlines()[-1] == f"Verdict: {c.summary}"
    assert c.notes == ()


def test_a_speedup_is_named_as_a_speedup() -> None:
    c = compare(make(scaled(1.38)), make(RUNS_A))
    assert c.verdict == FASTER
    assert c.ratio == pytest.approx(1 / 1.38)
    assert c.summary == "after is 1.38x faster than before, 95% interval 1.34-1.42x, over 5+5 runs"


def test_no_change_and_a_change_too_small_to_count() -> None:
    c = compare(make(RUNS_A), make(scaled(1.01)))
    assert c.verdict == NO_CHANGE
    assert c.summary == (
        "no significant change: after/before latency 1.010x, 95% interval 0.980-1.041x, "
        "over 5+5 runs"
    )
    tight = (5.0, 5.001, 4.999, 5.0005, 4.9995)
    small = compare(make(tight), make(scaled(1.01, tight)))
    assert small.ratio_low is not None
    assert 1.0 < small.ratio_low < 1.02  # real, but under the profiler's 2% resolution
    assert small.verdict == NO_CHANGE
    assert small.summary.endswith("over 5+5 runs (a change under the 2% that counts)")


def test_per_call_samples_do_not_decide() -> None:
    # The case: one process's calls 60% apart, the run medians alike.
    before = make(RUNS_A, per_call_ms=4.8)
    after = make(scaled(1.005), per_call_ms=7.8)
    c = compare(before, after)
    assert c.verdict == NO_CHANGE
    assert next(m for m in c.changes if m.name == "median").change_percent == pytest.approx(62.5)


def test_one_run_a_side_cannot_be_told_from_noise() -> None:
    c = compare(make(None, per_call_ms=4.8), make(None, per_call_ms=7.8))
    assert (c.verdict, c.ratio_low, c.ratio_high, c.decidable) == (UNDECIDED, None, None, False)
    assert c.ratio == pytest.approx(7.8 / 4.8)
    assert c.summary == (
        "cannot tell from run-to-run noise: after/before latency 1.62x (ratio of the medians, "
        "1+1 runs)"
    )
    assert c.notes == (
        "one run per report cannot tell a change from run-to-run variation: profile each with "
        "--repeat N to decide (N >= 4 per side gives a 95% interval)",
    )
    assert not c.regression(0.05)
    mixed = compare(make(RUNS_A), make(None, per_call_ms=9.0))
    assert (mixed.verdict, mixed.runs_before, mixed.runs_after) == (UNDECIDED, 5, 1)


def test_three_runs_a_side_are_too_few_for_a_95_percent_interval() -> None:
    c = compare(make(RUNS_A[:3]), make(scaled(2.0, RUNS_A[:3])))
    assert c.verdict == UNDECIDED
    assert c.ratio == pytest.approx(2.0)
    assert c.summary == (
        "cannot tell from run-to-run noise: after/before latency 2.00x (Hodges-Lehmann ratio "
        "of the run medians, 3+3 runs)"
    )
    assert c.notes[0].startswith("3+3 runs are too few for a 95% interval: profile each with")
    four = compare(make(RUNS_A[:4]), make(scaled(2.0, RUNS_A[:4])))
    assert four.verdict == SLOWER


def test_the_verdict_names_the_models_or_formats_when_they_differ() -> None:
    c = compare(make(RUNS_A), make(scaled(1.38), model="mnv2_14"))
    assert c.summary.startswith("mnv2_14 is 1.38x slower than mnv2, ")
    assert c.notes[-1].startswith("the models differ (mnv2 vs mnv2_14)")
    d = compare(make(RUNS_A, fmt="torchscript"), make(scaled(0.5)))
    assert d.summary.startswith("ONNX (FP32) is 2.00x faster than TorchScript (FP32), ")
    batch = compare(make(RUNS_A), replace(make(RUNS_A), batch_size=8))
    assert batch.notes == (
        "the batch sizes differ (1 vs 8): the latencies (and the verdict) are of calls of "
        "different sizes; throughput is the like-for-like figure",
    )


def test_regression_is_a_one_sided_95_percent_test() -> None:
    c = compare(make(RUNS_A), make(scaled(1.38)))  # two-sided 95% interval 1.339-1.422
    assert c.ratio_low == pytest.approx(1.38 * 4.95 / 5.1)  # the 3rd of 25 pairwise ratios
    # The one-sided 95% bound is the 5th smallest of the 25 pairwise ratios (k = 5 for the
    # two-sided 90% interval of 5 + 5 runs): slower than it with 95% confidence.
    assert c.slower_bound == pytest.approx(1.38 * 4.95 / 5.05)
    assert c.regression(0.0)
    assert c.regression(0.35)  # 1.3527 > 1.35
    assert not c.regression(0.36)
    assert not compare(make(scaled(1.38)), make(RUNS_A)).regression(0.0)  # faster
    with pytest.raises(InvalidArgumentError, match=r"0 or more and finite, got -0\.1"):
        c.regression(-0.1)


def test_a_comparison_round_trips_through_json() -> None:
    for c in (compare(make(RUNS_A), make(scaled(1.38))), compare(make(None), make(None))):
        assert Comparison.from_json(c.to_json()) == c
        assert json.loads(c.to_json())["verdict"] == c.verdict


# ---- rates on synthetic repetition sets with a known truth ------------------------------------


Draw = Callable[[np.random.Generator], list[float]]


def _gate_rate(
    rng: np.random.Generator, draw_a: Draw, draw_b: Draw, trials: int = 600
) -> tuple[float, float]:
    """How often the 5% gate fails, and how often the verdict is faster or slower."""
    fails = changes = 0
    for _ in range(trials):
        c = compare(make(draw_a(rng)), make(draw_b(rng)))
        fails += c.regression(0.05)
        changes += c.verdict in (FASTER, SLOWER)
    return fails / trials, changes / trials


def _lognormal(median: float, sigma: float) -> Draw:
    """Five run medians around ``median``, each off by a lognormal factor."""
    return lambda rng: [float(v) for v in rng.lognormal(np.log(median), sigma, size=5)]


def _bimodal(rng: np.random.Generator) -> list[float]:
    modes = np.where(rng.random(5) < 0.5, 4.9, 7.5)
    return [float(v) for v in modes * rng.lognormal(0.0, 0.01, size=5)]


def test_a_a_comparisons_rarely_raise_a_false_alarm(rng: np.random.Generator) -> None:
    fails, changes = _gate_rate(rng, _lognormal(5.0, 0.05), _lognormal(5.0, 0.05))
    assert fails <= 0.05
    assert changes <= 0.05  # two-sided: at most 2 * P(U <= 2) = 3.2% for 5 + 5 runs


def test_a_bimodal_machine_is_not_declared_slower(rng: np.random.Generator) -> None:
    # Runs land at 4.9 or 7.5 ms at random, as on the machine: a t interval on these
    # would be wrong, the rank-based one holds.
    fails, changes = _gate_rate(rng, _bimodal, _bimodal)
    assert fails <= 0.05
    assert changes <= 0.05


def test_a_30_percent_slowdown_is_detected_nearly_always(rng: np.random.Generator) -> None:
    fails, _ = _gate_rate(rng, _lognormal(5.0, 0.05), _lognormal(6.5, 0.05))
    assert fails >= 0.97


# ---- pyinfer compare: the gate, JSON and baselines -------------------------------------------


def run_cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Saved reports: a, its repeat (same), slower (1.38x), single (one run)."""
    reports = {
        "a": make(RUNS_A),
        "same": make(scaled(1.01)),
        "slower": make(scaled(1.38)),
        "single": make(None),
    }
    paths = {}
    for name, report in reports.items():
        paths[name] = report.save(tmp_path / f"{name}.json")
    return paths


def test_the_gate_passes_a_repeat_and_fails_a_slowdown(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["compare", files["a"], files["same"], "--fail-if-slower", "5%"], capsys
    )
    assert (code, err) == (EXIT_OK, "")
    assert out.endswith(
        "Verdict: no significant change: after/before latency 1.010x, 95% "
        "interval 0.980-1.041x, over 5+5 runs\n"
    )
    argv = ["compare", files["a"], files["same"], files["slower"], "--fail-if-slower", "0.05"]
    code, out, err = run_cli(argv, capsys)
    assert code == EXIT_REGRESSION == 4
    assert err == (
        f"pyinfer compare: {files['a']} -> {files['slower']}: slower beyond 5%: after is 1.38x "
        "slower than before, 95% interval 1.34-1.42x, over 5+5 runs\n"
    )
    assert run_cli(["compare", files["a"], files["slower"]], capsys)[0] == EXIT_OK  # no gate


def test_the_gate_refuses_to_judge_too_few_runs(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["compare", files["a"], files["single"], "--fail-if-slower", "5%"], capsys
    )
    assert code == EXIT_USAGE
    assert "Verdict: cannot tell from run-to-run noise" in out
    assert err == (
        f"pyinfer compare: error: --fail-if-slower 5% cannot judge {files['a']} -> "
        f"{files['single']}: one run per report cannot tell a change from run-to-run variation: "
        "profile each with --repeat N to decide (N >= 4 per side gives a 95% interval)\n"
    )
    # A regression found elsewhere wins: it is a finding, not a question of setup.
    argv = ["compare", files["a"], files["single"], files["slower"], "--fail-if-slower", "5%"]
    assert run_cli(argv, capsys)[0] == EXIT_REGRESSION
    code, out, err = run_cli(["compare", files["a"], "--fail-if-slower", "5%"], capsys)
    assert (code, out) == (EXIT_USAGE, "")
    assert err == (
        "pyinfer compare: error: --fail-if-slower compares reports: give two or more (the first "
        "is the reference), or one with --baseline NAME\n"
    )


def test_json_to_stdout_alone(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", files["a"], files["slower"], "--json", "-", "--fail-if-slower", "5%"]
    code, out, err = run_cli(argv, capsys)
    assert code == EXIT_REGRESSION
    document = json.loads(out)  # stdout is the JSON alone
    assert document["reference"] == str(files["a"])
    assert document["fail_if_slower"] == 0.05
    (entry,) = document["comparisons"]
    assert (entry["before"], entry["after"]) == (str(files["a"]), str(files["slower"]))
    assert (entry["verdict"], entry["regression"], entry["decidable"]) == (SLOWER, True, True)
    assert entry["ratio"] == pytest.approx(1.38)
    assert entry["runs_before"] == entry["runs_after"] == 5
    ra, rb = ProfileReport.load(files["a"]), ProfileReport.load(files["slower"])
    assert err.startswith(comparison_table([ra, rb]))  # the text went to stderr
    assert compare(ra, rb).to_text() in err


def test_json_to_a_file_beside_the_text(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "c.json"
    code, out, err = run_cli(["compare", files["a"], files["single"], "--json", target], capsys)
    assert code == EXIT_OK
    assert out.startswith("Model Format")
    assert err == f"wrote JSON comparison to {target}\n"
    entry = json.loads(target.read_text())["comparisons"][0]
    assert (entry["verdict"], entry["ratio_low"], entry["regression"]) == (UNDECIDED, None, None)
    assert run_cli(["compare", files["a"], "--json", tmp_path / "no" / "c.json"], capsys)[0] == 2


def test_the_ci_workflow_with_a_saved_baseline(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["compare", files["a"], "--save-baseline", "main"], capsys)
    stored = Path(".pyinfer") / "baselines" / "main.json"
    assert code == EXIT_OK
    assert err == f"saved {files['a']} as baseline 'main' ({stored})\n"
    assert ProfileReport.load(stored) == ProfileReport.load(files["a"])
    argv = ["compare", files["same"], "--baseline", "main", "--fail-if-slower", "5%"]
    code, out, _ = run_cli(argv, capsys)
    assert code == EXIT_OK
    assert f"\n\nbaseline main -> {files['same']}\n" in out
    argv = ["compare", files["slower"], "--baseline", "main", "--fail-if-slower", "5%"]
    argv += ["--save-baseline", "main"]
    code, _, err = run_cli(argv, capsys)
    assert code == EXIT_REGRESSION
    assert err.endswith("pyinfer compare: baseline 'main' not saved: the gate failed\n")
    assert ProfileReport.load(stored) == ProfileReport.load(files["a"])  # kept


def test_baseline_errors_are_clear(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kept"
    save_baseline(make(RUNS_A), "release", folder)
    code, out, err = run_cli(
        ["compare", files["a"], "--baseline", "main", "--baseline-dir", folder], capsys
    )
    assert (code, out) == (EXIT_USAGE, "")
    assert err == (
        f"pyinfer compare: error: no baseline 'main' in {folder}: the baselines there: release\n"
    )
    code, _, err = run_cli(["compare", files["a"], "--save-baseline", "../x"], capsys)
    assert code == EXIT_USAGE
    assert err.startswith("pyinfer compare: error: baseline name '../x': use letters, digits")
    code, _, err = run_cli(
        ["compare", files["single"], "--save-baseline", "one", "--baseline-dir", folder], capsys
    )
    assert code == EXIT_OK
    assert err.endswith(
        "pyinfer compare: warning: the baseline holds 1 run: --fail-if-slower needs 4 or more on "
        "each side to judge (profile with --repeat N)\n"
    )
    code, _, err = run_cli(["compare", files["a"], files["same"], "--save-baseline", "x"], capsys)
    assert code == EXIT_USAGE
    assert err == (
        "pyinfer compare: error: --save-baseline keeps one report as the baseline: give one "
        "REPORT, got 2\n"
    )
    (folder / "broken.json").write_text("{")
    code, _, err = run_cli(
        ["compare", files["a"], "--baseline", "broken", "--baseline-dir", folder], capsys
    )
    assert code == 1
    assert err.startswith("pyinfer compare: error: baseline 'broken' is not a readable profile ")
