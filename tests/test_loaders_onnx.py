"""The ONNX Runtime backend: tiny ONNX models built with onnx.helper at test time."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pyinfer.backends import frameworks
from pyinfer.backends import onnx as onnx_backend
from pyinfer.backends.base import Device, ModelFormat
from pyinfer.errors import (
    CorruptModelError,
    CudaUnavailableError,
    DeviceError,
    FrameworkNotInstalledError,
    InvalidArgumentError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemoryError,
    UnknownFormatError,
)
from pyinfer.loading import ONNXModelLoader, load_model

OPSET = 17
IR_VERSION = 9  # what onnxruntime 1.18+ reads; onnx.helper would write the newest

# Fixed weights with small integer values: float32 arithmetic on them is exact, so the model's
# output can be compared with numpy's for equality.
W = np.array([[1, -2, 0], [3, 1, -1], [0, 2, 2], [-1, 0, 1]], dtype=np.float32)
B = np.array([0.5, -4.0, 1.0], dtype=np.float32)


@pytest.fixture
def onnx_pair(onnx_module: ModuleType, onnxruntime_module: ModuleType) -> ModuleType:
    """The onnx module, with onnxruntime present too (every test here needs both)."""
    return onnx_module


def _save(onnx: ModuleType, graph: Any, path: Path, **save_kwargs: Any) -> Path:
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path), **save_kwargs)
    return path


def _linear_relu(onnx: ModuleType, path: Path, batch: Any = "N", **save_kwargs: Any) -> Path:
    """y = relu(x @ W + B), x of shape (batch, 4)."""
    h = onnx.helper
    tp = onnx.TensorProto
    graph = h.make_graph(
        [
            h.make_node("MatMul", ["x", "W"], ["xw"]),
            h.make_node("Add", ["xw", "B"], ["pre"]),
            h.make_node("Relu", ["pre"], ["y"]),
        ],
        "linear_relu",
        [h.make_tensor_value_info("x", tp.FLOAT, [batch, 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, [batch, 3])],
        [onnx.numpy_helper.from_array(W, "W"), onnx.numpy_helper.from_array(B, "B")],
    )
    return _save(onnx, graph, path, **save_kwargs)


def _expected(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W + B, 0)


def _add_pair(onnx: ModuleType, path: Path) -> Path:
    """z = x + y with x, y of shape (N, ?): the batch is shared, the second dim unnamed."""
    h = onnx.helper
    tp = onnx.TensorProto
    graph = h.make_graph(
        [h.make_node("Add", ["x", "y"], ["z"])],
        "add_pair",
        [
            h.make_tensor_value_info("x", tp.FLOAT, ["N", None]),
            h.make_tensor_value_info("y", tp.FLOAT, ["N", None]),
        ],
        [h.make_tensor_value_info("z", tp.FLOAT, ["N", None])],
    )
    return _save(onnx, graph, path)


@pytest.fixture
def linear_path(onnx_pair: ModuleType, tmp_path: Path) -> Path:
    return _linear_relu(onnx_pair, tmp_path / "linear.onnx")


def _load(path: Path, device: str = "cpu", **options: Any) -> onnx_backend.OnnxModel:
    model = load_model(path, device=device, **options)
    assert isinstance(model, onnx_backend.OnnxModel)
    return model


# -- correct results -----------------------------------------------------------------------


def test_known_model_returns_exactly_the_numpy_result(linear_path: Path, rng: Any) -> None:
    model = _load(linear_path)
    x = rng.integers(-5, 6, size=(5, 4)).astype(np.float32)
    out = model({"x": x})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], _expected(x))
    assert (out["y"] == 0).any()  # the Relu did clip something: the test would see it missing
    assert model.format is ModelFormat.ONNX
    assert model.framework == "onnxruntime"
    assert model.device == Device("cpu")
    assert model.name == "linear"
    assert model.path == linear_path
    assert model.parameter_count == W.size + B.size == 15
    assert model.parameter_bytes == 15 * 4
    assert model.load_time_s > 0
    assert model.stream_handle is None


def test_multi_input_multi_output_keep_names_and_order(
    onnx_pair: ModuleType, tmp_path: Path
) -> None:
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    graph = h.make_graph(
        [
            h.make_node("Mul", ["zeta", "alpha"], ["product"]),
            h.make_node("Sub", ["zeta", "alpha"], ["difference"]),
            h.make_node("Add", ["zeta", "alpha"], ["a_sum"]),
        ],
        "three_outputs",
        [
            h.make_tensor_value_info("zeta", tp.FLOAT, [2, 3]),
            h.make_tensor_value_info("alpha", tp.FLOAT, [2, 3]),
        ],
        [
            h.make_tensor_value_info("product", tp.FLOAT, [2, 3]),
            h.make_tensor_value_info("difference", tp.FLOAT, [2, 3]),
            h.make_tensor_value_info("a_sum", tp.FLOAT, [2, 3]),
        ],
    )
    model = _load(_save(onnx_pair, graph, tmp_path / "multi.onnx"))
    assert model.input_names() == ["zeta", "alpha"]
    assert model.output_names() == ["product", "difference", "a_sum"]
    z = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = np.full((2, 3), 2.0, dtype=np.float32)
    out = model([z, a])  # a list is taken in input order
    assert list(out) == ["product", "difference", "a_sum"]
    np.testing.assert_array_equal(out["product"], z * a)
    np.testing.assert_array_equal(out["difference"], z - a)
    np.testing.assert_array_equal(out["a_sum"], z + a)
    assert model.parameter_count == 0
    assert not model.has_dynamic_batch


def test_symbolic_and_unnamed_dims_are_reported(onnx_pair: ModuleType, tmp_path: Path) -> None:
    model = _load(_add_pair(onnx_pair, tmp_path / "add.onnx"))
    x_spec, y_spec = model.inputs
    assert x_spec.shape == ("N", None)
    assert y_spec.shape == ("N", None)
    assert model.outputs[0].shape == ("N", None)
    assert x_spec.dynamic_axes == (0, 1)
    assert model.has_dynamic_batch
    assert x_spec.shape_text() == "(N, ?)"


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_runs(linear_path: Path, batch: int, rng: Any) -> None:
    model = _load(linear_path)
    assert model.inputs[0].shape == ("N", 4)
    assert model.outputs[0].shape == ("N", 3)
    x = rng.standard_normal((batch, 4)).astype(np.float32)
    y = model(x)["y"]
    assert y.shape == (batch, 3)
    np.testing.assert_allclose(y, _expected(x), rtol=1e-6, atol=1e-6)


def test_example_inputs_run(linear_path: Path) -> None:
    model = _load(linear_path)
    out = model(model.example_inputs(batch_size=3))
    assert out["y"].shape == (3, 3)


def test_int64_and_float16_inputs(onnx_pair: ModuleType, tmp_path: Path) -> None:
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    graph = h.make_graph(
        [
            h.make_node("Cast", ["ids"], ["ids_half"], to=tp.FLOAT16),
            h.make_node("Mul", ["ids_half", "scale"], ["scaled"]),
            h.make_node("Add", ["ids", "ids"], ["doubled"]),
        ],
        "types",
        [
            h.make_tensor_value_info("ids", tp.INT64, ["batch", 3]),
            h.make_tensor_value_info("scale", tp.FLOAT16, ["batch", 3]),
        ],
        [
            h.make_tensor_value_info("scaled", tp.FLOAT16, ["batch", 3]),
            h.make_tensor_value_info("doubled", tp.INT64, ["batch", 3]),
        ],
    )
    model = _load(_save(onnx_pair, graph, tmp_path / "types.onnx"))
    assert [s.dtype for s in model.inputs] == [np.dtype(np.int64), np.dtype(np.float16)]
    assert [s.dtype for s in model.outputs] == [np.dtype(np.float16), np.dtype(np.int64)]
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    scale = np.full((2, 3), 0.5, dtype=np.float16)
    out = model({"ids": ids, "scale": scale})
    assert out["scaled"].dtype == np.float16
    np.testing.assert_array_equal(out["scaled"], ids.astype(np.float16) * scale)
    np.testing.assert_array_equal(out["doubled"], ids * 2)
    with pytest.raises(InvalidInputError, match=r"'ids'.*must be int64, got int32"):
        model({"ids": ids.astype(np.int32), "scale": scale})


def test_type_numpy_lacks_is_object_with_a_warning(
    onnx_pair: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    graph = h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])],
        "bf16",
        [h.make_tensor_value_info("x", tp.BFLOAT16, [2])],
        [h.make_tensor_value_info("y", tp.BFLOAT16, [2])],
    )
    with caplog.at_level(logging.WARNING, logger="pyinfer.backends.onnx"):
        model = _load(_save(onnx_pair, graph, tmp_path / "bf16.onnx"))
    assert model.inputs[0].dtype == np.dtype(object)
    assert "input 'x' has type tensor(bfloat16)" in caplog.text


def test_external_data_model_loads_from_its_folder(
    onnx_pair: ModuleType, tmp_path: Path, rng: Any
) -> None:
    path = _linear_relu(
        onnx_pair,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "ext.onnx.data").stat().st_size == (W.size + B.size) * 4
    model = _load(path)
    assert model.parameter_count == 15
    assert model.parameter_bytes == 60
    x = rng.integers(-3, 4, size=(2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x)["y"], _expected(x))


def test_subgraph_initializers_are_counted(onnx_pair: ModuleType, tmp_path: Path) -> None:
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    nh = onnx_pair.numpy_helper

    def branch(name: str, value: np.ndarray) -> Any:
        return h.make_graph(
            [h.make_node("Identity", [f"{name}_w"], [f"{name}_out"])],
            name,
            [],
            [h.make_tensor_value_info(f"{name}_out", tp.FLOAT, [2, 2])],
            [nh.from_array(value, f"{name}_w")],
        )

    graph = h.make_graph(
        [
            h.make_node(
                "If",
                ["cond"],
                ["y"],
                then_branch=branch("then", np.ones((2, 2), np.float32)),
                else_branch=branch("else", np.zeros((2, 2), np.float32)),
            )
        ],
        "if_model",
        [h.make_tensor_value_info("cond", tp.BOOL, [])],
        [h.make_tensor_value_info("y", tp.FLOAT, [2, 2])],
        [nh.from_array(np.zeros(5, np.float64), "unused_double")],
    )
    model = _load(_save(onnx_pair, graph, tmp_path / "if.onnx"))
    assert model.parameter_count == 4 + 4 + 5
    assert model.parameter_bytes == 4 * 4 + 4 * 4 + 5 * 8
    np.testing.assert_array_equal(model({"cond": np.array(True)})["y"], np.ones((2, 2)))
    np.testing.assert_array_equal(model({"cond": np.array(False)})["y"], np.zeros((2, 2)))


def test_without_protobuf_parameters_are_zero(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> ModuleType:
        raise FrameworkNotInstalledError("the protobuf package is not installed")

    monkeypatch.setattr(frameworks, "import_protobuf", missing)
    monkeypatch.setattr("pyinfer.backends.onnx.schema._model_class", None)
    model = _load(linear_path)
    assert (model.parameter_count, model.parameter_bytes) == (0, 0)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(model(x)["y"], _expected(x))


@pytest.mark.filterwarnings(
    # torch 2.14 deprecates the TorchScript-based exporter (dynamo=False) with this warning; the
    # legacy exporter is what the test wants, as it needs no onnxscript and writes one file.
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
)
@pytest.mark.filterwarnings(
    # ... and its own internals call deprecated torch.onnx helpers (setup_onnx_logging).
    "ignore:The feature will be removed. Please remove usage of this function:DeprecationWarning"
)
def test_parity_with_torch_eager(
    torch_module: ModuleType, onnx_pair: ModuleType, tmp_path: Path
) -> None:
    torch = torch_module
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        net,
        (torch.randn(2, 3, 16, 16),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    model = _load(path)
    assert model.inputs[0].shape == ("batch", 3, 16, 16)
    # The exporter folds the BatchNorm into the convolution: conv weight and bias + linear.
    assert model.parameter_count == 8 * 3 * 3 * 3 + 8 + 8 * 5 + 5
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    # Float32 through fused kernels (conv+BN folded by the exporter, ORT's own conv): the
    # outputs agree to a few ulps of their magnitude (about 1), so 1e-5 absolute is ample.
    np.testing.assert_allclose(model(x)["logits"], expected, rtol=1e-4, atol=1e-5)


# -- native path, closing ------------------------------------------------------------------


def test_run_native_with_ortvalues_uses_io_binding(
    linear_path: Path, onnxruntime_module: ModuleType
) -> None:
    model = _load(linear_path)
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    native = model.to_native({"x": x})
    assert native["x"] is x  # the CPU model runs on host arrays: no copy
    ort_x = onnxruntime_module.OrtValue.ortvalue_from_numpy(x)
    out = model.run_native({"x": ort_x})
    assert isinstance(out["y"], onnxruntime_module.OrtValue)
    model.synchronize()
    np.testing.assert_array_equal(model.to_numpy(out)["y"], _expected(x))


def test_close_releases_the_session(linear_path: Path) -> None:
    with _load(linear_path) as model:
        assert model.session is not None
    with pytest.raises(InvalidArgumentError, match="was closed"):
        model(np.ones((1, 4), np.float32))


# -- options -------------------------------------------------------------------------------


def test_options_recorded_with_defaults(linear_path: Path, onnxruntime_module: ModuleType) -> None:
    model = _load(linear_path)
    assert model.options == {
        "providers": ["CPUExecutionProvider"],
        "requested_providers": ["CPUExecutionProvider"],
        "provider_options": {},
        "allow_fallback": False,
        "intra_op_threads": frameworks.physical_cores(),
        "inter_op_threads": 0,
        "graph_optimization": "all",
        "execution_mode": "sequential",
        "onnxruntime_version": onnxruntime_module.__version__,
    }
    applied = model.session.get_session_options()
    assert applied.intra_op_num_threads == frameworks.physical_cores()
    assert (
        applied.graph_optimization_level == onnxruntime_module.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    assert model.describe()["options"]["intra_op_threads"] == frameworks.physical_cores()


def test_explicit_options_are_applied(linear_path: Path, onnxruntime_module: ModuleType) -> None:
    model = ONNXModelLoader(
        intra_op_threads=1,
        inter_op_threads=2,
        execution_mode="parallel",
        providers=["CPUExecutionProvider"],
        provider_options={"CPUExecutionProvider": {"use_arena": "0"}},
    ).load(linear_path)
    applied = model.session.get_session_options()
    assert applied.intra_op_num_threads == 1
    assert applied.inter_op_num_threads == 2
    assert applied.execution_mode == onnxruntime_module.ExecutionMode.ORT_PARALLEL
    assert model.options["intra_op_threads"] == 1
    assert model.options["execution_mode"] == "parallel"
    assert model.options["provider_options"] == {"CPUExecutionProvider": {"use_arena": "0"}}


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("all", "ORT_ENABLE_ALL"),
        ("extended", "ORT_ENABLE_EXTENDED"),
        ("basic", "ORT_ENABLE_BASIC"),
        ("disable", "ORT_DISABLE_ALL"),
        (" Basic ", "ORT_ENABLE_BASIC"),
    ],
)
def test_graph_optimization_levels(
    linear_path: Path, onnxruntime_module: ModuleType, value: str, level: str, rng: Any
) -> None:
    model = _load(linear_path, graph_optimization=value)
    applied = model.session.get_session_options().graph_optimization_level
    assert applied == getattr(onnxruntime_module.GraphOptimizationLevel, level)
    assert model.options["graph_optimization"] == value.strip().lower()
    x = rng.integers(-3, 4, size=(2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x)["y"], _expected(x))


def test_unknown_option_lists_the_known_ones(linear_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        _load(linear_path, num_threads=2)
    message = str(info.value)
    assert "'num_threads'" in message
    assert str(linear_path) in message
    for known in onnx_backend.KNOWN_OPTIONS:
        assert known in message


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"graph_optimization": "max"}, "graph_optimization must be one of 'all'"),
        ({"graph_optimization": 99}, "graph_optimization must be one of"),
        ({"execution_mode": "async"}, "execution_mode must be one of 'sequential'"),
        ({"intra_op_threads": -1}, "intra_op_threads must be a whole number >= 0"),
        ({"inter_op_threads": 1.5}, "inter_op_threads must be a whole number"),
        ({"intra_op_threads": True}, "intra_op_threads must be a whole number"),
        ({"allow_fallback": "yes"}, "allow_fallback must be True or False"),
        ({"providers": "CPUExecutionProvider"}, "providers must be a list"),
        ({"providers": []}, "providers must be a list"),
        ({"providers": [("CPUExecutionProvider",)]}, "is neither"),
        ({"provider_options": {"CPUExecutionProvider": 1}}, "provider_options must map"),
        ({"provider_options": ["x"]}, "provider_options must map"),
        ({"input_shapes": [1, 4]}, "input_shapes must map input names"),
        ({"input_shapes": {"x": (1, -4)}}, "input_shapes must map input names"),
        ({"stream": "default"}, "stream must be a CUDA stream handle"),
    ],
)
def test_invalid_option_values(linear_path: Path, options: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidArgumentError, match=pattern):
        _load(linear_path, **options)


def test_wrong_format_is_refused(linear_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="loads ONNX models, not tflite"):
        onnx_backend.load(linear_path, ModelFormat.TFLITE, Device("cpu"), name="x")


def test_input_shapes_fix_named_dims_in_ort(
    onnx_pair: ModuleType, tmp_path: Path, rng: Any
) -> None:
    model = _load(_add_pair(onnx_pair, tmp_path / "add.onnx"), input_shapes={"x": (2, 3)})
    # The named batch is fixed inside ORT too (so y and the output follow); x's unnamed second
    # dimension is fixed by pyinfer's input check, y's stays dynamic.
    assert model.inputs[0].shape == (2, 3)
    assert model.inputs[1].shape == (2, None)
    assert model.outputs[0].shape[0] == 2
    assert model.options["input_shapes"] == {"x": [2, 3]}
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(model({"x": x, "y": y})["z"], x + y)
    with pytest.raises(InvalidInputError, match=r"input 'x'.*must have shape \(2, 3\)"):
        model({"x": np.zeros((3, 3), np.float32), "y": np.zeros((3, 3), np.float32)})


def test_input_shapes_errors(onnx_pair: ModuleType, tmp_path: Path) -> None:
    path = _add_pair(onnx_pair, tmp_path / "add.onnx")
    with pytest.raises(InvalidArgumentError, match=r"'nope'.*its inputs are 'x', 'y'"):
        _load(path, input_shapes={"nope": (1, 2)})
    with pytest.raises(InvalidArgumentError, match=r"dimension 'N'.*two sizes, 2 and 3"):
        _load(path, input_shapes={"x": (2, 3), "y": (3, 3)})
    linear = _linear_relu(onnx_pair, tmp_path / "linear.onnx")
    with pytest.raises(InvalidArgumentError, match=r"shape \(1, 5\).*does not fit.*\(N, 4\)"):
        _load(linear, input_shapes={"x": (1, 5)})


# -- runtime errors ------------------------------------------------------------------------


def test_conflicting_dynamic_dims_are_an_input_error(onnx_pair: ModuleType, tmp_path: Path) -> None:
    model = _load(_add_pair(onnx_pair, tmp_path / "add.onnx"))
    with pytest.raises(InvalidInputError) as info:
        model({"x": np.zeros((2, 4), np.float32), "y": np.zeros((3, 4), np.float32)})
    message = str(info.value)
    assert "model 'add'" in message
    assert "x (2, 4), y (3, 4)" in message
    assert "sharing a dynamic dimension (N)" in message


def test_ort_input_rejection_names_the_input(linear_path: Path) -> None:
    model = _load(linear_path)
    # run_native skips pyinfer's own checks, so this is ORT's error, mapped.
    with pytest.raises(
        InvalidInputError, match=r"input 'x' of model 'linear' was rejected.*\(N, 4\)"
    ):
        model.run_native({"x": np.zeros((1, 5), np.float32)})


def test_ort_allocation_failure_is_out_of_memory(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    model = _load(linear_path)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ort_state.RuntimeException("Failed to allocate memory for requested buffer of size 8")

    monkeypatch.setattr(model.session, "run", fail)
    with pytest.raises(OutOfMemoryError, match=r"out of memory running model 'linear'.*x \(1, 4\)"):
        model(np.ones((1, 4), np.float32))


def test_other_exceptions_pass_through(linear_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _load(linear_path)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(model.session, "run", fail)
    with pytest.raises(KeyboardInterrupt):
        model(np.ones((1, 4), np.float32))


# -- bad files -----------------------------------------------------------------------------


def _valid_bytes(onnx: ModuleType, tmp_path: Path) -> bytes:
    return _linear_relu(onnx, tmp_path / "source.onnx").read_bytes()


def test_truncated_file(onnx_pair: ModuleType, tmp_path: Path) -> None:
    data = _valid_bytes(onnx_pair, tmp_path)
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError, match="truncated") as info:
        load_model(path)  # caught by detection
    assert info.value.path == str(path)
    with pytest.raises(CorruptModelError, match=r"not a valid ONNX model.*truncated") as info:
        load_model(path, format="onnx")  # the backend's own mapping of ORT's error
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_garbage_body_with_valid_header(onnx_pair: ModuleType, tmp_path: Path) -> None:
    data = _valid_bytes(onnx_pair, tmp_path)
    path = tmp_path / "garbage.onnx"
    path.write_bytes(data[:12] + bytes(range(256)) * 4)
    for fmt in (None, "onnx"):
        with pytest.raises((CorruptModelError, UnknownFormatError)) as info:
            load_model(path, format=fmt)
        assert str(path) in str(info.value)
    with pytest.raises(CorruptModelError, match=r"export or copy it again"):
        load_model(path, format="onnx")


def test_random_bytes_under_onnx_extension(tmp_path: Path, onnxruntime_module: ModuleType) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UnknownFormatError, match=r"extension '.onnx' suggests onnx"):
        load_model(path)
    with pytest.raises(CorruptModelError) as info:
        load_model(path, format="onnx")
    assert info.value.path == str(path)
    assert "export or copy it again" in str(info.value)


def test_empty_file_as_onnx(tmp_path: Path, onnxruntime_module: ModuleType) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(CorruptModelError, match="empty"):
        load_model(path)
    with pytest.raises(CorruptModelError, match=r"empty\.onnx.*(No graph|not a valid)"):
        load_model(path, format="onnx")


def test_folder_and_missing_path(tmp_path: Path, onnxruntime_module: ModuleType) -> None:
    with pytest.raises(ModelNotFoundError, match=r"is a folder; pass the \.onnx file"):
        load_model(tmp_path, format="onnx")
    missing = tmp_path / "absent.onnx"
    with pytest.raises(ModelNotFoundError, match="cannot find") as info:
        onnx_backend.load(missing, ModelFormat.ONNX, Device("cpu"), name="absent")
    assert info.value.path == str(missing)


def test_unsupported_operator_and_opset(onnx_pair: ModuleType, tmp_path: Path) -> None:
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    graph = h.make_graph(
        [h.make_node("NoSuchOp", ["x"], ["y"])],
        "bad_op",
        [h.make_tensor_value_info("x", tp.FLOAT, [2])],
        [h.make_tensor_value_info("y", tp.FLOAT, [2])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path = tmp_path / "bad_op.onnx"
    onnx_pair.save_model(model, str(path))
    with pytest.raises(ModelLoadError, match=r"bad_op\.onnx.*upgrade onnxruntime") as info:
        load_model(path)
    assert not isinstance(info.value, CorruptModelError)
    model.graph.node[0].op_type = "Relu"
    model.opset_import[0].version = 99
    onnx_pair.save_model(model, str(path))
    with pytest.raises(ModelLoadError, match=r"opset.*upgrade onnxruntime"):
        load_model(path)


def test_missing_external_data_names_the_file(onnx_pair: ModuleType, tmp_path: Path) -> None:
    path = _linear_relu(
        onnx_pair,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(tmp_path / "weights.bin") in message
    assert "missing" in message
    assert "copy them next to the model" in message
    assert info.value.path == str(path)


def test_missing_external_data_without_onnx_is_mapped_from_ort(
    onnx_pair: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _linear_relu(
        onnx_pair,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    (tmp_path / "weights.bin").unlink()
    monkeypatch.setattr("pyinfer.backends.onnx.loader._read_proto", lambda p: None)
    with pytest.raises(CorruptModelError, match=r"external data of .*ext\.onnx.*weights\.bin"):
        load_model(path)


def test_truncated_external_data(onnx_pair: ModuleType, tmp_path: Path) -> None:
    path = _linear_relu(
        onnx_pair,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    data = tmp_path / "weights.bin"
    data.write_bytes(data.read_bytes()[:20])
    with pytest.raises(CorruptModelError, match=r"weights\.bin.*shorter than the model says"):
        load_model(path)


# -- devices and providers -----------------------------------------------------------------


class _Recorder:
    """What the fake session factory was asked for."""

    providers: Any = None


def _fake_providers(
    monkeypatch: pytest.MonkeyPatch,
    ort: ModuleType,
    *,
    available: Sequence[str],
    obtained: Sequence[str] | None = None,
) -> _Recorder:
    """Pretends ONNX Runtime has `available` providers; sessions report `obtained` ones.

    The session underneath is a real CPU session (there is no GPU here), so the model loads and
    its specs are real; only the providers it claims and was asked for are faked.
    """
    recorder = _Recorder()
    real_session = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
    if obtained is None:
        return recorder

    class FakeSession(real_session):  # type: ignore[misc, valid-type]
        def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
            recorder.providers = providers
            super().__init__(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def get_providers(self) -> list[str]:
            return list(obtained)

    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    return recorder


def test_cuda_requested_but_unavailable_is_an_error(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    _fake_providers(monkeypatch, onnxruntime_module, available=["CPUExecutionProvider"])
    with pytest.raises(CudaUnavailableError) as info:
        load_model(linear_path, device="cuda")
    message = str(info.value)
    assert str(linear_path) in message
    assert "CUDAExecutionProvider" in message
    assert "pip install 'pyinfer-toolkit[onnx-gpu]'" in message
    assert "onnxruntime and onnxruntime-gpu must never both be installed" in message
    assert "allow_fallback=True" in message


def test_cuda_unavailable_with_fallback_warns_and_runs_on_cpu(
    linear_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    onnxruntime_module: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fake_providers(monkeypatch, onnxruntime_module, available=["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="pyinfer.backends.onnx"):
        model = _load(linear_path, device="cuda:1", allow_fallback=True)
    assert "falling back to the CPU" in caplog.text
    assert model.device == Device("cpu")
    assert model.options["providers"] == ["CPUExecutionProvider"]
    assert model.options["requested_device"] == "cuda:1"
    assert "CUDAExecutionProvider" in model.options["fallback"]
    assert model.stream_handle is None
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(model(x)["y"], _expected(x))


def test_session_that_silently_got_the_cpu_is_an_error(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    recorder = _fake_providers(
        monkeypatch,
        onnxruntime_module,
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
        obtained=["CPUExecutionProvider"],
    )
    with pytest.raises(CudaUnavailableError) as info:
        load_model(linear_path, device="cuda:0", stream=1234)
    message = str(info.value)
    assert "did not get CUDAExecutionProvider" in message
    assert "runs on CPUExecutionProvider" in message
    assert str(linear_path) in message
    assert "pyinfer-toolkit[onnx-gpu]" in message
    assert "CUDA and cuDNN libraries" in message
    # It was asked for CUDA on the right device and stream, the CPU provider after it.
    assert recorder.providers == [
        (
            "CUDAExecutionProvider",
            {"device_id": "0", "user_compute_stream": "1234", "has_user_compute_stream": "1"},
        ),
        "CPUExecutionProvider",
    ]


def test_session_that_silently_got_the_cpu_with_fallback(
    linear_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    onnxruntime_module: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fake_providers(
        monkeypatch,
        onnxruntime_module,
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
        obtained=["CPUExecutionProvider"],
    )
    with caplog.at_level(logging.WARNING, logger="pyinfer.backends.onnx"):
        model = _load(linear_path, device="cuda", allow_fallback=True, stream=99)
    assert "continuing there (allow_fallback=True)" in caplog.text
    assert model.device == Device("cpu")
    assert model.stream_handle is None
    assert "did not get CUDAExecutionProvider" in model.options["fallback"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model(x)["y"], _expected(x))


def test_cuda_session_bookkeeping(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    recorder = _fake_providers(
        monkeypatch,
        onnxruntime_module,
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
        obtained=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    stream = SimpleNamespace(cuda_stream=4242, synchronized=0)
    stream.synchronize = lambda: setattr(stream, "synchronized", stream.synchronized + 1)
    model = _load(
        linear_path,
        device="cuda:1",
        stream=stream,
        provider_options={"CUDAExecutionProvider": {"cudnn_conv_algo_search": "HEURISTIC"}},
    )
    assert model.device == Device("cuda", 1)
    assert model.stream_handle == 4242
    assert model.options["stream"] == 4242
    assert model.options["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert model.options["provider_options"] == {
        "CUDAExecutionProvider": {
            "device_id": 1,
            "cudnn_conv_algo_search": "HEURISTIC",
            "user_compute_stream": "4242",
            "has_user_compute_stream": "1",
        }
    }
    assert recorder.providers[0][1]["device_id"] == "1"
    model.synchronize()
    assert stream.synchronized == 1

    made: list[tuple[Any, ...]] = []

    def fake_from_numpy(arr: np.ndarray, device: str, index: int) -> tuple[str, int]:
        made.append((arr.shape, device, index))
        return (device, index)

    monkeypatch.setattr(onnxruntime_module.OrtValue, "ortvalue_from_numpy", fake_from_numpy)
    assert model.to_native({"x": np.ones((2, 4), np.float32)}) == {"x": ("cuda", 1)}
    assert made == [((2, 4), "cuda", 1)]


@pytest.mark.parametrize("torch_state", ["missing", "no-cuda"])
def test_cuda_without_a_torch_stream_keeps_orts_own(
    linear_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    onnxruntime_module: ModuleType,
    torch_state: str,
) -> None:
    recorder = _fake_providers(
        monkeypatch,
        onnxruntime_module,
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
        obtained=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )

    def fake_torch() -> Any:
        if torch_state == "missing":
            raise FrameworkNotInstalledError("torch is not installed")
        return SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False))

    monkeypatch.setattr(frameworks, "import_torch", fake_torch)
    model = _load(linear_path, device="cuda")
    assert model.stream_handle is None
    assert "stream" not in model.options
    assert recorder.providers[0] == ("CUDAExecutionProvider", {"device_id": "0"})
    model.synchronize()  # nothing run yet, nothing to wait for


def test_unavailable_explicit_provider(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    providers = ["FancyExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(DeviceError, match=r"cannot use FancyExecutionProvider") as info:
        _load(linear_path, providers=providers)
    assert not isinstance(info.value, CudaUnavailableError)
    model = _load(linear_path, providers=[("FancyExecutionProvider", {})], allow_fallback=True)
    assert model.options["providers"] == ["CPUExecutionProvider"]
    assert model.device == Device("cpu")


def test_explicit_provider_dropped_by_session(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    _fake_providers(
        monkeypatch,
        onnxruntime_module,
        available=["OpenVINOExecutionProvider", "CPUExecutionProvider"],
        obtained=["CPUExecutionProvider"],
    )
    with pytest.raises(
        DeviceError, match=r"did not get OpenVINOExecutionProvider.*leave it out"
    ) as info:
        _load(linear_path, providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    assert not isinstance(info.value, CudaUnavailableError)


def test_no_python_warning_escapes_a_fallback(
    linear_path: Path, monkeypatch: pytest.MonkeyPatch, onnxruntime_module: ModuleType
) -> None:
    _fake_providers(monkeypatch, onnxruntime_module, available=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(linear_path, device="cuda", allow_fallback=True)


def test_weights_in_constant_nodes_are_counted(onnx_pair: ModuleType, tmp_path: Path) -> None:
    """The TorchScript-based exporter writes a frozen module's weights as Constant nodes: they
    count; int64 shape constants and scalars do not."""
    h = onnx_pair.helper
    tp = onnx_pair.TensorProto
    nh = onnx_pair.numpy_helper
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph = h.make_graph(
        [
            h.make_node("Constant", [], ["w"], value=nh.from_array(w, "w")),
            h.make_node("Constant", [], ["half"], value=nh.from_array(np.ones(3, np.float16))),
            h.make_node("Constant", [], ["shape"], value=nh.from_array(np.array([1, 4]))),
            h.make_node("Constant", [], ["two"], value=nh.from_array(np.array(2.0, np.float32))),
            h.make_node("MatMul", ["x", "w"], ["xw"]),
            h.make_node("Mul", ["xw", "two"], ["y"]),
        ],
        "constants",
        [h.make_tensor_value_info("x", tp.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, [1, 3])],
    )
    model = _load(_save(onnx_pair, graph, tmp_path / "constants.onnx"))
    assert model.parameter_count == 12 + 3
    assert model.parameter_bytes == 12 * 4 + 3 * 2
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(model({"x": x})["y"], 2 * (x @ w))
