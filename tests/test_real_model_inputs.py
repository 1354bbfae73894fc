"""Models with the inputs real ones have: a 0-d sample rate, a state batched on axis 1.

The voice-activity models of ``tests/_real_models.py`` in TorchScript, ``torch.export`` and
ONNX, through ``info``, ``run``, ``profile``, ``sweep`` and the Python profiler, with given
inputs (``--inputs``), values (``--input-value``) and shapes (``--input-shape``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests import _real_models as rm
from tests._settings import FAST_RUNS

import pyinfer
from pyinfer import cli
from pyinfer.backends.base import TensorSpec, fit_batch, framework_cause
from pyinfer.cli.model_args import parse_spec, shapes_from_specs
from pyinfer.errors import InferenceError, InvalidArgumentError, InvalidInputError
from pyinfer.profiling import IntRange, PerformanceProfiler
from pyinfer.profiling.inputs import batch_for, given_inputs

FORMATS = ("vad.pt", "vad.pt2", "vad.onnx")


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three model files and an .npz of two items (``sr`` 0-d)."""
    from tests.conftest import require_module

    torch = require_module("torch")
    onnx = require_module("onnx")
    require_module("onnxruntime")
    folder = tmp_path_factory.mktemp("vad")
    files = rm.save_all(torch, onnx, folder)
    np.savez(folder / "in.npz", **rm.example(2))
    files["npz"] = folder / "in.npz"
    return files


def run_cli(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


FAST_CLI = ["--repeat", "1", "--iterations", "5", "--warmup", "1", "--no-memory"]


# ---- specs: dtypes from the schema, the batch axis ----------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_specs_give_sr_as_0d_int64_and_the_state_its_batch_on_axis_1(
    vad: dict[str, Path], name: str
) -> None:
    model = pyinfer.load_model(vad[name])
    specs = {s.name: s for s in model.inputs}
    assert specs["sr"] == TensorSpec("sr", (), np.dtype(np.int64), None)
    if name != "vad.pt":  # TorchScript declares no tensor shapes
        assert specs["state"].shape == (2, "batch", 128)
        assert specs["state"].batch_axis == 1
        assert specs["x"].batch_axis == 0
        assert model.has_dynamic_batch  # the state's leading 2 is not a fixed batch
        assert batch_for(model, 3, 1, explicit=True) == 3
        described = model.describe()["inputs"]
        assert described[1] == {
            "name": "state",
            "shape": [2, "batch", 128],
            "dtype": "float32",
            "batch_axis": 1,
        }
        assert described[2] == {"name": "sr", "shape": [], "dtype": "int64"}
    ex = rm.example(2)
    got = model(ex)
    want = rm.reference(**ex)
    for got_value, want_value in zip(got.values(), want.values(), strict=True):
        np.testing.assert_allclose(got_value, want_value, rtol=1e-5, atol=1e-6)


def test_torchscript_outputs_read_at_the_first_call_keep_the_states_batch_axis(
    vad: dict[str, Path],
) -> None:
    # The random example cannot give sr a legal value, so the outputs are read at the first
    # call; at batch 2 the state (2, 2, 128) has the batch's size on both of its first two axes:
    # the state input's own batch axis decides.
    shapes = {"x": (None, 512), "state": (2, None, 128), "sr": ()}
    model = pyinfer.load_model(vad["vad.pt"], input_shapes=shapes)
    assert model.outputs == ()
    model(rm.example(2))
    specs = {s.name: s for s in model.outputs}
    assert specs["output_1"] == TensorSpec("output_1", (2, None, 128), np.dtype(np.float32), 1)
    assert specs["output_0"] == TensorSpec("output_0", (None, 1), np.dtype(np.float32), 0)


def test_torchscript_outputs_read_at_load_find_a_state_batched_on_axis_1(tmp_path: Path) -> None:
    # Loading runs random examples at batch 1 and 2: the state output's axis that grows from 1
    # to 2 is its batch (it was left fixed at (2, 1, 3) when only the first axis was tried).
    torch = pytest.importorskip("torch")

    class Step(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: Any, h: Any) -> tuple[Any, Any]:
            return x.sum(dim=1, keepdim=True), h * 2.0

    path = tmp_path / "step.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
        torch.jit.trace(Step(), (torch.randn(1, 4), torch.randn(2, 1, 3))).save(str(path))
    model = pyinfer.load_model(path, input_shapes={"x": (None, 4), "h": (2, None, 3)})
    specs = {s.name: s for s in model.outputs}
    assert specs["output_1"] == TensorSpec("output_1", (2, "batch", 3), np.dtype(np.float32), 1)
    assert specs["output_0"] == TensorSpec("output_0", ("batch", 1), np.dtype(np.float32), 0)


def test_with_batch_axes_reads_an_unnamed_dynamic_axis_after_a_fixed_one() -> None:
    spec = TensorSpec("state", (2, "batch", 128))
    assert not spec.has_dynamic_batch
    assert spec.fixed_batch == 2
    from pyinfer.backends.base import with_batch_axes

    ins, outs = with_batch_axes([TensorSpec("x", ("N", 512)), spec], [spec])
    assert [s.batch_axis for s in ins] == [0, 1]
    assert outs[0].batch_axis == 1
    assert outs[0].fixed_batch is None
    assert TensorSpec("sr", ()).batch_axis is None
    with pytest.raises(InvalidArgumentError, match="has no axis 3 to hold the batch"):
        TensorSpec("x", (1, 2), batch_axis=3)


def test_a_rejected_sample_rate_keeps_the_frameworks_cause(vad: dict[str, Path]) -> None:
    for name in ("vad.pt", "vad.pt2"):
        model = pyinfer.load_model(vad[name])
        with pytest.raises(InferenceError) as info:
            model(rm.example(1, sr=44100))
        assert rm.RATE_MESSAGE in str(info.value)
        assert "\n" not in str(info.value)
    onnx_model = pyinfer.load_model(vad["vad.onnx"])
    with pytest.raises(InvalidInputError, match="indices element out of data bounds, idx=2"):
        onnx_model(rm.example(1, sr=44100))


def test_framework_cause_keeps_first_and_last_line() -> None:
    text = "The operation failed.\nTraceback:\n  line 3\nbuiltins.ValueError: the cause"
    assert framework_cause(text) == "The operation failed. ... builtins.ValueError: the cause"
    long = "first\n" + "x" * 1000 + "\nValueError: end"
    cut = framework_cause(long)
    assert cut.startswith("first ... ")
    assert cut.endswith("ValueError: end")
    assert len(cut) <= 400
    # TensorFlow ends with the graph node that failed, not the cause: that line is left out.
    tf_text = (
        "{{function_node __inference_f_1}} indices[0] = 5 is not in [0, 2)\n"
        "\t [[{{node GatherV2}}]] [Op:__inference_signature_wrapper_2]"
    )
    assert framework_cause(tf_text) == (
        "{{function_node __inference_f_1}} indices[0] = 5 is not in [0, 2)"
    )


# ---- the --input-shape grammar --------------------------------------------------------------


def test_input_shape_grammar() -> None:
    assert parse_spec("sr:").dims == ()
    assert parse_spec("sr:scalar").dims == ()
    assert parse_spec("lengths:4").dims == (4,)
    assert parse_spec("state:2xbx128").dims == (2, "batch", 128)
    assert parse_spec("state:2xbx128").batch_axis == 1
    assert parse_spec("x=1x512").dims == (1, 512)
    assert parse_spec("sequence=128").size == 128
    assert parse_spec("1x3x8x8").name is None
    # A size of a named dimension no longer turns the whole shapes off.
    assert shapes_from_specs(["x=1x512", "state:2xbx128", "sr:", "sequence=4"]) == {
        "x": ["batch", 512],
        "state": [2, "batch", 128],
        "sr": [],
    }
    with pytest.raises(InvalidArgumentError, match="sr=0: the size of dimension 'sr'"):
        parse_spec("sr=0")
    with pytest.raises(InvalidArgumentError, match="mark one batch axis"):
        parse_spec("s:bxb")


# ---- given inputs -------------------------------------------------------------------------


def test_given_inputs_are_sliced_or_repeated_along_each_batch_axis(vad: dict[str, Path]) -> None:
    model = pyinfer.load_model(vad["vad.onnx"])
    ex = rm.example(2)
    settings = dataclasses.replace(FAST_RUNS, inputs=ex)
    three = given_inputs(model, 3, settings)
    assert three["x"].shape == (3, 512)
    assert three["state"].shape == (2, 3, 128)
    np.testing.assert_array_equal(three["x"], ex["x"][[0, 1, 0]])
    np.testing.assert_array_equal(three["state"], ex["state"][:, [0, 1, 0]])
    assert three["sr"].shape == ()
    assert int(three["sr"]) == 16000
    one = given_inputs(model, 1, settings)
    np.testing.assert_array_equal(one["state"], ex["state"][:, :1])
    # One item without its batch axis, a value, and a range.
    item = {"x": ex["x"][0].astype(np.float64)}  # cast: same kind
    values: dict[str, Any] = {"sr": 8000}
    got = given_inputs(model, 2, dataclasses.replace(FAST_RUNS, inputs=item, input_values=values))
    np.testing.assert_array_equal(got["x"], np.stack([ex["x"][0], ex["x"][0]]))
    assert got["sr"].dtype == np.int64
    assert int(got["sr"]) == 8000
    spec = TensorSpec("ids", ("batch", 6), np.dtype(np.int64))
    ranged = given_inputs(
        model, 2, dataclasses.replace(FAST_RUNS, input_values={"sr": IntRange(8000, 8001)})
    )
    assert int(ranged["sr"]) == 8000
    with pytest.raises(InvalidInputError, match=r"^ids of m has shape \(2, 2, 2\); the model"):
        fit_batch(spec, np.zeros((2, 2, 2), np.int64), 2, "ids of m")
    with pytest.raises(InvalidInputError, match=r"^ids of m is float32; the model takes int64"):
        fit_batch(spec, np.zeros((2, 6), np.float32), 2, "ids of m")
    with pytest.raises(InvalidArgumentError, match="'nope' are not inputs of model 'vad'"):
        given_inputs(model, 1, dataclasses.replace(FAST_RUNS, input_values={"nope": 1}))


@pytest.mark.parametrize("name", FORMATS)
def test_the_python_profiler_measures_each_format_with_given_inputs(
    vad: dict[str, Path], name: str
) -> None:
    model = pyinfer.load_model(vad[name])
    settings = dataclasses.replace(
        FAST_RUNS, max_iterations=10, inputs=rm.example(2), input_values={"sr": 16000}
    )
    report = PerformanceProfiler(model, settings).profile(3, memory=False, throughput=False)
    assert report.batch_size == 3
    assert report.latency.iterations >= 10


def test_random_examples_of_a_constrained_scalar_fail_with_the_cause(
    vad: dict[str, Path],
) -> None:
    model = pyinfer.load_model(vad["vad.pt2"])
    with pytest.raises(InferenceError, match=r"Supported sampling rates: \[8000, 16000\]"):
        PerformanceProfiler(model, FAST_RUNS).profile(1, memory=False, throughput=False)


# ---- the commands ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_run_prints_every_output_by_name_and_classifies_none(
    vad: dict[str, Path], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.json"
    code, stdout, err = run_cli(["run", vad[name], vad["npz"], "--output", out], capsys)
    assert code == 0, err
    assert "class" not in stdout
    names = ["prob", "state_out"] if name == "vad.onnx" else ["output_0", "output_1"]
    assert [line.split(":")[0] for line in stdout.splitlines()] == names
    doc = json.loads(out.read_text())
    want = rm.reference(**rm.example(2))
    if name == "vad.pt":
        # Inputs of undeclared shape beside a shared sample rate: the file is one call.
        assert f"{names[0]}: (2, 1) (per input file) float32" in stdout
        got = doc["items"][0]["outputs"]
        np.testing.assert_allclose(np.array(got[names[0]]), want["prob"], rtol=1e-5)
        np.testing.assert_allclose(np.array(got[names[1]]), want["state"], rtol=1e-5, atol=1e-6)
        return
    # Two items, each taken on its input's batch axis, outputs split on their own.
    assert f"{names[0]}: (2, 1) float32" in stdout
    assert f"{names[1]}: (2, 2, 128) float32" in stdout
    for i in range(2):
        got = doc["items"][i]["outputs"]
        np.testing.assert_allclose(np.array(got[names[0]]), want["prob"][i], rtol=1e-5)
        np.testing.assert_allclose(
            np.array(got[names[1]]), want["state"][:, i], rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("name", FORMATS)
def test_info_profile_and_sweep_work_on_each_format(
    vad: dict[str, Path], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = (
        ["--input-shape", "x:bx512", "--input-shape", "state:2xbx128", "--input-shape", "sr:"]
        if name == "vad.pt"
        else []
    )
    code, out, err = run_cli(["info", vad[name], *shapes], capsys)
    assert code == 0, err
    assert "  sr: () int64  (no batch axis: a batch shares it)\n" in out
    assert "  state: (2, batch, 128) float32  (batch on axis 1)\n" in out
    # The ONNX table of two scales is stored; the torch files make their weights at run time.
    weights = (
        "2 (8 B)"
        if name == "vad.onnx"
        else "0 (0 B)  (no stored weights: made at run time, or none)"
    )
    assert f"Parameters:  {weights}\n" in out
    code, out, err = run_cli(
        ["profile", vad[name], *shapes, "--input-value", "sr=8000", "--batch-size", "3", *FAST_CLI],
        capsys,
    )
    assert code == 0, err
    assert "batch 3, " in out  # the throughput run's line
    code, out, err = run_cli(
        [
            "sweep",
            vad[name],
            "--inputs",
            vad["npz"],
            *shapes,
            "--batch-sizes",
            "1,4",
            *FAST_CLI[:-1],
        ],
        capsys,
    )
    assert code == 0, err
    assert "Best batch:" in out


def test_a_size_given_to_an_input_says_how_to_give_its_shape(
    vad: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["profile", vad["vad.pt"], "--input-shape", "x=1x512", "--input-shape", "sr=1"]
    code, _, err = run_cli([*argv, *FAST_CLI], capsys)
    assert code == 2
    assert (
        "--input-shape sr=1: NAME=N sizes a named dimension, and 'sr' is an input; its whole "
        "shape is sr:1 (1-D), or sr: for a 0-d input (its value: --input-value sr=VALUE)"
    ) in err


def test_a_bad_input_value_and_inputs_file_are_refused(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["profile", vad["vad.onnx"], "--input-value", "rate=1", *FAST_CLI], capsys
    )
    assert code == 2
    assert "--input-value rate=1: give NAME=VALUE for an input of model 'vad' (x, state, sr)" in err
    np.save(tmp_path / "x.npy", np.zeros((1, 512), np.float32))
    code, _, err = run_cli(
        ["profile", vad["vad.onnx"], "--inputs", tmp_path / "x.npy", *FAST_CLI], capsys
    )
    assert code == 2
    assert "an .npy feeds a one-input model; 'vad' takes x, state, sr" in err
    code, _, err = run_cli(
        ["profile", vad["vad.onnx"], "--input-value", "sr=44100", *FAST_CLI], capsys
    )
    assert code != 0
    assert "indices element out of data bounds" in err


# ---- results and reports --------------------------------------------------------------------


def test_stacked_keeps_rows_aligned_and_refuses_nan_for_integers() -> None:
    from pyinfer.engine import DatasetResult

    result = DatasetResult()
    result.outputs = [{"y": np.array([1, 2])}, None, {"y": np.array([5, 6])}]
    with pytest.raises(
        InvalidArgumentError,
        match=r"'y' is int64, which has no nan for the rows of the 1 failed input\(s\): give ",
    ):
        result.stacked()
    np.testing.assert_array_equal(result.stacked(fill=-1), [[1, 2], [-1, -1], [5, 6]])
    np.testing.assert_array_equal(result.stacked(fill=None), [[1, 2], [5, 6]])
    np.testing.assert_array_equal(result.succeeded_mask, [True, False, True])


def test_formats_headline_uses_medians_and_tiny_memory_reads() -> None:
    from tests._reports import report_with_runs

    from pyinfer.report import LatencyStats
    from pyinfer.report.results import MemoryStats
    from pyinfer.suite.results import FormatEntry, FormatsResult
    from pyinfer.suite.tables import parity_table

    def with_samples(ms: list[float]) -> Any:
        report = report_with_runs(None)
        stats = LatencyStats.from_samples_ns(np.array(ms) * 1e6)
        latency = dataclasses.replace(report.latency, stats=stats)
        memory = MemoryStats(
            parameter_bytes=0, peak_activation_bytes=229, activation_method="test", runs=1
        )
        return dataclasses.replace(report, latency=latency, memory=memory)

    stalled = with_samples([5.0] * 14 + [200.0])  # median 5, mean 18
    steady = with_samples([6.0] * 15)  # median 6, mean 6
    entries = (
        FormatEntry("onnx", "ONNX (FP32)", "ok", report=stalled, original=True),
        FormatEntry("tflite", "TFLite", "ok", report=steady, parity=True),
    )
    env = entries[0].report.environment  # type: ignore[union-attr]
    result = FormatsResult("m.onnx", "onnx", "cpu", 1, entries, "", env, {}, 1.0)
    assert result.recommendation().startswith("fastest at batch 1: ONNX (FP32) (the original)")
    row = parity_table(entries).splitlines()[2]
    assert "<0.001" in row
    text = stalled.to_text()
    assert "Model Parameters: 0.0 MB (no stored weights: made at run time, or none)" in text
    assert (
        "  Throughput: no throughput run; the figure above is the latency run's (batch 1 x 15 "
        "calls over its wall time)"
    ) in text


def test_formats_measures_and_checks_parity_on_the_given_inputs(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.json"
    argv = ["formats", vad["vad.onnx"], "--inputs", vad["npz"], "--quick", "--batch-size", "3"]
    code, stdout, err = run_cli([*argv, "--json", out], capsys)
    assert code == 0, err
    assert "fastest at batch 3: ONNX (FP32) (the original)" in stdout
    doc = json.loads(out.read_text())
    assert doc["settings"]["inputs"] == {
        "x": "(2, 512) float32",
        "state": "(2, 2, 128) float32",
        "sr": "() int64",
    }


def test_the_onnx_export_keeps_each_inputs_batch_axis(vad: dict[str, Path], tmp_path: Path) -> None:
    import torch

    from pyinfer import export

    program = torch.export.load(str(vad["vad.pt2"]))
    example = rm.example(1)
    axes = {"x": 0, "state": 1, "sr": None}
    path = export.export_onnx(program, tmp_path / "vad.onnx", example, batch_axes=axes)[0]
    model = pyinfer.load_model(path)
    specs = {s.name: s for s in model.inputs}
    assert specs["state"].shape == (2, "batch", 128)
    assert specs["state"].batch_axis == 1
    assert specs["sr"].shape == ()
    # Run at another batch than exported: the outputs equal the numpy reference.
    three = rm.example(3)
    got = model(three)
    want = rm.reference(three["x"], three["state"], int(three["sr"]))
    for got_out, want_out in zip(got.values(), want.values(), strict=True):
        np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    # Without the batch axes, the first axis of the state would be the batch, against x's.
    with pytest.raises(Exception, match="size"):
        export.export_onnx(program, tmp_path / "bad.onnx", example)


# Tracing the program for TorchScript warns that its sample-rate check is traced as a constant
# (a TracerWarning, which this suite's warning filter would make an error inside torch's C++).
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_formats_exports_a_model_whose_state_has_its_batch_on_axis_1(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["formats", vad["vad.pt2"], "--inputs", vad["npz"], "--quick", "--batch-size", "3"]
    code, stdout, err = run_cli([*argv, "--work-dir", tmp_path], capsys)
    assert code == 0, stdout + err
    rows = {line.split("│")[0].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "ok (" in rows["ONNX (FP32)"]
    assert "ok (" in rows["TorchScript"]
    assert "all outputs match" in stdout


def test_formats_takes_the_profile_grammar_for_a_torchscript_model(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = ["x:bx512", "state:2xbx128", "sr:"]
    argv = ["formats", vad["vad.pt"], "--input-value", "sr=16000", "--batch-size", "3"]
    for spec in shapes:
        argv += ["--input-shape", spec]
    code, stdout, err = run_cli([*argv, "--quick", "--work-dir", tmp_path], capsys)
    assert code == 0, stdout + err
    rows = {line.split("│")[0].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "ok (" in rows["ONNX (FP32)"]
    assert "fastest at batch 3" in stdout
    # A batch given twice, differently, is refused as for a whole shape batch first.
    code, _, err = run_cli(
        ["formats", vad["vad.pt"], "--input-shape", "x:4x512", *argv[2:]], capsys
    )
    assert code == cli.EXIT_USAGE
    assert "--input-shape x:4x512 has batch 4, which contradicts --batch-size 3" in err
