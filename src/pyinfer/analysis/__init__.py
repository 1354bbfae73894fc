"""Where the time goes and what it buys: the arithmetic of an inference, its operators, the machine.

* :func:`count_macs`: multiply-accumulates (FLOPs = 2 x MACs) of one call, per operator class,
  with the weights' and activations' bytes (:class:`Arithmetic`); :func:`with_arithmetic` puts
  it in a profile report.
* :mod:`~pyinfer.analysis.operators`: the operator breakdown against the end-to-end latency.
* :mod:`~pyinfer.analysis.peaks`: the machine's measured GEMM peak and memory bandwidth, the
  roofline; :mod:`~pyinfer.analysis.energy`: energy per inference (RAPL, NVML).
"""

from __future__ import annotations

from pyinfer.analysis.arithmetic import MAC_CLASSES, Arithmetic, OperatorCount, classify
from pyinfer.analysis.counting import count_macs, with_arithmetic

__all__ = [
    "MAC_CLASSES",
    "Arithmetic",
    "OperatorCount",
    "classify",
    "count_macs",
    "with_arithmetic",
]
