from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np
import pytest
from hypothesis import settings

# CI explores the same examples every run (a failure there is reproducible from its log);
# local runs explore new random examples each time and remember failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


# Framework fixtures: each gives the framework's module, or skips the test where it is not
# installed. CI sets PYINFER_REQUIRE_FRAMEWORKS=1 and installs every framework, and there a missing
# one fails the test instead, so no loader goes untested by accident.
REQUIRE_FRAMEWORKS = os.environ.get("PYINFER_REQUIRE_FRAMEWORKS", "") not in {"", "0"}


def require_module(name: str) -> ModuleType:
    """Imports `name` (through pyinfer's safe import order), or skips / fails the test."""
    try:
        if name == "tensorflow":
            from pyinfer.backends.frameworks import import_tensorflow

            return import_tensorflow()
        if name in {"torch", "torchvision", "onnxscript"}:
            from pyinfer.backends.frameworks import ensure_triton_safe

            ensure_triton_safe()
        return importlib.import_module(name)
    except ImportError as exc:
        if REQUIRE_FRAMEWORKS:
            pytest.fail(f"{name} is required (PYINFER_REQUIRE_FRAMEWORKS is set) but: {exc}")
        pytest.skip(f"{name} is not installed")


@pytest.fixture
def torch_module() -> ModuleType:
    return require_module("torch")


@pytest.fixture
def torchvision_module() -> ModuleType:
    return require_module("torchvision")


@pytest.fixture
def onnx_module() -> ModuleType:
    return require_module("onnx")


@pytest.fixture
def onnxruntime_module() -> ModuleType:
    return require_module("onnxruntime")


@pytest.fixture
def onnxscript_module() -> ModuleType:
    return require_module("onnxscript")


@pytest.fixture
def tensorflow_module() -> ModuleType:
    return require_module("tensorflow")


@pytest.fixture
def keras_module(tensorflow_module: ModuleType) -> ModuleType:
    return require_module("keras")


@pytest.fixture(autouse=True, scope="session")
def _own_measurement_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Test runs in other checkouts on this machine measure at the same time; each session sees
    # only its own measurement lock files (tests of the cross-process lock set their own dir).
    os.environ["PYINFER_LOCK_DIR"] = str(tmp_path_factory.mktemp("measurement-locks"))
