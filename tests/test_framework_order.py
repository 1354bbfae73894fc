"""TensorFlow and torch in one process, in either order, never crash the interpreter.

TensorFlow 2.21 loads its libraries with RTLD_GLOBAL; triton (which torch.export, torch._dynamo
and torchvision import) loaded after it crashes with a segmentation fault. pyinfer imports triton
before TensorFlow. Each scenario runs in a subprocess, so a crash fails the test instead of
killing the test run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests._child import run_python

from pyinfer import export


@pytest.fixture(scope="module")
def keras_and_torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from pyinfer.backends.frameworks import ensure_triton_safe, import_tensorflow

    try:
        tf = import_tensorflow()
        ensure_triton_safe()
        import keras
        import torch
    except ImportError as exc:
        if os.environ.get("PYINFER_REQUIRE_FRAMEWORKS", "") not in {"", "0"}:
            pytest.fail(f"TensorFlow and torch are required here: {exc}")
        pytest.skip(f"needs TensorFlow and torch: {exc}")
    assert tf is not None
    folder = tmp_path_factory.mktemp("order")
    inp = keras.Input((4,), name="x")
    keras_model = keras.Model(inp, keras.layers.Dense(2, name="dense")(inp))
    export.export_keras(keras_model, folder / "dense.keras", format="keras")
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    export.export_torch_program(module, folder / "mlp.pt2", torch.randn(2, 4))
    return {"keras": folder / "dense.keras", "torch": folder / "mlp.pt2", "dir": folder}


SCRIPT_HEAD = """
import numpy as np
import pyinfer
x = np.ones((3, 4), np.float32)
"""


@pytest.mark.parametrize("order", [("keras", "torch"), ("torch", "keras")])
def test_tensorflow_and_torch_models_in_either_order(
    keras_and_torch_files: dict[str, Path], order: tuple[str, str]
) -> None:
    script = SCRIPT_HEAD
    for kind in order:
        script += (
            f"m = pyinfer.load_model({str(keras_and_torch_files[kind])!r})\n"
            f"out = m({{m.input_names()[0]: x}})\n"
            f"print({kind!r}, m.framework, [v.shape for v in out.values()])\n"
            # torchvision imports triton too: the path users take for architectures.
            "import torchvision\n"
        )
    result = run_python(script, keras_and_torch_files["dir"])
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    lines = [line for line in result.stdout.splitlines() if line.startswith(order)]
    assert lines == [
        {"keras": "keras tensorflow [(3, 2)]", "torch": "torch torch [(3, 3)]"}[kind]
        for kind in order
    ]


def test_tensorflow_imported_first_by_the_user_is_refused_clearly(
    keras_and_torch_files: dict[str, Path],
) -> None:
    script = f"""
    import tensorflow
    import pyinfer
    try:
        pyinfer.load_model({str(keras_and_torch_files["torch"])!r})
    except pyinfer.PyinferError as exc:
        print("refused:", exc)
    else:
        print("loaded")
    """
    result = run_python(script, keras_and_torch_files["dir"])
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "refused: TensorFlow was imported before triton" in result.stdout
