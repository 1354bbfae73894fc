"""The PyTorch backend and the torch exporters, on tiny models built here.

Tolerances: formats that run the same float32 arithmetic in another order (TorchScript frozen
and optimised with BatchNorm folded into the convolution, channels-last layouts, ONNX Runtime)
agree with eager torch within ``PARITY`` (absolute and relative 1e-4); the fixed-weight affine
model gives exactly ``x @ W.T + b``, with integer-valued inputs so float32 is exact.
"""

import logging
import pickle
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tests._payloads import Payload

from pyinfer import load_model
from pyinfer.backends.base import Device, ModelFormat
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    CudaUnavailableError,
    DeviceError,
    InvalidArgumentError,
    ModelLoadError,
    UntrustedModelError,
)
from pyinfer.export import export_onnx, export_torch_program, export_torchscript
from pyinfer.loading import PyTorchModelLoader

PARITY = {"rtol": 1e-4, "atol": 1e-4}
W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
B = np.array([0.5, -1.0], dtype=np.float32)
TORCH_FORMATS = [
    ModelFormat.TORCHSCRIPT,
    ModelFormat.PYTORCH,
    ModelFormat.PYTORCH_LEGACY,
    ModelFormat.PICKLE,
    ModelFormat.TORCH_EXPORT,
]


def _nets(torch: ModuleType) -> SimpleNamespace:
    nn = torch.nn

    class ConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 3)

        def forward(self, image):  # TorchScript reads unannotated args as tensors
            return self.fc(self.bn(self.conv(image)).relu().mean((2, 3)))

    class Multi(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 2)
            self.b = nn.Linear(3, 5)

        def forward(self, image, extra):
            return {"z_first": self.a(image), "a_second": self.b(extra) * 2.0}

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 2)

        def forward(self, x):
            y = self.a(x)
            return y, y.sum(1)

    def affine() -> Any:
        lin = nn.Linear(3, 2)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(B))
        return lin

    def conv_net() -> Any:
        torch.manual_seed(0)
        net = ConvNet()
        with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them matters
            net.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
            net.bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 1.0]))
        return net.eval()

    return SimpleNamespace(
        ConvNet=ConvNet, Multi=Multi, Pair=Pair, affine=affine, conv_net=conv_net
    )


@pytest.fixture
def nets(torch_module: ModuleType) -> SimpleNamespace:
    return _nets(torch_module)


def _images(batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 8, 8)).astype(np.float32)


def _eager(torch: ModuleType, module: Any, *arrays: np.ndarray) -> Any:
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays))


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: int(len(data) * keep)])
    return out


# -- formats and parity ----------------------------------------------------------------------


def test_analytic_affine_from_state_dict(torch_module: ModuleType, nets: Any, tmp_path: Path):
    path = tmp_path / "affine.pth"
    torch_module.save(nets.affine().state_dict(), path)
    model = load_model(
        path,
        architecture=torch_module.nn.Linear,
        architecture_kwargs={"in_features": 3, "out_features": 2},
        input_shapes=(None, 3),
    )
    x = np.arange(15, dtype=np.float32).reshape(5, 3) - 7
    out = model(x)
    assert list(out) == ["output"]
    np.testing.assert_array_equal(out["output"], x @ W.T + B)
    assert model.format is ModelFormat.PYTORCH
    assert model.framework == "torch"
    assert [str(s) for s in model.inputs] == ["input: (?, 3) float32"]
    assert [str(s) for s in model.outputs] == ["output: (batch, 2) float32"]
    assert model.parameter_count == 8
    assert model.parameter_bytes == 32
    assert model.load_report is not None
    assert model.load_report.ok
    assert model.options["load_report"]["missing_keys"] == []
    assert model.load_time_s >= 0


def test_formats_agree_with_eager(
    torch_module: ModuleType, onnxruntime_module: ModuleType, nets: Any, tmp_path: Path
):
    torch = torch_module
    net = nets.conv_net()
    example = torch.from_numpy(_images(2))
    script = export_torchscript(net, tmp_path / "net_script.pt", example, method="script")
    trace = export_torchscript(net, tmp_path / "net_trace.pt", example)
    program = export_torch_program(net, tmp_path / "net.pt2", example)
    state = tmp_path / "net.pth"
    torch.save(net.state_dict(), state)
    legacy = tmp_path / "net_legacy.pth"
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    arch = {"architecture": nets.ConvNet, "input_shapes": {"image": ("batch", 3, 8, 8)}}
    models = {
        "eager": PyTorchModelLoader(input_shapes=(None, 3, 8, 8)).from_module(nets.conv_net()),
        "script": load_model(script, input_shapes=(None, 3, 8, 8)),
        "trace": load_model(trace),
        "export": load_model(program),
        "state_dict": load_model(state, **arch),
        "legacy": load_model(legacy, **arch),
    }
    expected_formats = {
        "eager": ModelFormat.PYTORCH,
        "script": ModelFormat.TORCHSCRIPT,
        "trace": ModelFormat.TORCHSCRIPT,
        "export": ModelFormat.TORCH_EXPORT,
        "state_dict": ModelFormat.PYTORCH,
        "legacy": ModelFormat.PYTORCH_LEGACY,
    }
    onnx_files = export_onnx(net, tmp_path / "net.onnx", example, dynamo=False)
    session = onnxruntime_module.InferenceSession(
        str(onnx_files[0]), providers=["CPUExecutionProvider"]
    )
    # The same export through pyinfer's ONNX backend, and the dynamo exporter's (external data).
    models["onnx"] = load_model(onnx_files[0])
    dynamo_files = export_onnx(net, tmp_path / "net_dynamo.onnx", example)
    assert dynamo_files[-1].name == "net_dynamo.onnx.data"
    models["onnx-dynamo"] = load_model(dynamo_files[0])
    expected_formats["onnx"] = expected_formats["onnx-dynamo"] = ModelFormat.ONNX
    for batch in (1, 5):
        x = _images(batch, seed=batch)
        reference = _eager(torch, net, x).numpy()
        for label, model in models.items():
            assert model.format is expected_formats[label], label
            got = model({"image": x})["output"]
            assert got.shape == (batch, 3), label
            np.testing.assert_allclose(got, reference, **PARITY, err_msg=label)
        np.testing.assert_allclose(session.run(None, {"image": x})[0], reference, **PARITY)
    assert models["script"].options["freeze"] is True
    assert models["script"].options["optimize"] is True
    assert models["script"].options["freeze_verified"] is True
    assert models["trace"].options["freeze_verified"] is False  # no shapes to build an example
    for label in ("eager", "export", "state_dict", "legacy"):
        assert models[label].options["freeze"] is False  # freezing is TorchScript's
    for label, model in models.items():
        if model.format is not ModelFormat.ONNX:
            assert model.options["channels_last"] is True
        # ONNX counts initializers, which the exporters may fold (BatchNorm into the conv):
        # at most the module's parameters, never more.
        params = sum(p.numel() for p in net.parameters())
        if model.format is ModelFormat.ONNX:
            assert 0 < model.parameter_count <= params, label
        else:
            assert model.parameter_count == params, label


def test_content_wins_over_a_wrong_extension(
    torch_module: ModuleType, nets: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    net = nets.conv_net()
    example = torch_module.from_numpy(_images(2))
    path = export_torchscript(net, tmp_path / "actually_torchscript.onnx", example)
    with caplog.at_level(logging.WARNING, logger="pyinfer.loading.detect"):
        model = load_model(path, input_shapes=(None, 3, 8, 8))
    assert model.format is ModelFormat.TORCHSCRIPT
    assert any("its content is torchscript" in r.getMessage() for r in caplog.records)
    x = _images(3)
    np.testing.assert_allclose(
        model({"image": x})["output"], _eager(torch_module, net, x).numpy(), **PARITY
    )


def test_torch_export_specs_from_graph(torch_module: ModuleType, nets: Any, tmp_path: Path):
    torch = torch_module
    path = export_torch_program(
        nets.Multi(), tmp_path / "multi.pt2", (torch.randn(1, 4), torch.randn(1, 3))
    )
    model = load_model(path)
    assert [str(s) for s in model.inputs] == [
        "image: (batch, 4) float32",
        "extra: (batch, 3) float32",
    ]
    assert [str(s) for s in model.outputs] == [
        "z_first: (batch, 2) float32",
        "a_second: (batch, 5) float32",
    ]
    assert model.has_dynamic_batch
    out = model(model.example_inputs(5))
    assert list(out) == ["z_first", "a_second"]
    assert out["a_second"].shape == (5, 5)
    assert model.options["channels_last"] is False  # no convolution in it


def test_export_onnx_dynamo_keeps_data_beside_and_dynamic_batch(
    torch_module: ModuleType,
    onnxruntime_module: ModuleType,
    onnxscript_module: ModuleType,
    nets: Any,
    tmp_path: Path,
):
    torch = torch_module
    net = nets.Multi().eval()
    files = export_onnx(net, tmp_path / "multi.onnx", (torch.randn(1, 4), torch.randn(1, 3)))
    assert files == [tmp_path / "multi.onnx", tmp_path / "multi.onnx.data"]
    assert all(f.is_file() for f in files)
    session = onnxruntime_module.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "extra"]
    assert [o.name for o in session.get_outputs()] == ["z_first", "a_second"]
    assert not isinstance(session.get_inputs()[0].shape[0], int)
    model = load_model(files[0])
    assert model.input_names() == ["image", "extra"]
    assert model.output_names() == ["z_first", "a_second"]
    assert model.has_dynamic_batch
    for batch in (1, 5):
        rng = np.random.default_rng(batch)
        image = rng.standard_normal((batch, 4)).astype(np.float32)
        extra = rng.standard_normal((batch, 3)).astype(np.float32)
        want = _eager(torch, net, image, extra)
        got = session.run(None, {"image": image, "extra": extra})
        np.testing.assert_allclose(got[0], want["z_first"].numpy(), **PARITY)
        np.testing.assert_allclose(got[1], want["a_second"].numpy(), **PARITY)
        through_pyinfer = model({"image": image, "extra": extra})
        assert list(through_pyinfer) == ["z_first", "a_second"]
        np.testing.assert_allclose(through_pyinfer["a_second"], want["a_second"].numpy(), **PARITY)


def test_export_onnx_legacy_names_and_no_data_file(
    torch_module: ModuleType, onnxruntime_module: ModuleType, nets: Any, tmp_path: Path
):
    net = nets.Pair().eval()
    files = export_onnx(
        net, tmp_path / "pair.onnx", np.ones((1, 4), np.float32), dynamo=False, opset=17
    )
    assert files == [tmp_path / "pair.onnx"]
    session = onnxruntime_module.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert [o.name for o in session.get_outputs()] == ["output_0", "output_1"]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    got = session.run(None, {"x": x})
    np.testing.assert_allclose(got[1], _eager(torch_module, net, x)[1].numpy(), **PARITY)


def test_export_argument_errors(torch_module: ModuleType, nets: Any, tmp_path: Path):
    with pytest.raises(InvalidArgumentError, match="'trace' or 'script'"):
        export_torchscript(nets.Pair(), tmp_path / "a.pt", torch_module.ones(1, 4), method="jit")
    with pytest.raises(InvalidArgumentError, match="torch tensors or numpy arrays"):
        export_torchscript(nets.Pair(), tmp_path / "a.pt", [[1.0, 2.0]])
    with pytest.raises(InvalidArgumentError, match=r"torch\.nn\.Module"):
        export_torch_program(object(), tmp_path / "a.pt2", torch_module.ones(1, 4))
    with pytest.raises(InvalidArgumentError, match="1 input names for 2 example inputs"):
        export_onnx(
            nets.Multi(),
            tmp_path / "m.onnx",
            (torch_module.ones(1, 4), torch_module.ones(1, 3)),
            input_names=["only"],
            dynamo=False,
        )


def test_multi_input_multi_output_names_and_order(
    torch_module: ModuleType, nets: Any, tmp_path: Path
):
    torch = torch_module
    net = nets.Multi().eval()
    examples = (torch.randn(2, 4), torch.randn(2, 3))
    shapes = {"image": (None, 4), "extra": (None, 3)}
    script = export_torchscript(net, tmp_path / "multi_script.pt", examples, method="script")
    trace = export_torchscript(net, tmp_path / "multi_trace.pt", examples)
    models = [
        PyTorchModelLoader(input_shapes=shapes).from_module(net),
        load_model(script, input_shapes=shapes),
        load_model(trace, input_shapes=shapes),
    ]
    rng = np.random.default_rng(3)
    inputs = {
        "image": rng.standard_normal((5, 4)).astype(np.float32),
        "extra": rng.standard_normal((5, 3)).astype(np.float32),
    }
    want = _eager(torch, net, inputs["image"], inputs["extra"])
    for model in models:
        assert model.input_names() == ["image", "extra"]
        assert [str(s) for s in model.outputs] == [
            "z_first: (batch, 2) float32",
            "a_second: (batch, 5) float32",
        ]
        out = model([inputs["image"], inputs["extra"]])
        assert list(out) == ["z_first", "a_second"]
        np.testing.assert_allclose(out["a_second"], want["a_second"].numpy(), **PARITY)
    pair = PyTorchModelLoader(input_shapes=(None, 4)).from_module(nets.Pair())
    assert pair.output_names() == ["output_0", "output_1"]
    assert [s.shape for s in pair.outputs] == [("batch", 2), ("batch",)]


def test_outputs_recorded_at_first_run_without_declared_shapes(nets: Any):
    model = PyTorchModelLoader().from_module(nets.Pair())
    assert model.inputs[0].shape is None
    assert model.outputs == ()
    out = model(np.ones((3, 4), np.float32))
    assert list(out) == ["output_0", "output_1"]
    assert [s.shape for s in model.outputs] == [(None, 2), (None,)]


def test_integer_inputs_with_declared_dtype(torch_module: ModuleType):
    torch = torch_module
    torch.manual_seed(0)
    emb = torch.nn.Embedding(100, 4)
    model = PyTorchModelLoader(input_shapes=("batch", 6), input_dtypes="int64").from_module(emb)
    assert str(model.inputs[0]) == "input: (batch, 6) int64"
    assert [str(s) for s in model.outputs] == ["output: (batch, 6, 4) float32"]
    ids = np.array([[1, 2, 3, 4, 5, 99]], dtype=np.int64)
    np.testing.assert_array_equal(model(ids)["output"][0], emb.weight.detach().numpy()[ids[0]])


def test_read_only_input_arrays_do_not_warn(nets: Any):
    model = PyTorchModelLoader(input_shapes=(None, 3)).from_module(nets.affine())
    x = np.ones((2, 3), np.float32)
    x.setflags(write=False)
    np.testing.assert_array_equal(model(x)["output"], x @ W.T + B)


# -- architectures and checkpoints -----------------------------------------------------------


def test_architecture_instance_factory_and_import_string(
    torch_module: ModuleType, nets: Any, tmp_path: Path
):
    path = tmp_path / "affine.pth"
    torch_module.save(nets.affine().state_dict(), path)
    seen: dict[str, Any] = {}

    def factory(weights: Any = "would-download", out_features: int = 0) -> Any:
        seen["weights"] = weights
        return torch_module.nn.Linear(3, out_features)

    x = np.eye(3, dtype=np.float32)
    for arch, kwargs in [
        (torch_module.nn.Linear(3, 2), None),
        (factory, {"out_features": 2}),
        ("torch.nn:Linear", {"in_features": 3, "out_features": 2}),
    ]:
        model = load_model(
            path, architecture=arch, architecture_kwargs=kwargs, input_shapes=(None, 3)
        )
        np.testing.assert_array_equal(model(x)["output"], x @ W.T + B)
    assert seen["weights"] is None  # a factory taking weights= is never asked to download


def test_torchvision_import_string(
    torch_module: ModuleType, torchvision_module: ModuleType, tmp_path: Path
):
    torch = torch_module
    torch.manual_seed(0)
    net = torchvision_module.models.squeezenet1_1(weights=None, num_classes=3).eval()
    path = tmp_path / "squeeze.pth"
    torch.save({"model": net.state_dict(), "epoch": 7}, path)
    model = load_model(
        path,
        architecture="torchvision.models:squeezenet1_1",
        architecture_kwargs={"num_classes": 3},
        input_shapes=(None, 3, 64, 64),
    )
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(model(x)["output"], _eager(torch, net, x).numpy(), **PARITY)
    assert model.options["architecture"] == "torchvision.models:squeezenet1_1"
    assert model.options["load_report"]["source_key"] == "model"
    assert model.options["load_report"]["ignored_keys"] == ["epoch"]


@pytest.mark.parametrize(
    ("shape", "source"),
    [
        ("state_dict", "state_dict"),
        ("model_state_dict", "model_state_dict"),
        ("model", "model"),
        ("ddp", None),
        ("compiled", None),
        ("ddp_in_checkpoint", "state_dict"),
    ],
)
def test_checkpoint_shapes(
    torch_module: ModuleType, nets: Any, tmp_path: Path, shape: str, source: str | None
):
    sd = nets.affine().state_dict()
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1}]}
    payload: Any = {
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model_state_dict": {"model_state_dict": sd, "optimizer": optimizer, "epoch": 3},
        "model": {"model": sd, "scheduler": {"last_epoch": 2}},
        "ddp": {f"module.{k}": v for k, v in sd.items()},
        "compiled": {f"module._orig_mod.{k}": v for k, v in sd.items()},
        "ddp_in_checkpoint": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    }[shape]
    path = tmp_path / f"{shape}.pth"
    torch_module.save(payload, path)
    model = load_model(path, architecture=torch_module.nn.Linear(3, 2), input_shapes=(None, 3))
    x = np.eye(3, dtype=np.float32)
    np.testing.assert_array_equal(model(x)["output"], x @ W.T + B)
    report = model.options["load_report"]
    assert report["source_key"] == source
    assert report["missing_keys"] == report["unexpected_keys"] == []
    if shape == "ddp":
        assert report["stripped_prefixes"] == ["module."]
    if shape == "compiled":
        assert report["stripped_prefixes"] == ["module.", "_orig_mod."]
    if shape == "model_state_dict":
        assert sorted(report["ignored_keys"]) == ["epoch", "optimizer"]


@pytest.mark.parametrize("ema_key", ["ema", "model_ema", "state_dict_ema", "ema_state_dict"])
def test_ema_weights_only_when_asked(
    torch_module: ModuleType, nets: Any, tmp_path: Path, ema_key: str
):
    main = nets.affine().state_dict()
    ema = {k: v * 2 for k, v in main.items()}
    wrapped: Any = {"module": ema} if ema_key == "model_ema" else ema  # timm nests one level
    path = tmp_path / "ema.pth"
    torch_module.save({"state_dict": main, ema_key: wrapped}, path)
    x = np.eye(3, dtype=np.float32)
    common = {"architecture": torch_module.nn.Linear(3, 2), "input_shapes": (None, 3)}
    plain = load_model(path, **common)
    np.testing.assert_array_equal(plain(x)["output"], x @ W.T + B)
    assert plain.options["ema_available"] is True
    assert plain.options["use_ema"] is False
    common["architecture"] = torch_module.nn.Linear(3, 2)
    averaged = load_model(path, use_ema=True, **common)
    np.testing.assert_array_equal(averaged(x)["output"], 2 * (x @ W.T + B))
    assert averaged.options["load_report"]["source_key"] == ema_key


def test_checkpoint_key_choice_errors(torch_module: ModuleType, nets: Any, tmp_path: Path):
    sd = nets.affine().state_dict()
    arch = {"architecture": torch_module.nn.Linear(3, 2), "input_shapes": (None, 3)}
    bare = tmp_path / "bare.pth"
    torch_module.save(sd, bare)
    with pytest.raises(ArchitectureError, match="bare state_dict with no EMA") as info:
        load_model(bare, use_ema=True, **arch)
    assert info.value.path == str(bare)
    odd = tmp_path / "odd.pth"
    torch_module.save({"params": sd, "epoch": 1}, odd)
    with pytest.raises(ArchitectureError, match=r"none of its entries holds model weights") as e:
        load_model(odd, **arch)
    assert "params" in str(e.value)
    assert "state_dict_key=" in str(e.value)
    model = load_model(odd, state_dict_key="params", **arch)
    assert model.options["load_report"]["source_key"] == "params"
    with pytest.raises(ArchitectureError, match="state_dict_key='nope' is not in"):
        load_model(odd, state_dict_key="nope", **arch)
    with pytest.raises(ArchitectureError, match="no EMA weights"):
        load_model(odd, use_ema=True, **arch)
    tensors = tmp_path / "list.pth"
    torch_module.save([torch_module.ones(2)], tensors)
    with pytest.raises(ArchitectureError, match="holds a list, not a module"):
        load_model(tensors, **arch)


def test_state_dict_without_architecture(torch_module: ModuleType, nets: Any, tmp_path: Path):
    path = tmp_path / "weights.pth"
    torch_module.save(nets.affine().state_dict(), path)
    with pytest.raises(ArchitectureError) as info:
        load_model(path)
    text = str(info.value)
    assert str(path) in text
    assert "architecture='torchvision.models:resnet50'" in text
    assert info.value.path == str(path)


def test_state_dict_that_does_not_fit(
    torch_module: ModuleType, nets: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    torch = torch_module
    sd = dict(nets.conv_net().state_dict())
    sd["fc.weight"] = torch.zeros(5, 4)  # shape mismatch
    del sd["fc.bias"]  # missing
    sd["extra.weight"] = torch.zeros(1)  # unexpected
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(ArchitectureError) as info:
        load_model(path, architecture=nets.ConvNet)
    text = str(info.value)
    assert str(path) in text
    assert "1 missing key(s) (fc.bias)" in text
    assert "1 unexpected key(s) (extra.weight)" in text
    assert "fc.weight: checkpoint (5, 4) vs architecture (3, 4)" in text
    assert "strict=False" in text
    with caplog.at_level(logging.WARNING, logger="pyinfer"):
        model = load_model(
            path, architecture=nets.ConvNet, strict=False, input_shapes=(None, 3, 8, 8)
        )
    assert "strict=False" in caplog.text
    assert "fc.bias" in caplog.text
    report = model.options["load_report"]
    assert report["missing_keys"] == ["fc.bias"]
    assert report["unexpected_keys"] == ["extra.weight"]
    assert report["shape_mismatches"] == [
        {"key": "fc.weight", "checkpoint": [5, 4], "architecture": [3, 4]}
    ]
    assert not model.load_report.ok
    # The keys that fit were loaded: the convolution has the checkpoint's weights.
    np.testing.assert_array_equal(
        model.module.conv.weight.detach().numpy(), sd["conv.weight"].numpy()
    )


def test_many_missing_keys_are_summarised(torch_module: ModuleType, tmp_path: Path):
    path = tmp_path / "few.pth"
    torch_module.save({"0.weight": torch_module.zeros(2, 2)}, path)
    arch = torch_module.nn.Sequential(*[torch_module.nn.Linear(2, 2) for _ in range(5)])
    with pytest.raises(ArchitectureError, match=r"9 missing key\(s\) \(0\.bias, .*and 4 more\)"):
        load_model(path, architecture=arch)


def test_bad_architecture_arguments(torch_module: ModuleType, nets: Any, tmp_path: Path):
    path = tmp_path / "w.pth"
    torch_module.save(nets.affine().state_dict(), path)
    with pytest.raises(InvalidArgumentError, match=r"'package\.module:attribute'"):
        load_model(path, architecture="torch.nn.Linear")
    with pytest.raises(ArchitectureError, match="cannot import the architecture 'no_such_pkg:X'"):
        load_model(path, architecture="no_such_pkg:X")
    with pytest.raises(ArchitectureError, match=r"torch:pi' is a float, not a class"):
        load_model(path, architecture="torch:pi")
    with pytest.raises(ArchitectureError, match="building the architecture"):
        load_model(path, architecture="torch.nn:Linear", architecture_kwargs={"bad": 1})
    with pytest.raises(ArchitectureError, match=r"returned a dict, not a torch\.nn\.Module"):
        load_model(path, architecture=dict)
    with pytest.raises(InvalidArgumentError, match="not int"):
        load_model(path, architecture=3)
    with pytest.raises(InvalidArgumentError, match="architecture_kwargs must be a dict"):
        load_model(path, architecture=dict, architecture_kwargs=[1])


# -- safety ----------------------------------------------------------------------------------


def _save_pickled(torch: ModuleType, obj: Any, path: Path, fmt: str) -> None:
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        with path.open("wb") as f:
            pickle.dump(obj, f)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("zip", ModelFormat.PYTORCH),
        ("legacy", ModelFormat.PYTORCH_LEGACY),
        ("pickle", ModelFormat.PICKLE),
    ],
)
def test_pickled_model_needs_opt_in(
    torch_module: ModuleType, tmp_path: Path, fmt: str, expected: ModelFormat
):
    torch = torch_module
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()).eval()
    path = tmp_path / f"whole_{fmt}.pkl"
    _save_pickled(torch, net, path, fmt)
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    text = str(info.value)
    assert str(path) in text
    assert "torch.nn.modules.container.Sequential" in text
    assert "run code" in text
    assert "trust_code=True" in text
    assert "--trust-code" in text
    assert info.value.path == str(path)
    model = load_model(path, trust_code=True, input_shapes=(None, 3))
    assert model.format is expected
    assert model.options["trust_code"] is True
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x)["output"], _eager(torch, net, x).numpy(), **PARITY)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
def test_malicious_pickle_never_runs(torch_module: ModuleType, tmp_path: Path, fmt: str):
    marker = tmp_path / "marker"
    path = tmp_path / f"evil_{fmt}.pt"
    _save_pickled(torch_module, {"state_dict": Payload(marker)}, path, fmt)
    with pytest.raises(UntrustedModelError, match=r"\bexec\b") as info:
        load_model(path, architecture=torch_module.nn.Linear(3, 2))
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_malicious_pickle_checkpoint_entry_never_runs(torch_module: ModuleType, tmp_path: Path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch_module.save({"model": {"w": torch_module.ones(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(UntrustedModelError):
        load_model(path, architecture=torch_module.nn.Linear(3, 2))
    assert not marker.exists()


# -- damaged files ---------------------------------------------------------------------------


@pytest.fixture
def saved_files(torch_module: ModuleType, nets: Any, tmp_path: Path) -> dict[ModelFormat, Path]:
    torch = torch_module
    net = nets.affine()
    example = torch.ones(2, 3)
    legacy = tmp_path / "legacy.pth"
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    plain = tmp_path / "plain.pkl"
    with plain.open("wb") as f:
        pickle.dump(net, f)
    zip_file = tmp_path / "zip.pth"
    torch.save(net.state_dict(), zip_file)
    return {
        ModelFormat.TORCHSCRIPT: export_torchscript(net, tmp_path / "script.pt", example),
        ModelFormat.PYTORCH: zip_file,
        ModelFormat.PYTORCH_LEGACY: legacy,
        ModelFormat.PICKLE: plain,
        ModelFormat.TORCH_EXPORT: export_torch_program(net, tmp_path / "prog.pt2", example),
    }


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("fmt", TORCH_FORMATS)
def test_truncated_files(
    torch_module: ModuleType,
    saved_files: dict[ModelFormat, Path],
    fmt: ModelFormat,
    keep: float,
):
    cut = _cut(saved_files[fmt], keep)
    options = {"architecture": torch_module.nn.Linear(3, 2), "trust_code": True}
    # Detected from the content (the front end may already see the damage) and forced to the
    # format (the backend's own reading): both give a typed error naming the file.
    for forced in (None, fmt):
        with pytest.raises(CorruptModelError) as info:
            load_model(cut, format=forced, **options)
        assert str(cut) in str(info.value)
        assert info.value.path == str(cut)


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pt2", ".pkl"])
def test_random_bytes(torch_module: ModuleType, tmp_path: Path, fmt: ModelFormat, suffix: str):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(CorruptModelError, match="damaged or truncated") as info:
        load_model(path, format=fmt, trust_code=True)
    assert str(path) in str(info.value)


def test_full_unpickle_failure_is_corrupt(torch_module: ModuleType, tmp_path: Path):
    # A trusted file that names a class which no longer exists cannot be rebuilt.
    path = tmp_path / "gone.pt"
    data = pickle.dumps(torch_module.nn.ReLU(), protocol=2).replace(b"ReLU", b"RELX")
    path.write_bytes(data)
    with pytest.raises(CorruptModelError) as info:
        load_model(path, trust_code=True)
    assert str(path) in str(info.value)


# -- options, defaults, devices --------------------------------------------------------------


def test_unknown_and_bad_options(nets: Any):
    loader = PyTorchModelLoader(speed="max")
    with pytest.raises(InvalidArgumentError, match="unknown PyTorch loader option") as info:
        loader.from_module(nets.Pair())
    assert "'speed'" in str(info.value)
    assert "channels_last" in str(info.value)
    for bad, match in [
        ({"num_threads": 0}, "num_threads must be a positive int"),
        ({"strict": "yes"}, "strict must be True or False"),
        ({"channels_last": 1}, "channels_last must be True, False or None"),
        ({"input_shapes": {"nope": (1,)}}, "unknown input.*'nope'.*'x'"),
        ({"input_shapes": "3"}, "input_shapes must be a dict"),
        ({"input_shapes": {"x": (1, -2)}}, "bad dimension -2"),
        ({"input_shapes": {"x": 3}}, "must be a sequence of dimensions"),
        ({"input_dtypes": {"x": "float99"}}, "not a numpy dtype"),
    ]:
        with pytest.raises(InvalidArgumentError, match=match):
            PyTorchModelLoader(**bad).from_module(nets.Pair())
    with pytest.raises(InvalidArgumentError, match="fits a one-input model"):
        PyTorchModelLoader(input_shapes=(None, 4)).from_module(nets.Multi())
    with pytest.raises(InvalidArgumentError, match="not list"):
        PyTorchModelLoader().from_module([1])


def test_declared_shape_that_does_not_run(nets: Any, tmp_path: Path, torch_module: ModuleType):
    path = tmp_path / "affine.pth"
    torch_module.save(nets.affine().state_dict(), path)
    with pytest.raises(ModelLoadError, match="check input_shapes") as info:
        load_model(path, architecture=torch_module.nn.Linear(3, 2), input_shapes=(None, 5))
    assert info.value.path == str(path)


def test_speed_defaults_recorded_and_switchable(
    torch_module: ModuleType, nets: Any, tmp_path: Path
):
    torch = torch_module
    net = nets.conv_net()
    path = export_torchscript(net, tmp_path / "net.pt", torch.from_numpy(_images(2)))
    fast = load_model(path, input_shapes=(None, 3, 8, 8))
    assert fast.options["channels_last"] is True
    assert fast.options["freeze"] is True
    assert fast.options["optimize"] is True
    assert fast.options["num_threads"] == torch.get_num_threads()
    assert fast.options["inference_mode"] is True
    plain = load_model(
        path, input_shapes=(None, 3, 8, 8), channels_last=False, freeze=False, optimize=False
    )
    assert plain.options["channels_last"] is False
    assert plain.options["freeze"] is False
    assert plain.options["optimize"] is False
    assert not plain.module.conv.weight.is_contiguous(memory_format=torch.channels_last) or (
        plain.module.conv.weight.shape[2:] == (1, 1)
    )
    x = _images(3)
    np.testing.assert_allclose(fast(x)["output"], plain(x)["output"], **PARITY)
    native = fast.to_native({"image": x})
    assert native["image"].is_contiguous(memory_format=torch.channels_last)
    assert plain.to_native({"image": x})["image"].is_contiguous()
    described = fast.describe()
    assert described["options"]["freeze"] is True
    assert described["format"] == "torchscript"
    frozen_only = load_model(path, input_shapes=(None, 3, 8, 8), optimize=False)
    assert frozen_only.options["freeze"] is True
    assert frozen_only.options["optimize"] is False


def test_num_threads_option(nets: Any, torch_module: ModuleType):
    before = torch_module.get_num_threads()
    try:
        model = PyTorchModelLoader(num_threads=1).from_module(nets.Pair())
        assert torch_module.get_num_threads() == 1
        assert model.options["num_threads"] == 1
    finally:
        torch_module.set_num_threads(before)


def test_freeze_failure_falls_back(
    torch_module: ModuleType,
    nets: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    torch = torch_module
    path = export_torchscript(nets.conv_net(), tmp_path / "n.pt", torch.from_numpy(_images(2)))

    def broken(module: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot freeze this one")

    monkeypatch.setattr(torch.jit, "freeze", broken)
    with caplog.at_level(logging.WARNING, logger="pyinfer"):
        model = load_model(path, input_shapes=(None, 3, 8, 8))
    assert model.options["freeze"] is False
    assert "cannot freeze this one" in model.options["freeze_error"]
    assert "running it unfrozen" in caplog.text
    x = _images(2)
    reference = _eager(torch, nets.conv_net(), x).numpy()
    np.testing.assert_allclose(model(x)["output"], reference, **PARITY)


def test_freeze_that_changes_outputs_is_rejected(
    torch_module: ModuleType, nets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    torch = torch_module
    path = export_torchscript(nets.conv_net(), tmp_path / "n.pt", torch.from_numpy(_images(2)))
    shifted = export_torchscript(
        torch.nn.Sequential(nets.conv_net(), torch.nn.Hardtanh(-0.01, 0.01)),
        tmp_path / "shifted.pt",
        torch.from_numpy(_images(2)),
    )
    wrong = load_model(shifted, freeze=False).module
    monkeypatch.setattr(torch.jit, "optimize_for_inference", lambda module: wrong)
    model = load_model(path, input_shapes=(None, 3, 8, 8))
    assert model.options["freeze"] is False
    assert "differs by" in model.options["freeze_error"]


def test_architecture_ignored_for_self_describing_formats(
    torch_module: ModuleType, nets: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = export_torchscript(nets.affine(), tmp_path / "a.pt", torch_module.ones(2, 3))
    with caplog.at_level(logging.WARNING, logger="pyinfer"):
        model = load_model(path, architecture="torch.nn:Linear", input_shapes=(None, 3))
    assert "ignoring architecture" in caplog.text
    x = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(model(x)["output"], x @ W.T + B, rtol=1e-6)


def test_from_module_scripted_and_exported(torch_module: ModuleType, nets: Any):
    import warnings

    torch = torch_module
    net = nets.conv_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in 2.14
        scripted = torch.jit.script(nets.conv_net())
    model = PyTorchModelLoader(input_shapes=(None, 3, 8, 8)).from_module(scripted, name="s")
    assert model.format is ModelFormat.TORCHSCRIPT
    assert model.name == "s"
    assert model.path is None
    assert model.options["freeze"] is True
    program = torch.export.export(net, (torch.from_numpy(_images(2)),))
    exported = PyTorchModelLoader().from_module(program)
    assert exported.format is ModelFormat.TORCH_EXPORT
    assert exported.inputs[0].shape == (2, 3, 8, 8)  # exported without a dynamic batch
    x = _images(2)
    np.testing.assert_allclose(exported(x)["output"], _eager(torch, net, x).numpy(), **PARITY)


def test_cpu_has_no_stream(nets: Any):
    model = PyTorchModelLoader().from_module(nets.Pair())
    assert model.stream_handle is None
    model.synchronize()  # a no-op on the CPU
    assert model.device == Device("cpu")


def test_cuda_without_gpu(
    torch_module: ModuleType, nets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(torch_module.cuda, "is_available", lambda: False)
    path = tmp_path / "a.pth"
    torch_module.save(nets.affine().state_dict(), path)
    with pytest.raises(CudaUnavailableError, match="use device='cpu'"):
        load_model(path, device="cuda", architecture=torch_module.nn.Linear(3, 2))
    with pytest.raises(DeviceError, match="cuda:0"):
        PyTorchModelLoader().from_module(nets.Pair(), device="cuda")
    monkeypatch.setattr(torch_module.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch_module.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match=r"cuda:3 does not exist: torch sees 1 GPU"):
        PyTorchModelLoader().from_module(nets.Pair(), device="cuda:3")


@pytest.mark.gpu
def test_cuda_matches_cpu(torch_module: ModuleType, nets: Any, tmp_path: Path):
    if not torch_module.cuda.is_available():
        pytest.skip("no CUDA device")
    path = export_torchscript(nets.conv_net(), tmp_path / "n.pt", torch_module.ones(2, 3, 8, 8))
    cpu = load_model(path, input_shapes=(None, 3, 8, 8))
    gpu = load_model(path, device="cuda", input_shapes=(None, 3, 8, 8))
    assert isinstance(gpu.stream_handle, int)
    x = _images(4)
    got = gpu(x)["output"]
    gpu.synchronize()
    np.testing.assert_allclose(got, cpu(x)["output"], rtol=1e-3, atol=1e-3)


def test_marker_payload_really_runs_when_unpickled(tmp_path: Path):
    # The malicious-pickle tests are only meaningful if the payload works: prove it does.
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.read_text() == "ran"


def test_non_tensor_outputs(torch_module: ModuleType):
    class Extras(torch_module.nn.Module):
        def forward(self, x):
            return {"y": x + 1, "aux": None, "scale": 2.5}

    model = PyTorchModelLoader(input_shapes=(None, 2)).from_module(Extras())
    assert [str(s) for s in model.outputs] == ["y: (batch, 2) float32", "scale: () float32"]
    out = model(np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(out["y"], np.ones((3, 2), np.float32))
    assert out["scale"].item() == 2.5


def test_a_torch_export_program_and_a_torchscript_module_export_to_every_format(
    torch_module: ModuleType,
    onnxruntime_module: ModuleType,
    onnxscript_module: ModuleType,
    tmp_path: Path,
):
    """An ExportedProgram (whose module refuses eval()) and a ScriptModule (which only the
    TorchScript-based ONNX exporter takes) go through the exporters, names and values kept."""
    torch = torch_module

    class Two(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 2)
            self.b = torch.nn.Linear(3, 2)

        def forward(self, image: Any, extra: Any) -> Any:
            return self.a(image) * self.b(extra)

    torch.manual_seed(0)
    net = Two().eval()
    examples = (torch.randn(2, 4), torch.randn(2, 3))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(net, examples, dynamic_shapes=({0: batch}, {0: batch}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated
        scripted = torch.jit.trace(net, examples, strict=False)
    image = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    extra = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    want = _eager(torch, net, image, extra).numpy()
    written = [
        export_onnx(program, tmp_path / "from_program.onnx", examples)[0],
        export_onnx(scripted, tmp_path / "from_script.onnx", examples)[0],
        export_torch_program(program.module(), tmp_path / "again.pt2", examples),
    ]
    for path in written:
        model = load_model(path)
        assert model.input_names() == ["image", "extra"], path
        assert model.has_dynamic_batch, path
        got = model({"image": image, "extra": extra})
        np.testing.assert_allclose(next(iter(got.values())), want, **PARITY, err_msg=str(path))
    with pytest.raises(InvalidArgumentError, match="dynamo ONNX exporter cannot take"):
        export_onnx(scripted, tmp_path / "no.onnx", examples, dynamo=True)


def test_a_failed_legacy_onnx_export_prints_nothing_on_stdout(
    torch_module: ModuleType, tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    """torch's TorchScript-based exporter dumps the whole graph from C++ to stdout when an
    operator has no ONNX form; export_onnx keeps stdout for the caller's results."""
    torch = torch_module
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimised = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
    print("before")
    with pytest.raises(Exception, match="to_mkldnn"):
        export_onnx(optimised, tmp_path / "no.onnx", x)
    print("after")
    out = capfd.readouterr().out
    assert out == "before\nafter\n"
