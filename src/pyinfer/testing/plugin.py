"""The pytest plugin: a ``pyinfer_benchmark`` fixture, JSON reports and a baseline gate.

A test times code with the fixture::

    def test_tokenize(pyinfer_benchmark):
        report = pyinfer_benchmark(tokenize, "some text")
        assert report.latency.stats.median_ms < 5

Each benchmark is :func:`pyinfer.profile_callable` with settings sized for a test run: a few
runs one after the other in the test's process (5 by default, ``--pyinfer-runs``), together
taking at least 0.5 s and at most ``--pyinfer-max-time`` seconds, so the comparison with a
baseline is decided on run medians with a 95% interval, as ``pyinfer compare`` decides.

Options (pytest-benchmark's ``--benchmark-save``/``--benchmark-compare``/
``--benchmark-compare-fail`` are the model):

* ``--pyinfer-save DIR``: keep each benchmark's report as ``DIR/NAME.json`` (``NAME`` from the
  test's id), a folder of baselines (:mod:`pyinfer.report.baselines`).
* ``--pyinfer-json FILE``: write every benchmark's report (and comparison) into one JSON file.
* ``--pyinfer-compare DIR``: compare each benchmark with its report in ``DIR``;
  ``--pyinfer-compare-fail PERCENT`` then fails the test when it is slower than that baseline
  beyond ``PERCENT`` with 95% confidence (:meth:`pyinfer.report.Comparison.regression`), or
  when the comparison cannot tell (too few runs on a side).

Loading this module imports pytest and the standard library only (and the ``pyinfer`` package
itself, which imports its native core and nothing else), as pytest loads it in every run of a
project where pyinfer is installed; the profiler is imported when the fixture is first used.
With no benchmark in the run and no option given, it changes nothing.

PYTEST_DONT_REWRITE: pytest leaves this module's asserts alone, so a project that imported it
before pytest registered it (``-p pyinfer.testing.plugin`` after an import) gets no warning.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyinfer.profiling import ProfilerSettings
    from pyinfer.report import Comparison, ProfileReport

__all__ = [
    "DEFAULT_MAX_TIME_S",
    "DEFAULT_RUNS",
    "MIN_TIME_S",
    "Benchmark",
    "benchmark_file_name",
    "parse_threshold",
    "pyinfer_benchmark",
]

#: Runs of each benchmark: 5 + 5 run medians give the comparison its 95% interval
#: (:data:`pyinfer.report.comparison.MIN_RUNS_FOR_INTERVAL` is 4 per side).
DEFAULT_RUNS = 5
#: Cap on the time a benchmark's runs measure together, in seconds (``--pyinfer-max-time``).
DEFAULT_MAX_TIME_S = 2.0
#: The time a benchmark's runs measure at least, together, in seconds.
MIN_TIME_S = 0.5

_RESULTS = pytest.StashKey[list["Benchmark"]]()
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
#: A baseline name is at most 100 characters (:mod:`pyinfer.report.baselines`).
_MAX_NAME = 100


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--pyinfer-*`` options."""
    group = parser.getgroup("pyinfer", "pyinfer benchmarks (the pyinfer_benchmark fixture)")
    group.addoption(
        "--pyinfer-save",
        metavar="DIR",
        help="keep each benchmark's report as DIR/NAME.json, a folder to compare later runs with",
    )
    group.addoption(
        "--pyinfer-json",
        metavar="FILE",
        help="write every benchmark's report (and its comparison) to one JSON file",
    )
    group.addoption(
        "--pyinfer-compare",
        metavar="DIR",
        help="compare each benchmark with its report in DIR (saved with --pyinfer-save)",
    )
    group.addoption(
        "--pyinfer-compare-fail",
        metavar="PERCENT",
        help="with --pyinfer-compare: fail a test whose benchmark is slower than its baseline "
        "beyond PERCENT (such as 5%%) with 95%% confidence",
    )
    group.addoption(
        "--pyinfer-runs",
        metavar="N",
        type=int,
        default=DEFAULT_RUNS,
        help=f"runs of each benchmark, one after the other (default {DEFAULT_RUNS}; 4 or more "
        "let a comparison decide)",
    )
    group.addoption(
        "--pyinfer-max-time",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_MAX_TIME_S,
        help=f"cap on the time each benchmark measures (default {DEFAULT_MAX_TIME_S:g})",
    )


def parse_threshold(text: str) -> float:
    """``"5%"`` or ``"5"`` as the fraction 0.05.

    Raises:
        pytest.UsageError: If ``text`` is not a number of percent, 0 or more.
    """
    value = text.strip().removesuffix("%").strip()
    try:
        percent = float(value)
    except ValueError:
        percent = -1.0
    if not 0.0 <= percent < float("inf"):
        raise pytest.UsageError(
            f"--pyinfer-compare-fail takes a slowdown in percent, such as 5%, not {text!r}"
        )
    return percent / 100.0


def benchmark_file_name(node_id: str) -> str:
    """The file name (without ``.json``) a test's benchmark is saved and compared under.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``; a name over
    100 characters keeps its start and ends with a hash of the whole id, so it stays unique.

    Args:
        node_id: The test's id, ``tests/test_x.py::test_y[param]``.

    Returns:
        ``tests-test_x.py-test_y-param``.
    """
    name = _NAME_CHARACTERS.sub("-", node_id)
    name = re.sub(r"\.{2,}", ".", name).strip("-.") or "benchmark"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(node_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
        name = f"{name[: _MAX_NAME - 11]}-{digest}"
    return name


@dataclass
class Benchmark:
    """The ``pyinfer_benchmark`` fixture: call it with the code to time, once per test.

    Attributes:
        node_id: The test's id.
        name: The file name its report is saved and compared under.
        runs: Runs of the benchmark (``--pyinfer-runs``).
        max_time_s: Cap on the measured time (``--pyinfer-max-time``).
        settings: The profiler settings to use instead of the ones the options make (set it
            before calling).
        report: The report, once measured.
        comparison: The comparison with the baseline, when one was compared.
        baseline_missing: Whether ``--pyinfer-compare`` found no baseline for this test.
    """

    node_id: str
    name: str
    runs: int = DEFAULT_RUNS
    max_time_s: float = DEFAULT_MAX_TIME_S
    settings: ProfilerSettings | None = None
    report: ProfileReport | None = None
    comparison: Comparison | None = None
    baseline_missing: bool = False
    _options: dict[str, Any] = field(default_factory=dict, repr=False)

    def profiler_settings(self) -> ProfilerSettings:
        """The settings the benchmark runs with: :attr:`settings`, or those of the options."""
        from pyinfer.profiling import ProfilerSettings

        if self.settings is not None:
            return self.settings
        return ProfilerSettings(
            min_time_s=min(MIN_TIME_S, self.max_time_s),
            max_time_s=self.max_time_s,
            max_iterations=50_000,
            throughput_time_s=0.1,
        ).spread_over(self.runs)

    def __call__(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> ProfileReport:
        """Times ``fn(*args, **kwargs)`` as :func:`pyinfer.profile_callable` does, its runs here.

        Returns:
            The report, also kept as :attr:`report`.

        Raises:
            pytest.fail.Exception: When the benchmark is slower than its baseline beyond the
                ``--pyinfer-compare-fail`` threshold, or the comparison cannot tell.
            InvalidArgumentError: If the fixture was already used in this test, or ``fn`` is
                not callable.
            InferenceError: If ``fn`` raises (the message names it and its exception).
        """
        from pyinfer.errors import InvalidArgumentError
        from pyinfer.profiling import CallableModel, PerformanceProfiler

        if self.report is not None:
            raise InvalidArgumentError(
                f"pyinfer_benchmark times one callable per test and {self.node_id} used it "
                "already; write one test per benchmark"
            )
        # The runs stay in the test's process: quick, and a test module is often not
        # importable by name from a fresh one.
        model = CallableModel(fn, args, kwargs, fresh_processes=False)
        profiler = PerformanceProfiler(model, self.profiler_settings())
        self.report = profiler.profile(memory=False, throughput=False)
        self._keep(self.report)
        return self.report

    def _keep(self, report: ProfileReport) -> None:
        """Saves the report, compares it with its baseline, and fails the test if asked."""
        from pyinfer.report import compare, save_baseline
        from pyinfer.report.baselines import baseline_path

        options = self._options
        if options.get("save"):
            save_baseline(report, self.name, options["save"])
        folder = options.get("compare")
        if not folder:
            return
        if not baseline_path(self.name, folder).is_file():
            self.baseline_missing = True
            return
        from pyinfer.report import ProfileReport

        self.comparison = compare(ProfileReport.load(baseline_path(self.name, folder)), report)
        threshold = options.get("fail")
        if threshold is None:
            return
        limit = f"{threshold * 100:g}%"
        if self.comparison.regression(threshold):
            pytest.fail(
                f"pyinfer_benchmark: {self.node_id} is slower than its baseline beyond {limit}: "
                f"{self.comparison.summary}",
                pytrace=False,
            )
        if not self.comparison.decidable:
            pytest.fail(
                f"pyinfer_benchmark: --pyinfer-compare-fail {limit} cannot judge "
                f"{self.node_id}: {self.comparison.notes[0]}",
                pytrace=False,
            )


@pytest.fixture
def pyinfer_benchmark(request: pytest.FixtureRequest) -> Benchmark:
    """The fixture: a test calls it with the code to time and its arguments, once."""
    config = request.config
    runs = int(config.getoption("pyinfer_runs"))
    max_time = float(config.getoption("pyinfer_max_time"))
    if runs < 1 or not max_time > 0.0:
        raise pytest.UsageError(
            f"--pyinfer-runs must be 1 or more and --pyinfer-max-time above 0, got {runs} "
            f"and {max_time:g}"
        )
    fail = config.getoption("pyinfer_compare_fail")
    bench = Benchmark(
        node_id=request.node.nodeid,
        name=benchmark_file_name(request.node.nodeid),
        runs=runs,
        max_time_s=max_time,
    )
    bench._options = {
        "save": config.getoption("pyinfer_save"),
        "compare": config.getoption("pyinfer_compare"),
        "fail": None if fail is None else parse_threshold(fail),
    }
    config.stash.setdefault(_RESULTS, []).append(bench)
    return bench


def pytest_configure(config: pytest.Config) -> None:
    """Checks the options' combination before any test runs."""
    fail = config.getoption("pyinfer_compare_fail", None)
    if fail is not None:
        parse_threshold(fail)
        if not config.getoption("pyinfer_compare", None):
            raise pytest.UsageError("--pyinfer-compare-fail needs --pyinfer-compare DIR")


def _document(benchmarks: list[Benchmark]) -> dict[str, Any]:
    return {
        "pyinfer_benchmarks": [
            {
                "test": b.node_id,
                "name": b.name,
                "report": b.report.to_dict() if b.report is not None else None,
                "comparison": None if b.comparison is None else b.comparison.to_dict(),
                "baseline_missing": b.baseline_missing,
            }
            for b in benchmarks
            if b.report is not None
        ]
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Writes ``--pyinfer-json`` once the tests have run."""
    path = session.config.getoption("pyinfer_json", None)
    benchmarks = session.config.stash.get(_RESULTS, [])
    if not path:
        return
    from pyinfer.report import write_atomic

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(_document(benchmarks), indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per benchmark: median, P95, runs, stability and the comparison's verdict."""
    benchmarks = [b for b in terminalreporter.config.stash.get(_RESULTS, []) if b.report]
    if not benchmarks:
        return
    from pyinfer.report import format_ms

    terminalreporter.write_sep("-", "pyinfer benchmarks")
    for b in benchmarks:
        report = b.report
        assert report is not None
        s = report.latency.stats
        runs = report.repetitions.count if report.repetitions is not None else 1
        line = (
            f"{b.node_id}: median {format_ms(s.median_ms)} ms, P95 {format_ms(s.p95_ms)} ms, "
            f"{s.count} calls in {runs} runs, {'stable' if report.stable else 'NOT stable'}"
        )
        if b.comparison is not None:
            line += f"; {b.comparison.summary}"
        elif b.baseline_missing:
            line += "; no baseline to compare with"
        terminalreporter.write_line(line)
