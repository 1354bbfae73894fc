"""The engine on models whose inputs are not all batched first: a state, a shared sample rate.

The voice-activity model of ``tests/_real_models.py`` (audio ``(batch, 512)``, a state
``(2, batch, 128)`` batched on axis 1, a 0-d sample rate) in TorchScript, ``torch.export`` and
ONNX (with and without a name for its batch dimension): items stacked on each input's batch
axis, outputs split back on each output's, shared values run in separate calls, and numpy
models whose output's batch axis is ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests import _real_models as rm

import pyinfer
from pyinfer import cli
from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.engine import InferenceEngine
from pyinfer.engine.axes import BatchLayout
from pyinfer.errors import InferenceError, InvalidArgumentError, InvalidInputError

VARIANTS = ("vad.pt", "vad.pt2", "vad.onnx", "unnamed.onnx")
#: The TorchScript file declares no tensor shapes: they are given at load.
SHAPES = {"x": ("batch", 512), "state": (2, "batch", 128), "sr": ()}


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.conftest import require_module

    torch = require_module("torch")
    onnx = require_module("onnx")
    require_module("onnxruntime")
    folder = tmp_path_factory.mktemp("vad_axes")
    files = rm.save_all(torch, onnx, folder)
    files["unnamed.onnx"] = rm.save_onnx(onnx, folder / "unnamed.onnx", batch=None)
    return files


def load(vad: dict[str, Path], name: str) -> Model:
    return pyinfer.load_model(vad[name], **({"input_shapes": SHAPES} if name == "vad.pt" else {}))


def items_of(batch: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One dict per item: audio ``(512,)``, state ``(2, 128)`` (axis 1 taken), the 0-d rate."""
    return [
        {"x": batch["x"][i], "state": batch["state"][:, i], "sr": batch["sr"]}
        for i in range(len(batch["x"]))
    ]


def one_call(model: Model, item: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The model's own outputs for one item, its batch axes dropped (prob axis 0, state 1)."""
    out = model({"x": item["x"][None], "state": item["state"][:, None], "sr": item["sr"]})
    prob, state = out.values()
    return [prob[0], state[:, 0]]


# ---- items stacked on each input's batch axis ----------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_a_dataset_equals_per_item_calls_with_the_state_split_on_axis_1(
    vad: dict[str, Path], name: str
) -> None:
    model = load(vad, name)
    specs = {s.name: s for s in model.inputs}
    assert (specs["x"].batch_axis, specs["state"].batch_axis, specs["sr"].batch_axis) == (
        0,
        1,
        None,
    )
    items = items_of(rm.example(7, seed=1))
    engine = InferenceEngine(model, batch_size=3, num_workers=0, progress=False)
    result = engine.run_dataset(items)
    assert result.batch_sizes == [3, 3, 1]  # a partial last batch
    assert not result.failures
    for item, outputs in zip(items, result.outputs, strict=True):
        assert outputs is not None
        got = list(outputs.values())
        want = one_call(model, item)
        assert [g.shape for g in got] == [(1,), (2, 128)]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)
    names = list(result.outputs[0] or {})
    states = result.stacked(names[1])
    assert states.shape == (7, 2, 128)  # row i is item i's, whatever the model's batch axis
    np.testing.assert_array_equal(states[4], result.outputs[4][names[1]])  # type: ignore[index]


def test_stacked_rows_stay_aligned_with_a_failed_item(vad: dict[str, Path]) -> None:
    model = load(vad, "vad.onnx")
    items = items_of(rm.example(4, seed=8))
    items[1] = {**items[1], "state": np.zeros((128, 2), np.float32)}  # the axes swapped
    result = InferenceEngine(model, batch_size=3, num_workers=0).run_dataset(items)
    assert [f.index for f in result.failures] == [1]
    assert "must have shape (2, 128) per item" in result.failures[0].reason
    states = result.stacked("state_out")
    assert states.shape == (4, 2, 128)
    assert np.isnan(states[1]).all()
    for row in (0, 2, 3):
        np.testing.assert_allclose(states[row], one_call(model, items[row])[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["vad.pt2", "vad.onnx"])
def test_predict_batch_takes_and_gives_each_tensor_on_its_batch_axis(
    vad: dict[str, Path], name: str
) -> None:
    model = load(vad, name)
    engine = InferenceEngine(model, num_workers=0)
    batch = rm.example(3, seed=2)
    want = model(batch)
    names = list(want)
    for given in (items_of(batch), batch):  # a list of items; a batch as the model takes it
        got = engine.predict_batch(given)
        assert got.batch_axes == {names[0]: 0, names[1]: 1}
        assert got.batch_sizes == [3]
        assert got[names[1]].shape == (2, 3, 128)
        for n in names:
            np.testing.assert_allclose(got[n], want[n], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(got.item(2)[names[1]], got[names[1]][:, 2])
    single = engine.predict(items_of(batch)[1])
    np.testing.assert_allclose(single[names[1]], want[names[1]][:, 1], rtol=0, atol=1e-6)


def test_a_batch_with_items_on_the_wrong_axis_is_refused(vad: dict[str, Path]) -> None:
    engine = InferenceEngine(load(vad, "vad.onnx"), num_workers=0)
    batch = rm.example(3)
    with pytest.raises(
        InvalidInputError,
        match=r"^stacked inputs of model 'vad' must share one non-zero batch size on their batch "
        r"axes \(x: 0, state: 1, sr: shared\), got x: \(3, 512\), state: \(3, 2, 128\), sr: \(\)$",
    ):
        engine.predict_batch({**batch, "state": batch["state"].transpose(1, 0, 2).copy()})
    item = items_of(batch)[0]
    with pytest.raises(
        InvalidInputError,
        match=r"^input 'state' of model 'vad' \(item 0\) must have shape \(2, 128\) per item "
        r"\(the model takes \(2, batch, 128\) with the batch on axis 1\), got \(3, 128\)$",
    ):
        engine.predict_batch([{**item, "state": np.zeros((3, 128), np.float32)}])


# ---- shared inputs ---------------------------------------------------------------------------


def test_items_of_different_sample_rates_run_in_separate_calls_in_order(
    vad: dict[str, Path],
) -> None:
    model = load(vad, "vad.onnx")
    calls: list[int] = []
    run = model.run_native

    def counted(inputs: Mapping[str, Any]) -> dict[str, Any]:
        calls.append(int(np.asarray(inputs["sr"])))
        return run(inputs)

    model.run_native = counted  # type: ignore[method-assign]
    engine = InferenceEngine(
        model, batch_size=3, num_workers=0, progress=False, input_values={"sr": 16000}
    )
    rates = [None, None, None, 8000, 8000, None, 8000]  # None: the engine's 16000
    items: list[dict[str, Any]] = []
    for item, rate in zip(items_of(rm.example(7, seed=3)), rates, strict=True):
        del item["sr"]
        items.append(item if rate is None else {**item, "sr": np.array(rate, np.int64)})
    result = engine.run_dataset(items)
    assert result.batch_sizes == [3, 2, 1, 1]  # [0 1 2] [3 4 | 5] [6]
    assert calls == [16000, 8000, 16000, 8000]
    for item, rate, outputs in zip(items, rates, result.outputs, strict=True):
        assert outputs is not None
        want = rm.reference(item["x"][None], item["state"][:, None], rate or 16000)
        np.testing.assert_allclose(outputs["prob"], want["prob"][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs["state_out"], want["state"][:, 0], atol=1e-6)
    # The batch-size search runs with the given rate (a random one would be refused).
    assert engine.find_max_batch_size(limit=4) == 4


def test_inputs_given_once_leave_a_bare_array_for_the_last(vad: dict[str, Path]) -> None:
    model = load(vad, "vad.onnx")
    zero = np.zeros((2, 128), np.float32)
    engine = InferenceEngine(model, num_workers=0, input_values={"sr": 8000, "state": zero})
    x = rm.example(3, seed=7)["x"]
    want = model({"x": x, "state": np.zeros((2, 3, 128), np.float32), "sr": np.array(8000)})
    got = engine.predict_batch(x)  # a stacked batch of the one input not given
    assert got["state_out"].shape == (2, 3, 128)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)
    one = engine.predict(x[2])
    np.testing.assert_allclose(one["state_out"], want["state_out"][:, 2], rtol=0, atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"^model 'vad' takes 3 inputs \(x, state, sr\)"):
        InferenceEngine(model, num_workers=0, input_values={"sr": 8000}).predict(x[0])


def test_a_call_never_merges_different_shared_values(vad: dict[str, Path]) -> None:
    layout = BatchLayout(load(vad, "vad.onnx"))
    rows = {
        "x": np.zeros((3, 512), np.float32),
        "state": np.zeros((3, 2, 128), np.float32),
        "sr": np.array([16000, 16000, 8000]),
    }
    assert layout.runs(rows, 3) == [(0, 2), (2, 3)]
    with pytest.raises(
        InvalidInputError,
        match=r"^input 'sr' of model 'vad' is shared by a batch, and its items give it 16000 and "
        r"8000$",
    ):
        layout.to_model(rows)


def test_bad_input_values_are_refused(vad: dict[str, Path]) -> None:
    model = load(vad, "vad.onnx")
    cases = [
        ({"rate": 1}, r"^input_values 'rate' are not inputs of model 'vad' \(x, state, sr\)$"),
        (
            {"sr": [16000, 8000]},
            r"^input_values\['sr'\] of model 'vad' has shape \(2,\); the input takes \(\) "
            r"\(a batch shares it\)$",
        ),
        (
            {"sr": 16000.5},
            r"^input_values\['sr'\] of model 'vad' is float64 \(16000.5\); the input is int64$",
        ),
        (
            {"state": np.zeros((2, 3, 128), np.float32)},
            r"^input_values\['state'\] of model 'vad' has shape \(2, 3, 128\); the input takes "
            r"\(2, 128\) per item$",
        ),
    ]
    for values, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            InferenceEngine(model, input_values=values)
    with pytest.raises(InvalidArgumentError, match=r"^output_batch_axes names 'y', which is not"):
        InferenceEngine(model, output_batch_axes={"y": 1})
    with pytest.raises(
        InvalidArgumentError, match=r"^output_batch_axes\['prob'\] must be an axis \(an integer"
    ):
        InferenceEngine(model, output_batch_axes={"prob": -1})


# ---- outputs whose batch axis is ambiguous ----------------------------------------------------


class Pairs(Model):
    """Outputs computed from ``x`` ``(batch, 2)`` by ``make`` in numpy; their specs undeclared."""

    def __init__(self, make: Callable[[np.ndarray], dict[str, np.ndarray]], batch: Any = "N"):
        super().__init__(
            name="pairs",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", (batch, 2), np.float32)],
            outputs=[],
            parameter_count=0,
            parameter_bytes=0,
        )
        self.make = make
        self.calls: list[int] = []

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(len(inputs["x"]))
        return self.make(inputs["x"])

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


def test_an_ambiguous_output_axis_is_told_by_a_batch_of_another_size() -> None:
    model = Pairs(lambda x: {"t": np.ascontiguousarray(x.T)})
    engine = InferenceEngine(model, num_workers=0)
    x = np.array([[1, 2], [3, 4]], np.float32)  # a batch of 2: t is (2, 2), either axis
    got = engine.predict_batch(x)
    assert model.calls == [2, 1]  # the second call, of 1 item, told the axis
    assert got.batch_axes == {"t": 1}
    np.testing.assert_array_equal(got["t"], x.T)
    np.testing.assert_array_equal(engine.predict(x[1])["t"], [3, 4])
    assert model.calls == [2, 1, 1]  # known since: no second call


def test_an_output_that_does_not_follow_the_batch_is_refused() -> None:
    model = Pairs(lambda x: {"g": x.T @ x})
    engine = InferenceEngine(model, num_workers=0)
    with pytest.raises(
        InferenceError,
        match=r"^output 'g' of model 'pairs' has shape \(2, 2\) on a batch of 2 and \(2, 2\) on a "
        r"batch of 1: no one axis follows the batch, so the engine cannot split it per input; "
        r"give the engine output_batch_axes=\{'g': AXIS\}$",
    ):
        engine.predict_batch(np.ones((2, 2), np.float32))
    with pytest.raises(
        InferenceError,
        match=r"^output 'g' of model 'pairs' has shape \(2, 2\), with no axis of the call's batch "
        r"size 3: the engine cannot split it per input$",
    ):
        engine.predict_batch(np.ones((3, 2), np.float32))


def test_a_fixed_batch_cannot_tell_an_ambiguous_axis_unless_given() -> None:
    def transposed(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"t": np.ascontiguousarray(x.T)}

    engine = InferenceEngine(Pairs(transposed, batch=2), num_workers=0)
    x = np.array([[1, 2], [3, 4]], np.float32)
    with pytest.raises(
        InferenceError,
        match=r"^outputs of model 'pairs' have several axes of the batch size 2 \('t' \(2, 2\)\), "
        r"and a fixed batch gives no other size to tell which holds the batch: give the engine "
        r"output_batch_axes=\{'t': AXIS\}$",
    ):
        engine.predict_batch(x)
    told = InferenceEngine(Pairs(transposed, batch=2), output_batch_axes={"t": 1}, num_workers=0)
    np.testing.assert_array_equal(told.predict(x[1])["t"], [3, 4])  # padded to 2, then cut


# ---- the unnamed batch dimension and the command line ----------------------------------------


def test_an_unnamed_batch_dimension_after_a_fixed_one_is_the_batch() -> None:
    from pyinfer.backends.base import with_batch_axes

    state = TensorSpec("state", (2, None, 128))
    ins, outs = with_batch_axes([TensorSpec("x", (None, 512)), state], [state])
    assert [s.batch_axis for s in ins] == [0, 1]
    assert outs[0].batch_axis == 1
    # Without a dynamic batch elsewhere, the first axis stays the batch (a fixed batch of 1
    # with an unnamed sequence length).
    alone, _ = with_batch_axes([TensorSpec("ids", (1, None))])
    assert alone[0].batch_axis == 0


def test_run_takes_an_npz_item_by_item_on_each_batch_axis(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = rm.example(7, seed=4)
    np.savez(tmp_path / "in.npz", **batch)
    out = tmp_path / "out.npz"
    argv = ["run", vad["vad.onnx"], tmp_path / "in.npz", "--batch-size", "3", "--output", out]
    code = cli.main([str(a) for a in [*argv, "--no-progress"]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "state_out: (7, 2, 128) float32" in captured.out
    assert "7 of 7 input(s) ran, 0 failed" in captured.err
    want = rm.reference(**batch)
    with np.load(out) as written:
        np.testing.assert_allclose(written["prob"], want["prob"], rtol=1e-5, atol=1e-6)
        # One row per item: the state's items moved first.
        np.testing.assert_allclose(
            written["state_out"], want["state"].transpose(1, 0, 2), rtol=1e-5, atol=1e-6
        )


def test_the_staged_upload_path_moves_the_state_and_splits_mixed_rates(
    vad: dict[str, Path],
) -> None:
    from pyinfer.engine.upload import _CudaUploader

    model = load(vad, "vad.onnx")
    engine = InferenceEngine(model, batch_size=3, num_workers=0, progress=False)
    # The staging logic on pageable memory: what a CUDA model's batches go through.
    engine._uploader = _CudaUploader(model, allow_pageable=True)
    items = items_of(rm.example(7, seed=5))
    items[4] = {**items[4], "sr": np.array(8000, np.int64)}
    result = engine.run_dataset(items)
    assert result.batch_sizes == [3, 1, 1, 1, 1]  # [0 1 2] staged; [3 | 4 | 5] plain; [6]
    for item, outputs in zip(items, result.outputs, strict=True):
        assert outputs is not None
        for got, want in zip(outputs.values(), one_call(model, item), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    engine.close()


def test_run_takes_a_shared_value_the_npz_leaves_out(
    vad: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = rm.example(4, seed=6)
    np.savez(tmp_path / "in.npz", x=batch["x"], state=batch["state"])  # no sample rate
    out = tmp_path / "out.npz"
    argv = ["run", vad["vad.onnx"], tmp_path / "in.npz", "--batch-size", "3", "--no-progress"]
    code = cli.main([str(a) for a in [*argv, "--input-value", "sr=8000", "--output", out]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with np.load(out) as written:
        want = rm.reference(batch["x"], batch["state"], 8000)
        np.testing.assert_allclose(written["prob"], want["prob"], rtol=1e-5, atol=1e-6)
    code = cli.main([str(a) for a in [*argv, "--input-value", "sr=8000:8001"]])
    assert code == cli.EXIT_USAGE
    assert (
        "--input-value sr=8000:8001: a range draws random values for measuring; run takes one "
        "value (sr=8000)"
    ) in capsys.readouterr().err
