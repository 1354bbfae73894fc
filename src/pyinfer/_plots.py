"""PNG plots of profiling results, drawn with matplotlib's Agg backend (no display needed).

matplotlib is imported here, at the first plot, never by ``import pyinfer``; figures are made
with ``matplotlib.figure.Figure`` directly, so no global pyplot state is touched and plotting
works from any thread. Each PNG is rendered in memory and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError

if TYPE_CHECKING:
    from pyinfer.report import BatchCurve, ProfileReport

__all__ = ["plot_batch_curve", "plot_latency"]

# Bins of the latency histogram: enough to show a second mode, few enough to stay readable.
_HISTOGRAM_BINS = 50


def _figure(rows: int, cols: int) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            f'plots need matplotlib: pip install "pyinfer[plot]" ({exc})'
        ) from exc
    return Figure(figsize=(5.5 * cols, 4.0 * rows), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    from pyinfer.report import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_atomic(path, buffer.getvalue())


def plot_batch_curve(curve: BatchCurve, path: Path, *, title: str | None = None) -> Path:
    """Throughput (left axis) and latency (right axis) against batch size.

    Args:
        curve: The sweep.
        path: The PNG to write.
        title: The figure's title.

    Returns:
        ``path``.

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
        InvalidArgumentError: If no point of the curve was measured.
    """
    points = [
        p for p in curve.measured if p.throughput_fps is not None and p.latency_mean_ms is not None
    ]
    if not points:
        raise InvalidArgumentError("the batch curve has no measured point to plot")
    fig = _figure(1, 1)
    ax = fig.add_subplot(1, 1, 1)
    sizes = [p.batch_size for p in points]
    ax.plot(sizes, [p.throughput_fps for p in points], "o-", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (items/s)", color="tab:blue")
    latency = ax.twinx()
    latency.plot(sizes, [p.latency_mean_ms for p in points], "s--", color="tab:red")
    latency.set_ylabel("latency per batch (ms)", color="tab:red")
    if curve.knee_batch_size is not None:
        ax.axvline(curve.knee_batch_size, color="gray", linestyle=":", label="knee")
        ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_latency(report: ProfileReport, path: Path) -> Path:
    """Histogram and cumulative distribution of the raw latency samples.

    Args:
        report: The report whose samples to plot.
        path: The PNG to write.

    Returns:
        ``path``.

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
    """
    samples_ms = np.sort(np.asarray(report.latency.samples_ns, dtype=np.float64)) / 1e6
    fig = _figure(1, 2)
    hist = fig.add_subplot(1, 2, 1)
    # The histogram stops at P99.9 so that a few preempted calls do not squash the body of the
    # distribution into one bar; the CDF, on a log axis, shows the whole tail.
    upper = float(np.percentile(samples_ms, 99.9))
    beyond = int(np.count_nonzero(samples_ms > upper))
    hist.hist(samples_ms, bins=_HISTOGRAM_BINS, range=(samples_ms[0], upper), color="tab:blue")
    if beyond:
        hist.set_title(f"{beyond} slower call(s) beyond P99.9 not shown", fontsize="small")
    hist.axvline(report.latency.stats.median_ms, color="black", linestyle="--", label="median")
    hist.axvline(report.latency.stats.p99_ms, color="tab:red", linestyle=":", label="p99")
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("calls")
    hist.legend()
    cdf = fig.add_subplot(1, 2, 2)
    cdf.plot(samples_ms, np.arange(1, samples_ms.size + 1) / samples_ms.size, color="tab:blue")
    cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms, log scale)")
    cdf.set_ylabel("fraction of calls at or under")
    cdf.grid(visible=True, alpha=0.3)
    fig.suptitle(f"{report.model} on {report.device_name}, batch {report.batch_size}")
    return _save(fig, path)
