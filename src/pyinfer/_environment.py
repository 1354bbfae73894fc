# Temporary shim: importers move in the merge.
"""Moved to :mod:`pyinfer.report.environment`; bench, cli and _demo still import it from here."""

from __future__ import annotations

from pyinfer.report.environment import Environment, collect_environment, cpu_model

__all__ = ["Environment", "collect_environment", "cpu_model"]
