""":class:`SavedModelModel`: a SavedModel signature, and the scan of its graph for side effects."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import Device, ModelFormat, TensorSpec
from pyinfer.backends.tensorflow.common import TensorFlowModel, _np_dtype, _shape
from pyinfer.errors import (
    CorruptModelError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    UntrustedModelError,
)


class SavedModelModel(TensorFlowModel):
    """A TensorFlow SavedModel folder, run through one of its signatures.

    Inputs are the signature's keyword arguments and outputs the keys of the dict it returns,
    both sorted by name: a SavedModel stores them in protobuf maps, which keep no order (the
    order ``structured_input_signature`` and ``structured_outputs`` report changes from one
    process to the next), so the order of the original model's outputs is not in the file.
    """

    def __init__(self, loaded: Any, signature_fn: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loaded = loaded  # keeps the variables the signature captures alive
        self._signature_fn = signature_fn

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Calls the signature with the inputs as keyword arguments.

        Raises:
            OutOfMemoryError: If TensorFlow could not allocate memory for the call.
            InferenceError: If the signature failed (see :meth:`_run_error`).
        """
        try:
            with self._tf.device(self._tf_device):
                result = self._signature_fn(**inputs)
            return {n: result[n] for n in self.output_names()}
        except Exception as exc:
            raise self._run_error(exc, inputs) from exc


#: TensorFlow ops that write files or call back into Python. None of them is needed to serve a
#: model; a SavedModel's own checkpoint saver uses some (SaveV2, MergeV2Checkpoints) in functions
#: that loading and serving never call, which are not looked at.
SIDE_EFFECT_OPS = frozenset(
    {
        "WriteFile",
        "Save",
        "SaveV2",
        "SaveSlices",
        "MergeV2Checkpoints",
        "CreateSummaryFileWriter",
        "CreateSummaryDbWriter",
        "WriteSummary",
        "WriteScalarSummary",
        "WriteHistogramSummary",
        "WriteImageSummary",
        "WriteAudioSummary",
        "WriteGraphSummary",
        "WriteRawProtoSummary",
        "ImportEvent",
        "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord",
        "SaveDataset",
        "SaveDatasetV2",
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
    }
)


def saved_model_side_effects(path: Path) -> list[str]:
    """The ops of a SavedModel that write files or call Python, read without loading it.

    Every node of the graph and of every function it may call is checked against
    :data:`SIDE_EFFECT_OPS` (and ``PrintV2`` printing to a ``file://`` stream), except the
    functions reached only from the graph's checkpoint saver (``saver_def``), which
    ``tf.saved_model.load`` does not run. Resource initializers run while the SavedModel is
    loaded, the signatures when it is served: both are checked.

    Args:
        path: The SavedModel folder.

    Returns:
        ``"Op (in function)"`` for each finding, once each; empty for a plain model.

    Raises:
        CorruptModelError: If ``saved_model.pb`` cannot be parsed.
    """
    saved_model_pb2 = importlib.import_module("tensorflow.core.protobuf.saved_model_pb2")
    proto = saved_model_pb2.SavedModel()
    try:
        if (path / "saved_model.pb").is_file():
            proto.ParseFromString((path / "saved_model.pb").read_bytes())
        else:
            text_format = importlib.import_module("google.protobuf.text_format")
            text_format.Parse((path / "saved_model.pbtxt").read_text(), proto)
    except Exception as exc:
        raise CorruptModelError(
            f"{path} could not be read as a SavedModel: saved_model.pb does not parse "
            f"({type(exc).__name__}: {str(exc)[:200]}); export the model again",
            path=path,
        ) from exc
    found: list[str] = []
    for meta in proto.meta_graphs:
        library = {f.signature.name: f for f in meta.graph_def.library.function}
        saver = {
            meta.saver_def.save_tensor_name.split(":")[0],
            meta.saver_def.restore_op_name.split(":")[0],
        } - {""}
        graph_nodes = [n for n in meta.graph_def.node if n.name not in saver]
        saver_only = _reachable(library, _called(n for n in meta.graph_def.node if n.name in saver))
        roots = _called(graph_nodes) | (set(library) - saver_only)
        where = [(n, "the graph") for n in graph_nodes]
        for fname in sorted(_reachable(library, roots)):
            where.extend((n, fname) for n in library[fname].node_def)
        for node, place in where:
            stream = node.attr["output_stream"].s if "output_stream" in node.attr else b""
            if node.op in SIDE_EFFECT_OPS or (
                node.op == "PrintV2" and stream.startswith(b"file://")
            ):
                found.append(f"{node.op} (in {place})")
    return list(dict.fromkeys(found))


def _called(nodes: Iterator[Any] | list[Any]) -> set[str]:
    """Names of the functions the nodes call (``f``, ``then_branch``, ... attributes)."""
    names: set[str] = set()
    for node in nodes:
        for attr in node.attr.values():
            if attr.HasField("func"):
                names.add(attr.func.name)
            names.update(f.name for f in attr.list.func)
    return names


def _reachable(library: Mapping[str, Any], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in library]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(c for c in _called(library[name].node_def) if c in library and c not in seen)
    return seen


def _load_saved_model(
    tf: ModuleType,
    path: Path,
    device: Device,
    tf_device: str,
    *,
    name: str,
    signature: Any,
    trust_code: bool = False,
) -> SavedModelModel:
    if not path.is_dir() or not (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    ):
        raise ModelNotFoundError(
            f"{path} is not a SavedModel folder (a folder with saved_model.pb and variables/); "
            "pass the folder tf.saved_model.save or model.export wrote",
            path=path,
        )
    effects = saved_model_side_effects(path)
    if effects and not trust_code:
        raise UntrustedModelError(
            f"{path} holds TensorFlow ops that write files or call Python: "
            f"{', '.join(effects[:5])}{' ...' if len(effects) > 5 else ''}; they would run "
            "when the model is loaded (resource initializers) or served, and no model needs "
            "them to compute its outputs. If you trust where the model comes from, load it "
            "with trust_code=True (CLI: --trust-code)",
            path=path,
        )
    try:
        with tf.device(tf_device):
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise CorruptModelError(
            f"{path} could not be loaded as a SavedModel ({type(exc).__name__}: "
            f"{str(exc).strip()[:500]}); saved_model.pb or variables/ is damaged or missing: "
            "export the model again",
            path=path,
        ) from exc
    signatures = getattr(loaded, "signatures", None)
    keys = getattr(signatures, "keys", None)
    if signatures is None or not callable(keys):
        # A damaged object graph can restore its root as a plain object without signatures, or
        # restore something else (a plain user object) under the name.
        raise CorruptModelError(
            f"{path} is a damaged SavedModel: its root object ({type(loaded).__name__}) has no "
            "signatures (saved_model.pb's object graph is damaged); export the model again",
            path=path,
        )
    available = list(keys())
    if not available:
        raise ModelLoadError(
            f"{path} has no signatures, so there is no function to serve; export it with "
            "model.export(path) (Keras) or tf.saved_model.save(obj, path, signatures=...)",
            path=path,
        )
    if signature not in available:
        raise InvalidArgumentError(
            f"{path} has no signature {signature!r}; it has {', '.join(map(repr, available))}: "
            "choose one with signature=..."
        )
    fn = loaded.signatures[signature]
    _, kwargs = fn.structured_input_signature  # signatures take keyword arguments only
    inputs = [
        TensorSpec(str(n), _shape(kwargs[n].shape.as_list()), _np_dtype(kwargs[n].dtype))
        for n in sorted(kwargs)
    ]
    structured = fn.structured_outputs
    outputs = [
        TensorSpec(str(n), _shape(structured[n].shape.as_list()), _np_dtype(structured[n].dtype))
        for n in sorted(structured)
    ]
    variables = {id(v): v for v in list(fn.variables) or list(getattr(loaded, "variables", []))}
    count = sum(int(np.prod(v.shape.as_list(), dtype=np.int64)) for v in variables.values())
    nbytes = sum(
        int(np.prod(v.shape.as_list(), dtype=np.int64)) * _np_dtype(v.dtype).itemsize
        for v in variables.values()
    )
    return SavedModelModel(
        loaded,
        fn,
        tf=tf,
        tf_device=tf_device,
        name=name,
        format=ModelFormat.SAVED_MODEL,
        device=device,
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=count,
        parameter_bytes=nbytes,
        options={"signature": signature, "signatures_available": available},
    )
