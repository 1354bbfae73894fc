"""Where the time goes and what it buys: the arithmetic of an inference, its operators, the machine.

* :func:`count_macs`: multiply-accumulates (FLOPs = 2 x MACs) of one call, per operator class,
  with the weights' and activations' bytes (:class:`Arithmetic`).
"""

from __future__ import annotations

from pyinfer.analysis.arithmetic import MAC_CLASSES, Arithmetic, OperatorCount, classify
from pyinfer.analysis.counting import count_macs

__all__ = ["MAC_CLASSES", "Arithmetic", "OperatorCount", "classify", "count_macs"]
