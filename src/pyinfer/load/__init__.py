"""Serving under load: open-loop arrivals, requests kept in flight, capacity under a budget.

:func:`load_test` serves a callable, a model or an engine (or one instance per worker) at
offered request rates on a schedule that does not wait for replies (open loop, latency counted
from each request's scheduled time) and/or at N requests kept in flight (closed loop), with an
optional dynamic batcher. :func:`find_capacity` searches the highest rate whose P99 latency
stays within a budget. The results are :class:`~pyinfer.report.load.LoadReport` records.
"""

from __future__ import annotations

from pyinfer.load.api import ARRIVALS, load_test
from pyinfer.load.capacity import find_capacity

__all__ = ["ARRIVALS", "find_capacity", "load_test"]
