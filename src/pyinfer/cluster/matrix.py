"""Benchmark matrices on a cluster: the suite's and the format comparison's entries as Ray tasks.

The suite (:func:`pyinfer.suite.run_suite`) and the format comparison
(:func:`pyinfer.suite.compare_formats`) run unchanged, once per node of the cluster: the parent
(this process) prepares the models as it does locally (exports to the work folder), and each
entry's job (the model's file or the function that builds it, and the settings: never a model
object) runs as a Ray task pinned to the node. The task starts the suite's own worker process
there (:func:`pyinfer.profiling.repeat.run_worker`) and sends back its result: the report, and
the outputs the parent checks parity on.

Each task asks for every CPU and every GPU Ray schedules on its node, and the parent waits for
one task before it starts the next: no two timed entries share a node's cores or a device, and
another Ray job's tasks wait while an entry is timed (or it waits for them). The nodes' tables
come back grouped by node, each under the node's description collected on the node
(:mod:`pyinfer.cluster.nodes`), in one :class:`MatrixResult` (one JSON document holding each
node's unchanged suite or comparison document).

The model files must be readable at the same path on every node (a ``--work-dir`` on shared
storage); an entry whose file is missing on a node fails there, with the node in its reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfer.cluster.nodes import SHORT_ID, NodeReport, describe_this_node
from pyinfer.cluster.runtime import NodeInfo, check_reachable, connect, require_ray
from pyinfer.errors import ClusterError, InvalidArgumentError, PyinferError
from pyinfer.profiling.jobs import WorkerJob, WorkerResult
from pyinfer.report import JsonRecord, check_schema
from pyinfer.report.codec import encode_json
from pyinfer.suite import FormatsResult, Outcome, SuiteConfig, SuiteResult
from pyinfer.suite.results import failure_reason
from pyinfer.suite.settings import Progress

__all__ = [
    "MATRIX_SCHEMA_VERSION",
    "MatrixResult",
    "NodeRun",
    "compare_formats_on_cluster",
    "run_suite_on_cluster",
]

logger = logging.getLogger(__name__)

#: Version of the matrix's JSON layout (its own; each node's suite or comparison document
#: inside it keeps the suite's schema, :data:`pyinfer.suite.BENCH_SCHEMA_VERSION`).
MATRIX_SCHEMA_VERSION = "1.0"

#: How a run ends, the worst first: a matrix's outcome is the worst of its nodes'.
_SEVERITY = (Outcome.INTERRUPTED, Outcome.FAILED, Outcome.UNSTABLE, Outcome.OK)


@dataclass(frozen=True)
class NodeRun:
    """What one node ran.

    Attributes:
        node_id: Ray's id of the node.
        address: Its IP address.
        node: Its description, collected on it (``None`` if it could not run a task).
        suite: The suite's result on it (``pyinfer bench --ray``).
        formats: The format comparison's result on it (``pyinfer formats --ray``).
        error: Why nothing ran on it (its description task failed).
    """

    node_id: str
    address: str
    node: NodeReport | None = None
    suite: SuiteResult | None = None
    formats: FormatsResult | None = None
    error: str = ""

    @property
    def result(self) -> SuiteResult | FormatsResult | None:
        """The suite's or the comparison's result on the node."""
        return self.suite if self.suite is not None else self.formats

    @property
    def outcome(self) -> Outcome:
        """The node's result's outcome (failed when nothing ran)."""
        result = self.result
        return Outcome.FAILED if result is None else result.outcome

    def heading(self) -> str:
        """The node's heading above its tables."""
        if self.node is not None:
            return self.node.label()
        return f"node {self.address} (id {self.node_id[:SHORT_ID]}): {self.error}"

    def unstable(self) -> list[str]:
        """The entries that missed their stability target, named with the node."""
        where = f"on {self.address} ({self.node_id[:SHORT_ID]})"
        if self.suite is not None:
            return [f"{e.device} {e.name} {where}" for e in self.suite.unstable]
        if self.formats is not None:
            return [
                f"{e.label} {where}"
                for e in self.formats.entries
                if e.status == "ok" and not e.stable
            ]
        return []


@dataclass(frozen=True)
class MatrixResult(JsonRecord):
    """The suite or the format comparison run on every node of a cluster.

    Attributes:
        command: ``"bench"`` or ``"formats"``.
        address: The cluster's address (``"local"`` for one started for the run).
        runs: One per node, in the order Ray lists them.
        wall_s: Wall time of the whole matrix.
        interrupted: Whether Ctrl-C stopped it (the nodes not reached are left out).
        schema_version: The JSON layout's version (:data:`MATRIX_SCHEMA_VERSION`).
    """

    command: str
    address: str
    runs: tuple[NodeRun, ...]
    wall_s: float
    interrupted: bool = False
    schema_version: str = MATRIX_SCHEMA_VERSION

    JSON_WHAT = "benchmark matrix"
    JSON_ROOT = "matrix"
    JSON_KIND = "pyinfer-bench-matrix"

    @classmethod
    def _check_json(cls, data: Any) -> None:
        check_schema(
            data,
            cls.JSON_WHAT,
            "run the matrix again",
            ours=MATRIX_SCHEMA_VERSION,
            kind=cls.JSON_KIND,
        )

    @property
    def outcome(self) -> Outcome:
        """The worst outcome of the nodes: interrupted, failed, unstable, else ok."""
        found = {run.outcome for run in self.runs}
        if self.interrupted:
            found.add(Outcome.INTERRUPTED)
        return next((o for o in _SEVERITY if o in found), Outcome.OK)

    @property
    def exit_code(self) -> int:
        """The exit status of :attr:`outcome` with ``--strict``."""
        return int(self.outcome)

    def unstable(self) -> list[str]:
        """Every entry that missed its stability target, with its node."""
        return [name for run in self.runs for name in run.unstable()]

    def to_text(self) -> str:
        """Each node's heading, then its tables exactly as the command prints them locally."""
        lines: list[str] = []
        for run in self.runs:
            heading = f"Node: {run.heading()}"
            lines += [heading, "#" * len(heading)]
            warning = run.node.load_warning() if run.node is not None else ""
            lines += [warning, ""] if warning else [""]
            result = run.result
            lines += [result.to_text() if result is not None else f"nothing ran: {run.error}", ""]
        lines.append(self.summary_line())
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Each node's tables in Markdown under a ``##`` heading naming the node."""
        parts = []
        for run in self.runs:
            body = (
                run.suite.to_markdown() if run.suite is not None else f"nothing ran: {run.error}\n"
            )
            parts.append(f"## Node: {run.heading()}\n\n{body}")
        return "\n".join(parts) + f"\n{self.summary_line()}\n"

    def summary_line(self) -> str:
        """One line: the nodes, how many ran, the wall time."""
        failed = [run.address for run in self.runs if run.result is None]
        text = f"{len(self.runs)} node(s) of the Ray cluster {self.address}"
        if failed:
            text += f" ({len(failed)} could not run: {', '.join(failed)})"
        text += f"; each entry alone on its node; wall time {self.wall_s:.1f} s"
        if self.interrupted:
            text += " (interrupted: the nodes not reached are left out)"
        return text

    def rows(self) -> list[dict[str, Any]]:
        """Every node's table rows, each with its node's facts.

        The suite's rows are its JSON ``rows``; a format comparison's are one per format: its
        name, label, status and reason, latency mean and median in ms, throughput in items per
        second, parity verdict and relative error.
        """
        out: list[dict[str, Any]] = []
        for run in self.runs:
            facts = _node_fields(run)
            if run.suite is not None:
                out += [{**facts, **row} for row in run.suite.rows()]
            for e in run.formats.entries if run.formats is not None else ():
                r = e.report
                out.append(
                    {
                        **facts,
                        "format": e.format,
                        "row": e.label,
                        "status": e.status,
                        "reason": e.reason,
                        "latency_ms": r.latency.stats.mean_ms if r else None,
                        "latency_median_ms": r.latency.stats.median_ms if r else None,
                        "throughput": r.throughput_fps if r else None,
                        "parity": e.parity,
                        "relative_error": e.relative_error,
                    }
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: each node's document as its command writes it, and the rows."""
        data = super().to_dict()
        for encoded, run in zip(data["runs"], self.runs, strict=True):
            if run.suite is not None:
                encoded["suite"] = run.suite.to_dict()
            if run.formats is not None:
                encoded["formats"] = run.formats.to_dict()
        data["kind"] = self.JSON_KIND
        data["rows"] = encode_json(self.rows())  # an integer mismatch's error is inf
        data["exit_code"] = self.exit_code
        data["outcome"] = self.outcome.name.lower()
        return data


def _node_fields(run: NodeRun) -> dict[str, Any]:
    """The facts of a node that label each of its rows."""
    env = run.node.environment if run.node is not None else None
    return {
        "node_id": run.node_id,
        "node_address": run.address,
        "node_hostname": env.hostname if env else None,
        "node_cpu_model": env.cpu_model if env else None,
        "node_physical_cores": env.physical_cores if env else None,
        "node_logical_cores": env.logical_cores if env else None,
        "node_gpu_name": (env.gpu_name or None) if env else None,
    }


# --- On the node ------------------------------------------------------------------------------


def _run_on_node(job: WorkerJob) -> WorkerResult | BaseException:
    """A Ray task's body: the suite's own worker process, started on this node.

    A pyinfer error (a missing file, a model that fails to load, an out-of-memory) is returned,
    not raised, so it comes back as itself rather than as Ray's wrapper.
    """
    from pyinfer.profiling.repeat import run_worker

    try:
        return run_worker(job)
    except PyinferError as exc:
        return exc


def _describe_on_node(cuda: bool, resources: dict[str, Any]) -> NodeReport:
    """A Ray task's body: the node's own description."""
    return describe_this_node(cuda, resources)


# --- In the parent ----------------------------------------------------------------------------


class _NodeWorker:
    """Runs one job at a time as a Ray task holding a whole node (a ``worker`` of the suite)."""

    def __init__(self, ray: Any, node: NodeInfo, timeout_s: float | None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._ray = ray
        self._node = node
        self._timeout_s = timeout_s
        self._remote: dict[Any, Any] = {}
        self._options = {
            "num_cpus": node.cpus,
            "num_gpus": node.gpus,
            "max_retries": 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        }

    @property
    def where(self) -> str:
        """The node in messages."""
        return f"node {self._node.address} (id {self._node.node_id[:SHORT_ID]})"

    def call(self, function: Any, *args: Any, label: str) -> Any:
        """Runs ``function(*args)`` as a task on the node and returns what it returned.

        Raises:
            ClusterError: The task did not finish within the timeout (it is cancelled), or Ray
                lost it (its cause in the message).
        """
        ray = self._ray
        if function not in self._remote:
            self._remote[function] = ray.remote(function).options(**self._options)
        ref = self._remote[function].remote(*args)
        try:
            return ray.get(ref, timeout=self._timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            raise ClusterError(
                f"{label}: no result from {self.where} within {self._timeout_s:g} s (its task, "
                f"asking for {self._node.cpus:g} CPUs and {self._node.gpus:g} GPUs, was "
                "cancelled: the node may be busy with other Ray work)"
            ) from exc
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            raise
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc  # a task's own error, unwrapped
            raise ClusterError(
                f"{label}: its Ray task failed on {self.where}: {failure_reason(cause)}"
            ) from exc

    def __call__(self, job: WorkerJob) -> WorkerResult:
        """Runs ``job`` on the node; a failure there is raised naming the node."""
        got = self.call(_run_on_node, job, label=job.label)
        if isinstance(got, BaseException):
            raise _on_node(got, self.where)
        if not isinstance(got, WorkerResult):
            raise ClusterError(f"{job.label}: {self.where} returned no worker result")
        return got


def _on_node(error: BaseException, where: str) -> BaseException:
    """The node's error, of its own type where possible, its message naming the node."""
    message = f"on {where}: {error}"
    try:
        rebuilt = type(error)(message)
    except Exception:  # an error type that takes more than a message
        return ClusterError(f"{type(error).__name__}: {message}")
    rebuilt.__cause__ = error
    return rebuilt


def _nodes(nodes: tuple[NodeInfo, ...], cuda: bool, say: Progress) -> list[NodeInfo]:
    """The nodes that can run the entries: with a GPU when CUDA is asked for."""
    chosen = [n for n in nodes if n.gpus >= 1] if cuda else list(nodes)
    for n in nodes:
        if n not in chosen:
            say(f"node {n.address} (id {n.node_id[:SHORT_ID]}) has no GPU: left out")
    return chosen


@contextlib.contextmanager
def _shared_folder(work_dir: str | Path | None) -> Iterator[Path]:
    """The work folder of every node's pass (exports made once, reused by the next pass)."""
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="pyinfer-matrix-") as folder:
        yield Path(folder)


def _matrix(
    command: str,
    address: str | None,
    *,
    cuda: bool,
    timeout_s: float | None,
    say: Progress,
    run_on: Callable[[NodeInfo, _NodeWorker, NodeReport], NodeRun],
) -> MatrixResult:
    """Runs ``run_on`` for each node, one node after the other, and gathers the runs."""
    what = f"pyinfer {command} --ray"
    ray = require_ray(what)
    start = time.perf_counter()
    runs: list[NodeRun] = []
    target = None if address in (None, "local") else address
    check_reachable(target, what)
    with connect(target, what=what) as cluster:
        nodes = _nodes(cluster.nodes, cuda, say)
        if not nodes:
            raise ClusterError(f"{what}: no node of the Ray cluster {cluster.address} has a GPU")
        interrupted = False
        for node in nodes:
            worker = _NodeWorker(ray, node, timeout_s)
            try:
                report = worker.call(
                    _describe_on_node,
                    node.gpus >= 1,
                    {"CPU": node.cpus, "GPU": node.gpus},
                    label="describing the node",
                )
            except ClusterError as exc:
                runs.append(NodeRun(node.node_id, node.address, error=str(exc)))
                continue
            except KeyboardInterrupt:
                interrupted = True  # the nodes finished so far are kept
                break
            say(f"on {report.label()}")
            if report.load_warning():
                _prefixed(say, node)(report.load_warning())
            run = run_on(node, worker, report)
            runs.append(run)
            if run.result is not None and run.result.interrupted:
                interrupted = True
                break
    wall = time.perf_counter() - start
    return MatrixResult(command, cluster.address, tuple(runs), wall, interrupted)


def _prefixed(say: Progress, node: NodeInfo) -> Progress:
    short = node.node_id[:SHORT_ID]
    return lambda line: say(f"[node {node.address} {short}] {line}")


def run_suite_on_cluster(
    config: SuiteConfig | None = None,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> MatrixResult:
    """Runs the benchmark suite on every node of a Ray cluster, each entry alone on its node.

    Args:
        config: What to run, as for :func:`pyinfer.suite.run_suite` (its devices: default the
            CPU, plus CUDA on the nodes with a GPU; ``cpus`` pinning is refused: each entry
            holds its whole node). A ``work_dir`` on storage every node reads lets the nodes
            other than this machine load the exported files.
        address: ``None`` or ``"local"``: a local cluster started for the run; ``"auto"``,
            ``"host:port"`` or ``"ray://host:port"``: that cluster (see
            :func:`pyinfer.cluster.connect`).
        progress: Called with a line per step, each naming its node.
        timeout_s: How long to wait for each task (``None``: no limit); past it the task is
            cancelled and its entry fails with :class:`ClusterError`.

    Returns:
        One :class:`NodeRun` per node, its suite result's environments those of the node.

    Raises:
        FrameworkNotInstalledError: Ray is not installed (the message says how to install it).
        ClusterError: The cluster cannot be started or reached (its address in the message),
            or CUDA was asked for and no node has a GPU.
        InvalidArgumentError: On a bad configuration, or CPUs to pin to.
    """
    from pyinfer.suite import run_suite

    config = config or SuiteConfig()
    if config.cpus:
        raise InvalidArgumentError(
            "--cpus pins the worker processes to CPUs of this machine; on a Ray cluster each "
            "entry holds every CPU of its node: leave --cpus out"
        )
    say = progress or (lambda line: logger.info("%s", line))
    with _shared_folder(config.work_dir) as folder:

        def run_on(node: NodeInfo, worker: _NodeWorker, report: NodeReport) -> NodeRun:
            devices = config.devices or (("cpu", "cuda") if node.gpus >= 1 else ("cpu",))
            devices = tuple(d for d in devices if d == "cpu" or node.gpus >= 1)
            here = dataclasses.replace(config, devices=devices, work_dir=folder)
            result = run_suite(here, progress=_prefixed(say, node), worker=worker)
            envs = dict.fromkeys(result.environments, report.environment)
            # The node's load is in its heading; the suite sampled this machine's.
            result = dataclasses.replace(result, environments=envs, busy_cpus=None)
            return NodeRun(node.node_id, node.address, node=report, suite=result)

        return _matrix(
            "bench",
            address,
            cuda=config.devices == ("cuda",),
            timeout_s=timeout_s,
            say=say,
            run_on=run_on,
        )


def compare_formats_on_cluster(
    path: str | Path,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    timeout_s: float | None = None,
    **options: Any,
) -> MatrixResult:
    """Compares a model's formats on every node of a Ray cluster, with parity on each.

    Args:
        path: The model file, at this path on every node.
        address: As for :func:`run_suite_on_cluster`.
        progress: Called with a line per step, each naming its node.
        timeout_s: As for :func:`run_suite_on_cluster`.
        **options: :func:`pyinfer.suite.compare_formats`'s keyword arguments (``device``,
            ``batch_size``, ``formats``, ``quick``, ``repetitions``, ``work_dir``...; not
            ``cpus``). Each format's outputs come back from its node and are checked against
            the original's in this process, as locally.

    Returns:
        One :class:`NodeRun` per node (with a GPU when ``device`` is ``"cuda"``).

    Raises:
        As :func:`run_suite_on_cluster`, and :func:`pyinfer.suite.compare_formats`'s errors
        for the model (raised before any node runs it, from this machine's copy).
    """
    from pyinfer.suite import compare_formats

    if options.get("cpus"):
        raise InvalidArgumentError(
            "--cpus pins the worker processes to CPUs of this machine; on a Ray cluster each "
            "format holds every CPU of its node: leave --cpus out"
        )
    options.pop("cpus", None)
    say = progress or (lambda line: logger.info("%s", line))
    device = str(options.get("device", "cpu"))
    with _shared_folder(options.pop("work_dir", None)) as folder:

        def run_on(node: NodeInfo, worker: _NodeWorker, report: NodeReport) -> NodeRun:
            result = compare_formats(
                path, work_dir=folder, progress=_prefixed(say, node), worker=worker, **options
            )
            result = dataclasses.replace(result, environment=report.environment)
            return NodeRun(node.node_id, node.address, node=report, formats=result)

        cuda = device.startswith("cuda")
        return _matrix("formats", address, cuda=cuda, timeout_s=timeout_s, say=say, run_on=run_on)
