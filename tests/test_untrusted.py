"""Untrusted files: no loader path runs code from a model file, or reads outside its folder.

Each payload, once run, creates a marker file. A test that loads a crafted file asserts the typed
error and that the marker was NOT created; its companion runs the same payload the way the
framework would without pyinfer's checks (plain ``pickle.loads``, ``torch.export.load``,
``tf.saved_model.load``, an import, or pyinfer with ``trust_code=True``) and asserts the marker
WAS created, so the first test cannot pass on a payload that never worked.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import json
import pickle
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from tests._payloads import Payload

from pyinfer import cli, load_model
from pyinfer.backends.base import ModelFormat
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    ModelLoadError,
    UntrustedModelError,
)
from pyinfer.suite.artifacts import Artifacts as _Artifacts


class RebuildPayload(Payload):
    """The payload hidden in a tensor rebuild function (``_rebuild_from_type_v2(exec, ...)``)."""

    def __reduce__(self) -> tuple[Any, ...]:
        import torch

        return (
            torch._tensor._rebuild_from_type_v2,
            (builtins.exec, torch.Tensor, (self.code,), {}),
        )


def _rewrite_zip(
    src: Path, dst: Path, replace: Mapping[str, bytes | Callable[[bytes], bytes]]
) -> Path:
    """Copies a zip archive, replacing the entries whose names end with a key of ``replace``."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            for tail, value in replace.items():
                if info.filename.endswith(tail):
                    data = value(data) if callable(value) else value
            new.writestr(info.filename, data)
    return dst


def _torch_save_bytes(torch: ModuleType, obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _ran(marker: Path) -> bool:
    return marker.is_file() and marker.read_text() == "ran"


# -- pickles ------------------------------------------------------------------------------------


def _memo_trick_pickle(marker: Path) -> bytes:
    """``exec`` reached by a STACK_GLOBAL whose names come from the memo, behind decoy strings."""
    code = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')".encode()

    def short(text: bytes) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text

    return (
        b"\x80\x04"
        + short(b"builtins")
        + b"\x94"  # MEMOIZE 0
        + short(b"exec")
        + b"\x94"  # MEMOIZE 1
        + short(b"collections")
        + short(b"OrderedDict")
        + b"00"  # POP POP: the decoys are the last strings pushed
        + b"h\x00h\x01\x93"  # BINGET 0, BINGET 1, STACK_GLOBAL -> builtins.exec
        + b"X"
        + len(code).to_bytes(4, "little")
        + code
        + b"\x85R."  # TUPLE1 REDUCE STOP
    )


def test_memo_trick_pickle_is_named_and_never_runs(tmp_path: Path) -> None:
    from pyinfer.backends.torch import pickle_globals

    marker = tmp_path / "marker"
    data = _memo_trick_pickle(marker)
    assert pickle_globals(io.BytesIO(data)) == ["builtins.exec"]
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    with pytest.raises(
        UntrustedModelError, match=r"plain Python pickle that imports builtins\.exec"
    ):
        load_model(path)
    assert not marker.exists()
    pickle.loads(data)  # the companion: the payload is real
    assert _ran(marker)


def test_pickle_scanner_reports_extension_codes_and_computed_names() -> None:
    from pyinfer.backends.torch import COMPUTED_GLOBAL, pickle_globals

    # EXT1 imports whatever copyreg's extension registry maps code 7 to.
    assert pickle_globals(io.BytesIO(b"\x80\x02\x82\x07.")) == ["<extension code 7>"]
    # A STACK_GLOBAL fed by a non-string (here DUP of a string loses it): reported, not guessed.
    assert pickle_globals(io.BytesIO(b"\x80\x04\x8c\x01a2\x93.")) == [COMPUTED_GLOBAL]


def _zip_with_payload(torch: ModuleType, path: Path, where: str, marker: Path) -> Path:
    """A ``torch.save`` zip archive with the payload in one place."""
    weights = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    if where == "top":
        torch.save(Payload(marker), path)
    elif where == "state_dict_value":
        torch.save({"state_dict": {**weights, "extra": Payload(marker)}}, path)
    elif where == "nested_list":
        torch.save({"model": weights, "history": [{"step": 1, "cb": [Payload(marker)]}]}, path)
    elif where == "rebuild_function":
        torch.save({"state_dict": {**weights, "weight": RebuildPayload(marker)}}, path)
    else:  # the persistent id that names a tensor's storage
        plain = tmp = path.with_suffix(".plain")
        torch.save(weights, plain)

        storage = object()

        class PidPickler(pickle.Pickler):
            def persistent_id(self, obj: Any) -> Any:
                # torch's id is ("storage", storage type, key, location, numel).
                return ("storage", Payload(marker), "0", "cpu", 6) if obj is storage else None

        buffer = io.BytesIO()
        PidPickler(buffer, protocol=2).dump({"weight": storage})
        _rewrite_zip(plain, path, {"/data.pkl": buffer.getvalue()})
        tmp.unlink()
    return path


@pytest.mark.parametrize(
    "where", ["top", "state_dict_value", "nested_list", "rebuild_function", "persistent_id"]
)
def test_torch_save_zip_payloads_never_run(
    torch_module: ModuleType, tmp_path: Path, where: str
) -> None:
    torch = torch_module
    marker = tmp_path / "marker"
    path = _zip_with_payload(torch, tmp_path / "model.pt", where, marker)
    with pytest.raises(UntrustedModelError, match="trust_code=True") as info:
        load_model(path, architecture=torch.nn.Linear(3, 2))
    assert str(path) in str(info.value)
    assert "builtins.exec" in str(info.value)
    assert not marker.exists()
    with contextlib.suppress(Exception):  # what torch.load does in full, as pyinfer never does
        torch.load(path, weights_only=False)
    assert _ran(marker)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pt2", ".jit"])
def test_payload_is_refused_whatever_the_file_is_named(
    torch_module: ModuleType, tmp_path: Path, suffix: str
) -> None:
    # The content decides the format: a torch.save zip named .pt2 or .jit is still read with
    # weights_only=True, never handed to torch.export.load or torch.jit.load.
    marker = tmp_path / "marker"
    path = tmp_path / f"model{suffix}"
    torch_module.save({"state_dict": {"w": torch_module.ones(1)}, "x": Payload(marker)}, path)
    with pytest.raises(UntrustedModelError, match=r"builtins\.exec"):
        load_model(path, architecture=torch_module.nn.Linear(3, 2))
    assert not marker.exists()


def test_legacy_stream_payload_never_runs(torch_module: ModuleType, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "legacy.pth"
    torch_module.save(
        {"state_dict": {"w": torch_module.ones(1)}, "opt": [Payload(marker)]},
        path,
        _use_new_zipfile_serialization=False,
    )
    with pytest.raises(UntrustedModelError, match=r"builtins\.exec"):
        load_model(path, architecture=torch_module.nn.Linear(3, 2))
    assert not marker.exists()
    with contextlib.suppress(Exception):
        torch_module.load(path, weights_only=False)
    assert _ran(marker)


def test_legacy_tar_format_needs_trust(torch_module: ModuleType, tmp_path: Path) -> None:
    # torch < 0.4 wrote tar archives (storages, tensors, pickle); torch reads them only in full.
    marker = tmp_path / "marker"
    path = tmp_path / "ancient.tar"
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2),
        "storages": pickle.dumps(0, 2) + pickle.dumps([], 2),
        "tensors": pickle.dumps(0, 2),
        "pickle": pickle.dumps(Payload(marker), 2),
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UntrustedModelError, match="old tar format") as info:
        load_model(path, format="pytorch-legacy", architecture=torch_module.nn.Linear(3, 2))
    assert str(path) in str(info.value)
    assert not marker.exists()
    with contextlib.suppress(Exception):
        torch_module.load(path, weights_only=False)
    assert _ran(marker)


def test_checkpoint_never_chooses_its_architecture(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    # A name stored in the file is never imported: only the caller's architecture= is.
    name = f"pyinfer_probe_{uuid.uuid4().hex}"
    path = tmp_path / "ckpt.pt"
    torch_module.save(
        {"state_dict": {"w": torch_module.ones(1)}, "architecture": f"{name}:Net", "arch": name},
        path,
    )
    with pytest.raises(ArchitectureError, match="holds only weights") as info:
        load_model(path)
    assert name not in str(info.value)
    assert name not in sys.modules


# -- TorchScript and torch.export ---------------------------------------------------------------


def _scripted(torch: ModuleType, path: Path) -> Path:
    from pyinfer.export import export_torchscript

    return export_torchscript(torch.nn.Linear(3, 2), path, torch.ones(1, 3))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("member", ["/data.pkl", "/constants.pkl"])
def test_torchscript_archive_payload_never_runs(
    torch_module: ModuleType, tmp_path: Path, member: str
) -> None:
    # torch.jit.load reads its pickles with TorchScript's C++ unpickler, which resolves only
    # TorchScript types and never calls Python: the payload is an unknown type.
    marker = tmp_path / "marker"
    payload = pickle.dumps(Payload(marker), protocol=2)
    good = _scripted(torch_module, tmp_path / "good.pt")
    path = _rewrite_zip(good, tmp_path / "evil.pt", {member: payload})
    assert load_model(good).format is ModelFormat.TORCHSCRIPT  # the untouched archive loads
    with pytest.raises(CorruptModelError, match="TorchScript") as info:
        load_model(path)
    assert "exec" in str(info.value)
    assert not marker.exists()
    pickle.loads(payload)
    assert _ran(marker)


def _program(torch: ModuleType, path: Path) -> Path:
    from pyinfer.export import export_torch_program

    torch.manual_seed(0)
    return export_torch_program(torch.nn.Linear(3, 2), path, torch.ones(1, 3))


def _pickled_weight(torch: ModuleType, marker: Path) -> dict[str, bytes | Callable[[bytes], bytes]]:
    def use_pickle(data: bytes) -> bytes:
        config = json.loads(data)
        config["config"]["weight"]["use_pickle"] = True
        return json.dumps(config).encode()

    return {
        "data/weights/model_weights_config.json": use_pickle,
        "data/weights/weight_0": _torch_save_bytes(torch, RebuildPayload(marker)),
    }


def _opaque_payload(marker: Path) -> bytes:
    """A pickle padded to whole float32s: torch maps every constant file as a tensor first."""
    data = pickle.dumps(Payload(marker))
    return data + b"\0" * (-len(data) % 4)


def _opaque_constant(marker: Path) -> dict[str, bytes | Callable[[bytes], bytes]]:
    def declare(data: bytes) -> bytes:
        config = json.loads(data)
        meta = {
            "dtype": 7,  # float32
            "sizes": [{"as_int": len(_opaque_payload(marker)) // 4}],
            "requires_grad": False,
            "device": {"type": "cpu", "index": None},
            "strides": [{"as_int": 1}],
            "storage_offset": {"as_int": 0},
            "layout": 7,
        }
        entry = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False}
        config["config"]["evil"] = {**entry, "tensor_meta": meta}
        return json.dumps(config).encode()

    return {"data/constants/model_constants_config.json": declare}


@pytest.mark.parametrize("where", ["sample_inputs", "pickled_weight", "opaque_object"])
def test_torch_export_archive_payload_never_runs(
    torch_module: ModuleType, tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    torch = torch_module
    marker = tmp_path / "marker"
    good = _program(torch, tmp_path / "good.pt2")
    if where == "sample_inputs":
        replace: dict[str, Any] = {
            "data/sample_inputs/model.pt": _torch_save_bytes(torch, ((Payload(marker),), {}))
        }
        entry = "data/sample_inputs/model.pt"
    elif where == "pickled_weight":
        replace = _pickled_weight(torch, marker)
        entry = "data/weights/weight_0"
    else:
        replace = _opaque_constant(marker)
        entry = "data/constants/opaque_obj_0"
    path = _rewrite_zip(good, tmp_path / "evil.pt2", replace)
    if where == "opaque_object":  # read by torch.export.load with a plain pickle.loads
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(f"good/{entry}", _opaque_payload(marker))
    assert load_model(good).format is ModelFormat.TORCH_EXPORT  # the untouched archive loads
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert f"imports builtins.exec (in good/{entry})" in message
    assert "trust_code=True" in message
    assert not marker.exists()
    with caplog.at_level("CRITICAL"), contextlib.suppress(Exception):
        torch.export.load(str(path))  # torch alone unpickles it in full
    assert _ran(marker)


def test_torch_export_payload_runs_only_with_trust_code(
    torch_module: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "marker"
    good = _program(torch_module, tmp_path / "good.pt2")
    payload = _torch_save_bytes(torch_module, ((Payload(marker),), {}))
    path = _rewrite_zip(good, tmp_path / "evil.pt2", {"sample_inputs/model.pt": payload})
    with caplog.at_level("CRITICAL"):
        model = load_model(path, trust_code=True)
    assert _ran(marker)
    assert model.options["trust_code"] is True


def test_torch_export_aoti_library_is_refused(torch_module: ModuleType, tmp_path: Path) -> None:
    # torch.export.load loads the shared libraries of AOTInductor packages: native code.
    good = _program(torch_module, tmp_path / "good.pt2")
    with zipfile.ZipFile(good, "a") as archive:
        archive.writestr("good/data/aotinductor/model/model.so", b"\x7fELF not really")
    with pytest.raises(
        UntrustedModelError, match=r"AOTInductor .*data/aotinductor/model/model\.so"
    ):
        load_model(good)


def test_torch_export_graph_calling_python_is_refused_by_torch(
    torch_module: ModuleType, tmp_path: Path
) -> None:
    # A node's target is resolved by attribute lookups from torch (torch.os.system exists);
    # torch's verifier refuses any target that is not an operator, before anything runs.
    marker = tmp_path / "marker"
    good = _program(torch_module, tmp_path / "good.pt2")

    def os_system(data: bytes) -> bytes:
        program = json.loads(data)
        node = program["graph_module"]["graph"]["nodes"][0]
        node["target"] = "torch.os.system"
        node["inputs"] = [{"name": "command", "arg": {"as_string": f"touch {marker}"}, "kind": 1}]
        return json.dumps(program).encode()

    path = _rewrite_zip(good, tmp_path / "evil.pt2", {"models/model.json": os_system})
    with pytest.raises(CorruptModelError, match="not an allowed operator type"):
        load_model(path)
    assert not marker.exists()


# -- Keras --------------------------------------------------------------------------------------

_LAMBDA = (
    "lambda t: (__import__('pathlib').Path(__import__('os').environ['PYINFER_TEST_MARKER'])"
    ".write_text('ran'), t * 2.0)[1]"
)


def _probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: Path) -> str:
    """A module on sys.path whose import writes ``marker``: a class a file could name."""
    name = f"pyinfer_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n\n\nclass Evil:\n"
        "    pass\n\n\ndef evil(x):\n    return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _dense_model(keras: ModuleType, path: Path) -> Path:
    from pyinfer.export import export_keras

    inp = keras.Input((3,), name="x")
    out = keras.layers.Dense(2, name="dense", activation="relu")(inp)
    return export_keras(keras.Model(inp, out), path, "keras" if path.suffix == ".keras" else "h5")


def _edit_dense(config: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Dense":
            change(layer["config"])
    return config


def _edit_keras(path: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    if path.suffix == ".keras":

        def edit(data: bytes) -> bytes:
            return json.dumps(_edit_dense(json.loads(data), change)).encode()

        return _rewrite_zip(path, out, {"config.json": edit})
    import h5py

    out.write_bytes(path.read_bytes())
    with h5py.File(out, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(_edit_dense(config, change))
    return out


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("kind", ["class", "function", "builtins", "os_system"])
def test_keras_config_naming_foreign_code_is_never_imported(
    keras_module: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    kind: str,
) -> None:
    marker = tmp_path / "marker"
    probe = _probe_module(tmp_path, monkeypatch, marker)
    reference, named = {
        "class": ({"module": probe, "class_name": "Evil", "config": {}}, f"{probe}.Evil"),
        "function": (
            {"module": probe, "class_name": "function", "config": "evil"},
            f"{probe}.evil",
        ),
        "builtins": (
            {"module": "builtins", "class_name": "function", "config": "exec"},
            "builtins.exec",
        ),
        "os_system": ({"module": "os", "class_name": "function", "config": "system"}, "os.system"),
    }[kind]
    good = _dense_model(keras_module, tmp_path / f"good{suffix}")
    path = _edit_keras(good, tmp_path / f"evil{suffix}", lambda c: c.update(activation=reference))
    for trust in (False, True):  # pyinfer imports no module a file names, trusted or not
        with pytest.raises(ArchitectureError) as info:
            load_model(path, trust_code=trust)
        message = str(info.value)
        assert str(path) in message
        assert named in message
        assert "custom_objects" in message
        assert not marker.exists()
        assert probe not in sys.modules
    importlib.import_module(probe)  # the companion: importing the named module runs its code
    assert _ran(marker)
    monkeypatch.delitem(sys.modules, probe)


def test_keras_custom_objects_are_the_callers_to_give(
    keras_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    probe = _probe_module(tmp_path, monkeypatch, marker)
    good = _dense_model(keras_module, tmp_path / "good.keras")
    reference = {"module": probe, "class_name": "function", "config": "relu6"}
    path = _edit_keras(good, tmp_path / "mine.keras", lambda c: c.update(activation=reference))
    model = load_model(path, custom_objects={"relu6": keras_module.activations.relu6})
    (y,) = model(np.array([[10.0, 0.0, 0.0]], np.float32)).values()
    assert y.shape == (1, 2)
    assert not marker.exists()


def test_keras_compile_config_is_not_loaded_so_not_checked(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    # pyinfer loads with compile=False: a custom loss named in compile_config is never looked up.
    from pyinfer.export import export_keras

    keras = keras_module

    def my_loss(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(y_pred - y_true)

    inp = keras.Input((3,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, name="dense")(inp))
    model.compile(loss=my_loss, optimizer="sgd")
    path = export_keras(model, tmp_path / "compiled.keras", "keras")
    compile_config = json.loads(zipfile.ZipFile(path).read("config.json"))["compile_config"]
    assert "my_loss" in json.dumps(compile_config)
    assert load_model(path)(np.ones((1, 3), np.float32))["dense"].shape == (1, 2)


@pytest.mark.parametrize(
    "api", ["keras.utils.get_file", "keras.config.enable_unsafe_deserialization"]
)
def test_keras_non_modeling_functions_need_trust(
    keras_module: ModuleType, tmp_path: Path, api: str
) -> None:
    module, _, name = api.rpartition(".")
    reference = {"module": module, "class_name": "function", "config": name}
    good = _dense_model(keras_module, tmp_path / "good.keras")
    path = _edit_keras(good, tmp_path / "evil.keras", lambda c: c.update(activation=reference))
    with pytest.raises(UntrustedModelError, match=rf"not model parts: {api}\b.*trust_code=True"):
        load_model(path)
    with pytest.raises(ModelLoadError):  # trusted, Keras 3 refuses them itself
        load_model(path, trust_code=True)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_lambda_nested_in_a_submodel_never_runs(
    keras_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    from pyinfer.export import export_keras

    keras = keras_module
    marker = tmp_path / "marker"
    monkeypatch.setenv("PYINFER_TEST_MARKER", str(marker))
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(eval(_LAMBDA), name="hidden_code")], name="inner"
    )
    inp = keras.Input((3,), name="x")
    model = keras.Model(inp, keras.layers.Dense(1, name="out")(inner(inp)))
    path = export_keras(model, tmp_path / f"nested{suffix}", suffix.lstrip("."))
    marker.unlink()  # building the model ran the lambda once
    with pytest.raises(UntrustedModelError, match="hidden_code"):
        load_model(path)
    assert not marker.exists()
    load_model(path, trust_code=True)(np.ones((1, 3), np.float32))
    assert _ran(marker)


def test_keras_lambda_as_an_activation_never_runs(
    keras_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras 3 stores a Python function as {"class_name": "__lambda__"} wherever one can go.
    from keras.src.utils.python_utils import func_dump

    marker = tmp_path / "marker"
    monkeypatch.setenv("PYINFER_TEST_MARKER", str(marker))
    code = {"class_name": "__lambda__", "config": {"value": func_dump(eval(_LAMBDA))}}
    good = _dense_model(keras_module, tmp_path / "good.keras")
    path = _edit_keras(good, tmp_path / "act.keras", lambda c: c.update(activation=code))
    with pytest.raises(UntrustedModelError, match="__lambda__"):
        load_model(path)
    assert not marker.exists()
    load_model(path, trust_code=True)(np.ones((1, 3), np.float32))
    assert _ran(marker)


def test_keras_h5_weights_stored_in_other_files_are_refused(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    import h5py

    secret = tmp_path / "secret.bin"
    np.arange(6, dtype=np.float32).tofile(secret)
    path = _dense_model(keras_module, tmp_path / "leak.h5")
    with h5py.File(path, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if n.endswith("kernel") else None)
        (kernel,) = names
        shape = f[kernel].shape
        del f[kernel]
        f.create_dataset(kernel, shape, np.float32, external=[(str(secret), 0, 24)])
        f["elsewhere"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert f"/{kernel} (external storage in {secret})" in message
    assert f"/elsewhere -> {tmp_path / 'other.h5'}:/data" in message
    # The companion: reading the weight gives the other file's bytes (Keras 3.15 refuses too).
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[kernel][...].ravel(), np.arange(6, dtype=np.float32))


# -- TensorFlow SavedModel ----------------------------------------------------------------------


def _writing_saved_model(tf: ModuleType, path: Path, marker: Path, *, at_load: bool) -> Path:
    class Init(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self) -> Any:
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self) -> Any:
            tf.io.write_file(str(marker), "ran")
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(2.0)
            if at_load:
                self.init = Init()

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def serve(self, x: Any) -> Any:
            if not at_load:
                tf.io.write_file(str(marker), "ran")
            return {"y": x * self.scale}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return path


def test_saved_model_that_writes_files_when_served_needs_trust(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = _writing_saved_model(tensorflow_module, tmp_path / "sm", marker, at_load=False)
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "WriteFile (in __inference_serve_" in message
    assert "trust_code=True" in message
    assert not marker.exists()
    model = load_model(path, trust_code=True)
    assert not marker.exists()
    np.testing.assert_array_equal(model(np.ones((1, 2), np.float32))["y"], [[2.0, 2.0]])
    assert _ran(marker)


def test_saved_model_that_writes_files_when_loaded_is_refused_first(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = _writing_saved_model(tensorflow_module, tmp_path / "sm", marker, at_load=True)
    with pytest.raises(UntrustedModelError, match=r"WriteFile \(in __inference__initializer_"):
        load_model(path)
    assert not marker.exists()
    tensorflow_module.saved_model.load(str(path))  # TensorFlow alone runs the initializer
    assert _ran(marker)


def test_damaged_saved_model_graph_is_corrupt(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    folder = tmp_path / "sm"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff garbage")
    with pytest.raises(CorruptModelError, match=r"saved_model\.pb does not parse") as info:
        load_model(folder)
    assert str(folder) in str(info.value)


def test_plain_saved_model_has_no_side_effect_ops(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    from pyinfer.backends.tensorflow import saved_model_side_effects

    tf = tensorflow_module
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    module.f = tf.function(lambda x: {"y": x * module.v}, input_signature=[tf.TensorSpec([2])])
    tf.saved_model.save(module, str(tmp_path / "plain"), signatures=module.f)
    # Its checkpoint saver (SaveV2, MergeV2Checkpoints) is not looked at: never run to serve.
    assert saved_model_side_effects(tmp_path / "plain") == []


def test_tflite_flex_op_that_writes_files_needs_trust(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    tf = tensorflow_module
    marker = tmp_path / "marker"

    @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32)])
    def double(x: Any) -> Any:
        tf.io.write_file(str(marker), "ran")
        return x * 2.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [double.get_concrete_function()], double
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    path = tmp_path / "writes.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(UntrustedModelError, match=r"write files or call Python: FlexWriteFile "):
        load_model(path)
    # Trusted, the interpreter itself has no Flex delegate here and refuses to allocate.
    with pytest.raises(CorruptModelError, match="Flex delegate"):
        load_model(path, trust_code=True)
    assert not marker.exists()


# -- ONNX external data -------------------------------------------------------------------------


def _external_model(onnx: ModuleType, folder: Path, location: str) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros(4, np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder.mkdir(exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "link", "inside"])
def test_onnx_external_data_outside_the_folder_is_refused(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path, kind: str
) -> None:
    from pyinfer.backends.onnx import external_data_files

    secret = tmp_path / "secret.bin"
    np.arange(4, dtype=np.float32).tofile(secret)
    folder = tmp_path / "model"
    folder.mkdir()
    location = {
        "parent": "../secret.bin",
        "absolute": str(secret),
        "link": "link.bin",
        "inside": "weights.bin",
    }[kind]
    if kind == "link":
        (folder / "link.bin").symlink_to(secret)
    if kind == "inside":
        np.arange(4, dtype=np.float32).tofile(folder / "weights.bin")
    path = _external_model(onnx_module, folder, location)
    if kind == "inside":  # the control: a location inside the folder loads
        assert load_model(path)({"x": np.zeros(4, np.float32)})["y"].tolist() == [0, 1, 2, 3]
        assert external_data_files(path) == [folder / "weights.bin"]
        return
    with pytest.raises(UntrustedModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert f"initializer 'W' keeps its data in {location!r}" in message
    assert "outside the model's folder" in message
    assert external_data_files(path) == []


def test_onnx_custom_domain_loads_no_library(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    # A custom operator names a domain, not a library: ONNX Runtime loads a custom op library
    # only when asked (register_custom_ops_library), which pyinfer never does.
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Exec", ["x"], ["y"], domain="com.example.evil")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example.evil", 1)]
    path = tmp_path / "custom.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    with pytest.raises(ModelLoadError, match=r"custom\.onnx") as info:
        load_model(path)
    assert "Exec" in str(info.value)


# -- the command line and the bench cache -------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "run", "profile", "sweep", "formats", "bench"])
def test_every_model_command_documents_trust_code(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-code" in text
    assert "torch.export archive" in text
    assert "only for files you trust" in text


def test_cli_refuses_a_payload_in_one_line(
    torch_module: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    good = _program(torch_module, tmp_path / "good.pt2")
    payload = _torch_save_bytes(torch_module, ((Payload(marker),), {}))
    path = _rewrite_zip(good, tmp_path / "evil.pt2", {"sample_inputs/model.pt": payload})
    assert cli.main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "builtins.exec" in err
    assert "--trust-code" in err
    assert not marker.exists()


def test_trust_code_is_accepted_for_onnx_which_holds_no_code(
    onnx_module: ModuleType,
    onnxruntime_module: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _external_model(onnx_module, tmp_path / "m", "weights.bin")
    np.ones(4, np.float32).tofile(tmp_path / "m" / "weights.bin")
    assert cli.main(["info", str(path), "--trust-code"]) == 0
    assert "Format:      onnx" in capsys.readouterr().out


def test_bench_work_dir_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.onnx").symlink_to(victim)
    (work / "model.onnx.data").symlink_to(victim)
    artifacts = _Artifacts(work)
    path = artifacts.get("model.onnx", "key", lambda p: p.write_text("export"))
    assert victim.read_text() == "precious"
    assert not path.is_symlink()
    assert path.read_text() == "export"
    assert not (work / "model.onnx.data").exists()
