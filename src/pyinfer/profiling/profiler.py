"""PerformanceProfiler: latency, throughput, memory and batch-size curves of a loaded model.

The profiler takes a :class:`~pyinfer.Model` (or anything with a ``.model`` attribute that is
one, such as an inference engine, whose ``.batch_size`` then becomes the default batch size)
and measures it the usual way (warm-up, enough iterations, CUDA events on a GPU), plus what the
best tools add:

* **Inputs** are made once, outside any timed region: ``model.example_inputs(batch, seed,
  dims)`` then ``model.to_native(...)``; the timed call is ``model.run_native(native)`` and
  nothing else (a ``functools.partial``, so no Python frame of the profiler's own is timed).
* **Cold start** apart: the model's ``load_time_s`` and the very first call, timed alone.
* **Warm-up**: ``warmup_iterations`` calls, then (``warmup_until_settled``) windows of calls
  until the median settles (see :mod:`pyinfer.profiling.stopping`).
* **Stopping rule**: chunks of calls until the minimum count *and* minimum time are reached and
  the stability measure (``cv`` or ``median_ci``) is under ``stability_target``, or a cap on
  count or time is hit; a run that never becomes stable is flagged so, with its figures.
* **Timing**: on the CPU, the native core's timed loop (one clock read of bias per sample). On
  CUDA, CUDA events on the model's own stream (torch's current stream; ONNX Runtime's
  ``user_compute_stream``) with one synchronisation per chunk, and the host's end-to-end time
  per call reported beside it. A model on CUDA that exposes no stream (TensorFlow) is timed on
  the host with a synchronisation after each call, and labelled so. ``cuda_graphs`` (torch on
  CUDA) captures the call into a CUDA graph after warm-up and times its replay.
* **Throughput**: back-to-back calls for ``throughput_time_s``, items over wall time (FPS) and
  calls over wall time (RPS), with GPU utilisation sampled through NVML meanwhile, and the
  energy counters (RAPL, or NVML on the model's GPU) read once before and once after the calls:
  joules per inference and average watts (:mod:`pyinfer.profiling.energy`).
* **Memory**, in a pass of its own: see :meth:`PerformanceProfiler.measure_memory`.
* **Batch sweep**: latency and throughput per batch size, the knee and the best batch under a
  latency budget; running out of memory ends the sweep, recorded in the curve.
* **Repetitions** (``settings.repetitions > 1``): :meth:`~PerformanceProfiler.profile` and
  :meth:`~PerformanceProfiler.sweep_batch_sizes` run in fresh worker processes and merge the
  runs, so the report says how far a repeat would land (:mod:`pyinfer.profiling.repeat`).
* **Noise**: the machine's load is sampled while the calls are timed and recorded in the
  report (:mod:`pyinfer.profiling.noise`).
* **Any callable**: given a plain Python callable (or a
  :class:`~pyinfer.profiling.callables.CallableModel` holding one with its arguments), the
  profiler times ``fn(*args, **kwargs)`` the same way; its repetitions run in fresh processes
  when the callable and its arguments can be loaded there, else in this process, and say so
  (:func:`~pyinfer.profiling.callables.profile_runs`).

The data flows one way: the profiler uses the model (and duck-types the engine); the results
are the dataclasses of :mod:`pyinfer.report`, which knows nothing of the profiler. This module
coordinates; the inputs, timing sources, memory pass, GPU sampling and sweeps live in the
sibling modules of :mod:`pyinfer.profiling`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict

import numpy as np

from pyinfer.backends.base import Device, Model
from pyinfer.errors import InvalidArgumentError, as_out_of_memory
from pyinfer.profiling import device_lock, memory, repeat, sweep, timing
from pyinfer.profiling.callables import CallableModel, as_failure, profile_runs
from pyinfer.profiling.inputs import PreparedCall, batch_for, prepare, resolve_model
from pyinfer.profiling.noise import NoiseMonitor
from pyinfer.profiling.settings import (
    ProfilerSettings,
    as_batch_size,
    check_for_model,
    settings_record,
)
from pyinfer.profiling.stopping import collect, warm_up
from pyinfer.profiling.sweep import MIN_PARTIAL_SAMPLES
from pyinfer.report import (
    BatchCurve,
    ColdStart,
    LatencyMeasurement,
    LatencyStats,
    MemoryStats,
    ProfileReport,
    SweepReport,
    Throughput,
)
from pyinfer.report.environment import Environment, collect_environment
from pyinfer.report.noise import NoiseReading

__all__ = ["PerformanceProfiler", "device_name", "sweep_report"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _one_out_of_memory_type(
    callable_model: CallableModel | None = None, first_call: Callable[[], bool] = bool
) -> Iterator[None]:
    """Re-raises any framework's out-of-memory failure as :class:`OutOfMemoryError`.

    For a callable, any other failure too, as the typed error naming it
    (:func:`~pyinfer.profiling.callables.as_failure`); ``first_call()`` says whether the
    callable had not yet run when it failed.
    """
    try:
        yield
    except Exception as exc:
        oom = as_out_of_memory(exc)
        if oom is not None and oom is not exc:
            raise oom from exc
        if callable_model is not None and oom is None:
            failure = as_failure(callable_model, exc, first_call=first_call())
            if failure is not exc:
                raise failure from exc
        raise


class PerformanceProfiler:
    """Measures a model's latency, throughput, memory and batch-size curve.

    One measurement runs on a device at a time: one that starts while another thread of the
    process measures on the same device raises
    :class:`~pyinfer.errors.MeasurementConflictError`; other processes measuring on it are
    noted in the report (see :mod:`pyinfer.profiling.device_lock`).

    Example:
        >>> model = pyinfer.load_model("resnet50.onnx")
        >>> report = PerformanceProfiler(model).profile(batch_size=1)
        >>> print(report.to_text())
    """

    def __init__(
        self,
        model_or_engine: Any,
        settings: ProfilerSettings | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Creates a profiler.

        Args:
            model_or_engine: A :class:`~pyinfer.Model`, or an object whose ``.model`` is one
                (its ``.batch_size``, if any, becomes the default batch size), or a plain
                callable, timed as ``fn()`` (:func:`pyinfer.profile_callable` passes arguments).
            settings: How to measure (defaults: :class:`ProfilerSettings`).
            clock: Seconds from a monotonic origin; it measures the time budgets and wall
                times (swap it in tests).

        Raises:
            InvalidArgumentError: If the argument is neither a model, nor holds one, nor is
                callable, or the settings ask for something the model cannot do (CUDA graphs
                or CUDA events off CUDA).
        """
        if not isinstance(model_or_engine, Model) and not isinstance(
            getattr(model_or_engine, "model", None), Model
        ):
            if not callable(model_or_engine):
                raise InvalidArgumentError(
                    "PerformanceProfiler needs a pyinfer Model (from load_model), an object "
                    "with a '.model' that is one, or a callable to time, not "
                    f"{type(model_or_engine).__name__}"
                )
            model_or_engine = CallableModel(model_or_engine)
        self.model, engine_batch = resolve_model(model_or_engine)
        self.settings = settings or ProfilerSettings()
        self._clock = clock
        self._default_batch = self.settings.batch_size or engine_batch or 1
        self._explicit_batch = self.settings.batch_size is not None or engine_batch is not None
        self._prepared: PreparedCall | None = None
        self._first_inference_ms: float | None = None
        check_for_model(self.settings, self.model)
        self._overlaps = device_lock.Overlaps(str(self.model.device))
        #: Other processes seen measuring on the same device while this profiler measured.
        self.concurrent_measurements: list[str] = self._overlaps.lines
        #: The machine's load while the last latency measurement's calls were timed.
        self.latency_noise: NoiseReading | None = None

    def _measuring(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Holds the model's device for a measurement (see :mod:`pyinfer.profiling.device_lock`).

        Raises:
            MeasurementConflictError: If another thread measures on the device.
        """
        return self._overlaps.measuring(f"{what} of model '{self.model.name}'")

    def _environment(self) -> Environment:
        """The environment recorded now for a report, overlapping measurements included."""
        m = self.model
        return collect_environment(
            model_options=m.options,
            cuda_device=m.device.index if m.device.is_cuda else None,
            concurrent_measurements=self._overlaps.now(),
        )

    # -- setup -----------------------------------------------------------------------------

    def _prepare(self, requested: int | None) -> PreparedCall:
        """The inputs and call for a batch size, kept while the same batch size is measured."""
        batch = batch_for(self.model, requested, self._default_batch, self._explicit_batch)
        if self._prepared is not None and self._prepared.batch_size == batch:
            return self._prepared
        self._prepared = None  # free the previous batch's inputs first
        if isinstance(self.model, CallableModel):  # the bare call, with no inputs to make
            self._prepared = self.model.prepared_call()
            return self._prepared
        self._prepared = prepare(self.model, batch, settings=self.settings)
        return self._prepared

    def _failures(self) -> contextlib.AbstractContextManager[None]:
        """Failures of a measurement as pyinfer's types: out of memory; a callable's own."""
        model = self.model if isinstance(self.model, CallableModel) else None
        return _one_out_of_memory_type(model, lambda: self._first_inference_ms is None)

    def _run_once(self, prep: PreparedCall) -> None:
        """One call, synchronised; the profiler's very first call is timed as cold start."""
        if self._first_inference_ms is not None:
            prep.call()
            self.model.synchronize()
            return
        start = self._clock()
        prep.call()
        self.model.synchronize()
        self._first_inference_ms = (self._clock() - start) * 1e3
        logger.info("first inference of '%s': %.3f ms", self.model.name, self._first_inference_ms)

    def _capture_graph(self, prep: PreparedCall) -> None:
        timing.capture_graph(self.model, prep)

    def _timing_kind(self) -> str:
        return timing.timing_kind(self.model, self.settings)

    # -- measurements ----------------------------------------------------------------------

    def measure_latency(self, batch_size: int | None = None) -> LatencyMeasurement:
        """Warms up, then times calls until the stopping rule stops.

        Args:
            batch_size: Items per call (default: the settings', the engine's, or 1).

        Returns:
            The statistics, the raw samples and the stopping verdict.

        Raises:
            InvalidArgumentError: If the batch size does not fit the model.
            OutOfMemoryError: If the model runs out of memory (host or device).
            MeasurementConflictError: If another thread of this process measures on the same
                device (see docs/hardening.md, "Concurrency").
            DeviceError: If a CUDA graph cannot be captured.
            KeyboardInterrupt: On Ctrl-C; its ``partial_result`` is the measurement of the
                samples taken so far (not stable, ``"interrupted after N samples"``), or
                ``None`` when it came before the first one.
        """
        with (
            self._measuring("measure_latency"),
            self._failures(),
        ):
            return self._measure_latency(batch_size)

    def _measure_latency(self, batch_size: int | None) -> LatencyMeasurement:
        prep = self._prepare(batch_size)
        self._run_once(prep)
        kind = self._timing_kind()
        if kind == "cuda-graph" and prep.graph is None:
            self._capture_graph(prep)
        host_ns = [0.0]
        source = timing.sample_source(self.model, prep, kind, host_ns)
        warm = warm_up(source, self.settings.warmup_policy(), self._clock)
        typical = float(np.median(warm.samples_ns)) if warm.samples_ns.size else None
        logger.info(
            "timing '%s' at batch %d after %d warm-up calls",
            self.model.name,
            prep.batch_size,
            warm.iterations,
        )
        host_ns[0] = 0.0
        monitor = NoiseMonitor()
        try:
            with monitor:
                run = collect(
                    source, self.settings.stopping_rule(), self._clock, typical_ns=typical
                )
        except KeyboardInterrupt as exc:
            exc.partial_result = timing.interrupted_latency(  # type: ignore[attr-defined]
                self.model, self.settings, prep, kind, (warm.iterations, warm.settled), exc=exc
            )
            raise
        finally:
            self.latency_noise = monitor.reading()
        count = int(run.samples_ns.size)
        if count:
            prep.call_s = float(np.median(run.samples_ns)) / 1e9
        logger.info(
            "latency of '%s' at batch %d: %s",
            self.model.name,
            prep.batch_size,
            run.decision.reason,
        )
        return LatencyMeasurement(
            batch_size=prep.batch_size,
            stats=LatencyStats.from_samples_ns(run.samples_ns),
            samples_ns=tuple(float(v) for v in run.samples_ns),
            warmup_iterations=warm.iterations,
            warmup_settled=warm.settled,
            stable=run.decision.stable,
            stability_reason=run.decision.reason,
            stability_metric=self.settings.stability_metric,
            stability_value=run.decision.stability_value,
            timing_method=timing.TIMING_LABELS[kind],
            wall_s=run.elapsed_s,
            host_mean_ms=host_ns[0] / count / 1e6
            if kind in {"cuda-events", "cuda-graph"}
            else None,
        )

    def measure_throughput(
        self, batch_size: int | None = None, *, duration_s: float | None = None
    ) -> Throughput:
        """Back-to-back calls for a while; items and calls over the wall time.

        A few calls (``warmup_iterations``, at least one) are timed first to size the chunks,
        unless a latency run on the same inputs already gave the time of a call (the model is
        warm then);
        then the calls run back to back in chunks that double up to about 0.1 s (the clock is
        read between chunks) until ``duration_s`` has passed and at least
        :data:`MIN_THROUGHPUT_CALLS` calls were made; the wall time ends after the device's
        synchronisation. On a GPU, utilisation is sampled through NVML. The energy counters
        (RAPL, or NVML's on the model's GPU) are read just before the first chunk and just
        after the synchronisation, unless ``settings.energy`` is off.

        Args:
            batch_size: Items per call.
            duration_s: Length of the run (default: the settings' ``throughput_time_s``).

        Returns:
            The throughput run.

        Raises:
            InvalidArgumentError: If the batch size does not fit the model or ``duration_s``
                is not positive.
            OutOfMemoryError: If the model runs out of memory.
            MeasurementConflictError: If another thread of this process measures on the same
                device (see docs/hardening.md, "Concurrency").
        """
        duration = self.settings.throughput_time_s if duration_s is None else duration_s
        if not duration > 0.0:
            raise InvalidArgumentError(f"duration_s must be above 0, got {duration}")
        with (
            self._measuring("measure_throughput"),
            self._failures(),
        ):
            return self._measure_throughput(batch_size, duration)

    def _measure_throughput(self, batch_size: int | None, duration: float) -> Throughput:
        prep = self._prepare(batch_size)
        self._run_once(prep)
        if self._timing_kind() == "cuda-graph" and prep.graph is None:
            self._capture_graph(prep)
        return timing.run_throughput(
            self.model,
            prep,
            duration,
            probe_calls=self.settings.warmup_iterations,
            clock=self._clock,
            energy=self.settings.energy,
        )

    # -- memory ----------------------------------------------------------------------------

    def measure_memory(
        self, batch_size: int | None = None, *, runs: int | None = None
    ) -> MemoryStats:
        """Measures memory in a pass of its own (no timing happens meanwhile).

        * CPU (every framework): the core's ``reset_peak_rss()`` (Linux ``clear_refs`` and
          ``VmHWM``, or a sampling thread), the resident size as baseline, ``runs`` calls, then
          the peak over the baseline. The C heap's free pages are handed back first (glibc's
          ``malloc_trim``), so memory freed by earlier work and reused by the calls still
          counts. It includes what the runtime allocates for itself on those calls (allocator
          arenas, kernel caches): run first, as :meth:`profile` does, it also catches the first
          call's growth; run again later, memory a runtime's own pool kept is in the baseline.
        * torch on CUDA: ``reset_peak_memory_stats``, the allocated memory after the inputs as
          baseline, ``max_memory_allocated`` minus it after the runs; allocated and reserved
          memory after them.
        * ONNX Runtime on CUDA: the growth of the device-wide used memory over the runs (its
          arena keeps what it takes). TensorFlow on CUDA: its own ``get_memory_info`` peak
          over the current use before the runs.
        * Every CUDA model: device-wide used and total memory (NVML, else the driver).

        Args:
            batch_size: Items per call.
            runs: Calls to make (default: the settings' ``memory_runs``).

        Returns:
            The memory figures.

        Raises:
            InvalidArgumentError: If the batch size does not fit or ``runs`` < 1.
            OutOfMemoryError: If the model runs out of memory.
            MeasurementConflictError: If another thread of this process measures on the same
                device (see docs/hardening.md, "Concurrency").
        """
        count = self.settings.memory_runs if runs is None else runs
        if count < 1:
            raise InvalidArgumentError(f"runs must be at least 1, got {count}")
        with (
            self._measuring("measure_memory"),
            self._failures(),
        ):
            prep = self._prepare(batch_size)

            def run() -> None:
                self._run_once(prep)

            if not self.model.device.is_cuda:
                return memory.measure_cpu(self.model, run, count)
            return memory.measure_cuda(self.model, run, count)

    # -- batch sweep -----------------------------------------------------------------------

    def sweep_batch_sizes(
        self, batch_sizes: Sequence[int], latency_budget_ms: float | None = None
    ) -> BatchCurve:
        """Latency and throughput at each batch size, in increasing order.

        Each batch gets a full latency measurement (warm-up and stopping rule); its throughput
        is the items over that measurement's wall time. A batch that runs out of memory is
        recorded as such and ends the sweep (larger ones would too); any other failure is
        recorded at its point and the sweep goes on.

        Args:
            batch_sizes: The batch sizes (duplicates are dropped).
            latency_budget_ms: If given, the best batch is the highest throughput among those
                whose P95 latency is within it.

        Returns:
            The curve with its knee and best batch.

        Raises:
            InvalidArgumentError: If no batch size is given, one is not an integer of at least 1,
                the model's batch is fixed, or the budget is not positive.
            MeasurementConflictError: If another thread of this process measures on the same
                device (see docs/hardening.md, "Concurrency").
            KeyboardInterrupt: On Ctrl-C; its ``partial_result`` is the curve of the batch
                sizes finished and the interrupted one: measured from the calls timed before
                (``interrupted``, not stable) when there were at least
                :data:`MIN_PARTIAL_SAMPLES`, else a failed point.
        """
        sizes = self._sweep_sizes(batch_sizes, latency_budget_ms)
        if self.settings.repetitions > 1:
            return repeat.sweep_repeated(self.model, self.settings, sizes, latency_budget_ms)
        with self._measuring("sweep_batch_sizes"):
            return self._sweep(sizes, latency_budget_ms)

    def _sweep(self, sizes: list[int], latency_budget_ms: float | None) -> BatchCurve:
        def forget_inputs() -> None:
            self._prepared = None

        return sweep.sweep(
            self.measure_latency,
            sizes,
            latency_budget_ms,
            forget_inputs=forget_inputs,
            release_cache=self.model.release_cached_memory,
        )

    def _sweep_sizes(
        self, batch_sizes: Sequence[int], latency_budget_ms: float | None
    ) -> list[int]:
        """The sweep's batch sizes, sorted and unique, once the arguments are checked."""
        given = list(batch_sizes)  # a generator is read once
        if isinstance(self.model, CallableModel):
            raise InvalidArgumentError(
                f"callable '{self.model.name}' takes no batch, so it has no batch-size sweep; "
                "sweep a model, or time the callable once per size"
            )
        if not given:
            raise InvalidArgumentError(
                "batch_sizes must be one or more sizes of at least 1, got []"
            )
        sizes = sorted({as_batch_size(b, "each of batch_sizes") for b in given})
        if latency_budget_ms is not None and not latency_budget_ms > 0:
            raise InvalidArgumentError(
                f"latency_budget_ms must be above 0, got {latency_budget_ms}"
            )
        if not self.model.has_dynamic_batch:
            raise InvalidArgumentError(
                f"model '{self.model.name}' has a fixed batch size ({self.model.inputs[0]}); "
                "a batch sweep needs a dynamic batch dimension"
            )
        return sizes

    # -- everything ------------------------------------------------------------------------

    def profile(
        self,
        batch_size: int | None = None,
        *,
        batch_sizes: Sequence[int] | None = None,
        latency_budget_ms: float | None = None,
        memory: bool = True,
        throughput: bool = True,
    ) -> ProfileReport:
        """Memory pass, latency, throughput and (if asked) a batch sweep, in one report.

        The memory pass comes first, on a model that has not run yet, so it sees the first
        calls' allocations; its first call is the cold-start first inference.

        With ``settings.repetitions`` above 1, all of it happens in fresh worker processes
        that load the model anew: the first run makes every pass, each later run the latency
        (and the sweep); the report pools the runs' samples and holds the between-run figures
        in ``repetitions`` (:func:`pyinfer.profiling.repeat.profile_repeated`). The model must
        have been loaded from a file.

        Args:
            batch_size: Items per call for the memory, latency and throughput measurements.
            batch_sizes: Batch sizes to sweep, if any.
            latency_budget_ms: Budget for the sweep's best batch.
            memory: Whether to make the memory pass.
            throughput: Whether to make a throughput run.

        Returns:
            The report.

        Raises:
            InvalidArgumentError: If a batch size does not fit the model, or the sweep's
                arguments are refused (checked before anything is measured).
            OutOfMemoryError: If the model runs out of memory at ``batch_size``.
            MeasurementConflictError: If another thread of this process measures on the same
                device (see docs/hardening.md, "Concurrency").
            KeyboardInterrupt: On Ctrl-C; its ``partial_result`` is a report of what was
                measured (the passes finished, the latency so far when it has at least
                :data:`MIN_PARTIAL_SAMPLES` samples, marked not stable, and the sweep's points
                so far), or ``None`` when no latency was measured yet.
        """
        sweep = list(batch_sizes) if batch_sizes else []
        if sweep:  # checked before minutes of measuring, not after
            self._sweep_sizes(sweep, latency_budget_ms)
        if self.settings.repetitions > 1:
            return self._profile_repeated(batch_size, sweep, latency_budget_ms, memory, throughput)
        with self._measuring("profile"):
            return self._profile(batch_size, sweep, latency_budget_ms, memory, throughput)

    def _profile_repeated(
        self,
        batch_size: int | None,
        sweep: list[int],
        latency_budget_ms: float | None,
        memory: bool,
        throughput: bool,
    ) -> ProfileReport:
        """:meth:`profile` in ``repetitions`` fresh worker processes (see :mod:`.repeat`)."""
        batch = batch_for(self.model, batch_size, self._default_batch, self._explicit_batch)
        m = self.model
        if isinstance(m, CallableModel):
            return self._profile_callable_runs(batch_size, memory, throughput)

        def environment(overlaps: Sequence[str]) -> Environment:
            return collect_environment(
                model_options=m.options,
                cuda_device=m.device.index if m.device.is_cuda else None,
                concurrent_measurements=overlaps,
            )

        return repeat.profile_repeated(
            m,
            self.settings,
            batch_size=batch,
            batch_sizes=sweep,
            latency_budget_ms=latency_budget_ms,
            memory=memory,
            throughput=throughput,
            environment=environment,
        )

    def _profile_callable_runs(
        self, batch_size: int | None, memory: bool, throughput: bool
    ) -> ProfileReport:
        """:meth:`profile` of a callable with repetitions (:func:`.callables.profile_runs`)."""
        assert isinstance(self.model, CallableModel)

        def run_here(settings: ProfilerSettings, first: bool) -> ProfileReport:
            run = PerformanceProfiler(self.model, settings, clock=self._clock)
            with run._measuring("profile"):
                return run._profile(batch_size, [], None, memory and first, throughput and first)

        return profile_runs(
            self.model,
            self.settings,
            run_here=run_here,
            memory=memory,
            throughput=throughput,
            environment=lambda _: self._environment(),
        )

    def _profile(
        self,
        batch_size: int | None,
        sweep: list[int],
        latency_budget_ms: float | None,
        memory: bool,
        throughput: bool,
    ) -> ProfileReport:
        mem = latency = tput = curve = noise = None
        shapes: dict[str, tuple[int, ...]] = {}
        dtypes: dict[str, str] = {}
        try:
            mem = self.measure_memory(batch_size) if memory else None
            latency = self.measure_latency(batch_size)
            noise = self.latency_noise  # before a sweep measures again
            prep = self._prepare(batch_size)
            shapes, dtypes = prep.shapes, prep.dtypes
            tput = self.measure_throughput(batch_size) if throughput else None
            curve = self.sweep_batch_sizes(sweep, latency_budget_ms) if sweep else None
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "partial_result", None)
            if (
                latency is None
                and isinstance(partial, LatencyMeasurement)
                and partial.iterations >= MIN_PARTIAL_SAMPLES
                and self._prepared is not None
            ):
                latency, noise = partial, self.latency_noise
                shapes, dtypes = self._prepared.shapes, self._prepared.dtypes
            if isinstance(partial, BatchCurve):
                curve = partial
            exc.partial_result = (  # type: ignore[attr-defined]
                None
                if latency is None
                else self._report(
                    latency, shapes, dtypes, mem=mem, tput=tput, curve=curve, noise=noise
                )
            )
            raise
        return self._report(latency, shapes, dtypes, mem=mem, tput=tput, curve=curve, noise=noise)

    def _report(
        self,
        latency: LatencyMeasurement,
        shapes: dict[str, tuple[int, ...]],
        dtypes: dict[str, str],
        *,
        mem: MemoryStats | None,
        tput: Throughput | None,
        curve: BatchCurve | None,
        noise: NoiseReading | None = None,
    ) -> ProfileReport:
        """The report of what was measured, with the environment recorded now."""
        m = self.model
        load = m.load_time_s if math.isfinite(m.load_time_s) else None
        environment = self._environment()
        return ProfileReport(
            **_measured_where(m, environment),
            batch_size=latency.batch_size,
            input_shapes=shapes,
            input_dtypes=dtypes,
            latency=latency,
            environment=environment,
            throughput=tput,
            memory=mem,
            cold_start=ColdStart(load_time_s=load, first_inference_ms=self._first_inference_ms),
            batch_curve=curve,
            noise=noise,
        )


def sweep_report(
    profiler: PerformanceProfiler, curve: BatchCurve, *, interrupted: bool = False
) -> SweepReport:
    """A sweep's curve with the model, device, settings and environment it was measured with.

    Args:
        profiler: The profiler that measured the curve.
        curve: What :meth:`PerformanceProfiler.sweep_batch_sizes` returned (or attached to the
            ``KeyboardInterrupt``).
        interrupted: Whether Ctrl-C ended the sweep.

    Returns:
        The sweep report (``SweepReport.to_json`` is what ``pyinfer sweep --json`` writes).
    """
    m = profiler.model
    environment = profiler._environment()
    settings = settings_record(profiler.settings)
    return SweepReport(
        **_measured_where(m, environment),
        inputs={s.name: f"{s.shape_text()} {s.dtype.name}" for s in m.inputs},
        settings=settings,
        batch_curve=curve,
        environment=environment,
        interrupted=interrupted,
    )


class _Where(TypedDict):
    """The fields every result document starts with: the model and the device it ran on."""

    model: str
    format: str
    framework: str
    device: str
    device_name: str


def _measured_where(m: Model, environment: Environment) -> _Where:
    """What was measured, and where, as a report's first fields."""
    return _Where(
        model=m.name,
        format=m.format.value,
        framework=m.framework,
        device=str(m.device),
        device_name=device_name(m.device, environment),
    )


def device_name(device: Device, environment: Environment) -> str:
    """The report's Device line, from the environment already recorded for it."""
    if device.is_cuda:
        return f"CUDA ({environment.gpu_name or f'device {device.index}'})"
    cores = environment.physical_cores
    count = f"{cores} cores" if cores else f"{environment.logical_cores} logical cores"
    return f"CPU ({environment.cpu_model}, {count})"
