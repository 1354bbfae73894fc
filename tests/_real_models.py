"""Models shaped like the third-party ones users profile: a voice-activity detector.

Three inputs: ``x`` audio ``(batch, 512)`` float32, ``state`` a recurrent state
``(2, batch, 128)`` float32 whose batch is on axis 1, and ``sr`` a 0-d int64 sample rate that
only 8000 or 16000 may take (another value raises). Two outputs: ``prob`` ``(batch, 1)`` (2-D)
and the new ``state`` ``(2, batch, 128)``. The weights are made at run time (``torch.full``; an
ONNX ``ConstantOfShape``), so the files hold no parameters.

The same model in three formats: TorchScript (``forward(Tensor x, Tensor state, int sr)``, the
check raising ``ValueError``), ``torch.export`` (``sr`` a 0-d int64 tensor, checked with
``torch._assert_async``) and ONNX (built node by node; the sample rate picks a row of a
two-row table with ``Gather``, so another value is an out-of-range index that ONNX Runtime
refuses: ONNX has no assert operator).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: The one message the TorchScript and torch.export models raise for another sample rate.
RATE_MESSAGE = "Supported sampling rates: [8000, 16000]"
#: Each output is scaled by the row of this table the sample rate picks.
RATE_SCALE = {8000: 1.0, 16000: 0.5}
WEIGHT = 0.01
SAMPLES = 512
HIDDEN = 128


def reference(x: np.ndarray, state: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The model's outputs computed with numpy (float64, then float32)."""
    scale = RATE_SCALE[int(sr)]
    w = np.full((SAMPLES, HIDDEN), WEIGHT)
    h = np.tanh(x.astype(np.float64) @ w + state.astype(np.float64).mean(axis=0)) * scale
    prob = 1.0 / (1.0 + np.exp(-h.mean(axis=1, keepdims=True)))
    return {
        "prob": prob.astype(np.float32),
        "state": np.stack([h, h * 0.5]).astype(np.float32),
    }


def example(batch: int = 2, sr: int = 16000, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of ``batch`` items: audio, a state and a 0-d sample rate."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, SAMPLES)).astype(np.float32),
        "state": rng.standard_normal((2, batch, HIDDEN)).astype(np.float32),
        "sr": np.array(sr, dtype=np.int64),
    }


def _torch_module(torch: Any, *, scripted: bool) -> Any:
    nn = torch.nn

    class ScriptedVad(nn.Module):
        def forward(
            self, x: torch.Tensor, state: torch.Tensor, sr: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if sr not in [8000, 16000]:
                raise ValueError("Supported sampling rates: [8000, 16000]")
            scale = 1.0 if sr == 8000 else 0.5
            w = torch.full([512, 128], 0.01)
            h = torch.tanh(x @ w + state.mean(0)) * scale
            return torch.sigmoid(h.mean(1, keepdim=True)), torch.stack([h, h * 0.5])

    class ExportedVad(nn.Module):
        def forward(self, x: Any, state: Any, sr: Any) -> tuple[Any, Any]:
            torch._assert_async(
                (sr == 8000) | (sr == 16000), "Supported sampling rates: [8000, 16000]"
            )
            scale = torch.where(sr == 8000, 1.0, 0.5)
            w = torch.full([512, 128], 0.01)
            h = torch.tanh(x @ w + state.mean(0)) * scale
            return torch.sigmoid(h.mean(1, keepdim=True)), torch.stack([h, h * 0.5])

    return ScriptedVad() if scripted else ExportedVad()


def save_torchscript(torch: Any, path: Path) -> Path:
    """The model as a TorchScript archive: ``forward(Tensor x, Tensor state, int sr)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in 2.14
        torch.jit.script(_torch_module(torch, scripted=True)).save(str(path))
    return path


def save_export(torch: Any, path: Path) -> Path:
    """The model as a ``torch.export`` program, batch dynamic on ``x``'s axis 0, ``state``'s 1."""
    batch = torch.export.Dim("batch", min=1)
    ex = {k: torch.from_numpy(v) for k, v in example(2).items()}
    program = torch.export.export(
        _torch_module(torch, scripted=False),
        (ex["x"], ex["state"], ex["sr"]),
        dynamic_shapes=({0: batch}, {1: batch}, None),
    )
    torch.export.save(program, str(path))
    return path


def save_onnx(onnx: Any, path: Path, batch: str | None = "batch") -> Path:
    """The model in ONNX, built node by node (opset 18); ``batch`` names the batch dimension.

    With ``batch=None`` the batch dimension has no name (no ``dim_param``), as some exporters
    leave it.
    """
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: Any, dtype: Any) -> Any:
        return helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype), name)
        )

    nodes = [
        const("w_shape", [SAMPLES, HIDDEN], np.int64),
        helper.make_node(
            "ConstantOfShape",
            ["w_shape"],
            ["w"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [WEIGHT]),
        ),
        const("r8k", 8000, np.int64),
        const("r16k", 16000, np.int64),
        const("two", 2, np.int64),
        const("table", [RATE_SCALE[8000], RATE_SCALE[16000]], np.float32),
        const("axes0", [0], np.int64),
        const("axes1", [1], np.int64),
        helper.make_node("Equal", ["sr", "r8k"], ["is8k"]),
        helper.make_node("Equal", ["sr", "r16k"], ["is16k"]),
        helper.make_node("Or", ["is8k", "is16k"], ["known"]),
        helper.make_node("Not", ["known"], ["unknown"]),
        helper.make_node("Cast", ["is16k"], ["i16k"], to=TensorProto.INT64),
        helper.make_node("Cast", ["unknown"], ["iunk"], to=TensorProto.INT64),
        helper.make_node("Mul", ["iunk", "two"], ["bad"]),
        helper.make_node("Add", ["i16k", "bad"], ["row"]),
        # 8000 -> row 0, 16000 -> row 1, anything else -> row 2: out of range, an error.
        helper.make_node("Gather", ["table", "row"], ["scale"], axis=0),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("ReduceMean", ["state", "axes0"], ["smean"], keepdims=0),
        helper.make_node("Add", ["xw", "smean"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["t"]),
        helper.make_node("Mul", ["t", "scale"], ["h"]),
        helper.make_node("ReduceMean", ["h", "axes1"], ["hm"], keepdims=1),
        helper.make_node("Sigmoid", ["hm"], ["prob"]),
        const("half", 0.5, np.float32),
        helper.make_node("Mul", ["h", "half"], ["h2"]),
        helper.make_node("Unsqueeze", ["h", "axes0"], ["h_u"]),
        helper.make_node("Unsqueeze", ["h2", "axes0"], ["h2_u"]),
        helper.make_node("Concat", ["h_u", "h2_u"], ["state_out"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, SAMPLES]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch, HIDDEN]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, [batch, 1]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, batch, HIDDEN]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def save_all(torch: Any, onnx: Any, folder: Path) -> dict[str, Path]:
    """The model in each format, in ``folder``: ``vad.pt``, ``vad.pt2`` and ``vad.onnx``."""
    return {
        "vad.pt": save_torchscript(torch, folder / "vad.pt"),
        "vad.pt2": save_export(torch, folder / "vad.pt2"),
        "vad.onnx": save_onnx(onnx, folder / "vad.onnx"),
    }
