"""Timing sources: the calls a measurement times, and how each duration is read.

* on the CPU, the native core's timed loop (the clock read before and after each call, no Python
  in between);
* on CUDA with the model's stream, CUDA events on that stream, one synchronisation per chunk
  (optionally the replay of a CUDA graph of the call);
* on CUDA without a stream, the host clock with a synchronisation after each call;
* the throughput loop: back-to-back calls in chunks, the wall time around all of them, with the
  energy counters read just before the first chunk and just after the final synchronisation.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pyinfer import core
from pyinfer.backends.base import Model
from pyinfer.errors import DeviceError
from pyinfer.profiling.energy import EnergyMeter
from pyinfer.profiling.gpu import UtilizationSampler, nvml_index
from pyinfer.profiling.inputs import PreparedCall
from pyinfer.profiling.settings import ProfilerSettings
from pyinfer.profiling.stopping import CHUNK_TIME_S, SampleSource
from pyinfer.report import GpuUtilization, LatencyMeasurement, LatencyStats, Throughput

logger = logging.getLogger(__name__)

__all__ = [
    "GRAPH_WARMUP_CALLS",
    "MIN_THROUGHPUT_CALLS",
    "TIMING_LABELS",
    "capture_graph",
    "interrupted_latency",
    "run_throughput",
    "sample_source",
    "timed_samples",
    "timing_kind",
]

#: A throughput run makes at least this many calls, so that one slow call (a batch of 256 on a
#: CPU can take seconds) does not make the whole figure.
MIN_THROUGHPUT_CALLS = 5
#: Calls on a side stream before a CUDA graph capture: the first calls allocate workspace and
#: pick kernels (cuDNN/cuBLAS heuristics), which must not happen during capture.
GRAPH_WARMUP_CALLS = 3

#: The report's words for each kind of timing (:func:`timing_kind`).
TIMING_LABELS = {
    "cpu": "host timed loop (pyinfer.time_calls, the clock read before and after each call)",
    "cuda-events": "CUDA events on the model's stream, one synchronisation per chunk",
    "cuda-graph": "CUDA graph replay timed with CUDA events on the model's stream",
    "host-sync": "host clock, synchronising after each call (the model exposes no CUDA stream)",
}


def timed_samples(call: Callable[[], object], n: int) -> npt.NDArray[np.float64]:
    """``n`` timed calls of ``call`` (ns); on Ctrl-C, the calls timed before it are attached.

    They go on the ``KeyboardInterrupt`` as ``chunk_samples_ns``, which the stopping rule's
    collection keeps with the interrupted measurement.
    """
    try:
        return np.asarray(core.time_calls(call, n).samples())
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_recorder", None)
        if partial is not None:
            exc.chunk_samples_ns = np.asarray(  # type: ignore[attr-defined]
                partial.samples(), dtype=np.float64
            )
        raise


def timing_kind(model: Model, settings: ProfilerSettings) -> str:
    """``"cpu"``, ``"host-sync"``, ``"cuda-events"`` or ``"cuda-graph"``: how ``model`` is timed."""
    if not model.device.is_cuda:
        return "cpu"
    if settings.timing == "host" or model.stream_handle is None:
        return "host-sync"
    return "cuda-graph" if settings.cuda_graphs else "cuda-events"


def sample_source(
    model: Model, prep: PreparedCall, kind: str, host_ns: list[float]
) -> SampleSource:
    """The sample source for ``kind``; adds host end-to-end time to ``host_ns[0]``."""
    if kind == "cpu":
        call = prep.call

        def cpu_source(n: int) -> npt.NDArray[np.float64]:
            return timed_samples(call, n)

        return cpu_source
    if kind == "host-sync":
        run, sync = prep.call, model.synchronize

        def synced() -> None:
            run()
            sync()

        def host_source(n: int) -> npt.NDArray[np.float64]:
            return timed_samples(synced, n)

        return host_source
    stream = model.stream_handle
    assert stream is not None
    timer = core.CudaEventTimer(stream, model.device.index)
    call = prep.call

    def event_source(n: int) -> npt.NDArray[np.float64]:
        start = core.now_ns()
        gpu_ms, _ = timer.time_calls(call, n)  # synchronises once, at the end
        host_ns[0] += core.now_ns() - start
        return np.asarray(gpu_ms, dtype=np.float64) * 1e6

    return event_source


def capture_graph(model: Model, prep: PreparedCall) -> None:
    """Captures ``prep``'s call into a CUDA graph (torch on CUDA); ``prep.call`` replays it.

    Raises:
        DeviceError: If the capture fails.
    """
    torch = sys.modules["torch"]
    device = torch.device(str(model.device))
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_CALLS):
                model.run_native(prep.native)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = model.run_native(prep.native)
    except Exception as exc:
        raise DeviceError(
            f"capturing model '{model.name}' into a CUDA graph failed: {exc}; "
            "profile it without cuda_graphs"
        ) from exc
    prep.graph = (graph, outputs)
    prep.call = graph.replay


def run_throughput(
    model: Model,
    prep: PreparedCall,
    duration: float,
    *,
    probe_calls: int,
    clock: Callable[[], float],
    energy: bool = True,
) -> Throughput:
    """Back-to-back calls of ``prep`` for ``duration`` seconds (see ``measure_throughput``).

    Args:
        model: The model (synchronised at the end; on CUDA its GPU is sampled through NVML).
        prep: The inputs and the call; its ``call_s``, if known, sizes the first chunk.
        duration: Seconds to run for.
        probe_calls: Calls timed first to size the chunks when ``prep.call_s`` is unknown.
        clock: Seconds from a monotonic origin.
        energy: Read the energy counters around the timed calls (RAPL on the CPU, NVML on the
            model's GPU): one read before the first chunk, one after the synchronisation.
    """
    if prep.call_s is not None:  # warm from a latency run on these inputs: no probe
        per_call = max(prep.call_s, 1e-9)
    else:
        probe = max(1, probe_calls)
        start = clock()
        core.time_calls(prep.call, probe)
        model.synchronize()
        per_call = max((clock() - start) / probe, 1e-9)
    sampler = UtilizationSampler(model.device.index) if model.device.is_cuda else None
    if sampler is not None:
        sampler.start()
    meter = None
    if energy:
        gpu = nvml_index(model.device.index) if model.device.is_cuda else None
        meter = EnergyMeter(gpu_index=gpu)
        meter.start()
    calls, n, elapsed = 0, 0, 0.0
    reading = None
    start = clock()
    try:
        # Chunks that double up to about CHUNK_TIME_S, the clock read between them, so the
        # run keeps to its duration even when calls slow down after the probe (a busy
        # machine, a GPU clocking down): a slowdown costs at most one chunk.
        while True:
            n = max(1, min(max(2 * n, MIN_THROUGHPUT_CALLS), round(CHUNK_TIME_S / per_call)))
            core.time_calls(prep.call, n)
            calls += n
            now = clock() - start
            if now >= duration and calls >= MIN_THROUGHPUT_CALLS:
                break
            per_call = max((now - elapsed) / n, 1e-9)
            elapsed = now
        model.synchronize()
        wall = clock() - start
        reading = None if meter is None else meter.stop(wall, calls * prep.batch_size)
    finally:
        if meter is not None and reading is None:  # interrupted: let NVML go all the same
            meter.stop(0.0, 0)
        utilization = (
            sampler.stop()
            if sampler is not None
            else GpuUtilization(unavailable="the model runs on the CPU")
        )
    return Throughput(prep.batch_size, calls, wall, utilization, reading)


def interrupted_latency(
    model: Model,
    settings: ProfilerSettings,
    prep: PreparedCall,
    kind: str,
    warmup: tuple[int, bool | None],
    *,
    exc: KeyboardInterrupt,
) -> LatencyMeasurement | None:
    """The samples a Ctrl-C left, as a measurement marked not stable (``None``: none).

    Args:
        model: The model measured.
        settings: The profiler's settings (its stability measure).
        prep: The inputs and call that were timed.
        kind: The timing kind (a key of :data:`TIMING_LABELS`).
        warmup: The warm-up's iterations and whether it settled.
        exc: The interrupt, carrying the samples taken as ``partial_samples_ns``.

    Returns:
        The measurement of the samples taken, or ``None`` when none was.
    """
    samples = np.asarray(getattr(exc, "partial_samples_ns", np.empty(0)), dtype=np.float64)
    count = int(samples.size)
    logger.info(
        "latency of '%s' at batch %d interrupted after %d samples",
        model.name,
        prep.batch_size,
        count,
    )
    if count == 0:
        return None
    return LatencyMeasurement(
        batch_size=prep.batch_size,
        stats=LatencyStats.from_samples_ns(samples),
        samples_ns=tuple(float(v) for v in samples),
        warmup_iterations=warmup[0],
        warmup_settled=warmup[1],
        stable=False,
        stability_reason=f"interrupted after {count} samples",
        stability_metric=settings.stability_metric,
        stability_value=settings.stopping_rule().stability(samples),
        timing_method=TIMING_LABELS[kind],
        wall_s=float(samples.sum()) / 1e9,
    )
