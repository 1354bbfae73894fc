"""The machine's limits, measured: the best GEMM it runs and its memory bandwidth.

A "fraction of peak" is only honest against the best matrix multiply the machine can actually
run, so the peak is measured, never taken from a data sheet: a large fp32 GEMM through numpy's
BLAS, torch (oneDNN/MKL) and ONNX Runtime (MLAS), each timed apart, the peak being the best of
them (bf16 through torch where the CPU has it; on a CUDA GPU the same through torch).
Memory bandwidth is a STREAM-style triad ``a = b + s * c`` over arrays far larger than the
caches. The calibration takes a few seconds and is cached per machine in the user's cache
folder; :func:`machine_peaks` re-runs it on demand. A model that runs faster than the calibrated
peak raises the peak (:func:`fraction_of_peak` says so): no report shows more than 100%.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import import_onnx, import_onnxruntime, import_torch
from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError

__all__ = [
    "MachinePeaks",
    "Roofline",
    "cache_path",
    "calibrate",
    "fraction_of_peak",
    "machine_peaks",
    "onnx_matmul_session",
    "roofline",
]

logger = logging.getLogger(__name__)

#: Side of the square GEMM: 2048 is past every cache and still a fraction of a second per call.
GEMM_SIZE = 2048
#: A bf16 GEMM this many times slower than fp32 is emulated (no bf16 units): not measured at
#: full size (fp16 on a CPU is always so, and is not tried).
_SLOW_LOW_PRECISION = 4.0
#: Triad elements per array: 3 x 64 MiB of fp32, far past any last-level cache.
TRIAD_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class MachinePeaks:
    """The measured limits of one machine.

    Attributes:
        machine: What was measured (processor, cores, GPU).
        fp32_gflops: The best fp32 GEMM throughput measured (the peak), GFLOP/s.
        gemm_gflops: Each library's own fp32 GEMM GFLOP/s (``numpy``, ``torch``,
            ``onnxruntime``), plus ``torch-bf16`` where the CPU runs it natively and ``cuda-*``
            on a GPU.
        bandwidth_gbs: Memory bandwidth of the triad, GB/s.
        measured_at: When (Unix seconds).
        notes: What changed since (a peak raised by a model that beat it).
    """

    machine: str
    fp32_gflops: float
    gemm_gflops: dict[str, float]
    bandwidth_gbs: float
    measured_at: float
    notes: tuple[str, ...] = field(default=())

    @property
    def ridge_intensity(self) -> float:
        """FLOP per byte where the roofline bends: below it a model is memory-bound."""
        return self.fp32_gflops / self.bandwidth_gbs if self.bandwidth_gbs > 0 else float("inf")


@dataclass(frozen=True)
class Roofline:
    """Where a model sits on the roofline.

    Attributes:
        intensity: The model's FLOP per byte moved.
        attainable_gflops: ``min(peak, intensity x bandwidth)``.
        bound: ``"compute-bound"`` or ``"memory-bound"``.
    """

    intensity: float
    attainable_gflops: float
    bound: str


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.node()}"


def cache_path() -> Path:
    """The cache file of this machine's peaks (under ``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(_machine().encode()).hexdigest()[:16]
    return root / "pyinfer" / f"peaks-{key}.json"


def _best_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: first-call allocation and library initialisation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _gemm_rates(n: int, repeats: int) -> dict[str, float]:
    flops = 2.0 * n**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    rates = {"numpy": flops / _best_seconds(lambda: a @ b, repeats) / 1e9}
    for name, measure in (("torch", _torch_gemm), ("onnxruntime", _ort_gemm)):
        try:
            rates.update(measure(a, b, flops, repeats))
        except FrameworkNotInstalledError as exc:
            logger.info("no %s GEMM in the calibration: %s", name, exc)
    return rates


def _torch_gemm(a: np.ndarray, b: np.ndarray, flops: float, repeats: int) -> dict[str, float]:
    torch = import_torch()
    rates: dict[str, float] = {}
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    with torch.no_grad():
        rates["torch"] = flops / _best_seconds(lambda: torch.mm(ta, tb), repeats) / 1e9
        try:
            low = (ta.to(torch.bfloat16), tb.to(torch.bfloat16))
            probe = (low[0][:256, :256], low[1][:256, :256])  # a slow emulation is left out
            probe_s = _best_seconds(functools.partial(torch.mm, *probe), 1)
            if 2.0 * 256**3 / probe_s / 1e9 >= rates["torch"] / _SLOW_LOW_PRECISION:
                seconds = _best_seconds(functools.partial(torch.mm, *low), repeats)
                rates["torch-bf16"] = flops / seconds / 1e9
        except RuntimeError as exc:  # no bf16 kernel on this CPU
            logger.info("no bf16 GEMM: %s", exc)
        if torch.cuda.is_available():  # pragma: no cover - needs a GPU
            rates.update(_cuda_gemm(torch, ta, tb, flops, repeats))
    return rates


def _cuda_gemm(
    torch: Any, ta: Any, tb: Any, flops: float, repeats: int
) -> dict[str, float]:  # pragma: no cover - needs a GPU
    rates = {}
    for label, dtype in (("cuda-fp32", torch.float32), ("cuda-bf16", torch.bfloat16)):
        ga, gb = ta.to("cuda", dtype), tb.to("cuda", dtype)

        def call(x: Any = ga, y: Any = gb) -> None:
            torch.mm(x, y)
            torch.cuda.synchronize()

        rates[label] = flops / _best_seconds(call, repeats) / 1e9
    return rates


def onnx_matmul_session(n: int) -> Any:
    """An ONNX Runtime CPU session of one ``c = a @ b`` MatMul of two n x n fp32 inputs."""
    onnx, ort = import_onnx(), import_onnxruntime()
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n, n]),
            helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [n, n]),
        ],
        [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _ort_gemm(a: np.ndarray, b: np.ndarray, flops: float, repeats: int) -> dict[str, float]:
    session = onnx_matmul_session(a.shape[0])
    feed = {"a": a, "b": b}
    return {"onnxruntime": flops / _best_seconds(lambda: session.run(None, feed), repeats) / 1e9}


def _triad_gbs(elements: int, repeats: int) -> float:
    """``a = b + s * c``: 3 arrays of fp32 moved per pass (2 read, 1 written), STREAM's count."""
    try:
        torch = import_torch()
    except FrameworkNotInstalledError:
        b = np.ones(elements, np.float32)
        c = np.ones(elements, np.float32)
        a = np.empty_like(b)

        def numpy_triad() -> None:  # two passes: c*s into a, then a += b (5 arrays' traffic)
            np.multiply(c, 3.0, out=a)
            np.add(a, b, out=a)

        return 5 * 4 * elements / _best_seconds(numpy_triad, repeats) / 1e9
    tb = torch.ones(elements)
    tc = torch.ones(elements)
    ta = torch.empty(elements)
    seconds = _best_seconds(lambda: torch.add(tb, tc, alpha=3.0, out=ta), repeats)
    return 3 * 4 * elements / seconds / 1e9


def calibrate(
    *, gemm_size: int = GEMM_SIZE, triad_elements: int = TRIAD_ELEMENTS, repeats: int = 5
) -> MachinePeaks:
    """Measures the machine's GEMM peaks and memory bandwidth now (a few seconds).

    Args:
        gemm_size: Side of the square fp32 GEMM.
        triad_elements: Elements per array of the triad.
        repeats: Timed calls of each; the best is kept.

    Raises:
        InvalidArgumentError: If a size or the repeats are under 1.
    """
    if min(gemm_size, triad_elements, repeats) < 1:
        raise InvalidArgumentError(
            f"calibration sizes must be positive: gemm_size={gemm_size}, "
            f"triad_elements={triad_elements}, repeats={repeats}"
        )
    rates = _gemm_rates(gemm_size, repeats)
    fp32 = [v for k, v in rates.items() if k in {"numpy", "torch", "onnxruntime"}]
    return MachinePeaks(
        machine=_machine(),
        fp32_gflops=max(fp32),
        gemm_gflops=rates,
        bandwidth_gbs=_triad_gbs(triad_elements, repeats),
        measured_at=time.time(),
    )


def _save(peaks: MachinePeaks, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(peaks), indent=2) + "\n")
    except OSError as exc:
        logger.warning("cannot cache the machine's peaks in %s: %s", path, exc)


def machine_peaks(*, recalibrate: bool = False) -> MachinePeaks:
    """This machine's peaks: from the cache, or measured now (and cached) when absent or asked.

    Args:
        recalibrate: Measure again even when cached.
    """
    path = cache_path()
    if not recalibrate and path.is_file():
        try:
            data = json.loads(path.read_text())
            data["notes"] = tuple(data.get("notes", ()))
            return MachinePeaks(**data)
        except (OSError, ValueError, TypeError) as exc:
            logger.info("the cached peaks in %s are unreadable (%s): measuring again", path, exc)
    peaks = calibrate()
    _save(peaks, path)
    return peaks


def fraction_of_peak(gflops: float, peaks: MachinePeaks) -> tuple[float, MachinePeaks]:
    """The fraction of the peak achieved, never above 1: a higher rate raises the peak.

    Args:
        gflops: The achieved GFLOP/s.
        peaks: The calibrated peaks.

    Returns:
        The fraction, and the peaks to use from now on: the same, or (when ``gflops`` beat the
        peak) a copy whose peak is ``gflops``, with a note saying so, saved to the cache.
    """
    if gflops <= peaks.fp32_gflops:
        return (gflops / peaks.fp32_gflops if peaks.fp32_gflops > 0 else 0.0), peaks
    note = (
        f"a model ran at {gflops:.1f} GFLOP/s, above the calibrated {peaks.fp32_gflops:.1f}: "
        "the peak was raised to it (recalibrate with pyinfer ops --recalibrate)"
    )
    raised = dataclasses.replace(peaks, fp32_gflops=gflops, notes=(*peaks.notes, note))
    _save(raised, cache_path())
    return 1.0, raised


def roofline(intensity: float, peaks: MachinePeaks) -> Roofline:
    """Where a model of ``intensity`` FLOP/byte sits under the machine's roofline."""
    attainable = min(peaks.fp32_gflops, intensity * peaks.bandwidth_gbs)
    bound = "compute-bound" if intensity >= peaks.ridge_intensity else "memory-bound"
    return Roofline(intensity=intensity, attainable_gflops=attainable, bound=bound)
