"""The roofline PNG: the machine's compute and bandwidth ceilings, the model and its operators.

matplotlib is imported here, at the first plot (Agg, through ``matplotlib.figure.Figure``: no
global pyplot state).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from pathlib import Path

from pyinfer.analysis.peaks import MachinePeaks
from pyinfer.errors import FrameworkNotInstalledError
from pyinfer.report import write_atomic

__all__ = ["plot_roofline"]


def plot_roofline(
    peaks: MachinePeaks,
    points: Sequence[tuple[str, float, float]],
    path: Path,
    *,
    title: str = "Roofline",
) -> Path:
    """Draws the roofline with the points given and writes it as a PNG.

    Args:
        peaks: The machine's measured peak and bandwidth.
        points: ``(label, FLOP per byte, achieved GFLOP/s)`` per point: the model first, then
            its operators.
        path: Where the PNG goes.
        title: Above the plot.

    Returns:
        The PNG's path.

    Raises:
        FrameworkNotInstalledError: Without matplotlib.
    """
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            f'the roofline plot needs matplotlib ({exc}): pip install "pyinfer-toolkit[plot]"'
        ) from exc
    fig = figure_module.Figure(figsize=(6.5, 4.5), dpi=100, layout="constrained")
    axis = fig.add_subplot()
    ridge = peaks.ridge_intensity
    low = min([0.1, *(p[1] / 2 for p in points if p[1] > 0)])
    high = max([ridge * 10, *(p[1] * 2 for p in points)])
    xs = [low, ridge, high]
    ys = [low * peaks.bandwidth_gbs, peaks.fp32_gflops, peaks.fp32_gflops]
    axis.plot(xs, ys, color="black", label=f"measured roof ({peaks.fp32_gflops:.0f} GFLOP/s, "
              f"{peaks.bandwidth_gbs:.1f} GB/s)")  # fmt: skip
    for index, (label, intensity, gflops) in enumerate(points):
        marker = "*" if index == 0 else "o"
        axis.scatter([intensity], [gflops], marker=marker, s=120 if index == 0 else 40, label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("arithmetic intensity (FLOP per byte)")
    axis.set_ylabel("GFLOP/s")
    axis.set_title(title)
    axis.legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_atomic(path, buffer.getvalue())
