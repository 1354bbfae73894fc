"""``pyinfer bench --ray`` and ``pyinfer formats --ray``: benchmark matrices on a local Ray cluster.

One local cluster for the module (``ray.init(num_cpus=2)``); the tests that need no cluster run
first, before it starts. Every Ray call has a timeout, so a hang fails instead of blocking.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer import cli
from pyinfer.cluster import (
    MatrixResult,
    NodeReport,
    NodeRun,
    compare_formats_on_cluster,
    run_suite_on_cluster,
)
from pyinfer.errors import ClusterError, InvalidArgumentError
from pyinfer.report.environment import collect_environment
from pyinfer.suite import PARITY_TOLERANCE, FormatEntry, FormatsResult, SuiteConfig, SuiteResult
from pyinfer.suite.busy import BUSY_CPUS

#: Seconds any one task may take before it is cancelled and its entry fails.
TASK_TIMEOUT_S = 240.0
MOBILENET_32 = ["bench", "--only", "mobilenetv2", "--input-sizes", "32", "--quick"]
MOBILENET_32 += ["--device", "cpu"]
#: The suite's MobileNetV2 table header, as ``pyinfer bench`` prints it.
MOBILENET_HEADER = "Input Size     │ Latency (ms) │ Throughput (FPS)"


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Without a cluster (these run before the module's cluster starts) ---------------------------


def test_ray_is_imported_only_by_the_ray_commands() -> None:
    code = (
        "import sys, pyinfer, pyinfer.cli.bench, pyinfer.cli.app, pyinfer.cluster; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_without_ray_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert cli.main([*MOBILENET_32, "--ray"]) == cli.EXIT_FAILED
    assert capsys.readouterr().err == (
        "pyinfer bench: error: pyinfer bench --ray needs Ray (import of ray halted; None in "
        "sys.modules); pip install 'pyinfer-toolkit[ray]'\n"
    )


def test_an_unreachable_address_is_a_cluster_error_naming_it() -> None:
    from tests.conftest import require_module

    ray = require_module("ray")
    assert not ray.is_initialized()  # else the address would be ignored for the Ray set up
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterError) as caught:
        run_suite_on_cluster(SuiteConfig(models=("mobilenetv2",)), address=address)
    assert str(caught.value) == (
        f"pyinfer bench --ray: could not start or reach the Ray cluster at {address}: nothing "
        f"answers at {address} (Connection refused); start it there with `ray start --head`, "
        "or give the address it printed"
    )


def test_cpu_pinning_and_a_timeout_without_ray_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([*MOBILENET_32, "--ray", "--cpus", "0"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        "pyinfer bench: error: --cpus pins the worker processes to CPUs of this machine; on a "
        "Ray cluster each entry holds every CPU of its node: leave --cpus out\n"
    )
    assert cli.main([*MOBILENET_32, "--ray-timeout", "5"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        "pyinfer bench: error: --ray-timeout applies to entries run on a Ray cluster: add --ray\n"
    )


def test_a_node_is_labelled_with_its_cpu_gpu_and_load() -> None:
    env = dataclasses.replace(
        collect_environment(),
        hostname="gpu-7",
        cpu_model="Xeon 8480",
        physical_cores=56,
        logical_cores=112,
        gpu_name="NVIDIA H100",
        gpu_memory_bytes=80 * 1024**3,
    )
    node = NodeReport("3f2a9c1b" + "0" * 48, "10.0.0.7", 112.0, 1.0, env, busy_cpus=0.2)
    assert node.label() == (
        "node 10.0.0.7 (id 3f2a9c1b, host gpu-7): Xeon 8480, 56 cores, 112 CPUs for Ray; "
        "GPU NVIDIA H100 80GB"
    )
    assert node.load_warning() == ""
    busy = dataclasses.replace(node, busy_cpus=BUSY_CPUS + 1.5)
    assert busy.label() == node.label()
    assert busy.load_warning() == (
        f"warning: other processes kept {BUSY_CPUS + 1.5:.1f} of 112 CPUs of this node busy "
        "before its entries: expect noisy and unstable measurements"
    )


def test_a_matrix_round_trips_and_writes_strict_json() -> None:
    env = collect_environment()
    node = NodeReport("ab" * 28, "10.0.0.7", 16.0, 0.0, env, busy_cpus=None)
    # An integer output that differs: its relative error is infinite.
    entry = FormatEntry("onnx", "ONNX (FP32)", "ok", relative_error=math.inf, parity=False)
    formats = FormatsResult("m.pt", "pytorch", "cpu", 1, (entry,), "", env, {}, 1.5)
    matrix = MatrixResult(
        "formats", "10.0.0.1:6379", (NodeRun("ab" * 28, "10.0.0.7", node, None, formats),), 2.0
    )
    text = matrix.to_json()
    data = json.loads(text)
    assert (data["kind"], data["schema_version"], data["outcome"]) == (
        "pyinfer-bench-matrix",
        "1.0",
        "failed",
    )
    assert data["runs"][0]["formats"]["kind"] == "pyinfer-formats"
    assert data["rows"] == [
        {
            "node_id": "ab" * 28,
            "node_address": "10.0.0.7",
            "node_hostname": env.hostname,
            "node_cpu_model": env.cpu_model,
            "node_physical_cores": env.physical_cores,
            "node_logical_cores": env.logical_cores,
            "node_gpu_name": env.gpu_name or None,
            "format": "onnx",
            "row": "ONNX (FP32)",
            "status": "ok",
            "reason": "",
            "latency_ms": None,
            "latency_median_ms": None,
            "throughput": None,
            "parity": False,
            "relative_error": "inf",
        }
    ]
    assert MatrixResult.from_json(text) == matrix
    with pytest.raises(InvalidArgumentError, match="not a pyinfer benchmark matrix"):
        MatrixResult.from_json(json.dumps({**data, "kind": "pyinfer-formats"}))


#: Two simulated nodes of one CPU each (Ray's own test cluster), in a process of their own: a
#: formats matrix on a tiny ONNX file, its JSON written to argv[2].
TWO_NODES = """
import sys
import ray
from ray.cluster_utils import Cluster
from pyinfer.cluster import compare_formats_on_cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
try:
    result = compare_formats_on_cluster(sys.argv[1], quick=True, timeout_s=200)
    with open(sys.argv[2], "w") as handle:
        handle.write(result.to_json())
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def _tiny_onnx(path: Path) -> Path:
    from tests.conftest import require_module

    onnx = require_module("onnx")
    require_module("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_every_node_runs_every_entry_labelled_with_the_node_it_ran_on(tmp_path: Path) -> None:
    from tests.conftest import require_module

    require_module("ray")
    model, out = _tiny_onnx(tmp_path / "tiny.onnx"), tmp_path / "matrix.json"
    env = dict(os.environ)
    src = str(Path(pyinfer.__file__).resolve().parents[1])  # the nodes' workers import pyinfer
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    subprocess.run(
        [sys.executable, "-c", TWO_NODES, str(model), str(out)],
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
    )
    result = MatrixResult.load(out)
    assert len(result.runs) == 2
    assert len({run.node_id for run in result.runs}) == 2
    for run in result.runs:
        assert run.node is not None
        assert run.node.node_id == run.node_id  # described by a task that ran on that node
        assert (run.node.ray_cpus, run.node.ray_gpus) == (1.0, 0.0)
        assert run.formats is not None
        assert [(e.format, e.status) for e in run.formats.entries] == [("onnx", "ok")]
    headings = [line for line in result.to_text().splitlines() if line.startswith("Node: ")]
    assert headings == [f"Node: {run.node.label()}" for run in result.runs if run.node]
    assert result.outcome.name in ("OK", "UNSTABLE")


# --- On a local cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    from tests.conftest import require_module  # conftest under --import-mode=importlib

    ray = require_module("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _node(ray: Any) -> tuple[str, str]:
    """This machine's node: its id and address, as Ray names them."""
    return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")]


def _table(lines: list[str]) -> list[list[str]]:
    """The MobileNetV2 table's header and rows, as cells."""
    start = lines.index(MOBILENET_HEADER)
    end = start + 2
    while end < len(lines) and "│" in lines[end]:
        end += 1
    return [_cells(lines[start])] + [_cells(line) for line in lines[start + 2 : end]]


def test_bench_ray_prints_the_same_table_under_its_node(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_json, ray_json = tmp_path / "local.json", tmp_path / "ray.json"
    argv = MOBILENET_32
    assert cli.main([*argv, "--json", str(local_json)]) in (cli.EXIT_OK, cli.EXIT_UNSTABLE)
    local_out = capsys.readouterr().out
    timeout = ["--ray-timeout", str(TASK_TIMEOUT_S)]
    assert cli.main([*argv, "--ray", *timeout, "--json", str(ray_json)]) == cli.EXIT_OK
    ray_out = capsys.readouterr().out
    local = SuiteResult.load(local_json)
    matrix = MatrixResult.load(ray_json)

    node_id, address = _node(ray_cluster)
    assert [(run.node_id, run.address) for run in matrix.runs] == [(node_id, address)]
    run = matrix.runs[0]
    assert run.node is not None
    assert run.suite is not None
    env = local.environments["cpu"]
    # The node's description, collected on the node: here, this machine.
    assert (run.node.environment.cpu_model, run.node.environment.physical_cores) == (
        env.cpu_model,
        env.physical_cores,
    )
    assert run.node.environment.hostname == env.hostname
    assert (run.node.ray_cpus, run.node.ray_gpus) == (2.0, 0.0)
    lines = ray_out.splitlines()
    cores = env.physical_cores or env.logical_cores
    expected = (
        f"Node: node {address} (id {node_id[:8]}, host {env.hostname}): {env.cpu_model}, "
        f"{cores} cores, 2 CPUs for Ray"
    )
    assert lines[0] == expected
    assert lines[1] == "#" * len(expected)
    busy = run.node.busy_cpus
    if busy is not None and busy >= BUSY_CPUS:  # this shared machine, sampled on the node
        assert lines[2] == (
            f"warning: other processes kept {busy:.1f} of {env.logical_cores} CPUs of this "
            "node busy before its entries: expect noisy and unstable measurements"
        )
        del lines[2]
    # The same table as the local run: its title, device heading, header, rows and statuses.
    local_lines = local_out.splitlines()
    assert lines[3 : 3 + 4] == local_lines[:4]  # title, rule, blank, CPU (model, N cores)
    got, expected = _table(lines), _table(local_lines)
    assert got[0] == expected[0]
    assert [row[0] for row in got] == [row[0] for row in expected] == [expected[0][0], "32x32"]
    assert all(row[1] != "-" for row in got[1:])  # measured
    assert [(e.table, e.key, e.label, e.status) for e in run.suite.entries] == [
        (e.table, e.key, e.label, e.status) for e in local.entries
    ]
    assert [row["row"] for row in matrix.rows()] == ["32x32"]
    assert {row["node_id"] for row in matrix.rows()} == {node_id}
    # The JSON: one document, an exact round trip, the text rebuilt from it.
    assert MatrixResult.from_json(matrix.to_json()) == matrix
    assert matrix.to_text() == ray_out.rstrip("\n")
    assert re.fullmatch(
        r"1 node\(s\) of the Ray cluster local; each entry alone on its node; wall time \d+\.\d s",
        lines[-1],
    )


def _torch_pickle(path: Path) -> Path:
    from tests.conftest import require_module

    torch = require_module("torch")
    require_module("onnx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    torch.save(net, path)
    return path


def test_formats_ray_checks_parity_and_reports_a_file_missing_on_the_node(
    ray_cluster: Any, tmp_path: Path
) -> None:
    model = _torch_pickle(tmp_path / "mlp.pt")
    work = tmp_path / "exports"
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if re.search(r"\] \[2/3\] TorchScript \(elapsed", line):
            (work / "mlp.torchscript.pt").unlink()  # gone before its task loads it

    result = compare_formats_on_cluster(
        model,
        formats=["torchscript", "onnx"],
        input_shape=(8,),
        trust_code=True,
        quick=True,
        work_dir=work,
        progress=progress,
        timeout_s=TASK_TIMEOUT_S,
    )
    node_id, address = _node(ray_cluster)
    assert [(run.node_id, run.address) for run in result.runs] == [(node_id, address)]
    formats = result.runs[0].formats
    assert formats is not None
    eager, torchscript, onnx = formats.entries
    assert (eager.format, eager.status, eager.original) == ("eager", "ok", True)
    missing = work / "mlp.torchscript.pt"
    assert torchscript.status == "failed"
    assert torchscript.reason == (
        f"ModelNotFoundError: on node {address} (id {node_id[:8]}): TorchScript: model path "
        f"'{missing}' does not exist"
    )
    # The format after it still ran, and its outputs came back for the parity check.
    assert (onnx.format, onnx.status, onnx.parity) == ("onnx", "ok", True)
    assert onnx.relative_error is not None
    assert onnx.relative_error <= PARITY_TOLERANCE
    assert result.outcome.name == "FAILED"
    assert formats.environment == result.runs[0].node.environment  # type: ignore[union-attr]
    assert [(row["format"], row["status"], row["parity"]) for row in result.rows()] == [
        ("eager", "ok", None),
        ("torchscript", "failed", None),
        ("onnx", "ok", True),
    ]
    assert {row["node_id"] for row in result.rows()} == {node_id}
    assert MatrixResult.from_json(result.to_json()) == result
    assert all(line.startswith(f"[node {address} {node_id[:8]}] ") for line in lines[1:])
    assert lines[0].startswith(f"on node {address} (id {node_id[:8]}, host ")


def test_a_task_past_its_timeout_is_cancelled_and_fails_naming_the_node(
    ray_cluster: Any,
) -> None:
    result = run_suite_on_cluster(SuiteConfig(models=("mobilenetv2",)), timeout_s=0.001)
    node_id, address = _node(ray_cluster)
    assert len(result.runs) == 1
    run = result.runs[0]
    assert (run.node_id, run.address, run.node, run.suite) == (node_id, address, None, None)
    assert run.error == (
        f"describing the node: no result from node {address} (id {node_id[:8]}) within "
        "0.001 s (its task, asking for 2 CPUs and 0 GPUs, was cancelled: the node may be busy "
        "with other Ray work)"
    )
    assert result.outcome.name == "FAILED"
    assert (
        result.to_text().splitlines()[0] == f"Node: node {address} (id {node_id[:8]}): {run.error}"
    )


def test_formats_ray_from_the_command_line(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, out_json = _tiny_onnx(tmp_path / "tiny.onnx"), tmp_path / "f.json"
    timeout = ["--ray-timeout", str(TASK_TIMEOUT_S)]
    argv = ["formats", str(model), "--quick", "--ray", *timeout, "--json", str(out_json)]
    assert cli.main(argv) in (cli.EXIT_OK, cli.EXIT_UNSTABLE)
    lines = capsys.readouterr().out.splitlines()
    result = MatrixResult.load(out_json)
    node_id, address = _node(ray_cluster)
    (run,) = result.runs
    assert run.node is not None
    assert run.formats is not None
    assert (run.node_id, run.address, result.command) == (node_id, address, "formats")
    assert lines[0] == f"Node: {run.node.label()}"
    assert f"tiny.onnx (onnx) on CPU ({run.node.environment.cpu_model}, " in "\n".join(lines)
    assert [(e.format, e.status, e.parity_text()) for e in run.formats.entries] == [
        ("onnx", "ok", "reference")
    ]
    assert any(line.startswith("ONNX (FP32)     │") for line in lines)
    assert lines[-1].startswith("1 node(s) of the Ray cluster local; each entry alone on its node")
