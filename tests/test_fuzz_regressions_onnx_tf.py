"""Damaged ONNX and TensorFlow files found by fuzzing (``tests/test_fuzz_loaders.py``).

Each test builds, in code, the smallest file that reproduces one finding of the loader campaigns
``onnx``, ``keras``, ``keras_h5``, ``savedmodel`` and ``tflite``, and asserts the typed error
and its message that the fix gives instead of a crash or an untyped exception.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pyinfer.backends.frameworks import import_tensorflow
from pyinfer.errors import CorruptModelError, InferenceError
from pyinfer.export import export_keras
from pyinfer.loading import load_model

# -- ONNX ----------------------------------------------------------------------------------


def _onnx_linear(onnx: ModuleType, path: Path, *, data_type: int | None = None) -> Path:
    """y = relu(x @ W), x of shape (N, 4); the MatMul's output is named ``hidden``."""
    h = onnx.helper
    tp = onnx.TensorProto
    weight = onnx.numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "W")
    if data_type is not None:
        weight.data_type = data_type
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "W"], ["hidden"]), h.make_node("Relu", ["hidden"], ["y"])],
        "linear",
        [h.make_tensor_value_info("x", tp.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", tp.FLOAT, ["N", 3])],
        [weight],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save_model(model, str(path))
    return path


def test_onnx_name_that_is_not_utf8_is_a_corrupt_model(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    # Fuzzing found: two bit flips in a node's output name made ONNX Runtime quote bytes that
    # are not UTF-8 in its error, which surfaced as a UnicodeDecodeError from the session.
    path = _onnx_linear(onnx_module, tmp_path / "model.onnx")
    data = path.read_bytes()
    assert data.count(b"hidden") == 2  # the MatMul's output and the Relu's input
    # The Relu's input: ONNX Runtime names the input it cannot find.
    at = data.rindex(b"hidden")
    path.write_bytes(data[:at] + b"\xff\xffdden" + data[at + 6 :])
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value) == (
        f"ONNX Runtime failed to load {path}, and its error message quotes bytes of the file "
        f"that are not UTF-8 text (invalid start byte at byte {_utf8_error_start(info.value)}): "
        "names or strings in the model are damaged; export or copy it again"
    )
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def _utf8_error_start(error: BaseException) -> int:
    cause = error.__cause__
    assert isinstance(cause, UnicodeDecodeError)
    return int(cause.start)


@pytest.mark.parametrize("data_type", [33, 127])
def test_onnx_tensor_of_an_undefined_data_type_is_a_corrupt_model(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path, data_type: int
) -> None:
    # Fuzzing found: a flipped bit in an initializer's data_type made the parameter count fail
    # with "ValueError: Enum DataType has no name defined for value 33".
    path = _onnx_linear(onnx_module, tmp_path / "model.onnx", data_type=data_type)
    with pytest.raises(CorruptModelError, match=r"Tensor 'W' does not have valid data") as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"ONNX Runtime failed to load {path}: ")
    assert str(info.value).endswith(
        "; check that the file is a complete ONNX model (export or copy it again)"
    )


def _onnx_with_external_data(onnx: ModuleType, folder: Path, length: str | None = None) -> Path:
    """The linear model with its weight W in ``w.data`` beside it; ``length`` overrides the
    length entry ONNX wrote for W."""
    source = _onnx_linear(onnx, folder / "source.onnx")
    model = onnx.load(str(source))
    path = folder / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.data", size_threshold=0
    )
    if length is not None:
        model = onnx.load(str(path), load_external_data=False)
        [entry] = [e for e in model.graph.initializer[0].external_data if e.key == "length"]
        entry.value = length
        onnx.save_model(model, str(path))
    return path


def test_onnx_external_data_location_that_is_not_utf8_is_a_corrupt_model(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    # Fuzzing found: a flipped byte in the name of the external data file reached pyinfer's
    # check of that file as bytes: "TypeError: unsupported operand type(s) for /".
    path = _onnx_with_external_data(onnx_module, tmp_path)
    data = path.read_bytes()
    assert data.count(b"w.data") == 1
    path.write_bytes(data.replace(b"w.data", b"w\xffdata"))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value) == (
        f"{path} is damaged: the external data of tensor W: entry 'location' = b'w\\xffdata' "
        "is not UTF-8 text; export or copy the model again"
    )


@pytest.mark.parametrize("length", ["4!8", "48\x00", "\u00b2"])
def test_onnx_external_data_length_that_is_not_a_number_is_a_corrupt_model(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path, length: str
) -> None:
    # Fuzzing found: "ValueError: invalid literal for int() with base 10: '5!2'".
    path = _onnx_with_external_data(onnx_module, tmp_path, length=length)
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value) == (
        f"{path} is damaged: the external data of tensor W: length {length!r} is not a number "
        "of bytes; export or copy the model again"
    )


def test_onnx_external_data_model_intact_still_loads(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    path = _onnx_with_external_data(onnx_module, tmp_path, length="48")  # W: 4 x 3 float32
    with load_model(path) as model:
        out = model({"x": np.ones((2, 4), dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 4.0, dtype=np.float32))


# -- Keras .h5 ----------------------------------------------------------------------------


def _h5_model_file(path: Path) -> bytes:
    """An HDF5 file shaped like a Keras .h5 model: the configuration and the Keras version
    (variable-length strings, kept in the file's global heap) and a group of weights."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        f.attrs["keras_version"] = "3.15.1"
        f.create_group("model_weights").create_group("dense")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("record", "fill", "problem"),
    [
        # Fuzzing found: 64 zeroed bytes in the global heap; HDF5 read an empty record over
        # and over.
        (0, b"\0", "0 bytes at byte {at}, empty"),
        # Fuzzing found: 512 bytes of 0xff; the record's size wraps HDF5's address around.
        (1, b"\xff", "18446744073709551615 bytes at byte {at}, past the end of the heap"),
    ],
)
def test_h5_global_heap_that_hdf5_would_read_forever_is_a_corrupt_model(
    keras_module: ModuleType, tmp_path: Path, record: int, fill: bytes, problem: str
) -> None:
    # Either damage made h5py's read of model_config loop forever inside the HDF5 library.
    path = tmp_path / "m.h5"
    data = bytearray(_h5_model_file(path))
    heap = data.index(b"GCOL")
    at = heap + 16  # the first record's header: index (2), references (2), reserved, size (8)
    for _ in range(record):
        at += 16 + (int.from_bytes(data[at + 8 : at + 16], "little") + 7) // 8 * 8
    data[at : at + 16] = fill * 16
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value) == (
        f"{path} is a damaged HDF5 file: the global heap at byte {heap} (where variable-length "
        f"strings such as the model configuration are kept) holds a record of "
        f"{problem.format(at=at)}; save or copy the file again"
    )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (b"SNOD", "Unable to get group info (bad symbol table node signature)"),
        (b"HEAP", "bad local heap signature"),
    ],
)
def test_h5_damaged_group_is_a_corrupt_model(
    keras_module: ModuleType, tmp_path: Path, signature: bytes, message: str
) -> None:
    # Fuzzing found: a damaged group (its symbol table node, its local heap) made h5py raise
    # RuntimeError while listing the file's groups, which escaped untyped.
    path = tmp_path / "m.h5"
    data = bytearray(_h5_model_file(path))
    at = data.index(signature)
    data[at : at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path} is not a readable HDF5 file (")
    assert message in str(info.value)
    assert str(info.value).endswith("): it is damaged or truncated; save or copy it again")


# -- TFLite --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _tflite_once(tmp_path_factory: pytest.TempPathFactory) -> bytes | None:
    # Module-scoped (one conversion), so it cannot use the function-scoped framework fixtures;
    # it returns None without TensorFlow and `tflite_bytes` (through keras_module) skips.
    try:
        import_tensorflow()
        import keras
    except ImportError:
        return None
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(16)(inputs)))
    path = export_keras(model, tmp_path_factory.mktemp("tflite") / "m.tflite", "tflite")
    return path.read_bytes()


@pytest.fixture
def tflite_bytes(keras_module: ModuleType, _tflite_once: bytes | None) -> bytes:
    assert _tflite_once is not None
    return _tflite_once


def _repacked(data: bytes, change: Callable[[Any], None]) -> bytes:
    """The TFLite model ``data`` unpacked, changed by ``change(model)`` and packed again."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    change(model)
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _load_damaged_tflite(path: Path, data: bytes) -> CorruptModelError:
    path.write_bytes(data)
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path} is not a valid TFLite model (")
    assert str(info.value).endswith(
        "): its flatbuffer is damaged or truncated; convert or copy it again"
    )
    return info.value


def test_tflite_offset_past_the_end_of_the_file_is_a_corrupt_model(
    tflite_bytes: bytes, tmp_path: Path
) -> None:
    # Fuzzing found 72 of 1,000 damaged files crashing the interpreter (SIGSEGV, SIGBUS) as it
    # built its graph: it follows the flatbuffer's offsets unverified. Here: the model's
    # subgraphs vector points 2 GB past the end of the file.
    data = bytearray(tflite_bytes)
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    field = struct.unpack_from("<H", data, vtable + 4 + 2 * 2)[0]  # field 2: subgraphs
    struct.pack_into("<I", data, root + field, 0x7FFF0000)
    error = _load_damaged_tflite(tmp_path / "m.tflite", bytes(data))
    assert re.search(r"\(error: unpack_from requires a buffer of at least \d+ bytes", str(error))


def test_tflite_string_past_the_end_of_the_file_is_a_corrupt_model(
    tflite_bytes: bytes, tmp_path: Path
) -> None:
    data = bytearray(tflite_bytes)
    at = data.index(b"serving_default_x:0")  # a tensor's name, after its 4-byte length
    struct.pack_into("<I", data, at - 4, 0x00FFFFFF)
    error = _load_damaged_tflite(tmp_path / "m.tflite", bytes(data))
    assert f"(ValueError: bytes {at}..{at + 0x00FFFFFF} are past the end of the file " in str(error)


def test_tflite_tensor_name_that_is_not_utf8_is_a_corrupt_model(
    tflite_bytes: bytes, tmp_path: Path
) -> None:
    # Fuzzing found: a flipped byte in a tensor's name made get_input_details raise
    # UnicodeDecodeError.
    at = tflite_bytes.index(b"serving_default_x:0")
    data = tflite_bytes[:at] + b"\xff" + tflite_bytes[at + 1 :]
    error = _load_damaged_tflite(tmp_path / "m.tflite", data)
    assert "(ValueError: subgraph 0: the name of tensor 0 is not UTF-8 text (invalid start " in str(
        error
    )


def _no_signature_key(model: Any) -> None:
    model.signatureDefs[0].signatureKey = None


def _signature_key_with_a_nul(model: Any) -> None:
    model.signatureDefs[0].signatureKey = b"\0\0rving_default"


def _shape_signature_below_minus_one(model: Any) -> None:
    model.subgraphs[0].tensors[0].shapeSignature = [-16777217, 8]


def _input_is_a_constant(model: Any) -> None:
    # A tensor whose data the file holds (a weight) as the graph's input.
    graph = model.subgraphs[0]
    data = [model.buffers[t.buffer].data for t in graph.tensors]
    stored = [i for i, d in enumerate(data) if d is not None and len(d)]
    graph.inputs = stored[:1]


def _signature_tensor_out_of_range(model: Any) -> None:
    model.signatureDefs[0].inputs[0].tensorIndex = 65536


def _operator_tensor_out_of_range(model: Any) -> None:
    operator = model.subgraphs[0].operators[0]
    operator.inputs = [99, *operator.inputs[1:]]


def _operator_code_out_of_range(model: Any) -> None:
    model.subgraphs[0].operators[0].opcodeIndex = 7


def _tensor_buffer_out_of_range(model: Any) -> None:
    model.subgraphs[0].tensors[1].buffer = 1000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Fuzzing found: "ValueError: None signature_key provided." from get_signature_runner.
        (_no_signature_key, "a signature has no name"),
        # Fuzzing found the same from a name that begins with NUL bytes (read as a C string).
        (
            _signature_key_with_a_nul,
            r"a signature's name holds a NUL byte: '\\x00\\x00rving_default'",
        ),
        # Fuzzing found: "RuntimeError: Attempting to resize dimension 0 of tensor 0 with value
        # -16777217" when the model ran.
        (_shape_signature_below_minus_one, "subgraph 0: tensor 0 has dimension -16777217"),
        # Fuzzing found: set_tensor wrote into the read-only mapped file (SIGSEGV) when an
        # input was a tensor whose data the file holds.
        (_input_is_a_constant, r"subgraph 0: input tensor 1 is a constant \(its data is stored\)"),
        # Fuzzing found: "ValueError: Invalid tensor index 65536 exceeds max tensor index 5".
        (_signature_tensor_out_of_range, r"signature 'serving_default' names tensor 65536 of \d+"),
        (_operator_tensor_out_of_range, r"subgraph 0 refers to tensor 99, but has \d+ tensors"),
        (_operator_code_out_of_range, r"subgraph 0: operator 0 has opcode 7 of \d+"),
        (_tensor_buffer_out_of_range, r"subgraph 0: tensor 1 uses buffer 1000 of \d+"),
    ],
)
def test_tflite_graph_that_links_to_nothing_is_a_corrupt_model(
    tflite_bytes: bytes, tmp_path: Path, change: Callable[[Any], None], message: str
) -> None:
    error = _load_damaged_tflite(tmp_path / "m.tflite", _repacked(tflite_bytes, change))
    assert re.search(rf"\(ValueError: {message}\)", str(error)), str(error)


def test_the_repacked_tflite_model_itself_loads_and_runs(
    tflite_bytes: bytes, tmp_path: Path
) -> None:
    # The damage above is all there is: the same model packed again unchanged is valid.
    path = tmp_path / "m.tflite"
    path.write_bytes(_repacked(tflite_bytes, lambda model: None))
    with load_model(path) as model:
        out = model({"x": np.ones((2, 8), dtype=np.float32)})
    assert [o.name for o in model.outputs] == list(out)
    assert next(iter(out.values())).shape == (2, 4)


def _no_weights(model: Any) -> None:
    for buffer in model.buffers:
        buffer.data = None


def _no_operators(model: Any) -> None:
    model.subgraphs[0].operators = []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Fuzzing found: "RuntimeError: Input tensor 2 lacks data" escaping model(...).
        (_no_weights, "Input tensor 2 lacks data"),
        # Fuzzing found: "ValueError: Tensor data is null. Run allocate_tensors() first" when
        # nothing writes the output.
        (_no_operators, "Tensor data is null"),
    ],
)
def test_tflite_model_the_interpreter_cannot_run_is_an_inference_error(
    tflite_bytes: bytes, tmp_path: Path, change: Callable[[Any], None], message: str
) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(_repacked(tflite_bytes, change))
    with load_model(path) as model, pytest.raises(InferenceError) as info:
        model({"x": np.ones((2, 8), dtype=np.float32)})
    text = str(info.value)
    assert text.startswith(
        f"the TFLite interpreter failed running model 'm' ({path}) on inputs x (2, 8): "
    )
    assert message in text
    assert text.endswith(
        "; the model file is damaged or was converted wrongly: convert or copy it again"
    )


# -- found by the fuzzer in CI, after the untrusted-code checks joined the TensorFlow loaders ----


def test_h5_link_name_that_is_not_utf8_is_a_corrupt_model(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    # CI fuzz keras_h5 (42 inputs): a group name whose bytes are not UTF-8 made h5py's link
    # visit (the check for links to other files) fail inside its callback, and the error left
    # h5py's lock as a SystemError, which escaped untyped.
    path = tmp_path / "m.h5"
    data = bytearray(_h5_model_file(path))
    at = data.index(b"dense")
    data[at : at + 5] = b"d\xefAse"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path} is not a readable HDF5 file (")
    assert str(info.value).endswith("): it is damaged or truncated; save or copy it again")


def test_keras_member_with_an_unknown_compression_method_is_a_corrupt_model(
    tmp_path: Path,
) -> None:
    # CI fuzz keras (2 inputs): a member header naming a compression method zipfile does not
    # implement raised NotImplementedError while reading config.json.
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {}}))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.index(signature)  # the first member's local header and directory entry
        data[at + offset : at + offset + 2] = struct.pack("<H", 99)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path} is not a readable .keras archive (That compression method is not supported): "
        "the file is damaged or truncated; save or copy it again"
    )


def test_savedmodel_whose_root_has_no_signatures_is_a_corrupt_model(
    keras_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI fuzz savedmodel (2 inputs): a damaged object graph restored its root as a plain
    # object without `signatures` (AttributeError). Reproduced by handing such a root over.
    tf = import_tensorflow()
    folder = tmp_path / "sm"
    module = tf.Module()
    module.f = tf.function(lambda x: x + 1.0, input_signature=[tf.TensorSpec([None, 2])])
    tf.saved_model.save(module, str(folder), signatures=module.f)

    class _UserObject:
        pass

    monkeypatch.setattr(tf.saved_model, "load", lambda *args, **kwargs: _UserObject())
    with pytest.raises(CorruptModelError) as info:
        load_model(folder)
    assert str(info.value) == (
        f"{folder} is a damaged SavedModel: its root object (_UserObject) has no signatures "
        "(saved_model.pb's object graph is damaged); export the model again"
    )
    # CI fuzz savedmodel (input 2880): the damaged graph restored a plain user object *as*
    # `signatures` (AttributeError: no keys()).
    root = _UserObject()
    root.signatures = _UserObject()  # type: ignore[attr-defined]
    monkeypatch.setattr(tf.saved_model, "load", lambda *args, **kwargs: root)
    with pytest.raises(CorruptModelError, match="is a damaged SavedModel: its root object"):
        load_model(folder)


def test_savedmodel_signature_that_fails_on_valid_inputs_is_an_inference_error(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    # CI fuzz savedmodel (1 input): a graph contradicting its own signature loaded, and its
    # call raised TensorFlow's InvalidArgumentError untyped.
    tf = import_tensorflow()
    folder = tmp_path / "sm"
    module = tf.Module()
    module.f = tf.function(
        # A row past the end: only the call finds out (the batch is dynamic).
        lambda x: {"y": tf.gather(x, tf.shape(x)[:1] + 3)},
        input_signature=[tf.TensorSpec([None, 2], name="x")],
    )
    tf.saved_model.save(module, str(folder), signatures=module.f)
    model = load_model(folder)
    with pytest.raises(InferenceError) as info:
        model({"x": np.ones((2, 2), np.float32)})
    message = str(info.value)
    assert message.startswith(
        f"model 'sm' ({folder}) failed on inputs x (2, 2): InvalidArgumentError: "
    )
    assert message.endswith("indices[0] = 5 is not in [0, 2)")


def test_keras_config_nested_beyond_the_stack_is_a_corrupt_model(
    keras_module: ModuleType, tmp_path: Path
) -> None:
    # A configuration nested deeper than Python's recursion limit made json.loads raise
    # RecursionError, which escaped untyped (found reading the config checks, not by a run).
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "[" * 100_000 + "]" * 100_000)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    with pytest.raises(CorruptModelError) as info:
        load_model(path)
    assert str(info.value).startswith(
        f"{path}: the model configuration stored in the file is not valid JSON ("
    )
    assert isinstance(info.value.__cause__, RecursionError)
