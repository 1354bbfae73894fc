"""Past one machine: dataset inference and benchmark matrices on a Ray cluster.

Ray is optional (``pip install 'pyinfer-toolkit[ray]'``) and imported only when a function of
this package runs; ``import pyinfer`` never imports it.
"""

from __future__ import annotations

from pyinfer.cluster.dataset import ClusterRunResult, run_dataset
from pyinfer.cluster.matrix import (
    MatrixResult,
    NodeRun,
    compare_formats_on_cluster,
    run_suite_on_cluster,
)
from pyinfer.cluster.nodes import NodeReport
from pyinfer.cluster.runtime import ClusterInfo, NodeInfo, connect, require_ray
from pyinfer.cluster.shards import read_outputs
from pyinfer.cluster.throughput import ActorThroughput, DatasetRunReport

__all__ = [
    "ActorThroughput",
    "ClusterInfo",
    "ClusterRunResult",
    "DatasetRunReport",
    "MatrixResult",
    "NodeInfo",
    "NodeReport",
    "NodeRun",
    "compare_formats_on_cluster",
    "connect",
    "read_outputs",
    "require_ray",
    "run_dataset",
    "run_suite_on_cluster",
]
