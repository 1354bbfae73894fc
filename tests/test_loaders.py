"""Format detection by content, the Model interface shared by every backend, and bad paths.

These tests need no framework: files of each format are made byte by byte with the structure
each format's detector reads (a TFLite file identifier, an HDF5 signature, zip archives with the
entries torch and Keras write, protobuf fields of an ONNX ModelProto). Loading real files of each
format is tested per framework in test_loaders_torch.py, test_loaders_onnx.py and
test_loaders_tf.py.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer.backends import frameworks
from pyinfer.backends.base import (
    Device,
    Model,
    ModelFormat,
    TensorSpec,
    check_options,
    output_specs_from_arrays,
    parse_device,
)
from pyinfer.errors import (
    CorruptModelError,
    FrameworkNotInstalledError,
    InvalidArgumentError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    PyinferError,
    UnknownFormatError,
)
from pyinfer.loading import (
    ONNXModelLoader,
    PyTorchModelLoader,
    TensorFlowModelLoader,
    detect_format,
    load_model,
)

# -- files of each format, made by hand -------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_bytes() -> bytes:
    """An ONNX ModelProto's top level: ir_version, producer, a graph, an opset import."""
    graph = _field(2, b"main") + _field(1, _field(1, b"x") + _field(2, b"y"))
    opset = _field(1, b"") + _field(2, 17)
    return _field(1, 9) + _field(2, b"pyinfer-test") + _field(7, graph) + _field(8, opset)


def write_zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


def torchscript_zip(path: Path) -> Path:
    stem = path.stem
    return write_zip(
        path,
        [f"{stem}/data.pkl", f"{stem}/code/__torch__/m.py", f"{stem}/constants.pkl", "v/version"],
    )


FORMAT_FILES: dict[str, tuple[str, ModelFormat]] = {
    "torchscript": ("model.pt", ModelFormat.TORCHSCRIPT),
    "pytorch": ("weights.pth", ModelFormat.PYTORCH),
    "legacy": ("weights.pth", ModelFormat.PYTORCH_LEGACY),
    "pickle": ("model.pkl", ModelFormat.PICKLE),
    "export": ("program.pt2", ModelFormat.TORCH_EXPORT),
    "onnx": ("model.onnx", ModelFormat.ONNX),
    "h5": ("model.h5", ModelFormat.KERAS_H5),
    "keras": ("model.keras", ModelFormat.KERAS),
    "tflite": ("model.tflite", ModelFormat.TFLITE),
}


def make_format_file(kind: str, path: Path) -> Path:
    """Writes a file whose content has the structure of format `kind`."""
    if kind == "torchscript":
        return torchscript_zip(path)
    if kind == "pytorch":
        return write_zip(path, ["weights/data.pkl", "weights/byteorder", "weights/data/0"])
    if kind == "legacy":
        magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
        path.write_bytes(magic + pickle.dumps({"a": 1}, protocol=2))
        return path
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"layer": [1, 2, 3]}, protocol=4))
        return path
    if kind == "export":
        return write_zip(path, ["program/archive_format", "program/models/model.json"])
    if kind == "onnx":
        path.write_bytes(onnx_bytes())
        return path
    if kind == "h5":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504))
        return path
    if kind == "keras":
        return write_zip(path, ["metadata.json", "config.json", "model.weights.h5"])
    if kind == "tflite":
        path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
        return path
    raise AssertionError(kind)


# -- detect_format ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FORMAT_FILES))
def test_detect_format_by_content(tmp_path: Path, kind: str) -> None:
    name, expected = FORMAT_FILES[kind]
    path = make_format_file(kind, tmp_path / name)
    assert detect_format(path) is expected
    assert detect_format(str(path)) is expected


@pytest.mark.parametrize("kind", sorted(FORMAT_FILES))
def test_detect_format_ignores_a_misleading_extension(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, expected = FORMAT_FILES[kind]
    wrong = ".tflite" if expected is not ModelFormat.TFLITE else ".onnx"
    path = make_format_file(kind, tmp_path / f"model{wrong}")
    with caplog.at_level(logging.WARNING, logger="pyinfer.loading.detect"):
        assert detect_format(path) is expected
    [record] = [r for r in caplog.records if r.name == "pyinfer.loading.detect"]
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage()
    assert f"its content is {expected.value}" in record.getMessage()


def test_detect_format_without_extension_and_no_warning_for_a_known_pair(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert detect_format(make_format_file("onnx", tmp_path / "model")) is ModelFormat.ONNX
        assert detect_format(make_format_file("torchscript", tmp_path / "m.pth")) is (
            ModelFormat.TORCHSCRIPT
        )
    assert caplog.records == []


def test_hdf5_signature_after_a_user_block(tmp_path: Path) -> None:
    path = tmp_path / "block.h5"
    path.write_bytes(bytes(512) + b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert detect_format(path) is ModelFormat.KERAS_H5


def test_saved_model_folder_and_its_pb_file(tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    assert detect_format(folder) is ModelFormat.SAVED_MODEL
    assert detect_format(folder / "saved_model.pb") is ModelFormat.SAVED_MODEL
    text_folder = tmp_path / "text"
    text_folder.mkdir()
    (text_folder / "saved_model.pbtxt").write_text("saved_model_schema_version: 1")
    assert detect_format(text_folder) is ModelFormat.SAVED_MODEL


def test_missing_path_names_it_and_suggests_near_names(tmp_path: Path) -> None:
    (tmp_path / "resnet.onnx").write_bytes(onnx_bytes())
    with pytest.raises(ModelNotFoundError, match=r"resnet\.pt' does not exist") as info:
        detect_format(tmp_path / "resnet.pt")
    assert "did you mean resnet.onnx" in str(info.value)
    assert info.value.path == str(tmp_path / "resnet.pt")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ModelNotFoundError, match=r"does not exist$"):
        load_model(tmp_path / "nothing" / "here.onnx")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.touch()
    with pytest.raises(CorruptModelError, match=r"empty\.onnx' is empty \(0 bytes\)") as info:
        load_model(path)
    assert isinstance(info.value, ValueError)


def test_folder_that_is_not_a_saved_model(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(UnknownFormatError, match=r"is a folder but not a TensorFlow SavedModel"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "name", ["model.onnx", "model.pt", "model.pth", "model.pt2", "model.h5", "model.tflite", "x"]
)
def test_random_bytes_under_each_extension(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(7)
    path = tmp_path / name
    data = rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    path.write_bytes(b"\x13" + data)  # 0x13 starts no known format
    with pytest.raises(UnknownFormatError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a model file pyinfer recognises" in message
    assert info.value.path == str(path)
    if path.suffix:
        assert f"its extension '{path.suffix}' suggests" in message


@pytest.mark.parametrize("kind", ["torchscript", "pytorch", "export", "keras"])
def test_truncated_zip_archives(tmp_path: Path, kind: str) -> None:
    name, _ = FORMAT_FILES[kind]
    path = make_format_file(kind, tmp_path / name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError, match="damaged zip archive") as info:
        detect_format(path)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


def test_zip_that_is_no_model(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "photos.pt", ["a.jpg", "b.jpg"])
    with pytest.raises(UnknownFormatError, match=r"photos\.pt is not a model file"):
        detect_format(path)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_onnx(tmp_path: Path, cut: float) -> None:
    data = onnx_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CorruptModelError, match="starts like an ONNX model") as info:
        detect_format(path)
    assert "truncated" in str(info.value)


def test_onnx_header_without_a_graph(tmp_path: Path) -> None:
    path = tmp_path / "header_only.onnx"
    path.write_bytes(_field(1, 9) + _field(2, b"producer"))
    with pytest.raises(CorruptModelError, match="header fields of an ONNX model but no graph"):
        detect_format(path)
    other = tmp_path / "other.bin"
    other.write_bytes(_field(2, b"text only"))
    with pytest.raises(UnknownFormatError):
        detect_format(other)


def test_unknown_format_name_and_wrong_loader(tmp_path: Path) -> None:
    path = make_format_file("onnx", tmp_path / "m.onnx")
    with pytest.raises(InvalidArgumentError, match="unknown model format 'caffe'; known: "):
        load_model(path, format="caffe")
    with pytest.raises(InvalidArgumentError, match="PyTorchModelLoader cannot load onnx models"):
        PyTorchModelLoader().load(path)
    with pytest.raises(InvalidArgumentError, match="TensorFlowModelLoader cannot load onnx"):
        TensorFlowModelLoader().load(path, format=ModelFormat.ONNX)
    assert ONNXModelLoader.formats == frozenset({ModelFormat.ONNX})


def test_format_metadata() -> None:
    frameworks = {f: f.framework for f in ModelFormat}
    assert {f for f, fw in frameworks.items() if fw == "torch"} == {
        ModelFormat.TORCHSCRIPT,
        ModelFormat.PYTORCH,
        ModelFormat.PYTORCH_LEGACY,
        ModelFormat.PICKLE,
        ModelFormat.TORCH_EXPORT,
    }
    assert ModelFormat.ONNX.framework == "onnx"
    assert ModelFormat.TFLITE.framework == "tensorflow"
    assert str(ModelFormat.SAVED_MODEL) == "saved-model"
    assert ModelFormat("keras-h5") is ModelFormat.KERAS_H5


# -- framework imports --------------------------------------------------------------------------


def test_missing_framework_names_the_extra() -> None:
    with pytest.raises(
        FrameworkNotInstalledError, match=r"pip install 'pyinfer-toolkit\[tf\]'"
    ) as info:
        frameworks._timed_import("pyinfer_no_such_framework", "tf", "TensorFlow (tensorflow)")
    assert "TensorFlow (tensorflow) is needed for this model but is not installed" in str(
        info.value
    )
    assert isinstance(info.value, ImportError)


def test_framework_with_a_broken_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise ImportError("No module named 'some_dependency'", name="some_dependency")

    monkeypatch.setattr(frameworks.importlib, "import_module", broken)
    with pytest.raises(FrameworkNotInstalledError, match="is installed but failed to import"):
        frameworks._timed_import("pyinfer_fake_fw", "onnx", "ONNX Runtime")


def test_imports_are_cached_and_timed() -> None:
    before = frameworks.import_seconds()
    assert frameworks._timed_import("json", "x", "json") is sys.modules["json"]
    assert frameworks.import_seconds() == before


def test_triton_after_tensorflow_is_refused_not_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameworks.importlib.util, "find_spec", lambda name: object())
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.raises(PyinferError, match="TensorFlow was imported before triton") as info:
        frameworks.ensure_triton_safe()
    assert "would crash the interpreter" in str(info.value)


def test_triton_check_is_a_no_op_without_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameworks.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    frameworks.ensure_triton_safe()
    assert "triton" not in sys.modules


def test_physical_cores_within_the_affinity_mask() -> None:
    cores = frameworks.physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


# -- devices and specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu", Device("cpu")),
        (" CPU ", Device("cpu")),
        (None, Device("cpu")),
        ("cuda", Device("cuda", 0)),
        ("cuda:3", Device("cuda", 3)),
        ("GPU:1", Device("cuda", 1)),
        (Device("cuda", 2), Device("cuda", 2)),
    ],
)
def test_parse_device(text: Any, expected: Device) -> None:
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "cuda:x", "cpu:1", "cuda:-1", ""])
def test_parse_device_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown device .*'cpu', 'cuda' or 'cuda:N'"):
        parse_device(text)


def test_device_text() -> None:
    assert str(Device("cuda", 1)) == "cuda:1"
    assert str(Device("cpu")) == "cpu"
    assert Device("cuda").is_cuda
    assert not Device("cpu").is_cuda


def test_tensor_spec() -> None:
    spec = TensorSpec("pixels", ("batch", 3, None, 224), "float32")
    assert spec.dtype == np.float32
    assert spec.rank == 4
    assert spec.dynamic_axes == (0, 2)
    assert spec.is_dynamic
    assert spec.has_dynamic_batch
    assert spec.shape_text() == "(batch, 3, ?, 224)"
    assert str(spec) == "pixels: (batch, 3, ?, 224) float32"
    assert spec.accepts_shape((8, 3, 100, 224))
    assert not spec.accepts_shape((8, 1, 100, 224))
    assert not spec.accepts_shape((8, 3, 224))
    assert spec.to_dict() == {
        "name": "pixels",
        "shape": ["batch", 3, None, 224],
        "dtype": "float32",
    }
    with pytest.raises(InvalidArgumentError, match=r"dynamic dimension 2 \(\?\)"):
        spec.concrete_shape(4)
    named = TensorSpec("ids", ("batch", "sequence"), np.int64)
    assert named.concrete_shape(2, sequence=128) == (2, 128)
    assert named.concrete_shape(sequence=5) == (1, 5)
    with pytest.raises(InvalidArgumentError, match="give its size as sequence=N"):
        named.concrete_shape(2)
    fixed = TensorSpec("x", [1, 4])
    assert fixed.shape == (1, 4)
    assert not fixed.is_dynamic
    assert not fixed.has_dynamic_batch
    assert fixed.concrete_shape(16) == (1, 4)
    vector = TensorSpec("v", (None,))
    assert vector.shape_text() == "(?,)"
    unknown = TensorSpec("u", None)
    assert unknown.rank is None
    assert unknown.is_dynamic
    assert unknown.has_dynamic_batch
    assert unknown.accepts_shape((1, 2, 3))
    assert unknown.shape_text() == "(unknown)"
    with pytest.raises(InvalidArgumentError, match="input 'u' has no declared shape"):
        unknown.concrete_shape()


def test_check_options() -> None:
    check_options({"a": 1}, ("a", "b"), loader="X", path=None)
    with pytest.raises(
        InvalidArgumentError, match=r"^unknown X option\(s\) 'c', 'd'; known: a, b$"
    ):
        check_options({"d": 1, "a": 1, "c": 2}, ("b", "a"), loader="X", path=None)
    with pytest.raises(
        InvalidArgumentError,
        match=r"^unknown Y option\(s\) 'z' for /m\.onnx; known: a \(the a\); b \(the b\)$",
    ):
        check_options({"z": 0}, {"b": "the b", "a": "the a"}, loader="Y", path=Path("/m.onnx"))


def test_output_specs_from_arrays() -> None:
    specs = output_specs_from_arrays(
        {"logits": np.zeros((2, 10), np.float32), "ids": np.zeros(2, np.int64)},
        dynamic_batch=True,
    )
    assert [str(s) for s in specs] == ["logits: (batch, 10) float32", "ids: (batch,) int64"]
    fixed = output_specs_from_arrays({"y": np.zeros((2, 3))}, dynamic_batch=False)
    assert fixed[0].shape == (2, 3)


# -- the Model interface, through a numpy model -------------------------------------------------


class AffineModel(Model):
    """y = x @ w + b and s = sum(x * mask): a two-input, two-output model in numpy."""

    def __init__(self) -> None:
        super().__init__(
            name="affine",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", ("batch", 3)), TensorSpec("mask", ("batch", 3), np.bool_)],
            outputs=[TensorSpec("y", ("batch", 2)), TensorSpec("s", ("batch",))],
            parameter_count=8,
            parameter_bytes=32,
            options={"threads": 1, "shape": (1, 2), "device": Device("cpu"), "nested": {"a": 1}},
        )
        self.w = np.arange(6, dtype=np.float32).reshape(3, 2)
        self.b = np.array([0.5, -0.5], np.float32)

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        x, mask = inputs["x"], inputs["mask"]
        return {"y": x @ self.w + self.b, "s": (x * mask).sum(axis=1)}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in outputs.items()}


def test_model_call_forms_give_the_same_exact_result() -> None:
    model = AffineModel()
    x = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    mask = np.array([[True, False, True], [False, False, True]])
    expected_y = x @ model.w + model.b
    for given in ({"x": x, "mask": mask}, [x, mask], (x, mask)):
        out = model(given)
        assert list(out) == ["y", "s"]
        np.testing.assert_array_equal(out["y"], expected_y)
        np.testing.assert_array_equal(out["s"], [4.0, 6.0])
    assert model.input_names() == ["x", "mask"]
    assert model.output_names() == ["y", "s"]
    assert model.has_dynamic_batch
    assert model.stream_handle is None
    model.synchronize()
    with model as entered:
        assert entered is model


def test_model_input_errors_name_the_input() -> None:
    model = AffineModel()
    x = np.zeros((2, 3), np.float32)
    mask = np.zeros((2, 3), bool)
    with pytest.raises(InvalidInputError, match=r"missing 'mask' \(it takes 'x', 'mask'\)"):
        model({"x": x})
    with pytest.raises(InvalidInputError, match=r"missing 'mask'; unexpected 'z'"):
        model({"x": x, "z": mask})
    with pytest.raises(InvalidInputError, match="takes 2 inputs"):
        model(x)
    with pytest.raises(InvalidInputError, match=r"takes 2 inputs \(x, mask\), 1 given"):
        model([x])
    with pytest.raises(InvalidInputError, match="must be a dict of name to numpy array"):
        model(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="input 'x' of model 'affine' must be a numpy"):
        model({"x": [[1.0, 2.0, 3.0]], "mask": mask})
    with pytest.raises(
        InvalidInputError,
        match=r"input 'x' .* must be float32, got float64; cast it explicitly with "
        r"\.astype\(np\.float32\)",
    ):
        model({"x": x.astype(np.float64), "mask": mask})
    with pytest.raises(InvalidInputError, match=r"must be float32, got complex64$"):
        model({"x": x.astype(np.complex64), "mask": mask})
    with pytest.raises(
        InvalidInputError, match=r"input 'x' .* must have 2 dimensions \(batch, 3\), got shape"
    ):
        model({"x": x[None], "mask": mask})
    with pytest.raises(
        InvalidInputError,
        match=r"must have shape \(batch, 3\), got \(2, 4\) \(dimension 1 is 4, expected 3\)",
    ):
        model({"x": np.zeros((2, 4), np.float32), "mask": mask})


def test_check_inputs_makes_arrays_contiguous() -> None:
    model = AffineModel()
    x = np.asfortranarray(np.ones((4, 3), np.float32))
    checked = model.check_inputs({"mask": np.ones((4, 3), bool), "x": x})
    assert list(checked) == ["x", "mask"]
    assert checked["x"].flags.c_contiguous


def test_example_inputs() -> None:
    model = AffineModel()
    example = model.example_inputs(batch_size=5, seed=3)
    assert example["x"].shape == (5, 3)
    assert example["x"].dtype == np.float32
    assert example["mask"].dtype == np.bool_
    again = model.example_inputs(batch_size=5, seed=3)
    np.testing.assert_array_equal(example["x"], again["x"])
    out = model(example)
    assert out["y"].shape == (5, 2)
    model.inputs = (TensorSpec("ids", ("batch", "seq"), np.int32),)
    ids = model.example_inputs(2, dims={"seq": 7})["ids"]
    assert ids.shape == (2, 7)
    assert ids.dtype == np.int32
    assert ids.min() >= 0
    assert ids.max() < 100
    model.inputs = (TensorSpec("s", (2,), np.str_),)
    with pytest.raises(InvalidArgumentError, match="cannot make an example for input 's'"):
        model.example_inputs()


def test_describe_is_json_ready() -> None:
    import json

    model = AffineModel()
    model.load_time_s = 0.25
    info = model.describe()
    assert json.loads(json.dumps(info)) == info
    assert info["inputs"][1] == {"name": "mask", "shape": ["batch", 3], "dtype": "bool"}
    assert info["options"] == {"threads": 1, "shape": [1, 2], "device": "cpu", "nested": {"a": 1}}
    assert info["load_time_s"] == 0.25
    assert info["parameter_count"] == 8
    text = repr(model)
    assert "<AffineModel 'affine' onnx on cpu: x: (batch, 3) float32" in text
    assert "8 parameters" in text


def test_public_api_is_lazy_and_complete() -> None:
    assert pyinfer.load_model is load_model
    assert pyinfer.detect_format is detect_format
    assert pyinfer.ModelFormat is ModelFormat
    assert pyinfer.TensorSpec is TensorSpec
    assert "load_model" in dir(pyinfer)
    for name in pyinfer.__all__:
        assert getattr(pyinfer, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = pyinfer.nope  # type: ignore[attr-defined]
    assert issubclass(ModelNotFoundError, ModelLoadError)
