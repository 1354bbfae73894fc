"""``pyinfer compare`` of load reports: the gate on shared levels and capacities, the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyinfer.cli import main
from pyinfer.report.load import CapacitySearch, LatencyPercentiles, LoadLevel, LoadReport
from pyinfer.report.load_compare import ONE_RUN_NOTE


def _level(load: str, p99_ms: float, *, workers: int = 1) -> LoadLevel:
    """A level at ``load`` (``"c=4"`` or ``"100"`` qps) whose latency P99 is ``p99_ms``."""
    latency = LatencyPercentiles(500, p99_ms / 2, p99_ms / 2, p99_ms * 0.9, p99_ms, p99_ms, p99_ms)
    closed = load.startswith("c=")
    return LoadLevel(
        mode="concurrency" if closed else "open",
        offered_qps=None if closed else float(load),
        concurrency=int(load[2:]) if closed else None,
        arrival=None if closed else "poisson",
        workers=workers, max_batch=1, max_queue_delay_ms=0.0, duration_s=5.0, scheduled=500,
        completed=500, dropped=0, errors=0, achieved_qps=100.0, latency=latency,
        queueing=None, service=latency, schedule_error_us={},
    )  # fmt: skip


def _capacity(low: float, high: float | None) -> CapacitySearch:
    return CapacitySearch(p99_budget_ms=50.0, capacity_qps=low, failed_qps=high, trials=())


def _save(path: Path, *levels: LoadLevel, capacity: CapacitySearch | None = None) -> str:
    path.write_text(LoadReport("model.onnx", levels, capacity).to_json())
    return str(path)


def _compare(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_shared_level_slower_beyond_the_limit_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _save(tmp_path / "a.json", _level("c=4", 10.0), _level("100", 20.0))
    b = _save(tmp_path / "b.json", _level("c=4", 12.0), _level("200", 99.0))
    code, out, err = _compare([a, b, "--fail-if-slower", "10%"], capsys)
    assert code == 4
    assert err == (
        f"pyinfer compare: {a} -> {b}: slower beyond 10%: c=4: P99 10.00 -> 12.00 ms (1.20x, "
        "beyond 10%), in one run each\n"
    )
    assert out.splitlines()[0] == f"{a} -> {b}"
    assert "10.00 -> 12.00 (1.20x)" in out
    assert "100 qps" not in out  # not measured by both
    assert f"Note: {ONE_RUN_NOTE}" in out
    # Within the limit: the gate passes, still saying the levels were measured once.
    code, out, err = _compare([a, b, "--fail-if-slower", "25%"], capsys)
    assert (code, err) == (0, "")
    assert f"Note: {ONE_RUN_NOTE}" in out


def test_capacities_are_judged_on_their_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _save(tmp_path / "a.json", capacity=_capacity(200.0, 210.0))
    lower = _save(tmp_path / "lower.json", capacity=_capacity(150.0, 160.0))
    overlap = _save(tmp_path / "overlap.json", capacity=_capacity(195.0, 205.0))
    same = _save(tmp_path / "same.json", capacity=_capacity(205.0, 215.0))
    code, out, err = _compare([a, lower, "--fail-if-slower", "5%"], capsys)
    assert code == 4
    assert err == (
        f"pyinfer compare: {a} -> {lower}: slower beyond 5%: capacity: [200.0, 210.0) -> "
        "[150.0, 160.0) qps, lower beyond 5% with the confidence of both searches\n"
    )
    assert out == f"{a} -> {lower}\nCapacity: [200.0, 210.0) -> [150.0, 160.0) qps\n\n"
    # At most 205 (after) against at least 200 (before): it may or may not be 5% lower.
    code, _, err = _compare([a, overlap, "--fail-if-slower", "5%"], capsys)
    assert code == 2
    assert err == (
        f"pyinfer compare: error: --fail-if-slower 5% cannot judge {a} -> {overlap}: capacity: "
        "the intervals [200.0, 210.0) -> [195.0, 205.0) qps overlap the 5% limit (re-run the "
        "searches with a finer precision)\n"
    )
    # At least 205 (after) x 1.05 >= at most 210 (before): surely not 5% lower.
    assert _compare([a, same, "--fail-if-slower", "5%"], capsys)[:3:2] == (0, "")


def test_json_on_stdout_with_the_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _save(tmp_path / "a.json", _level("c=4", 10.0), capacity=_capacity(200.0, None))
    b = _save(tmp_path / "b.json", _level("c=4", 15.0, workers=2), capacity=_capacity(90, 100))
    code, out, err = _compare([a, b, "--fail-if-slower", "0.2", "--json", "-"], capsys)
    assert code == 4
    document = json.loads(out)
    assert (document["kind"], document["reference"], document["fail_if_slower"]) == (
        "pyinfer load comparison", a, 0.2,
    )  # fmt: skip
    (c,) = document["comparisons"]
    assert (c["before"], c["after"], c["regression"]) == (a, b, True)
    (level,) = c["levels"]
    assert (level["load"], level["p99_before_ms"], level["p99_after_ms"]) == ("c=4", 10.0, 15.0)
    assert (level["p99_ratio"], level["regression"]) == (1.5, True)
    assert c["capacity"] == {
        "p99_budget_before_ms": 50.0, "p99_budget_after_ms": 50.0, "before_qps": 200.0,
        "before_failed_qps": None, "after_qps": 90.0, "after_failed_qps": 100.0,
        "regression": True, "decidable": True,
    }  # fmt: skip
    assert c["notes"] == [ONE_RUN_NOTE, "c=4 was served differently: workers 1 vs 2"]
    assert err.startswith(f"{a} -> {b}\n")  # the text goes to stderr
    assert "slower beyond 20%: capacity: [200.0, inf) -> [90.0, 100.0) qps" in err
    # Without a gate the verdicts are null; the files hold what stdout would.
    md, js = tmp_path / "c.md", tmp_path / "c.json"
    code, out, _ = _compare([a, b, "--json", str(js), "--markdown", str(md)], capsys)
    assert code == 0
    assert json.loads(js.read_text())["comparisons"][0]["regression"] is None
    body = out.split("\n", 1)[1].rstrip("\n")
    assert md.read_text() == f"## Load comparison\n\n### {a} -> {b}\n\n```\n{body}\n```\n"


def test_baselines_and_reports_sharing_nothing_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _save(tmp_path / "a.json", _level("c=4", 10.0))
    b = _save(tmp_path / "b.json", _level("c=8", 10.0))
    code, _, err = _compare([a, a, "--baseline", "main"], capsys)
    assert code == 2
    assert "--baseline: baselines are profile reports; compare a load report with" in err
    code, _, err = _compare([a, b], capsys)
    assert code == 2
    assert "share no load level (c=4 against c=8) and do not both hold a capacity search" in err
