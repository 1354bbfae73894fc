"""The operator breakdown: ORT's trace parsed exactly, torch's profiler, the table, the CLI."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pyinfer import load_model
from pyinfer.analysis import count_macs
from pyinfer.analysis import peaks as peaks_module
from pyinfer.analysis.arithmetic import OperatorCount, summarise
from pyinfer.analysis.operators import (
    OperatorBreakdown,
    OperatorTime,
    measure_operators,
    parse_ort_profile,
)
from pyinfer.analysis.peaks import MachinePeaks, calibrate
from pyinfer.cli import app
from pyinfer.cli.ops import roofline_points
from pyinfer.errors import InvalidArgumentError
from pyinfer.export import export_onnx


def _event(cat: str, name: str, ts: float, dur: float, op: str = "") -> dict[str, Any]:
    args = {"op_name": op} if op else {}
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


def test_ort_trace_kernels_are_added_per_operator_type_after_the_warm_up() -> None:
    trace = [
        _event("Session", "model_run", 0, 100),
        _event("Node", "conv1_kernel_time", 10, 50, "Conv"),
        _event("Node", "conv1_fence_before", 9, 1, "Conv"),
        _event("Session", "model_run", 200, 100),
        _event("Node", "conv1_kernel_time", 210, 40, "Conv"),
        _event("Node", "conv2_kernel_time", 260, 20, "Conv"),
        _event("Node", "relu_kernel_time", 280, 5, "Relu"),
        _event("Session", "SessionInitialization", 0, 1000),
    ]
    assert parse_ort_profile(trace) == {"Conv": (3, 110.0), "Relu": (1, 5.0)}
    assert parse_ort_profile(trace, skip_runs=1) == {"Conv": (2, 60.0), "Relu": (1, 5.0)}


def test_the_breakdown_sets_operators_against_the_latency() -> None:
    conv = OperatorTime("Conv", ("Conv", "FusedConv"), 53.0, 30.0, macs=3_000_000_000)
    add = OperatorTime("Elementwise", ("Add",), 16.0, 4.0)
    breakdown = OperatorBreakdown("m", "onnxruntime", 1, 10, 40.0, (conv, add), "trace")
    assert breakdown.operator_ms == 34.0
    assert breakdown.overhead_ms == pytest.approx(6.0)
    assert breakdown.coverage == pytest.approx(0.85)
    assert breakdown.share(conv) == pytest.approx(0.75)
    assert conv.gflops_per_s == pytest.approx(200.0)  # 6 GFLOP in 30 ms
    assert add.gflops_per_s is None
    lines = breakdown.table().splitlines()
    assert lines[0] == "m on onnxruntime, batch 1, 10 runs: 40.00 ms per call end to end (mean)"
    assert lines[2].split() == [
        "Conv",
        "53",
        "30.000",
        "75.0%",
        "3.000",
        "200.0",
        "Conv,",
        "FusedConv",
    ]
    assert lines[3].split()[:6] == ["Elementwise", "16", "4.000", "10.0%", "-", "-"]
    assert lines[4].startswith("operators 34.00 ms (85.0% of the latency); framework overhead 6.00")


def test_an_unavailable_breakdown_says_why() -> None:
    why = "unavailable: the TFLite Python interpreter exposes no per-operator timing"
    breakdown = OperatorBreakdown("m", "tflite", 1, 5, 2.0, (), why)
    assert breakdown.table().splitlines()[1] == f"operators: {why}"
    assert breakdown.coverage == 0.0


@pytest.fixture(scope="module")
def conv_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("ops")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3)
    ).eval()
    example = torch.randn(1, 3, 32, 32)
    export_onnx(net, folder / "conv.onnx", example, input_names=["x"], dynamo=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still loaded
        torch.jit.save(torch.jit.trace(net, example), str(folder / "conv.pt"))
    return {"onnx": folder / "conv.onnx", "torchscript": folder / "conv.pt"}


def test_onnx_runtime_operators_are_counted_per_call(
    conv_files: dict[str, Path], onnxruntime_module: ModuleType
) -> None:
    model = load_model(conv_files["onnx"], graph_optimization="disable")
    arithmetic = count_macs(model)
    breakdown = measure_operators(model, runs=4, warmup=2, arithmetic=arithmetic)
    by_class = {op.op_class: op for op in breakdown.operators}
    assert by_class["Conv"].calls == 2.0  # two Conv nodes, each once per call
    assert by_class["Conv"].framework_ops == ("Conv",)
    assert by_class["Conv"].macs == 32 * 32 * 32 * 27 + 32 * 30 * 30 * 32 * 9
    assert by_class["Elementwise"].framework_ops == ("Relu",)
    assert breakdown.method.startswith("ONNX Runtime session profiling")
    assert breakdown.latency_ms > 0
    assert breakdown.operator_ms > 0


def test_torch_operators_are_the_profilers_self_times(
    conv_files: dict[str, Path], torch_module: ModuleType
) -> None:
    model = load_model(conv_files["torchscript"], input_shapes=(None, 3, 32, 32))
    breakdown = measure_operators(model, runs=3, warmup=1)
    conv = next(op for op in breakdown.operators if op.op_class == "Conv")
    assert conv.time_ms > 0
    assert conv.calls >= 2.0
    assert breakdown.method.startswith("torch.profiler (self CPU time of each operator); ")
    assert "unfrozen" in breakdown.method


def test_bad_runs_are_refused(conv_files: dict[str, Path], onnxruntime_module: ModuleType) -> None:
    model = load_model(conv_files["onnx"])
    with pytest.raises(InvalidArgumentError, match=r"not runs=0, warmup=1"):
        measure_operators(model, runs=0, warmup=1)


@pytest.fixture
def small_peaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peaks cache of the test's own, calibrated on small sizes (a fraction of a second)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    small = functools.partial(calibrate, gemm_size=128, triad_elements=1 << 16, repeats=1)
    monkeypatch.setattr(peaks_module, "calibrate", small)


@pytest.mark.usefixtures("small_peaks")
def test_ops_command_prints_and_writes_the_breakdown(
    conv_files: dict[str, Path],
    onnxruntime_module: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "ops.json"
    plot = tmp_path / "roof.png"
    argv = ["ops", str(conv_files["onnx"]), "--runs", "3", "--json", str(out), "--plot", str(plot)]
    assert app.main(argv) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert " of the measured fp32 peak " in printed.splitlines()[1]
    assert printed.splitlines()[-1].startswith("Energy: ")
    macs = 32 * 32 * 32 * 27 + 32 * 30 * 30 * 32 * 9
    assert macs == 9_179_136
    assert printed.startswith("Arithmetic: 9.179 M MACs (18.36 MFLOP, FLOPs = 2 x MACs) per call")
    data = json.loads(out.read_text())
    assert data["arithmetic"]["macs"] == macs
    assert data["arithmetic"]["flops"] == 2 * macs
    # Each conv reads its input and weights (bias included) and writes its output, in floats.
    conv_bytes = 4 * (3 * 1024 + 32 * 27 + 32 + 32 * 1024) + 4 * (
        32 * 1024 + 32 * 288 + 32 + 32 * 900
    )
    assert data["arithmetic"]["intensity_by_class"] == {"Conv": 2 * macs / conv_bytes}
    assert data["operators"][0]["op_class"] in {"Conv", "Elementwise"}
    assert data["overhead_ms"] == pytest.approx(data["latency_ms"] - data["operator_ms"])
    assert sys.modules.get("pyinfer.analysis.operators") is not None


@pytest.mark.usefixtures("small_peaks")
def test_ops_takes_input_shapes_and_keeps_the_torch_profilers_lines_off_the_console(
    conv_files: dict[str, Path],
    torch_module: ModuleType,
    capfd: pytest.CaptureFixture[str],
) -> None:
    traced = str(conv_files["torchscript"])
    # A TorchScript file declares no input shape: without one, ops says how to give it.
    assert app.main(["ops", traced, "--runs", "2"]) == 2
    assert capfd.readouterr().err == (
        "pyinfer ops: error: input 'input' of model 'conv' has no declared shape; give it: "
        "--input-shape input:SHAPE\n"
    )
    # Its whole shape, batch 2: the arithmetic counted and the operators timed at batch 2.
    assert app.main(["ops", traced, "--runs", "2", "--input-shape", "2x3x32x32"]) == 0
    out, err = capfd.readouterr()
    macs = 2 * (32 * 32 * 32 * 27 + 32 * 30 * 30 * 32 * 9)
    assert out.startswith(f"Arithmetic: {macs / 1e6:.3f} M MACs")
    assert " per call at batch 2; " in out.splitlines()[0]
    assert "conv on torch, batch 2, 2 runs: " in out
    # Kineto's profiler_start/stop lines went to the DEBUG log, not to the console.
    assert "profiler_start" not in err
    assert "profiler_start" not in out


@pytest.mark.usefixtures("small_peaks")
def test_profile_ops_breaks_down_the_shapes_the_profile_ran(
    onnxruntime_module: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import onnx

    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "seq",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "sequence", 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", "sequence", 4])],
        initializer=[onnx.numpy_helper.from_array(np.ones((8, 4), np.float32), "w")],
    )
    path = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    argv = ["profile", str(path), "--batch-size", "3", "--input-shape", "sequence=32",
            "--iterations", "20", "--repeat", "1", "--no-memory", "--ops"]  # fmt: skip
    assert app.main(argv) == 0
    out = capsys.readouterr().out
    arithmetic = [line for line in out.splitlines() if line.startswith("Arithmetic: ")]
    # The operator section counts batch 3 x 32 tokens, as the profile ran: 3 * 32 * 8 * 4 MACs.
    assert arithmetic == [
        "Arithmetic: 3.072 k MACs (6.14 kFLOP, FLOPs = 2 x MACs) per call at batch 3; weights "
        + arithmetic[0].split("; weights ", 1)[1]
    ]
    assert "seq on onnxruntime, batch 3, 20 runs: " in out


def test_ops_prints_a_raised_peak_once_and_keeps_it_as_the_cache_history(
    conv_files: dict[str, Path],
    onnxruntime_module: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny = MachinePeaks("here", 1e-6, {"numpy": 1e-6}, 20.0, 0.0)
    monkeypatch.setattr(peaks_module, "calibrate", lambda: tiny)
    argv = ["ops", str(conv_files["onnx"]), "--runs", "3"]
    assert app.main(argv) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Note: ")]
    assert len(notes) == 1
    assert notes[0].startswith("Note: a model ran at ")
    assert notes[0].endswith(
        ", above the calibrated 0.0: the peak was raised to it "
        "(recalibrate with pyinfer ops --recalibrate)"
    )
    cached = json.loads(peaks_module.cache_path().read_text())
    assert cached["notes"] == [notes[0].removeprefix("Note: ")]
    # A later run under the raised peak (made unbeatable here) prints no note of the past.
    peaks_module.cache_path().write_text(json.dumps({**cached, "fp32_gflops": 1e9}))
    assert app.main(argv) == 0
    assert "Note: " not in capsys.readouterr().out
    assert json.loads(peaks_module.cache_path().read_text())["notes"] == cached["notes"]


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_tensorflow_operators_are_the_kernels_of_the_frozen_graph(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    from pyinfer.analysis.ops_tf import METHOD

    keras = keras_module
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    model = load_model(path)
    breakdown = measure_operators(model, 2, runs=4, warmup=1, arithmetic=count_macs(model, 2))
    assert breakdown.method == METHOD
    by_class = {op.op_class: op for op in breakdown.operators}
    # One convolution (its batch norm folded in or not) and one matrix product per call, as
    # the graph has them; the MACs beside them are the counted ones.
    assert by_class["Conv"].calls == 1
    assert by_class["MatMul/Gemm"].calls == 1
    assert by_class["Conv"].macs == 2 * 8 * 8 * 4 * 3 * 3 * 3
    assert by_class["MatMul/Gemm"].macs == 2 * 8 * 8 * 4 * 5
    assert all(op.time_ms > 0 for op in (by_class["Conv"], by_class["MatMul/Gemm"]))
    assert not any(
        name in {"Const", "_Retval", "_Arg", "NoOp"}
        for op in breakdown.operators
        for name in op.framework_ops
    )


def test_the_roofline_places_each_class_at_its_flops_over_weights_and_activations() -> None:
    conv = OperatorCount("c", "Conv", "Conv", macs=6912, output_bytes=1024)
    conv = dataclasses.replace(conv, weight_bytes=448, input_bytes=768)
    fc = OperatorCount(
        "m", "MatMul", "MatMul/Gemm", 1280, 0, 20, weight_bytes=5120, input_bytes=1024
    )
    relu = OperatorCount("r", "Relu", "Elementwise", 0, 256, 1024, input_bytes=1024)
    counted = summarise(("m", "onnx", 1), [conv, relu, fc], (560 + 5120, 768), "by hand")
    times = (
        OperatorTime("Conv", ("Conv",), 1, 0.01, macs=6912),  # 1.3824 GFLOP/s
        OperatorTime("Elementwise", ("Relu",), 1, 0.005),
        OperatorTime("MatMul/Gemm", ("MatMul",), 1, 0.002, macs=1280),  # 1.28 GFLOP/s
    )
    breakdown = OperatorBreakdown("m", "onnxruntime", 1, 10, 0.02, times, "trace", counted)
    points = roofline_points(breakdown, counted, 0.5)
    assert points == [
        ("m", counted.arithmetic_intensity, 0.5),
        ("Conv", 13824 / 2240, pytest.approx(1.3824)),
        ("MatMul/Gemm", 2560 / 6164, pytest.approx(1.28)),
    ]
    # The weights count: without them the Conv would sit at 13824 / 1792 FLOP per byte.
    assert points[1][1] < 13824 / (768 + 1024)
