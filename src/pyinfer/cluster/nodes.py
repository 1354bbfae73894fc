"""Which node ran an entry: its facts collected on the node itself, and its label in tables.

A benchmark matrix compares machines, so each node is described where it runs, never from the
machine that started the run: a Ray task pinned to the node collects pyinfer's environment
record there (:func:`pyinfer.report.environment.collect_environment`: the CPU model, the cores,
the GPU's name) with Ray's id and address of the node, and how busy other processes keep its
CPUs (:func:`pyinfer.suite.busy.busy_cpus`, sampled there: the suite's own look before it starts
samples this machine, not the node).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from pyinfer.report.environment import Environment, collect_environment
from pyinfer.suite.busy import BUSY_CPUS, busy_cpus

__all__ = ["NodeReport", "describe_this_node"]

logger = logging.getLogger(__name__)

#: The characters of a node's id that name it in tables (Ray's ids are 56 hex digits).
SHORT_ID = 8


@dataclass(frozen=True)
class NodeReport:
    """One node of a cluster, as it describes itself.

    Attributes:
        node_id: Ray's id of the node (hex).
        address: The node's IP address.
        ray_cpus: Logical CPUs Ray schedules on it (what each of its entries asked for).
        ray_gpus: GPUs Ray schedules on it.
        environment: pyinfer's environment record, collected on the node (its hostname, CPU
            model, physical and logical cores, GPU name and memory, framework versions).
        busy_cpus: How many of its CPUs other processes kept busy as it was described, just
            before its entries ran (``None`` where unknown: not Linux).
    """

    node_id: str
    address: str
    ray_cpus: float
    ray_gpus: float
    environment: Environment
    busy_cpus: float | None = None

    @property
    def short_id(self) -> str:
        """The first characters of the node's id."""
        return self.node_id[:SHORT_ID]

    def label(self) -> str:
        """One line: ``node 10.0.0.5 (id 3f2a9c1b, host gpu-1): CPU model, N cores, GPU``."""
        env = self.environment
        cores = env.physical_cores or env.logical_cores
        parts = [f"{env.cpu_model}, {cores} cores, {self.ray_cpus:g} CPUs for Ray"]
        if env.gpu_name:
            memory = f" {env.gpu_memory_bytes / 1024**3:.0f}GB" if env.gpu_memory_bytes else ""
            parts.append(f"GPU {env.gpu_name}{memory}")
        return f"node {self.address} (id {self.short_id}, host {env.hostname}): " + "; ".join(parts)

    def load_warning(self) -> str:
        """A warning when other processes kept the node's CPUs busy (else ``""``)."""
        if self.busy_cpus is None or self.busy_cpus < BUSY_CPUS:
            return ""
        return (
            f"warning: other processes kept {self.busy_cpus:.1f} of "
            f"{self.environment.logical_cores} CPUs of this node busy before its entries: "
            "expect noisy and unstable measurements"
        )


def describe_this_node(cuda: bool, resources: dict[str, Any]) -> NodeReport:
    """The node this runs on (called inside a Ray task pinned to it).

    Args:
        cuda: Whether to describe its first GPU too.
        resources: Ray's resources of the node (``"CPU"``, ``"GPU"``).

    Returns:
        The node's report.
    """
    import ray

    context = ray.get_runtime_context()
    busy = busy_cpus()
    environment = collect_environment(cuda_device=0 if cuda else None)
    return NodeReport(
        node_id=str(context.get_node_id()),
        address=str(ray.util.get_node_ip_address()),  # type: ignore[no-untyped-call]
        ray_cpus=float(resources.get("CPU", 0.0)),
        ray_gpus=float(resources.get("GPU", 0.0)),
        environment=dataclasses.replace(environment, concurrent_measurements=()),
        busy_cpus=busy,
    )
