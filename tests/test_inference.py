"""The inference engine: single inputs, batches, datasets, validation, out-of-memory back-off."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.engine import (
    DatasetResult,
    InferenceEngine,
    ItemResult,
    Prediction,
    softmax,
    top_k,
    top_k_batch,
)
from pyinfer.errors import (
    DatasetSourceError,
    InferenceError,
    InvalidArgumentError,
    InvalidInputError,
    OutOfMemoryError,
)
from pyinfer.preprocess import TextPipeline, VocabTokenizer

# Small integer weights: float32 arithmetic on them is exact, so outputs compare with ==.
W = np.array([[1, -2, 0], [3, 1, -1], [0, 2, 2], [-1, 0, 1]], dtype=np.float32)
B = np.array([0.5, -4.0, 1.0], dtype=np.float32)


def reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W + B, 0)


class LinearModel(Model):
    """y = relu(x @ W + B) in numpy: a real model on the host, behind the Model interface."""

    def __init__(self, batch: int | None = None, name: str = "linear") -> None:
        super().__init__(
            name=name,
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", (batch if batch else "N", 4), np.float32)],
            outputs=[TensorSpec("y", (batch if batch else "N", 3), np.float32)],
            parameter_count=15,
            parameter_bytes=60,
        )
        self.calls: list[int] = []

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        x = inputs["x"]
        self.calls.append(len(x))
        return {"y": reference(x)}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


class TorchLikeOOMError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, recognised by name."""


TorchLikeOOMError.__name__ = "OutOfMemoryError"


class ResourceExhaustedError(Exception):
    """Named like TensorFlow's."""


def ort_oom() -> Exception:
    return RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory")


class OomAbove(LinearModel):
    """Runs out of memory on batches above `limit`, as a GPU model would."""

    def __init__(
        self, limit: int, make: Any = TorchLikeOOMError, flaky_at: int | None = None
    ) -> None:
        super().__init__()
        self.limit = limit
        self.make = make
        self.flaky_at = flaky_at

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        n = len(inputs["x"])
        if n == self.flaky_at:
            self.flaky_at = None  # fails once, then fits
            raise self.make("CUDA out of memory. Tried to allocate 2.00 GiB")
        if n > self.limit:
            raise self.make("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().run_native(inputs)


def data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-4, 5, size=(n, 4)).astype(np.float32)


# -- single inputs and batches ------------------------------------------------------------------


def test_single_list_and_stacked_give_the_reference_exactly() -> None:
    engine = InferenceEngine(LinearModel())
    x = data(5)
    single = np.stack([engine.predict(row)["y"] for row in x])
    listed = engine.predict_batch(list(x))
    stacked = engine.predict_batch(x)
    by_name = engine.predict_batch({"x": x})
    np.testing.assert_array_equal(single, reference(x))
    for out in (listed, stacked, by_name):
        np.testing.assert_array_equal(out["y"], reference(x))
    assert stacked.batch_sizes == [5]
    assert stacked.padded_items == 0
    assert engine.predict({"x": x[0]})["y"].shape == (3,)


def test_variable_batch_sizes_run_as_one_call_each() -> None:
    model = LinearModel()
    engine = InferenceEngine(model)
    for n in (1, 3, 7, 2):
        np.testing.assert_array_equal(engine.predict_batch(data(n, n))["y"], reference(data(n, n)))
    assert model.calls == [1, 3, 7, 2]


def test_fixed_batch_model_is_split_and_padded(caplog: pytest.LogCaptureFixture) -> None:
    model = LinearModel(batch=4)
    with caplog.at_level(logging.INFO, logger="pyinfer.engine"):
        engine = InferenceEngine(model, batch_size=16)
        out = engine.predict_batch(data(10))
    assert engine.batch_size == 4
    assert engine.fixed_batch == 4
    assert out["y"].shape == (10, 3)
    np.testing.assert_array_equal(out["y"], reference(data(10)))
    assert out.batch_sizes == [4, 4, 2]
    assert out.padded_items == 2
    assert model.calls == [4, 4, 4]
    assert "fixed batch of 4" in caplog.text
    assert "padding a batch of 2 with 2 copies" in caplog.text
    one = engine.predict(data(1)[0])
    np.testing.assert_array_equal(one["y"], reference(data(1))[0])


def test_onnx_engine_from_path_matches_numpy(onnx_module: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    h = onnx_module.helper
    tp = onnx_module.TensorProto
    graph = h.make_graph(
        [
            h.make_node("MatMul", ["x", "W"], ["xw"]),
            h.make_node("Add", ["xw", "B"], ["pre"]),
            h.make_node("Relu", ["pre"], ["y"]),
        ],
        "linear_relu",
        [h.make_tensor_value_info("x", tp.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, ["N", 3])],
        [
            onnx_module.numpy_helper.from_array(W, "W"),
            onnx_module.numpy_helper.from_array(B, "B"),
        ],
    )
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 9
    path = tmp_path / "linear.onnx"
    onnx_module.save_model(proto, str(path))
    engine = InferenceEngine(str(path), batch_size=3, device="cpu")
    assert engine.model.framework == "onnxruntime"
    x = data(7)
    np.testing.assert_array_equal(engine.predict_batch(x)["y"], reference(x))
    np.testing.assert_array_equal(engine.predict(x[2])["y"], reference(x)[2])
    result = engine.run_dataset(x)
    np.testing.assert_array_equal(result.stacked("y"), reference(x))
    assert result.batch_sizes == [3, 3, 1]


def test_torch_single_equals_batch(torch_module: ModuleType) -> None:
    from pyinfer.loading import PyTorchModelLoader

    torch = torch_module
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    )
    model = PyTorchModelLoader(input_shapes={"input": (None, 3, 8, 8)}).from_module(net)
    engine = InferenceEngine(model, batch_size=4)
    x = np.random.default_rng(1).standard_normal((6, 3, 8, 8)).astype(np.float32)
    batch = engine.predict_batch(x)["output"]
    single = np.stack([engine.predict(img)["output"] for img in x])
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single, batch, rtol=1e-5, atol=1e-6)
    streamed = np.stack([r.outputs["output"] for r in engine.run_dataset(x, stream=True)])
    np.testing.assert_allclose(streamed, batch, rtol=1e-5, atol=1e-6)


def test_torch_tensors_from_a_preprocessor_or_the_caller(torch_module: ModuleType) -> None:
    torch = torch_module
    x = data(5)

    def to_tensor(i: int) -> Any:  # what a torchvision transform pipeline returns
        return torch.from_numpy(x[i])

    engine = InferenceEngine(LinearModel(), to_tensor, num_workers=0)
    np.testing.assert_array_equal(engine.run_dataset(range(5)).stacked(), reference(x))
    plain = InferenceEngine(LinearModel())
    np.testing.assert_array_equal(plain.predict(torch.from_numpy(x[0]))["y"], reference(x[:1])[0])
    np.testing.assert_array_equal(plain.predict_batch(torch.from_numpy(x))["y"], reference(x))
    grad = torch.from_numpy(x[0]).requires_grad_()
    with pytest.raises(InvalidInputError, match=r"Tensor numpy cannot read.*detach\(\)"):
        plain.predict(grad)


# -- validation ---------------------------------------------------------------------------------


def test_dtype_mismatch_names_the_cast_option() -> None:
    engine = InferenceEngine(LinearModel())
    with pytest.raises(InvalidInputError, match=r"'x'.*must be float32, got float64.*same_kind"):
        engine.predict(np.zeros(4))
    with pytest.raises(InvalidInputError, match=r"'x'.*float32, got float64.*cast_inputs"):
        engine.predict_batch(np.zeros((2, 4)))
    with pytest.raises(InvalidInputError, match=r"'x'.*float32, got complex64.*convert it"):
        engine.predict(np.zeros(4, dtype=np.complex64))


def test_casts_only_when_asked() -> None:
    x = data(3)
    same_kind = InferenceEngine(LinearModel(), cast_inputs="same_kind")
    np.testing.assert_array_equal(same_kind.predict_batch(x.astype(np.float64))["y"], reference(x))
    np.testing.assert_array_equal(same_kind.predict(x[0].astype(np.float64))["y"], reference(x)[0])
    safe = InferenceEngine(LinearModel(), cast_inputs="safe")
    np.testing.assert_array_equal(safe.predict(x[0].astype(np.int8))["y"], reference(x)[0])
    with pytest.raises(InvalidInputError, match=r"float64 and cannot be cast to float32 .*'safe'"):
        safe.predict(x[0].astype(np.float64))


def test_shape_and_name_errors() -> None:
    engine = InferenceEngine(LinearModel())
    with pytest.raises(
        InvalidInputError, match=r"'x'.*\(item 0\).*shape \(4,\) per item.*got \(5,\)"
    ):
        engine.predict(np.zeros(5, np.float32))
    with pytest.raises(InvalidInputError, match=r"'x'.*\(item 1\).*got \(2, 4\)"):
        engine.predict_batch([np.zeros(4, np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(InvalidInputError, match=r"missing 'x'; unexpected 'z'"):
        engine.predict({"z": np.zeros(4, np.float32)})
    with pytest.raises(InvalidInputError, match="must have shape"):
        engine.predict_batch(np.zeros((2, 5), np.float32))
    with pytest.raises(  # one item given as a batch: the message shows the whole array's shape
        InvalidInputError, match=r"got \(\) \(the stacked batch is x: \(4,\), its first axis"
    ):
        engine.predict_batch(np.zeros(4, np.float32))
    with pytest.raises(InvalidInputError, match="empty list"):
        engine.predict_batch([])
    with pytest.raises(InvalidInputError, match="not str"):
        engine.predict_batch("text")
    with pytest.raises(InvalidInputError, match="give the engine a preprocessor"):
        engine.predict("a path")


def test_stacked_raw_items_with_a_preprocessor_say_the_preprocessor_is_skipped() -> None:
    engine = InferenceEngine(LinearModel(), lambda raw: raw.astype(np.float32), num_workers=0)
    raw = np.zeros((3, 4), np.uint8)
    with pytest.raises(InvalidInputError, match=r"without the preprocessor: pass a list of raw"):
        engine.predict_batch(raw)
    np.testing.assert_array_equal(engine.predict_batch(list(raw))["y"], reference(raw * 1.0))


def test_bad_arguments() -> None:
    model = LinearModel()
    with pytest.raises(InvalidArgumentError, match=r"device 'cuda' disagrees .* cpu"):
        InferenceEngine(model, device="cuda")
    assert InferenceEngine(model, device="cpu").device == Device("cpu")
    with pytest.raises(InvalidArgumentError, match="batch_size must be >= 1"):
        InferenceEngine(model, batch_size=0)
    with pytest.raises(InvalidArgumentError, match="prefetch"):
        InferenceEngine(model, prefetch=0)
    with pytest.raises(InvalidArgumentError, match="num_workers"):
        InferenceEngine(model, num_workers=-1)
    with pytest.raises(InvalidArgumentError, match="cast_inputs"):
        InferenceEngine(model, cast_inputs="unsafe")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="load options"):
        InferenceEngine(model, intra_op_threads=1)
    with pytest.raises(InvalidArgumentError, match="a loaded Model or a path"):
        InferenceEngine(42)  # type: ignore[arg-type]


# -- datasets -----------------------------------------------------------------------------------


def test_dataset_keeps_order_and_reports_a_bad_input_in_the_middle() -> None:
    x = data(11)
    items: list[Any] = list(x)
    items[5] = np.zeros(7, np.float32)  # wrong shape
    items[8] = "not an array"
    engine = InferenceEngine(LinearModel(), batch_size=4, num_workers=2)
    result = engine.run_dataset(items)
    assert isinstance(result, DatasetResult)
    assert len(result) == 11
    assert [f.index for f in result.failures] == [5, 8]
    assert "'x' of model 'linear' (item 5) must have shape (4,) per item" in (
        result.failures[0].reason
    )
    assert "InvalidInputError" in result.failures[1].reason
    assert result.succeeded == 9
    for i, out in enumerate(result.outputs):
        if i in (5, 8):
            assert out is None
        else:
            assert out is not None
            np.testing.assert_array_equal(out["y"], reference(x[i : i + 1])[0])
    assert result.batch_sizes == [4, 3, 2]
    assert result.sources[3] == "item 3"
    assert not result.interrupted
    assert result.elapsed_s > 0
    assert result.items_per_s > 0
    np.testing.assert_array_equal(
        result.stacked(fill=None), reference(np.delete(x, [5, 8], axis=0))
    )
    aligned = result.stacked()  # row i is input i's; a failed input's row is NaN
    assert aligned.shape == (11, *reference(x[:1]).shape[1:])
    np.testing.assert_array_equal(result.succeeded_mask, [i not in (5, 8) for i in range(11)])
    assert np.isnan(aligned[[5, 8]]).all()
    np.testing.assert_array_equal(aligned[result.succeeded_mask], result.stacked(fill=None))


def test_dataset_sources_arrays_dicts_generators() -> None:
    x = data(9)
    engine = InferenceEngine(LinearModel(), batch_size=4, num_workers=0)
    for source in (x, {"x": x}, (row for row in x)):
        result = engine.run_dataset(source)
        np.testing.assert_array_equal(result.stacked("y"), reference(x))
    with pytest.raises(InvalidArgumentError, match="different lengths"):
        engine.run_dataset({"x": x, "z": x[:2]})
    with pytest.raises(InvalidArgumentError, match="cannot run a dataset from a int"):
        engine.run_dataset(5)
    with pytest.raises(InvalidArgumentError, match="not a folder"):
        engine.run_dataset("/no/such/folder")
    with pytest.raises(InvalidArgumentError, match="needs a preprocessor"):
        engine.run_dataset(Path(__file__).parent)
    with pytest.raises(InvalidArgumentError, match="no input ran"):
        engine.run_dataset([]).stacked()
    with pytest.raises(InvalidArgumentError, match="no output 'z'"):
        engine.run_dataset(x).stacked("z")


def test_sources_that_are_not_datasets_are_typed_errors() -> None:
    engine = InferenceEngine(LinearModel())
    with pytest.raises(InvalidArgumentError, match="'x' is a scalar"):
        engine.run_dataset({"x": np.float32(1)})
    with pytest.raises(InvalidArgumentError, match="it is empty"):
        engine.run_dataset({})
    with pytest.raises(InvalidArgumentError, match=r"a dataset of bytes.*give \[data\]"):
        engine.run_dataset(b"\xff\xd8 one encoded image")


def test_stream_yields_in_order_as_batches_finish() -> None:
    model = LinearModel()
    engine = InferenceEngine(model, batch_size=3, num_workers=1)
    x = data(7)
    stream = engine.run_dataset([*x[:4], "bad", *x[4:]], stream=True)
    assert isinstance(stream, Iterator)
    first = next(stream)
    assert isinstance(first, ItemResult)
    assert first.index == 0
    assert first.ok
    assert model.calls == [3]  # results come before the whole dataset has run
    rest = list(stream)
    assert [r.index for r in rest] == list(range(1, 8))
    assert rest[3].error is not None
    assert not rest[3].ok
    assert rest[3].outputs is None
    ok_rows = [first, *rest[:3], *rest[4:]]
    np.testing.assert_array_equal(np.stack([r.outputs["y"] for r in ok_rows]), reference(x))


def test_progress_bar_forced_and_off() -> None:
    x = data(10)
    buffer = io.StringIO()
    InferenceEngine(LinearModel(), batch_size=4, progress=True, progress_file=buffer).run_dataset(x)
    assert "10/10" in buffer.getvalue()
    assert "linear" in buffer.getvalue()
    quiet = io.StringIO()
    InferenceEngine(LinearModel(), batch_size=4, progress=False, progress_file=quiet).run_dataset(x)
    auto = io.StringIO()  # not a terminal: no bar by default
    InferenceEngine(LinearModel(), batch_size=4, progress_file=auto).run_dataset(x)
    assert quiet.getvalue() == ""
    assert auto.getvalue() == ""


class FailsOnCall(LinearModel):
    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if len(self.calls) == self.fail_at:
            raise ValueError("kernel exploded")
        return super().run_native(inputs)


def test_model_failure_stops_with_partial_result() -> None:
    x = data(10)
    engine = InferenceEngine(FailsOnCall(fail_at=2), batch_size=3, num_workers=2)
    with pytest.raises(InferenceError, match=r"failed on a batch of 3: ValueError: kernel") as info:
        engine.run_dataset(x)
    partial = info.value.partial_result
    assert isinstance(partial, DatasetResult)
    assert len(partial) == 6
    assert not partial.interrupted
    np.testing.assert_array_equal(partial.stacked(), reference(x[:6]))
    with pytest.raises(InferenceError, match="kernel exploded"):
        InferenceEngine(FailsOnCall(fail_at=0)).predict(x[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_source_that_fails_part_way_keeps_the_items_before_it(workers: int) -> None:
    x = data(10)

    def rows() -> Iterator[np.ndarray]:
        for i, row in enumerate(x):
            if i == 7:
                raise OSError("network share went away")
            yield row

    engine = InferenceEngine(LinearModel(), batch_size=3, num_workers=workers, prefetch=2)
    with pytest.raises(
        DatasetSourceError, match=r"raised OSError after 7 item\(s\): network share went away"
    ) as info:
        engine.run_dataset(rows())
    assert isinstance(info.value.__cause__, OSError)
    partial = info.value.partial_result
    assert len(partial) == 7
    np.testing.assert_array_equal(partial.stacked("y"), reference(x[:7]))

    streamed: list[Any] = []

    def consume() -> None:
        for item in engine.run_dataset(rows(), stream=True):
            streamed.append(item.outputs)

    with pytest.raises(DatasetSourceError):
        consume()
    assert len(streamed) == 7  # every item read before the failure was yielded first


def test_ctrl_c_keeps_partial_results() -> None:
    x = data(20)

    def preprocess(i: int) -> np.ndarray:
        if i == 13:
            raise KeyboardInterrupt
        return x[i]

    engine = InferenceEngine(LinearModel(), preprocess, batch_size=4, num_workers=0)
    with pytest.raises(KeyboardInterrupt) as info:
        engine.run_dataset(range(20))
    partial = info.value.partial_result  # type: ignore[attr-defined]
    assert partial.interrupted
    assert len(partial) == 12
    np.testing.assert_array_equal(partial.stacked(), reference(x[:12]))


def test_folder_of_images_in_sorted_order_with_a_corrupt_file(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image")
    for i, name in enumerate(["b.png", "a.jpg", "c.bmp"]):
        image_mod.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(tmp_path / name)
    (tmp_path / "b2.jpeg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("skipped: not an image extension")

    def mean_colour(path: Any) -> np.ndarray:
        from pyinfer.preprocess import Decode

        pixels = np.asarray(Decode()(path), dtype=np.float32)
        return np.array([*pixels.mean(axis=(0, 1)), 1.0], np.float32)

    engine = InferenceEngine(LinearModel(), mean_colour, batch_size=2, progress=False)
    result = engine.run_dataset(tmp_path)
    assert [Path(s).name for s in result.sources] == ["a.jpg", "b.png", "b2.jpeg", "c.bmp"]
    assert [f.index for f in result.failures] == [2]
    assert "b2.jpeg" in result.failures[0].reason
    assert "cannot decode" in result.failures[0].reason
    expected_b = reference(np.array([[0, 0, 0, 1]], np.float32))[0]
    np.testing.assert_array_equal(result.outputs[1]["y"], expected_b)  # type: ignore[index]
    expected_c = reference(np.array([[80, 80, 80, 1]], np.float32))[0]
    np.testing.assert_array_equal(result.outputs[3]["y"], expected_c)  # type: ignore[index]


def test_folder_of_class_subfolders_warns_instead_of_silently_running_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.png").write_bytes(b"unread")
    engine = InferenceEngine(LinearModel(), lambda p: np.zeros(4, np.float32), progress=False)
    with caplog.at_level(logging.WARNING, logger="pyinfer.engine"):
        result = engine.run_dataset(tmp_path)
    assert len(result) == 0
    assert "has no image files of its own but 1 subfolders, which are not read" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyinfer.engine"):
        assert len(engine.run_dataset(tmp_path / "cats")) == 1
    assert not caplog.text


# -- out of memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [TorchLikeOOMError, ResourceExhaustedError, lambda m: ort_oom()])
def test_oom_halves_the_batch_and_loses_nothing(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    x = data(21)
    model = OomAbove(limit=3, make=make)
    engine = InferenceEngine(model, batch_size=8, num_workers=2)
    with caplog.at_level(logging.WARNING, logger="pyinfer.engine"):
        result = engine.run_dataset(x)
    assert len(result) == 21
    assert not result.failures
    np.testing.assert_array_equal(result.stacked(), reference(x))
    assert result.oom_retries == 2  # 8 -> 4 -> 2, then it stays at 2
    assert max(result.batch_sizes) <= 3
    assert sum(result.batch_sizes) == 21
    assert "ran out of memory on a batch of 8; retrying the same items in batches of 4" in (
        caplog.text
    )
    out = engine.predict_batch(x)  # remembers the size that fits
    np.testing.assert_array_equal(out["y"], reference(x))
    assert max(out.batch_sizes) == 2
    assert out.oom_retries == 0


def test_oom_at_batch_one_raises_with_partial_result() -> None:
    class RunsOut(LinearModel):
        def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
            if len(self.calls) >= 2:
                raise MemoryError("host allocation failed")
            return super().run_native(inputs)

    x = data(9)
    with pytest.raises(OutOfMemoryError, match="ran out of memory on one item") as info:
        InferenceEngine(RunsOut(), batch_size=4, num_workers=0).run_dataset(x)
    partial = info.value.partial_result
    assert len(partial) == 8
    np.testing.assert_array_equal(partial.stacked(), reference(x[:8]))
    fixed = LinearModel(batch=4)
    fixed.run_native = lambda inputs: (_ for _ in ()).throw(TorchLikeOOMError("out of memory"))  # type: ignore[method-assign]
    with pytest.raises(OutOfMemoryError, match="fixed batch of 4"):
        InferenceEngine(fixed).predict(x[0])


def test_find_max_batch_size_binary_search_with_back_off() -> None:
    assert InferenceEngine(OomAbove(limit=37)).find_max_batch_size(limit=1024) == 37
    flaky = OomAbove(limit=37, flaky_at=16)  # 16 fails once, fits on the retry
    assert InferenceEngine(flaky).find_max_batch_size() == 37
    assert flaky.flaky_at is None
    assert InferenceEngine(OomAbove(limit=37)).find_max_batch_size(limit=20) == 20
    assert InferenceEngine(OomAbove(limit=37)).find_max_batch_size(start=3, limit=3) == 3
    assert InferenceEngine(LinearModel(batch=4)).find_max_batch_size() == 4
    with pytest.raises(OutOfMemoryError, match="at batch 1"):
        InferenceEngine(OomAbove(limit=0)).find_max_batch_size()
    with pytest.raises(InvalidArgumentError, match="start <= limit"):
        InferenceEngine(LinearModel()).find_max_batch_size(limit=2, start=4)
    example = np.ones(4, np.float32)
    assert InferenceEngine(OomAbove(limit=5)).find_max_batch_size(example=example) == 5


def test_batch_size_search_on_a_model_without_declared_shapes() -> None:
    model = OomAbove(limit=5)
    model.inputs = (TensorSpec("x", None, np.float32),)  # as a TorchScript file loads
    engine = InferenceEngine(model)
    with pytest.raises(InvalidArgumentError, match=r"no declared shape.*; or pass example="):
        engine.find_max_batch_size(limit=8)
    assert engine.find_max_batch_size(limit=8, example=data(1)[0]) == 5


class SleepyModel(LinearModel):
    """A batch takes 2 ms + 2 ms per item: throughput grows with the batch, so does latency."""

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        time.sleep(0.002 + 0.002 * len(inputs["x"]))
        return super().run_native(inputs)


def test_best_batch_size_within_a_latency_budget() -> None:
    engine = InferenceEngine(SleepyModel())
    free = engine.best_batch_size(candidates=[1, 2, 4, 8], iterations=3, warmup=1)
    assert free.batch_size == 8
    assert [m.batch_size for m in free.measurements] == [1, 2, 4, 8]
    assert all(m.within_budget for m in free.measurements)
    assert free.measurements[0].latency_ms >= 4.0
    budget = engine.best_batch_size(12.5, [1, 2, 4, 8], iterations=3, warmup=1)
    assert budget.batch_size == 4
    assert budget.latency_budget_ms == 12.5
    assert not budget.measurements[3].within_budget
    assert "chosen" in budget.table()
    assert "too slow" in budget.table()
    with pytest.raises(InvalidArgumentError, match=r"no batch size .* 0.001 ms \(fastest: "):
        engine.best_batch_size(0.001, [1, 2], iterations=2, warmup=0)
    with pytest.raises(InvalidArgumentError, match="positive"):
        engine.best_batch_size(candidates=[0])
    with pytest.raises(InvalidArgumentError, match="candidates must be positive"):
        engine.best_batch_size(candidates=[])  # not silently the default sizes


def test_best_batch_size_skips_sizes_that_do_not_fit() -> None:
    choice = InferenceEngine(OomAbove(limit=4)).best_batch_size(
        candidates=[2, 4, 8], iterations=2, warmup=0
    )
    assert [m.out_of_memory for m in choice.measurements] == [False, False, True]
    assert choice.batch_size in (2, 4)
    assert "out of memory" in choice.table()
    assert InferenceEngine(LinearModel(batch=4)).best_batch_size(iterations=2).batch_size == 4


# -- postprocessing -----------------------------------------------------------------------------


def test_softmax_is_stable_and_exact() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]], dtype=np.float32)
    probs = softmax(logits)
    e = np.exp(np.array([1.0, 2.0, 3.0]) - 3.0)
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(probs[1], [0.5, 0.5, 0.0], atol=1e-7)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(softmax([[0, 0], [0, 0]], axis=0), np.full((2, 2), 0.5))
    with pytest.raises(InvalidInputError, match="NaN"):
        softmax([1.0, np.nan])
    with pytest.raises(InvalidInputError, match="at least one"):
        softmax(np.zeros((2, 0)))


def test_top_k_with_labels_and_ties() -> None:
    scores = np.array([0.1, 0.4, 0.4, 0.05, 0.05])
    assert top_k(scores, 3) == [
        Prediction(1, None, 0.4),
        Prediction(2, None, 0.4),
        Prediction(0, None, 0.1),
    ]
    labels = ["cat", "dog", "fox", "owl", "eel"]
    assert top_k(scores, 10, labels)[-1] == Prediction(4, "eel", 0.05)
    rows = top_k_batch(np.array([[3.0, 1.0], [0.0, 2.0]]), 1, ["a", "b"])
    assert rows == [[Prediction(0, "a", 3.0)], [Prediction(1, "b", 2.0)]]
    with pytest.raises(InvalidArgumentError, match="2 labels given for 5 classes"):
        top_k(scores, 2, ["a", "b"])
    with pytest.raises(InvalidArgumentError, match="k must be >= 1"):
        top_k(scores, 0)
    with pytest.raises(InvalidInputError, match="use top_k_batch"):
        top_k(np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="batch, classes"):
        top_k_batch(np.zeros(3))


def test_classify_applies_softmax_to_logits() -> None:
    engine = InferenceEngine(LinearModel())
    x = np.array([1, 0, 2, 0], np.float32)  # logits relu(x @ W + B) = [1.5, 0, 5]
    logits = reference(x[None])[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = engine.classify(x, k=2, labels=["a", "b", "c"])
    assert [p.label for p in top] == ["c", "a"]
    assert top[0].score == pytest.approx(expected[2], rel=1e-6)
    raw = engine.classify(x, k=1, apply_softmax=False)
    assert raw == [Prediction(2, None, 5.0)]
    with pytest.raises(InvalidArgumentError, match="no output 'p'"):
        engine.classify(x, output="p")


# -- text end to end ----------------------------------------------------------------------------


class MaskedSum(Model):
    """Sums the token ids under the attention mask: checks padding and masks end to end."""

    def __init__(self) -> None:
        super().__init__(
            name="masked-sum",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[
                TensorSpec("input_ids", ("batch", "sequence"), np.int64),
                TensorSpec("attention_mask", ("batch", "sequence"), np.int64),
            ],
            outputs=[TensorSpec("total", ("batch",), np.int64)],
            parameter_count=0,
            parameter_bytes=0,
        )

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"total": (inputs["input_ids"] * inputs["attention_mask"]).sum(axis=1)}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return dict(outputs)


def test_text_dataset_padded_to_the_longest_of_each_batch() -> None:
    texts = ["the cat sat", "the dog", "a cat, a dog and the owl!", "owl"]
    tokenizer = VocabTokenizer.from_corpus(texts)
    pipeline = TextPipeline(tokenizer, max_length=6, padding="longest")
    engine = InferenceEngine(MaskedSum(), pipeline, batch_size=2, num_workers=1)
    result = engine.run_dataset(texts)
    expected = [
        sum([*tokenizer.encode(t)[:5], 3])
        if len(tokenizer.encode(t)) > 6
        else sum(tokenizer.encode(t))
        for t in texts
    ]
    assert [int(o["total"]) for o in result.outputs] == expected  # type: ignore[index]
    with pytest.raises(InvalidInputError, match="token_type_ids"):
        InferenceEngine(MaskedSum(), TextPipeline(tokenizer, token_type_ids=True))


class DtypeRecordingSum(MaskedSum):
    """MaskedSum that records the dtypes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[str] = set()

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.dtypes.update(v.dtype.name for v in inputs.values())
        return super().run_native(inputs)


class CheckWithoutCasting:
    """A user preprocessor whose check() predates the casting keyword."""

    def __init__(self) -> None:
        self.checked = 0

    def __call__(self, text: str) -> dict[str, np.ndarray]:
        ids = np.arange(1, len(text) + 1, dtype=np.int32)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    def check(self, model: Model) -> None:
        self.checked += 1


def test_int32_text_pipeline_runs_with_cast_inputs() -> None:
    texts = ["the cat sat", "the dog", "owl"]
    tokenizer = VocabTokenizer.from_corpus(texts)
    pipeline = TextPipeline(tokenizer, max_length=6, padding="longest", dtype=np.int32)
    with pytest.raises(InvalidInputError, match="cast_inputs='safe'"):
        InferenceEngine(MaskedSum(), pipeline)
    model = DtypeRecordingSum()
    engine = InferenceEngine(model, pipeline, batch_size=2, num_workers=0, cast_inputs="safe")
    result = engine.run_dataset(texts)
    assert not result.failures
    assert [int(o["total"]) for o in result.outputs] == [  # type: ignore[index]
        sum(tokenizer.encode(t)) for t in texts
    ]
    assert model.dtypes == {"int64"}  # the batch kept the cast dtype, not the pipeline's
    custom = CheckWithoutCasting()
    engine = InferenceEngine(DtypeRecordingSum(), custom, cast_inputs="safe", num_workers=0)
    assert custom.checked == 1
    assert int(engine.predict("abc")["total"]) == 6


# -- the staged (pinned ring) path, run on the host -------------------------------------------


def staged_engine(model: Model, **kwargs: Any) -> InferenceEngine:
    """An engine whose batches go through the pinned-ring staging path (pageable memory here).

    On a GPU the ring is page-locked and the copy is an upload; the order of staging, running
    and reading results is the same, and that is what these tests check without a GPU.
    """
    from pyinfer.engine.upload import _CudaUploader

    engine = InferenceEngine(model, **kwargs)
    engine._uploader = _CudaUploader(model, allow_pageable=True)
    return engine


def test_staged_path_gives_ordered_exact_results() -> None:
    x = data(13)
    items: list[Any] = list(x)
    items[6] = "bad"
    with staged_engine(LinearModel(), batch_size=4) as engine:
        result = engine.run_dataset(items)
        ring = engine._uploader.ring  # type: ignore[union-attr]
        assert ring is not None
        assert ring.slots == 2
        assert not ring.pinned
    assert engine._uploader is None  # closed with the engine
    assert [f.index for f in result.failures] == [6]
    np.testing.assert_array_equal(result.stacked(fill=None), reference(np.delete(x, 6, axis=0)))
    assert result.batch_sizes == [4, 3, 4, 1]
    with staged_engine(LinearModel(batch=4), batch_size=4) as fixed:
        padded = fixed.run_dataset(x)
    np.testing.assert_array_equal(padded.stacked(), reference(x))
    assert padded.padded_items == 3
    assert padded.batch_sizes == [4, 4, 4, 1]


def test_staged_path_backs_off_on_oom_and_stops_on_errors() -> None:
    x = data(17)
    with staged_engine(OomAbove(limit=3), batch_size=8) as engine:
        result = engine.run_dataset(x)
        np.testing.assert_array_equal(result.stacked(), reference(x))
        assert result.oom_retries == 2
        assert max(result.batch_sizes) <= 3
    failing = staged_engine(FailsOnCall(fail_at=1), batch_size=4)
    with pytest.raises(InferenceError, match="kernel exploded") as info:
        failing.run_dataset(x)
    failing.close()  # the error's traceback still holds a view of the ring: closing copes
    assert len(info.value.partial_result) == 4


# -- on a GPU (pytest -m gpu) -------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_pinned_overlapped_upload_matches_the_plain_path(torch_module: ModuleType) -> None:
    from pyinfer.loading import PyTorchModelLoader

    torch = torch_module
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 5),
    )
    model = PyTorchModelLoader(input_shapes={"input": (None, 3, 16, 16)}).from_module(
        net, device="cuda"
    )
    x = np.random.default_rng(3).standard_normal((37, 3, 16, 16)).astype(np.float32)
    with InferenceEngine(model, batch_size=8, overlap_upload=True) as overlapped:
        staged = overlapped.run_dataset(x)
        ring = overlapped._uploader.ring  # type: ignore[union-attr]
        assert ring is not None
        assert ring.pinned
    plain = InferenceEngine(model, batch_size=8, overlap_upload=False)
    assert plain._uploader is None
    np.testing.assert_allclose(staged.stacked(), plain.run_dataset(x).stacked(), rtol=1e-5)
    with torch.inference_mode():
        expected = net.cpu()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(staged.stacked(), expected, rtol=1e-3, atol=1e-4)
    assert staged.batch_sizes == [8, 8, 8, 8, 5]


def test_top_k_ranks_on_the_raw_scores_when_softmax_cannot_tell_them_apart() -> None:
    # Logits of a randomly initialised network can be ~1e-10 apart: a float32 softmax makes
    # them all exactly 1/n, and ranking the probabilities would return classes 0, 1, 2.
    logits = np.zeros(1000, dtype=np.float32)
    logits[[7, 502, 99]] = [3e-10, 9e-10, 6e-10]
    assert np.unique(softmax(logits)).size == 1
    got = top_k(logits, 3, apply_softmax=True)
    assert [p.class_index for p in got] == [502, 99, 7]
    assert [p.score for p in got] == pytest.approx([1e-3] * 3)
    batch = top_k_batch(np.stack([logits, -logits]), 1, apply_softmax=True)
    assert [row[0].class_index for row in batch] == [502, 0]


def test_top_k_softmax_none_keeps_probabilities_and_converts_logits() -> None:
    probabilities = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    assert [(p.class_index, p.score) for p in top_k(probabilities, 2, apply_softmax=None)] == [
        (1, pytest.approx(0.6)),
        (2, pytest.approx(0.3)),
    ]
    logits = np.array([0.0, 2.0, 1.0])
    want = np.exp(logits) / np.exp(logits).sum()
    got = top_k(logits, 2, apply_softmax=None)
    assert [p.class_index for p in got] == [1, 2]
    assert [p.score for p in got] == pytest.approx(want[[1, 2]].tolist())
    # one row of logits among probabilities: every row is softmaxed
    rows = top_k_batch(np.stack([probabilities, np.array([5.0, -1.0, 0.0])]), 1, apply_softmax=None)
    assert rows[0][0].score == pytest.approx(float(softmax(probabilities)[1]))
