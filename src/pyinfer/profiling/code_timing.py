"""Timing your own code: :func:`profile_callable` and :func:`measure`.

Two ways in, one report (:class:`~pyinfer.ProfileReport`, the same statistics, text and JSON
as a model's):

* :func:`profile_callable` hands a callable and its arguments to the profiler
  (:class:`~pyinfer.profiling.callables.CallableModel`): pyinfer makes the calls, so it keeps
  its warm-up, its stopping rule and its repetitions.
* :func:`measure` is for code the caller runs: a loop over real data, a request handler. Each
  run of the block is timed with the native core's monotonic clock (``pyinfer.now_ns``), read
  before and after it; the samples are summarised when the ``with`` block ends. The caller
  decides how many runs there are, so the stopping rule only judges them: a measurement under
  the rule's minimum count or time, or over its stability target, is marked not stable, with
  the figures.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from pyinfer import core
from pyinfer.backends.base import parse_device
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling.callables import CALLABLE_FORMAT, CallableModel
from pyinfer.profiling.noise import NoiseMonitor
from pyinfer.profiling.profiler import PerformanceProfiler, device_name
from pyinfer.profiling.settings import ProfilerSettings, is_int
from pyinfer.profiling.stopping import StopDecision
from pyinfer.report import ColdStart, LatencyMeasurement, LatencyStats, ProfileReport, format_ms
from pyinfer.report.environment import collect_environment
from pyinfer.report.noise import NoiseReading

__all__ = ["MEASURE_TIMING", "Measurement", "measure", "profile_callable"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The report's Timing line for :func:`measure`.
MEASURE_TIMING = (
    "pyinfer.now_ns read before and after each timed block (the block's Python statements "
    "and the with statement's own cost included)"
)


def profile_callable(
    fn: Callable[..., object],
    /,
    *args: Any,
    settings: ProfilerSettings | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> ProfileReport:
    """Times ``fn(*args, **kwargs)`` as the profiler times a model, and reports it.

    The first call is timed alone (the report's cold start), then the warm-up, then calls in
    the core's timed loop until the stopping rule stops (see :class:`ProfilerSettings`). No
    memory pass and no throughput run are made: the report's throughput is calls per second
    of the latency run. With ``settings.repetitions`` above 1 the runs are made one after the
    other in this process (a closure cannot be loaded again in a fresh one), and the report's
    Between runs line says so.

    Args:
        fn: What to time.
        *args: Its positional arguments, the same for every call.
        settings: How to measure (default: :class:`ProfilerSettings`).
        name: The name in the report (default: ``fn``'s qualified name, ``module.qualname``).
        **kwargs: Its keyword arguments, the same for every call.

    Returns:
        The report (``report.to_text()`` prints it in the standard layout).

    Raises:
        InvalidArgumentError: If ``fn`` is not callable or the settings are refused.
        InferenceError: If ``fn`` raises; the message names it and Python's exception, which
            is chained as its cause.
        KeyboardInterrupt: On Ctrl-C, with ``partial_result`` as for
            :meth:`PerformanceProfiler.profile`.

    Example:
        >>> report = pyinfer.profile_callable(json.dumps, {"a": [1, 2, 3]})
        >>> print(report.to_text())
    """
    model = CallableModel(fn, args, kwargs, name=name)
    return PerformanceProfiler(model, settings).profile(memory=False, throughput=False)


class _Timer:
    """The context manager of :meth:`Measurement.time`: two clock reads and an append."""

    __slots__ = ("_now", "_samples", "_start")

    def __init__(self, samples: list[float]) -> None:
        self._samples = samples
        self._now = core.now_ns
        self._start = -1

    def __enter__(self) -> None:
        self._start = self._now()

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self._samples.append(float(end - self._start))


class Measurement:
    """Samples of a block of code the caller runs, summarised into a profile report.

    Made by :func:`measure`. Each sample is one timed run: a ``with m.time():`` block, a call
    of a function it decorates, or a duration added with :meth:`sample`. Recording is not
    thread-safe: time one block at a time. See :func:`measure` for an example.
    """

    def __init__(
        self, name: str, *, settings: ProfilerSettings | None = None, warmup: int = 0
    ) -> None:
        """Creates an empty measurement (see :func:`measure`)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"measure needs a non-empty name, got {name!r}")
        if not is_int(warmup) or warmup < 0:
            raise InvalidArgumentError(f"warmup must be an integer of 0 or more, got {warmup!r}")
        self.name = name
        self.settings = settings or ProfilerSettings()
        self.warmup = int(warmup)
        self._samples: list[float] = []
        self._timer = _Timer(self._samples)
        self._monitor: NoiseMonitor | None = None
        self._noise: NoiseReading | None = None
        self._report: ProfileReport | None = None
        self._reported_count = -1

    # -- recording -------------------------------------------------------------------------

    def time(self) -> _Timer:
        """A context manager that times its block as one sample: ``with m.time(): work()``."""
        return self._timer

    def sample(self, seconds: float) -> None:
        """Adds a duration measured elsewhere, in seconds.

        Raises:
            InvalidArgumentError: If ``seconds`` is not a finite number of 0 or more.
        """
        value = float(seconds) if isinstance(seconds, int | float | np.number) else np.nan
        if isinstance(seconds, bool) or not 0.0 <= value < np.inf:
            raise InvalidArgumentError(
                f"a sample of measure '{self.name}' must be a finite number of seconds of 0 or "
                f"more, got {seconds!r}"
            )
        self._samples.append(value * 1e9)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn``: each call is one sample (its result and errors pass through).

        The wrapper's ``measurement`` attribute is this measurement.
        """
        now, samples = core.now_ns, self._samples

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = now()
            try:
                return fn(*args, **kwargs)
            finally:
                samples.append(float(now() - start))

        timed.measurement = self  # type: ignore[attr-defined]
        return timed

    def __enter__(self) -> Measurement:
        self._monitor = NoiseMonitor()
        self._monitor.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.__exit__(*exc_info)
            self._noise = monitor.reading()
        if self.count == 0:
            logger.warning("measure '%s' timed no block: it has no report", self.name)
            return
        try:
            report = self.report
        except InvalidArgumentError as error:  # only warm-up samples: said by .report
            logger.warning("%s", error)
            return
        stats = report.latency.stats
        logger.info(
            "measure '%s': median %s ms over %d samples; %s",
            self.name,
            format_ms(stats.median_ms),
            stats.count,
            report.stability_reason,
        )

    # -- results ---------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Samples recorded so far, warm-up included."""
        return len(self._samples)

    @property
    def empty(self) -> bool:
        """Whether no sample beyond the warm-up was recorded (then :attr:`report` raises)."""
        return self.count <= self.warmup

    @property
    def samples_ns(self) -> npt.NDArray[np.float64]:
        """Every sample recorded, warm-up included, in nanoseconds, in order."""
        return np.asarray(self._samples, dtype=np.float64)

    @property
    def report(self) -> ProfileReport:
        """The samples after the warm-up as a profile report (made again after new samples).

        Raises:
            InvalidArgumentError: If no sample beyond the warm-up was recorded.
        """
        if self.empty:
            raise InvalidArgumentError(
                f"measure '{self.name}' has no samples to report ({self.count} recorded, "
                f"{self.warmup} of them warm-up): time the block with `with m.time():`, "
                "decorate a function with the measurement, or add durations with m.sample()"
            )
        if self._report is None or self._reported_count != self.count:
            self._report = self._summarize()
            self._reported_count = self.count
        return self._report

    def _too_few(self, samples: npt.NDArray[np.float64], elapsed: float) -> StopDecision:
        """The verdict on samples under the stopping rule's minimum count or time."""
        rule = self.settings.stopping_rule()
        needs = []
        if samples.size < rule.min_iterations:
            needs.append(f"{rule.min_iterations} samples")
        if elapsed < rule.min_time_s:
            needs.append(f"{rule.min_time_s:g} s of timed blocks")
        value = rule.stability(samples)
        name = "cv" if rule.stability_metric == "cv" else "median 95% CI"
        return StopDecision(
            False,
            f"NOT stable: {samples.size} samples in {elapsed:.2f} s, under the stopping rule's "
            f"minimum of {' and '.join(needs)} ({name} {value * 100:.2f}%; "
            "measure(settings=...) sets the rule)",
            value,
        )

    def _summarize(self) -> ProfileReport:
        every = self.samples_ns
        samples = every[self.warmup :]
        rule = self.settings.stopping_rule()
        elapsed = float(samples.sum()) / 1e9
        decision = rule.decide(samples, elapsed) or self._too_few(samples, elapsed)
        environment = collect_environment(model_options={"measured": "code block"})
        return ProfileReport(
            model=self.name,
            format=CALLABLE_FORMAT.value,
            framework="python",
            device="cpu",
            device_name=device_name(parse_device("cpu"), environment),
            batch_size=1,
            input_shapes={},
            input_dtypes={},
            latency=LatencyMeasurement(
                batch_size=1,
                stats=LatencyStats.from_samples_ns(samples),
                samples_ns=tuple(float(v) for v in samples),
                warmup_iterations=self.warmup,
                warmup_settled=None,
                stable=decision.stable,
                stability_reason=decision.reason,
                stability_metric=rule.stability_metric,
                stability_value=decision.stability_value,
                timing_method=MEASURE_TIMING,
                wall_s=elapsed,
            ),
            environment=environment,
            cold_start=ColdStart(first_inference_ms=float(every[0]) / 1e6),
            noise=self._noise,
        )


def measure(name: str, *, settings: ProfilerSettings | None = None, warmup: int = 0) -> Measurement:
    """A measurement of a block of code the caller runs many times.

    Use it as a context manager around the loop, timing each run with ``m.time()``; the
    samples are summarised when the ``with`` block ends (``m.report``), and the machine's load
    is sampled meanwhile. As a decorator it times each call of the function.

    Args:
        name: The report's name for the code.
        settings: Whose stopping rule judges the samples (minimum count and time, stability
            target and measure); nothing else of them applies.
        warmup: The first samples to leave out of the statistics (counted as warm-up).

    Returns:
        The measurement.

    Raises:
        InvalidArgumentError: If ``name`` is empty or ``warmup`` is negative.

    Example:
        >>> with pyinfer.measure("resize") as m:
        ...     for image in images:
        ...         with m.time():
        ...             resize(image)
        >>> print(m.report.to_text())
    """
    return Measurement(name, settings=settings, warmup=warmup)
