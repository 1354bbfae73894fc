"""``pyinfer load`` on a real (tiny) ONNX model: the table, the JSON, the PNG, Ctrl-C."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path

import numpy as np
import pytest

from pyinfer.cli import main
from pyinfer.report.load import LoadReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((16, 4), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[weight],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    path = tmp_path_factory.mktemp("load_cli") / "tiny.onnx"
    onnx.save(onnx_model, str(path))
    return str(path)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["load", *argv, "--option", "intra_op_threads=1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_load_prints_the_table_and_writes_json_and_png(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_png = tmp_path / "load.json", tmp_path / "load.png"
    code, out, err = _run(
        [model, "--qps", "50,100", "--concurrency", "1,2", "--duration", "0.4", "--workers",
         "2", "--arrival", "constant", "--json", str(out_json), "--plot", str(out_png)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Load test of {model}"
    assert lines[2].split("│")[0].strip() == "Load"
    assert [line.split("│")[0].strip() for line in lines[4:8]] == [
        "50 qps", "100 qps", "c=1", "c=2",
    ]  # fmt: skip
    report = LoadReport.load(out_json)
    assert [lv.label for lv in report.levels] == ["50 qps", "100 qps", "c=1", "c=2"]
    assert [lv.scheduled for lv in report.levels[:2]] == [20, 40]
    assert all(lv.workers == 2 and lv.errors == 0 for lv in report.levels)
    assert report.to_table() in out
    assert out_png.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote load report to {out_json}" in err


def test_load_batches_requests_for_a_model(
    model: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_json = tmp_path / "b.json"
    code, _, err = _run(
        [model, "--qps", "500", "--duration", "0.4", "--arrival", "constant", "--max-batch",
         "16", "--max-queue-delay-ms", "10", "--json", str(out_json)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (level,) = LoadReport.load(out_json).levels
    assert level.completed == 200
    assert level.mean_batch > 2.0  # 5 requests arrive per 10 ms wait


def test_load_serves_a_model_from_process_instances_with_the_batcher(
    model: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_json = tmp_path / "p.json"
    code, out, err = _run(
        [model, "--concurrency", "4", "--duration", "0.5", "--workers", "2", "--instances",
         "processes", "--max-batch", "4", "--max-queue-delay-ms", "20", "--json",
         str(out_json)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (level,) = LoadReport.load(out_json).levels
    assert (level.workers, level.errors, level.dropped) == (2, 0, 0)
    assert level.completed == level.scheduled > 0
    assert 1.0 < level.mean_batch <= level.largest_batch <= 4  # batches served in the processes
    assert "Batch mean/max" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --qps, --concurrency or --find-capacity"),
        (["--find-capacity"], "--find-capacity needs --p99-budget-ms"),
        (["--qps", "10", "--plot", "x.svg"], "the plot is a PNG image; give a .png file"),
        (["--qps", "10", "--input-shape", "4x16"], "a request is one item (batch 1), not 4"),
        (["--qps", "10", "--input-shape", "1x15"], "dimension 1 of input 'x' is fixed at 16"),
    ],
)
def test_load_refuses_bad_usage(
    model: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = _run([model, *argv], capsys)
    assert code == 2
    assert message in err


def test_load_rejects_a_bad_rate(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _run([model, "--qps", "10,-1"], capsys)
    assert caught.value.code == 2
    assert "each rate must be above 0, got -1" in capsys.readouterr().err


def test_ctrl_c_prints_and_writes_what_was_measured(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "partial.json"
    threading.Timer(1.0, _thread.interrupt_main).start()
    code, out, err = _run(
        [model, "--qps", "100", "--duration", "20", "--json", str(out_json)], capsys
    )
    assert code == 130
    assert "interrupted; the figures above are what was measured" in err
    (level,) = LoadReport.load(out_json).levels
    assert level.interrupted
    assert 10 <= level.completed < 2000
    assert "100 qps: interrupted; figures so far" in out


@pytest.mark.slow
def test_find_capacity_on_the_command_line(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "capacity.json"
    code, out, err = _run(
        [model, "--qps", "20", "--find-capacity", "--p99-budget-ms", "20", "--duration", "0.3",
         "--arrival", "constant", "--json", str(out_json)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    report = LoadReport.load(out_json)
    assert report.capacity is not None
    assert report.levels[0].label == "20 qps"  # the asked level, then the estimate
    assert report.capacity.capacity_qps > 20
    assert "capacity within P99 <= 20 ms: " in out


def test_compare_two_load_reports(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, rates in zip(paths, ("20,40", "40"), strict=True):
        code, _, err = _run(
            [model, "--qps", rates, "--duration", "0.3", "--arrival", "constant", "--json",
             str(path)],
            capsys,
        )  # fmt: skip
        assert code == 0, err
    a, b = (LoadReport.load(p) for p in paths)
    assert main(["compare", str(paths[0]), str(paths[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{paths[0]} -> {paths[1]}"
    (row,) = [line for line in lines if line.startswith("40 qps")]  # the level both measured
    p99 = f"{a.levels[1].latency.p99_ms:.2f} -> {b.levels[0].latency.p99_ms:.2f} ("  # type: ignore[union-attr]
    assert p99 in row


@pytest.fixture(scope="module")
def picky_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``y = x @ w + table[idx]``: ``idx`` (0-d int64) must be 0 or 1, as a sample rate must be
    one of two, so random values fail and only a given one serves."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Gather", ["table", "idx"], ["bias"]),
            helper.make_node("Add", ["xw", "bias"], ["y"]),
        ],
        "picky",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            numpy_helper.from_array(np.ones((16, 4), dtype=np.float32), name="w"),
            numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(2, 4), name="table"),
        ],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    path = tmp_path_factory.mktemp("load_cli") / "picky.onnx"
    onnx.save(onnx_model, str(path))
    return str(path)


def test_load_serves_given_inputs_and_values(
    picky_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [picky_model, "--qps", "100", "--duration", "0.3", "--arrival", "constant"]
    code, _, err = _run([*base, "--seed", "3"], capsys)
    assert code == 1
    assert "indices element out of data bounds" in err
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.full((1, 16), 0.5, np.float32))
    out_json = tmp_path / "given.json"
    code, _, err = _run(
        [*base, "--inputs", str(inputs), "--input-value", "idx=1", "--json", str(out_json)],
        capsys,
    )
    assert code == 0, err
    (level,) = LoadReport.load(out_json).levels
    assert level.completed == level.scheduled == 30
    assert level.errors == 0
    code, _, err = _run([*base, "--input-value", "sr=16000"], capsys)
    assert code == 2
    assert "--input-value sr=16000: give NAME=VALUE for an input of model 'picky' (x, idx)" in err


def test_load_test_makes_requests_of_the_given_inputs(picky_model: str) -> None:
    import pyinfer
    from pyinfer.load.targets import make_servers, request_inputs

    model = pyinfer.load_model(picky_model, intra_op_threads=1)
    given = request_inputs(inputs={"x": np.arange(16, dtype=np.float32)[None]},
                           input_values={"idx": 1})  # fmt: skip
    (server,) = make_servers(model, 1, max_batch=4, inputs=given)
    call = server.prepare(3)  # three requests of one item: the given item, replicated
    feed = call.args[0]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(feed["x"], np.tile(np.arange(16, dtype=np.float32), (3, 1)))
    assert feed["idx"].shape == ()
    assert int(feed["idx"]) == 1
    # each row: sum(0..15) = 120 through the ones, plus table[1] = 4, 5, 6, 7
    expected = np.tile(np.array([124.0, 125.0, 126.0, 127.0], np.float32), (3, 1))
    np.testing.assert_array_equal(np.asarray(call()["y"]), expected)
    report = pyinfer.load_test(
        model, qps=100, duration_s=0.2, arrival="constant", input_values={"idx": 0}
    )
    assert report.levels[0].errors == 0
