"""Ray, imported at first use: the install hint without it, and the cluster a command runs on.

Nothing here is imported by ``import pyinfer``; the commands and functions that place work on Ray
call :func:`require_ray` and :func:`connect` when they start. ``connect`` starts a local cluster
when no address is given (Ray's own behaviour for ``ray.init()``), attaches to a running one for
``"auto"``, ``host:port`` or ``ray://host:port``, and reuses the Ray this process already set up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pyinfer.errors import ClusterError, FrameworkNotInstalledError, InvalidArgumentError

__all__ = ["ClusterInfo", "NodeInfo", "check_reachable", "connect", "require_ray"]

logger = logging.getLogger(__name__)

#: The install hint every Ray-backed command gives when Ray is missing.
INSTALL_HINT = "pip install 'pyinfer-toolkit[ray]'"
#: Seconds :func:`check_reachable` waits for a cluster's port to answer (Ray itself retries
#: an address that does not answer for minutes before it gives up).
REACH_TIMEOUT_S = 5.0


def require_ray(what: str) -> ModuleType:
    """Imports Ray for ``what`` (e.g. ``"pyinfer run --ray"``).

    Raises:
        FrameworkNotInstalledError: Ray (or Ray Data's pyarrow) is not installed; the message
            names the extra that installs it.
    """
    # Ray asks its usage-statistics server at start-up; nothing may reach the network unasked.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # Ray Data needs pyarrow: fail here, not mid-run
    except ImportError as exc:
        raise FrameworkNotInstalledError(f"{what} needs Ray ({exc}); {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class NodeInfo:
    """One alive node of the cluster, as Ray reports it.

    Attributes:
        node_id: Ray's id of the node (hex).
        address: The node's IP address.
        cpus: Logical CPUs Ray schedules on it.
        gpus: GPUs Ray schedules on it.
    """

    node_id: str
    address: str
    cpus: float
    gpus: float


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster a command runs on.

    Attributes:
        address: The address given, or ``"local"`` for a cluster started in this process.
        nodes: The alive nodes.
        started_here: Whether :func:`connect` started Ray (and shuts it down on exit).
    """

    address: str
    nodes: tuple[NodeInfo, ...]
    started_here: bool

    @property
    def cpus(self) -> float:
        """Logical CPUs over all nodes."""
        return sum(node.cpus for node in self.nodes)

    @property
    def gpus(self) -> float:
        """GPUs over all nodes."""
        return sum(node.gpus for node in self.nodes)


def _nodes(ray: Any) -> tuple[NodeInfo, ...]:
    found = []
    for node in ray.nodes():
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        found.append(
            NodeInfo(
                node_id=str(node.get("NodeID", "")),
                address=str(node.get("NodeManagerAddress", "")),
                cpus=float(resources.get("CPU", 0.0)),
                gpus=float(resources.get("GPU", 0.0)),
            )
        )
    return tuple(found)


@contextlib.contextmanager
def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    what: str = "this command",
) -> Iterator[ClusterInfo]:
    """Ray for the duration of a ``with`` block: started, attached to, or the one already up.

    Args:
        address: ``None`` starts a local cluster on this machine; ``"auto"`` attaches to the
            cluster ``ray start`` runs on this machine; ``"host:port"`` or ``"ray://host:port"``
            attaches to that cluster. Ignored when this process has set Ray up already.
        num_cpus: CPUs of a local cluster (default: every core); only without ``address``.
        num_gpus: GPUs of a local cluster (default: Ray's detection); only without ``address``.
        what: The command or function, for the messages.

    Yields:
        The cluster's nodes and resources.

    Raises:
        FrameworkNotInstalledError: Ray is not installed.
        InvalidArgumentError: ``num_cpus``/``num_gpus`` given with an address, or below 1/0.
        ClusterError: Ray could not start, or the cluster could not be reached (Ray's cause in
            the message).
    """
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise InvalidArgumentError(
            f"num_cpus/num_gpus size a local cluster; the cluster at {address} has its own"
        )
    if num_cpus is not None and num_cpus < 1:
        raise InvalidArgumentError(f"num_cpus must be at least 1, got {num_cpus}")
    if num_gpus is not None and num_gpus < 0:
        raise InvalidArgumentError(f"num_gpus must be 0 or more, got {num_gpus}")
    ray = require_ray(what)
    started = not ray.is_initialized()
    where = address or "local"
    if started:
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all "no cluster"
            target = "a local Ray cluster" if address is None else f"the Ray cluster at {address}"
            raise ClusterError(
                f"{what}: could not start or reach {target}: {type(exc).__name__}: {exc}"
            ) from exc
        logger.info("Ray started (%s)", where)
    try:
        yield ClusterInfo(address=where, nodes=_nodes(ray), started_here=started)
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str | None, what: str = "this command") -> None:
    """Refuses, within seconds, a ``host:port`` or ``ray://host:port`` nobody listens on.

    Ray itself retries an unreachable cluster for minutes before it gives up; a command that
    is given an address checks first that something answers there. ``None``, ``"local"`` and
    ``"auto"`` (Ray finds the address itself) are not checked, nor is anything while this
    process has Ray set up already (:func:`connect` then reuses it).

    Raises:
        ClusterError: The address is not ``host:port``, or nothing accepts a connection there
            within :data:`REACH_TIMEOUT_S`; the message names the address and the cause.
    """
    ray = sys.modules.get("ray")
    if address in (None, "local", "auto") or (ray is not None and ray.is_initialized()):
        return
    assert address is not None
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not host or not colon or not port.isdigit():
        raise ClusterError(
            f"{what}: the Ray cluster address {address} is not host:port or ray://host:port"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(
            f"{what}: could not start or reach the Ray cluster at {address}: nothing answers "
            f"at {host}:{port} ({exc.strerror or exc}); start it there with `ray start --head`, "
            "or give the address it printed"
        ) from exc
