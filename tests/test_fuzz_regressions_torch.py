"""Damaged torch-family files found by fuzzing (``tests/test_fuzz_loaders.py``), each rebuilt here.

Every test crafts the minimal equivalent of an input the fuzzer found (a crash of the
interpreter, or an untyped error escaping :func:`pyinfer.load_model`) from a tiny model built in
the test, and asserts the typed error and its message. The damage is made with
:func:`_rewrite_member`, which keeps every checksum of the zip archive valid, as the fuzzer's
``zip_member`` mutation does: the damage reaches the parser of the member.
"""

import io
import json
import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from tests._payloads import Payload

from pyinfer import load_model
from pyinfer.errors import (
    CorruptModelError,
    InferenceError,
    ModelLoadError,
    UntrustedModelError,
)
from pyinfer.loading import detect_format


def _rewrite_member(path: Path, member: str, change: Callable[[bytes], bytes | None]) -> Path:
    """Rewrites the zip ``path`` with ``member`` changed (``None``: removed); returns ``path``."""
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    assert member in [info.filename for info, _ in members], member
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info, body in members:
            new = change(body) if info.filename == member else body
            if new is not None:
                dst.writestr(info, new)
    path.write_bytes(out.getvalue())
    return path


def _linear(torch: ModuleType) -> Any:
    torch.manual_seed(0)
    return torch.nn.Linear(8, 4).eval()


def _scripted(torch: ModuleType, module: Any, path: Path, example: Any) -> Path:
    with warnings.catch_warnings():
        # torch.jit.* is deprecated in 2.14; tracing torch.tensor(...) warns it is a constant.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.jit.save(torch.jit.trace(module, example), str(path))
    return path


# -- format detection ---------------------------------------------------------------------------


def test_zip_whose_directory_claims_a_newer_zip_version_is_corrupt(tmp_path: Path) -> None:
    # Fuzz torch_zip input 800: a bit flip in the central directory's "version needed to
    # extract" made zipfile raise NotImplementedError("zip file version 6.4") in detection.
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 6, 64)  # version needed to extract: 6.4
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match=r"\(zip file version 6\.4\)") as info:
        detect_format(path)
    assert str(info.value).startswith(f"{path} is a damaged zip archive: its directory asks")
    assert info.value.path == str(path)


# -- TorchScript --------------------------------------------------------------------------------


def test_torchscript_storage_record_cut_to_nothing_is_refused_before_it_runs(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    # Fuzz torchscript input 27 (and 7 more at 10,000 inputs): data/3, the bias's 16 bytes,
    # emptied behind a valid checksum. torch.jit.load accepted it and the module read past
    # its memory when run: SIGSEGV.
    torch = torch_module
    path = _scripted(torch, _linear(torch), tmp_path / "net.pt", torch.ones(1, 8))
    with zipfile.ZipFile(path) as archive:
        sizes = {i.filename: i.file_size for i in archive.infolist()}
    assert sizes["net/data/1"] == 16  # the bias: 4 float32
    _rewrite_member(path, "net/data/1", lambda _: b"")
    with pytest.raises(CorruptModelError) as info:
        load_model(path, input_shapes={"input": [1, 8]})
    assert str(info.value) == (
        f"{path} is a damaged TorchScript archive: a tensor of its data.pkl has a storage of 4 "
        "elements (16 bytes) in its record 'net/data/1', which holds 0 bytes; save the module "
        "again (torch.jit.save)"
    )


def test_torchscript_constant_without_its_record_is_refused(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    torch = torch_module

    class AddConstant(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x + torch.tensor([1.0, 2.0])

    path = _scripted(torch, AddConstant(), tmp_path / "const.pt", torch.ones(2))
    assert load_model(path, input_shapes={"x": [2]})(np.ones(2, np.float32))["output"].tolist() == [
        2.0,
        3.0,
    ]
    _rewrite_member(path, "const/constants/0", lambda _: None)
    with pytest.raises(CorruptModelError) as info:
        load_model(path, input_shapes={"x": [2]})
    assert str(info.value) == (
        f"{path} is a damaged TorchScript archive: a tensor of its constants.pkl refers to a "
        "storage record 'const/constants/0' the archive lacks; save the module again "
        "(torch.jit.save)"
    )


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        # Fuzzing (a structure mutation of data.pkl): the storage's element count said 3 over
        # a 64-byte record; torch.jit.load sized the storage by it. A count larger than the
        # record would make torch read past the record's bytes.
        ((0, (2,), (1,), 5), "has a storage of 5 elements (20 bytes) in its record 'm/data/0', "),
        ((0, (2,), (1,), -1), "has a storage of -1 elements (-4 bytes) in its record"),
        ((0, (4,), (1,), 4), None),
        ((0, (4,), (-1,)), "has a negative size, stride or offset ((4,), (-1,), 0)"),
        ((0, (4, 2), (1,)), "has a damaged layout (size (4, 2), stride (1,), offset 0)"),
        ((0, (4,), (1.5,)), "has a damaged layout (size (4,), stride (1.5,), offset 0)"),
        ((1, (4,), (1,)), "of shape (4,) needs 20 bytes of its storage record 'm/data/0', which"),
        ((0, (2, 2), (2, 1)), None),
        ((9, (0, 3), (3, 1)), None),  # an empty tensor reads nothing
    ],
)
def test_torchscript_tensor_layouts_are_checked_against_their_records(
    torch_module: ModuleType, layout: tuple[Any, ...], problem: str | None
) -> None:
    from pyinfer.backends.torch.archives import _StorageRef, _tensor_layout_problem

    storage = _StorageRef("0", "FloatStorage", *layout[3:])
    got = _tensor_layout_problem(torch_module, (storage, *layout[:3]), {"m/data/0": 16}, "m/data/")
    if problem is None:
        assert got is None
    else:
        assert got is not None
        assert got.startswith(problem)


def test_torchscript_storage_types_of_every_dtype_are_sized(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    # TorchScript names storages after C++ scalar types; Python's table lacks the newer ones
    # (Float8_e4m3fnStorage, UInt16Storage), and the check must neither refuse nor skip them.
    torch = torch_module

    class Buffers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("f8", torch.zeros(4, dtype=torch.float8_e4m3fn))
            self.register_buffer("u16", torch.zeros(4, dtype=torch.uint16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    path = tmp_path / "buffers.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Buffers()), str(path))
    assert load_model(path, input_shapes={"x": [2]})(np.zeros(2, np.float32))[
        "output"
    ].tolist() == [1.0, 1.0]
    _rewrite_member(path, "buffers/data/1", lambda body: body[:6])  # u16: 8 bytes
    with pytest.raises(CorruptModelError, match=r"4 elements \(8 bytes\) in its record"):
        load_model(path, input_shapes={"x": [2]})
    from pyinfer.backends.torch.archives import _storage_itemsize

    assert _storage_itemsize(torch, "Float8_e4m3fnStorage") == 1
    assert _storage_itemsize(torch, "ComplexHalfStorage") == 4
    assert _storage_itemsize(torch, "onnxStorage") is None  # never torch's lazy imports


def test_torchscript_pickle_that_cannot_be_walked_is_corrupt(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    torch = torch_module
    path = _scripted(torch, _linear(torch), tmp_path / "net.pt", torch.ones(1, 8))
    _rewrite_member(path, "net/data.pkl", lambda body: body[: len(body) // 2])
    with pytest.raises(CorruptModelError) as info:
        load_model(path, input_shapes={"input": [1, 8]})
    assert str(info.value).startswith(
        f"{path} could not be read as a TorchScript archive (its data.pkl) (UnpicklingError: "
    )


def test_torchscript_module_without_forward(torch_module: ModuleType, tmp_path: Path) -> None:
    # Fuzz torchscript input 244: the code of the module's class cut short, so the loaded
    # module had no forward; _input_names raised AttributeError.
    torch = torch_module

    class PredictOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        @torch.jit.export
        def predict(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    path = tmp_path / "predict_only.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(PredictOnly()), str(path))
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path} is a TorchScript module without a forward method (its methods: predict); "
        "pyinfer runs forward: script or trace a module that defines it (a file that had one "
        "is damaged: save it again)"
    )


def test_torchscript_with_nan_weights_is_still_frozen(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    # Fuzzing showed bit-flipped weights (NaN) made the frozen module "differ by nan" from the
    # plain one: NaN outputs compared unequal, and the model ran unfrozen with a warning.
    torch = torch_module
    net = _linear(torch)
    with torch.no_grad():
        net.bias[1] = float("nan")
    path = _scripted(torch, net, tmp_path / "nan.pt", torch.ones(1, 8))
    model = load_model(path, input_shapes={"input": [1, 8]})
    assert model.options["freeze"] is True
    assert model.options["freeze_verified"] is True
    assert "freeze_error" not in model.options
    out = model(np.ones((1, 8), np.float32))["output"]
    assert np.isnan(out[0, 1])
    assert np.isfinite(out[0, [0, 2, 3]]).all()


# -- torch.export (.pt2) -------------------------------------------------------------------------


@pytest.fixture
def exported(torch_module: ModuleType, tmp_path: Path) -> Path:
    torch = torch_module
    program = torch.export.export(_linear(torch), (torch.ones(2, 8),))
    path = tmp_path / "net.pt2"
    torch.export.save(program, str(path))
    return path


def _edit_json(member_body: bytes, edit: Callable[[Any], None]) -> bytes:
    doc = json.loads(member_body)
    edit(doc)
    return json.dumps(doc).encode()


def test_export_program_without_an_entry_signature(exported: Path) -> None:
    # Fuzz torch_export input 905: the module call graph's entry lost its signature;
    # program.module() raised AttributeError: 'NoneType' object has no attribute 'in_spec'.
    def drop(doc: Any) -> None:
        doc["graph_module"]["module_call_graph"][0]["signature"] = None

    _rewrite_member(exported, "net/models/model.json", lambda b: _edit_json(b, drop))
    with pytest.raises(CorruptModelError) as info:
        load_model(exported)
    assert str(info.value) == (
        f"{exported} is a damaged torch.export program (.pt2): its module call graph has no "
        "signature for the entry point (models/*.json was damaged); export it again"
    )


def test_export_weight_whose_shape_contradicts_the_graph(exported: Path) -> None:
    # Fuzz torch_export input 9375: the weight config said weight (0, 8); torch.export.load
    # accepted it and the first call failed with a RuntimeError from aten.linear.
    def shrink(doc: Any) -> None:
        doc["config"]["weight"]["tensor_meta"]["sizes"][0] = {"as_int": 0}

    _rewrite_member(
        exported,
        "net/data/weights/model_weights_config.json",
        lambda b: _edit_json(b, shrink),
    )
    with pytest.raises(CorruptModelError) as info:
        load_model(exported)
    assert str(info.value) == (
        f"{exported} is a damaged torch.export program (.pt2): weight 'weight' is stored as "
        "(0, 8) float32 but its graph expects (4, 8) float32 (the archive's weight config or "
        "graph was damaged); export it again"
    )


# -- torch.export (.pt2): what torch.export.load would unpickle in full ---------------------------


def _saved(torch: ModuleType, obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_export_sample_inputs_that_run_code_are_refused(
    torch_module: ModuleType, exported: Path, tmp_path: Path
) -> None:
    # torch.export.load retries a failed weights_only load of the sample inputs with
    # weights_only=False: before this check, loading this file ran the payload.
    marker = tmp_path / "pwned"
    payload = _saved(torch_module, {"inputs": Payload(marker)})
    _rewrite_member(exported, "net/data/sample_inputs/model.pt", lambda _: payload)
    with pytest.raises(UntrustedModelError) as info:
        load_model(exported)
    assert not marker.exists()
    assert str(info.value).startswith(
        f"{exported} is a torch.export archive that holds code: imports builtins.exec (in "
        "net/data/sample_inputs/model.pt); torch.export.load would run it while loading"
    )


def test_export_pickled_weight_is_checked_with_weights_only(
    torch_module: ModuleType, exported: Path, tmp_path: Path
) -> None:
    torch = torch_module
    config = "net/data/weights/model_weights_config.json"
    with zipfile.ZipFile(exported) as archive:
        doc = json.loads(archive.read(config))
    bias_file = "net/data/weights/" + doc["config"]["bias"]["path_name"]

    def pickle_bias(doc: Any) -> None:
        doc["config"]["bias"]["use_pickle"] = True

    # A pickled tensor, as torch.export.save writes for some weights, loads and runs.
    bias = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    _rewrite_member(exported, config, lambda b: _edit_json(b, pickle_bias))
    _rewrite_member(exported, bias_file, lambda _: _saved(torch, bias))
    model = load_model(exported)
    weight = _linear(torch).weight.detach().numpy()
    expected = np.ones((2, 8), np.float32) @ weight.T + bias.detach().numpy()
    np.testing.assert_allclose(model(np.ones((2, 8), np.float32))["output"], expected, rtol=1e-6)
    # The same entry holding a payload is refused before torch.export.load unpickles it.
    marker = tmp_path / "pwned"
    _rewrite_member(exported, bias_file, lambda _: _saved(torch, Payload(marker)))
    with pytest.raises(
        UntrustedModelError,
        match=r"holds code: imports builtins\.exec \(in net/data/weights/weight_1\)",
    ):
        load_model(exported)
    assert not marker.exists()
    # A config naming a pickled payload the archive lacks is damaged.
    _rewrite_member(exported, bias_file, lambda _: None)
    with pytest.raises(CorruptModelError) as info:
        load_model(exported)
    assert str(info.value).startswith(
        f"{exported} could not be read as a torch.export program (.pt2) "
    )


def test_export_opaque_constants_and_compiled_packages_are_refused(
    exported: Path, tmp_path: Path
) -> None:
    # An opaque constant is unpickled by torch.export.load with pickle.loads: its pickle is
    # scanned first, and one that imports code is refused without running it.
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(exported, "a") as archive:
        archive.writestr("net/data/constants/opaque_obj_0", pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedModelError) as info:
        load_model(exported)
    assert not marker.exists()
    assert str(info.value).startswith(
        f"{exported} is a torch.export archive that holds code: imports builtins.exec (in "
        "net/data/constants/opaque_obj_0); "
    )
    _rewrite_member(exported, "net/data/constants/opaque_obj_0", lambda _: None)
    with zipfile.ZipFile(exported, "a") as archive:
        archive.writestr("net/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(UntrustedModelError) as info:
        load_model(exported)
    assert str(info.value).startswith(
        f"{exported} is a torch.export archive that holds code: a compiled AOTInductor package "
        "entry (net/data/aotinductor/model/model.so); "
    )


def test_export_graph_that_contradicts_its_input_dtype_fails_typed_at_the_call(
    exported: Path,
) -> None:
    # Fuzz torch_export input 6733: the graph's input declared uint8 (a JSON value replaced
    # by true) over float weights; the program loads, and its call raised a bare RuntimeError.
    def byte_input(doc: Any) -> None:
        doc["graph_module"]["graph"]["tensor_values"]["input"]["dtype"] = True

    _rewrite_member(exported, "net/models/model.json", lambda b: _edit_json(b, byte_input))
    model = load_model(exported)
    assert [(s.name, s.dtype) for s in model.inputs] == [("input", np.dtype(np.uint8))]
    with pytest.raises(InferenceError) as info:
        model(np.ones((2, 8), np.uint8))
    assert str(info.value) == (
        f"model 'net' ({exported}) failed on inputs input (2, 8) uint8 (it declares input (2, 8) "
        "uint8): RuntimeError: mat1 and mat2 must have the same dtype, but got Byte and Float"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


def _claim_deflate(path: Path, member: str) -> None:
    """Marks ``member`` as deflated in the zip's central directory; its bytes stay stored."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == member.encode():
            struct.pack_into("<H", data, at + 10, zipfile.ZIP_DEFLATED)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 46)
    raise AssertionError(f"{member} is not in {path}")


def test_members_that_do_not_inflate_are_corrupt(
    torch_module: ModuleType, exported: Path, tmp_path: Path
) -> None:
    # Fuzz torch_export input 7380 (a second seed set): the weight config marked deflated over
    # stored bytes; reading it before torch.export.load raised zlib.error.
    _claim_deflate(exported, "net/data/weights/model_weights_config.json")
    with pytest.raises(CorruptModelError) as info:
        load_model(exported)
    assert str(info.value).startswith(
        f"{exported} could not be read as a torch.export program (.pt2) (error: Error -3 while "
        "decompressing data: "
    )
    torch = torch_module
    scripted = _scripted(torch, _linear(torch), tmp_path / "net.pt", torch.ones(1, 8))
    _claim_deflate(scripted, "net/data.pkl")
    with pytest.raises(CorruptModelError) as info:
        load_model(scripted, input_shapes={"input": [1, 8]})
    assert str(info.value).startswith(
        f"{scripted} could not be read as a TorchScript archive (error: Error -3 while "
        "decompressing data: "
    )
