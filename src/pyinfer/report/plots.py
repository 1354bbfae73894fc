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
from pyinfer.report.files import write_atomic

if TYPE_CHECKING:
    from pyinfer.report.records import BatchCurve, ProfileReport

__all__ = ["batch_curve_figure", "latency_figure", "plot_batch_curve", "plot_latency"]

# Bins of the latency histogram: enough to show a second mode, few enough to stay readable.
_HISTOGRAM_BINS = 50
# Calls beyond P99.9 are left out of the histogram when they would stretch its x axis by more
# than this fraction of the body's width (P99.9 - fastest).
_OUTLIER_STRETCH = 0.5


def _figure(rows: int, cols: int) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            f'plots need matplotlib: pip install "pyinfer-toolkit[plot]" ({exc})'
        ) from exc
    return Figure(figsize=(5.5 * cols, 4.0 * rows), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
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
    return _save(batch_curve_figure(curve, title=title), path)


def batch_curve_figure(curve: BatchCurve, *, title: str | None = None) -> Any:
    """The figure :func:`plot_batch_curve` writes; the x axis is labelled with the batch sizes.

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
        InvalidArgumentError: If no point of the curve was measured.
    """
    from matplotlib.ticker import NullLocator

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
    # The sizes measured, as numbers (1, 8, 64), not powers of two (2^0, 2^3, 2^6).
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
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
    return fig


def plot_latency(report: ProfileReport, path: Path) -> Path:
    """Histogram and cumulative distribution of the raw latency samples.

    Args:
        report: The report whose samples to plot.
        path: The PNG to write.

    Returns:
        ``path``.

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
        InvalidArgumentError: If the report holds no raw samples (a JSON file stripped of them).
    """
    return _save(latency_figure(report), path)


def _histogram_range(samples_ms: np.ndarray) -> tuple[float, float, str]:
    """The histogram's x range over sorted samples, and the note on the calls left out.

    The histogram stops at P99.9 (a sample, not an interpolation) when the calls beyond it
    would stretch the axis by more than half the body's width, so that a few preempted calls
    do not squash the distribution into one bar; otherwise it shows every call, and no note.
    """
    low, high = float(samples_ms[0]), float(samples_ms[-1])
    upper = float(np.percentile(samples_ms, 99.9, method="lower"))
    beyond = int(np.count_nonzero(samples_ms > upper))
    if beyond == 0 or high - upper <= _OUTLIER_STRETCH * (upper - low):
        return low, high, ""
    calls = "1 call" if beyond == 1 else f"{beyond} calls"
    slowest = "it took" if beyond == 1 else "the slowest took"
    return low, upper, f"{calls} over P99.9 ({upper:.4g} ms) not shown: {slowest} {high:.4g} ms"


def _plain_log_axis(axis: Any) -> None:
    """Labels a log axis with plain numbers (``12``, ``0.5``) instead of ``1.2x10^1``.

    matplotlib's own choice of which ticks to label is kept; only the text changes.
    """
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def latency_figure(report: ProfileReport) -> Any:
    """The figure :func:`plot_latency` writes: histogram (left) and CDF on a log axis (right).

    Raises:
        FrameworkNotInstalledError: If matplotlib is missing.
        InvalidArgumentError: If the report holds no raw samples.
    """
    samples_ms = np.sort(np.asarray(report.latency.samples_ns, dtype=np.float64)) / 1e6
    if samples_ms.size == 0:
        raise InvalidArgumentError(
            f"report of model '{report.model}' holds no raw latency samples to plot"
        )
    fig = _figure(1, 2)
    hist = fig.add_subplot(1, 2, 1)
    low, upper, note = _histogram_range(samples_ms)
    hist.hist(samples_ms, bins=_HISTOGRAM_BINS, range=(low, upper), color="tab:blue")
    if note:
        hist.set_title(note, fontsize="small")
    hist.axvline(report.latency.stats.median_ms, color="black", linestyle="--", label="median")
    hist.axvline(report.latency.stats.p99_ms, color="tab:red", linestyle=":", label="p99")
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("calls")
    hist.legend()
    # The CDF, on a log axis, shows the whole tail.
    cdf = fig.add_subplot(1, 2, 2)
    cdf.plot(samples_ms, np.arange(1, samples_ms.size + 1) / samples_ms.size, color="tab:blue")
    cdf.set_xscale("log")
    _plain_log_axis(cdf.xaxis)
    cdf.set_xlabel("latency (ms, log scale)")
    cdf.set_ylabel("fraction of calls at or under")
    cdf.grid(visible=True, alpha=0.3)
    fig.suptitle(f"{report.model} on {report.device_name}, batch {report.batch_size}")
    return fig
