"""The format registry: every format has all its facts, and every table derived from it is right.

The derived tables are checked against the values they had before the registry existed, written
out literally here, so a change to the registry that changes a table fails a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyinfer
from pyinfer import formats
from pyinfer.backends import ModelFormat as BackendsModelFormat
from pyinfer.backends.base import ModelFormat as BaseModelFormat
from pyinfer.errors import InvalidArgumentError
from pyinfer.formats import (
    EXTENSIONS,
    FAMILIES,
    FORMATS,
    FORMATS_BY_NAME,
    FormatInfo,
    ModelFormat,
    format_info,
    format_names,
    formats_of_family,
    formats_with_extension,
    parse_format,
)
from pyinfer.loading import LOADERS, ONNXModelLoader, PyTorchModelLoader, TensorFlowModelLoader

RUNTIMES = {"torch", "onnxruntime", "tensorflow", "tflite"}

M = ModelFormat
#: model_loader's extension table before the registry, literally.
EXTENSIONS_BEFORE = {
    ".pt": frozenset({M.TORCHSCRIPT, M.PYTORCH, M.PYTORCH_LEGACY, M.PICKLE}),
    ".pth": frozenset({M.PYTORCH, M.PYTORCH_LEGACY, M.TORCHSCRIPT, M.PICKLE}),
    ".ckpt": frozenset({M.PYTORCH, M.PYTORCH_LEGACY}),
    ".bin": frozenset({M.PYTORCH, M.PYTORCH_LEGACY}),
    ".tar": frozenset({M.PYTORCH, M.PYTORCH_LEGACY}),
    ".jit": frozenset({M.TORCHSCRIPT}),
    ".torchscript": frozenset({M.TORCHSCRIPT}),
    ".pt2": frozenset({M.TORCH_EXPORT}),
    ".pkl": frozenset({M.PICKLE, M.PYTORCH, M.PYTORCH_LEGACY}),
    ".pickle": frozenset({M.PICKLE}),
    ".onnx": frozenset({M.ONNX}),
    ".h5": frozenset({M.KERAS_H5}),
    ".hdf5": frozenset({M.KERAS_H5}),
    ".keras": frozenset({M.KERAS}),
    ".tflite": frozenset({M.TFLITE}),
    ".lite": frozenset({M.TFLITE}),
}
#: report.py's format labels before the registry.
LABELS_BEFORE = {
    "pytorch": "PyTorch",
    "pytorch-legacy": "PyTorch",
    "pickle": "PyTorch",
    "torchscript": "TorchScript",
    "torch-export": "torch.export",
    "onnx": "ONNX",
    "keras": "Keras",
    "keras-h5": "Keras (h5)",
    "saved-model": "SavedModel",
    "tflite": "TFLite",
}
#: cli.py's --format choices and its formats without declared inputs, before the registry.
CLI_FORMATS_BEFORE = (
    "torchscript",
    "pytorch",
    "pytorch-legacy",
    "pickle",
    "torch-export",
    "onnx",
    "keras-h5",
    "keras",
    "saved-model",
    "tflite",
)
SHAPELESS_BEFORE = frozenset({"torchscript", "pytorch", "pytorch-legacy", "pickle"})
#: The formats comparison's reachable formats per source (its own row first; "eager" is the
#: torch module itself, "keras" the Keras model), before the registry.
REACHABLE_BEFORE = {
    "pytorch": ("eager", "torchscript", "torch-export", "onnx"),
    "pytorch-legacy": ("eager", "torchscript", "torch-export", "onnx"),
    "pickle": ("eager", "torchscript", "torch-export", "onnx"),
    "torchscript": ("torchscript", "onnx"),
    "torch-export": ("torch-export", "torchscript", "onnx"),
    "keras": ("keras", "saved-model", "tflite"),
    "keras-h5": ("keras", "saved-model", "tflite"),
    "saved-model": ("saved-model", "tflite"),
    "onnx": ("onnx",),
    "tflite": ("tflite",),
}


def test_enum_and_registry_agree() -> None:
    assert [f.value for f in ModelFormat] == [f.name for f in FORMATS]
    assert len(FORMATS_BY_NAME) == len(FORMATS)
    for fmt in ModelFormat:
        assert fmt.info is FORMATS_BY_NAME[fmt.value]
        assert fmt.info.name == fmt.value
        assert fmt.__doc__, f"{fmt!r} needs a docstring"


@pytest.mark.parametrize("info", FORMATS, ids=lambda f: f.name)
def test_every_format_has_all_its_facts(info: FormatInfo) -> None:
    assert info.name
    assert info.name == info.name.strip().lower()
    assert info.label.strip(), f"{info.name}: no label"
    assert info.family in FAMILIES, f"{info.name}: family {info.family!r} unknown"
    assert info.extra == FAMILIES[info.family]
    assert info.runtime in RUNTIMES, f"{info.name}: runtime {info.runtime!r} unknown"
    assert isinstance(info.declares_inputs, bool)
    assert isinstance(info.is_folder, bool)
    assert bool(info.extensions) != info.is_folder, f"{info.name}: extensions xor a folder"
    for ext in info.extensions:
        assert ext.startswith("."), ext
        assert ext == ext.lower(), ext
        assert len(ext) > 1, ext
    assert len(set(info.extensions)) == len(info.extensions)
    assert all(t in FORMATS_BY_NAME for t in info.export_targets), info.export_targets
    assert info.name not in info.export_targets
    assert len(set(info.export_targets)) == len(info.export_targets)


def test_every_family_has_a_loader_that_loads_exactly_its_formats() -> None:
    assert set(LOADERS) == set(FAMILIES)
    for family, loader in LOADERS.items():
        assert loader.family == family
        assert loader.formats == formats_of_family(family)
    assert PyTorchModelLoader.formats == frozenset(
        {M.TORCHSCRIPT, M.PYTORCH, M.PYTORCH_LEGACY, M.PICKLE, M.TORCH_EXPORT}
    )
    assert ONNXModelLoader.formats == frozenset({M.ONNX})
    assert TensorFlowModelLoader.formats == frozenset(
        {M.KERAS_H5, M.KERAS, M.SAVED_MODEL, M.TFLITE}
    )
    assert (PyTorchModelLoader.framework, ONNXModelLoader.framework) == ("torch", "onnxruntime")
    assert TensorFlowModelLoader.framework == "tensorflow"


def test_derived_tables_keep_their_values() -> None:
    assert dict(EXTENSIONS) == EXTENSIONS_BEFORE
    assert {f.name: f.label for f in FORMATS} == LABELS_BEFORE
    assert tuple(f.name for f in FORMATS) == CLI_FORMATS_BEFORE
    assert frozenset(f.name for f in FORMATS if not f.declares_inputs) == SHAPELESS_BEFORE
    assert [f.name for f in FORMATS if f.is_folder] == ["saved-model"]
    for info in FORMATS:
        first = REACHABLE_BEFORE[info.name][0]
        assert REACHABLE_BEFORE[info.name] == (first, *info.export_targets), info.name


def test_family_and_runtime_are_two_names() -> None:
    assert {f: f.family for f in ModelFormat} == {f: f.framework for f in ModelFormat}
    assert ModelFormat.ONNX.family == "onnx"
    assert ModelFormat.ONNX.runtime == "onnxruntime"
    assert ModelFormat.TFLITE.family == "tensorflow"
    assert ModelFormat.TFLITE.runtime == "tflite"
    assert ModelFormat.KERAS.runtime == "tensorflow"
    assert {f.runtime for f in formats_of_family("torch")} == {"torch"}
    assert ModelFormat.SAVED_MODEL.label == "SavedModel"
    assert format_info("ONNX").extra == "onnx"
    assert format_info(ModelFormat.KERAS).extra == "tf"


def test_model_format_is_one_class_everywhere() -> None:
    assert BaseModelFormat is ModelFormat
    assert BackendsModelFormat is ModelFormat
    assert pyinfer.ModelFormat is ModelFormat


def test_lookups() -> None:
    assert formats_with_extension(".PT2") == {M.TORCH_EXPORT}
    assert formats_with_extension("onnx") == {M.ONNX}
    assert formats_with_extension(".txt") == frozenset()
    assert parse_format(" Keras-H5 ") is M.KERAS_H5
    assert parse_format(M.TFLITE) is M.TFLITE
    with pytest.raises(InvalidArgumentError, match="unknown model format 'caffe'; known: "):
        parse_format("caffe")
    with pytest.raises(InvalidArgumentError, match="unknown model format"):
        format_info("caffe")
    assert format_names({M.TFLITE, M.ONNX}) == "onnx or tflite"


def test_the_registry_imports_no_framework_and_not_numpy() -> None:
    package_root = str(Path(formats.__file__).resolve().parent.parent)
    script = (
        "import sys; import pyinfer.formats\n"
        "heavy = {'numpy', 'torch', 'onnxruntime', 'onnx', 'tensorflow', 'keras'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": package_root, "PATH": ""},
    )
    assert done.stdout.strip() == "[]"
