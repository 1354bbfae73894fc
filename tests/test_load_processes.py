"""Process instances (``instances="processes"``): GIL-bound targets served in parallel, and
what cannot cross a process refused. Few tests: each process instance takes a second or more
to start on a busy machine."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from tests._load_targets import busy_2ms, gil_held_wait_2ms, refuses_every_request

import pyinfer
from pyinfer.errors import InferenceError, InvalidArgumentError


def _relu_onnx(path: Path) -> Path:
    """A one-Relu ONNX model, batch dynamic (with an unused initializer), saved at ``path``."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.zeros(1, dtype=np.float32), name="unused")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_processes_serve_a_callable_that_holds_the_gil_in_parallel() -> None:
    # Each request holds the GIL for 2 ms, two requests in flight: two threads take turns with
    # the GIL (one call at a time: 500 per second at most), two processes wait side by side.
    # The call waits without using a CPU, so a busy machine does not take the parallelism away
    # (2 ms of pure-Python work, busy_2ms, needs two free cores to show it).
    kwargs = {"concurrency": 2, "workers": 2, "duration_s": 1.5}
    threads = pyinfer.load_test(gil_held_wait_2ms, instances="threads", **kwargs).levels[0]
    processes = pyinfer.load_test(gil_held_wait_2ms, instances="processes", **kwargs).levels[0]
    for level in (threads, processes):
        assert level.errors == level.dropped == 0
        assert level.completed == level.scheduled > 0
        assert level.workers == 2
    assert threads.achieved_qps < 520
    assert processes.achieved_qps > 1.5 * threads.achieved_qps


def test_what_cannot_cross_a_process_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        pyinfer.load_test(lambda: None, qps=10, duration_s=0.1, instances="processes")
    assert str(caught.value) == (
        "instances='processes': tests.test_load_processes.test_what_cannot_cross_a_process_is_"
        "refused.<locals>.<lambda> "
        "cannot be loaded in a worker process: a lambda, a closure, a local function or code "
        "of the __main__ script cannot be pickled by reference; define it at the top level of "
        "an importable module (or a functools.partial of such a function), or serve it with "
        "instances='threads'"
    )
    # A partial of an importable function crosses; one of a local function does not.
    local = functools.partial(lambda n: n, 1)
    with pytest.raises(InvalidArgumentError, match="cannot be loaded in a worker process"):
        pyinfer.load_test(local, qps=10, duration_s=0.1, instances="processes")
    model = pyinfer.load_model(_relu_onnx(tmp_path / "relu.onnx"))
    model.load_request = None  # as a model made in memory has none
    with pytest.raises(InvalidArgumentError) as caught:
        pyinfer.load_test(model, qps=10, duration_s=0.1, instances="processes")
    assert str(caught.value) == (
        "instances='processes': model 'relu' was not loaded from a file with "
        "pyinfer.load_model (it was made in memory), so a worker process cannot load its own "
        "copy; save it to a file and load that, or serve it with instances='threads'"
    )
    with pytest.raises(InvalidArgumentError) as caught:
        pyinfer.load_test(busy_2ms, qps=10, duration_s=0.1, instances="fork")
    assert str(caught.value) == ("instances must be one of ('threads', 'processes'), got 'fork'")


def test_a_model_its_process_cannot_load_is_an_inference_error_naming_why(tmp_path: Path) -> None:
    # The parent loaded the file; by the time the instance starts it is gone (moved, deleted).
    path = _relu_onnx(tmp_path / "gone.onnx")
    model = pyinfer.load_model(path)
    path.unlink()
    with pytest.raises(InferenceError) as caught:
        pyinfer.load_test(model, qps=10, duration_s=0.2, instances="processes")
    message = str(caught.value)
    assert message.startswith("pyinfer load process instance 0 could not load its target: ")
    assert str(path) in message


def test_requests_that_fail_in_a_process_are_counted_with_the_first_error() -> None:
    report = pyinfer.load_test(
        refuses_every_request, concurrency=1, workers=1, duration_s=0.3, instances="processes"
    )
    (level,) = report.levels
    assert level.completed == 0
    assert level.errors > 0
    assert level.first_error == (
        "InferenceError: pyinfer load process instance 0: ValueError: this target refuses every "
        "request"
    )
