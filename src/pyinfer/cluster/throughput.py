"""The report of a cluster run: items per second overall and per actor, and what failed.

:class:`DatasetRunReport` is a JSON record (``kind: "dataset run"``) of the report schema
(:mod:`pyinfer.report.codec`): it round-trips exactly, and ``pyinfer run --ray --output DIR``
writes it beside the output shards as ``report.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfer.engine import ItemFailure
from pyinfer.report.codec import SCHEMA_VERSION, JsonRecord, check_schema

__all__ = ["DATASET_RUN_KIND", "ActorThroughput", "DatasetRunReport"]

#: The ``kind`` of a dataset run report.
DATASET_RUN_KIND = "dataset run"


@dataclass(frozen=True)
class ActorThroughput:
    """What one actor of a cluster run did.

    Attributes:
        actor: Ray's id of the actor.
        node: Ray's id of its node.
        items: Inputs it was given (those that failed included).
        failed: Those of them that failed.
        busy_s: Seconds it spent on its batches (loading, preprocessing and running).
        items_per_s: ``items`` over the run's wall time: the actor's share of the overall
            figure (the shares add up to it).
    """

    actor: str
    node: str
    items: int
    failed: int
    busy_s: float
    items_per_s: float


@dataclass(frozen=True)
class DatasetRunReport(JsonRecord):
    """A dataset run on a Ray cluster: throughput overall and per actor, failures, outputs.

    Attributes:
        model: The model's path.
        address: The cluster (``"local"`` for one started by the run).
        items: Inputs in the dataset.
        succeeded: Inputs that ran.
        batch_size: Items per model call.
        actors: Actors of the pool.
        cpus_per_actor: CPUs each actor asked Ray for.
        gpus_per_actor: GPUs each actor asked Ray for.
        elapsed_s: Wall time from the start of the pool to the last output, in seconds.
        items_per_s: Inputs that ran per second of ``elapsed_s``.
        per_actor: One entry per actor that ran a batch, by actor id.
        failures: The inputs that failed, by id, with their source and reason.
        output: The folder of output shards, or ``None`` when the outputs were kept in memory.
        shards: The shard files written, in the order written.
        kind: Always ``"dataset run"``.
        schema_version: The report schema's version.
    """

    model: str
    address: str
    items: int
    succeeded: int
    batch_size: int
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    elapsed_s: float
    items_per_s: float
    per_actor: tuple[ActorThroughput, ...] = ()
    failures: tuple[ItemFailure, ...] = ()
    output: str | None = None
    shards: tuple[str, ...] = ()
    kind: str = DATASET_RUN_KIND
    schema_version: str = SCHEMA_VERSION

    JSON_WHAT = "dataset run report"
    JSON_ROOT = "report"

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(data, cls.JSON_WHAT, "rerun it with pyinfer run --ray", kind=DATASET_RUN_KIND)

    def to_text(self) -> str:
        """A few lines: the overall throughput, then one line per actor."""
        lines = [
            f"{self.succeeded} of {self.items} input(s) ran, {len(self.failures)} failed, in "
            f"{self.elapsed_s:.2f} s: {self.items_per_s:.1f} items/s on {self.actors} "
            f"actor(s) of {self.cpus_per_actor:g} CPU, {self.gpus_per_actor:g} GPU "
            f"({self.address})"
        ]
        for actor in self.per_actor:
            lines.append(
                f"  actor {actor.actor[:12]} (node {actor.node[:12]}): {actor.items} items, "
                f"{actor.items_per_s:.1f} items/s, busy {actor.busy_s:.2f} s"
            )
        return "\n".join(lines)
