"""The TensorFlow backend: Keras ``.h5`` / ``.keras`` files, SavedModel folders and TFLite files.

Three :class:`~pyinfer.backends.base.Model` classes share this module:

* :class:`KerasModel` (``.h5`` and ``.keras``): loaded with ``keras.models.load_model(...,
  compile=False)``. By default the model runs through a ``tf.function`` (``reduce_retracing``)
  wrapping ``model(x, training=False)``: measured with ``benchmarks/bench_tf_defaults.py`` on
  ResNet50 at batch 1 (2-core machine, three runs) it took 57-104 ms per call against 119-208 ms
  for ``model.predict`` and 234-365 ms for the eager call, with bit-identical outputs.
  ``call_mode="direct"`` (eager call) and ``"predict"`` (``model.predict``) are there for
  comparison; :attr:`Model.options` records the mode.
* :class:`SavedModelModel`: ``tf.saved_model.load`` and one of its signatures
  (``serving_default`` unless ``signature=`` names another).
* :class:`TFLiteModel`: the TFLite interpreter (``ai_edge_litert`` where it is installed, else
  ``tf.lite.Interpreter``) with ``num_threads`` (default: the physical cores) and a dynamic batch
  through ``resize_tensor_input``. TFLite runs on the CPU only.

Loading refuses code stored in a file unless the caller opts in with ``trust_code=True``: Keras
``Lambda`` layers (and ``__lambda__`` functions anywhere in a config) carry marshalled Python
bytecode that runs while the model is rebuilt. pyinfer reads the model's configuration itself
before Keras sees the file, so this holds for ``.h5`` files as for ``.keras`` archives and
whatever the Keras version does; the same reading refuses a config that names a module or
function outside Keras that the caller did not pass in ``custom_objects`` (never imported,
trusted or not), a non-modeling Keras API (``keras.utils.get_file``...: needs ``trust_code``),
and an ``.h5`` file whose datasets read other files. A SavedModel whose graph (resource
initializers run at load, signatures) holds ops that write files or call Python
(:data:`SIDE_EFFECT_OPS`), and a TFLite model naming such ops as Flex ops, need
``trust_code=True`` as well.

TensorFlow is imported only through :func:`~pyinfer.backends.frameworks.import_tensorflow`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import mmap
import re
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pyinfer.backends.base import (
    Device,
    Dim,
    Model,
    ModelFormat,
    TensorSpec,
    check_options,
)
from pyinfer.backends.frameworks import import_tensorflow, physical_cores
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    CudaUnavailableError,
    InferenceError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    PyinferError,
    UntrustedModelError,
    as_out_of_memory,
)

__all__ = ["KNOWN_OPTIONS", "KerasModel", "SavedModelModel", "TFLiteModel", "load"]

logger = logging.getLogger(__name__)

#: Every option :func:`load` takes, with the formats it applies to.
KNOWN_OPTIONS: dict[str, str] = {
    "call_mode": "keras: 'function' (default), 'direct' or 'predict'",
    "custom_objects": "keras: dict of name to class or function, passed to load_model",
    "trust_code": "keras: allow Lambda layers (runs code stored in the file); saved-model and "
    "tflite: allow ops that write files or call Python; default False",
    "signature": "saved-model: the signature to run, default 'serving_default'",
    "num_threads": "tflite: interpreter threads, default the physical cores",
}

_CALL_MODES = ("function", "direct", "predict")
_KERAS_FORMATS = (ModelFormat.KERAS_H5, ModelFormat.KERAS)


def load(path: Path, fmt: ModelFormat, device: Device, *, name: str, **options: Any) -> Model:
    """Loads a Keras, SavedModel or TFLite model.

    Args:
        path: The ``.h5`` / ``.keras`` / ``.tflite`` file, or the SavedModel folder.
        fmt: Its format: ``KERAS_H5``, ``KERAS``, ``SAVED_MODEL`` or ``TFLITE``.
        device: ``cpu`` or ``cuda:N`` (TensorFlow's ``/GPU:N``; TFLite is CPU-only).
        name: Name for reports.
        **options: See :data:`KNOWN_OPTIONS`. Every option is accepted for every format (so one
            :class:`~pyinfer.model_loader.TensorFlowModelLoader` can load files of all four);
            :attr:`Model.options` records those that applied.

    Returns:
        The loaded model.

    Raises:
        InvalidArgumentError: On an unknown option or value, an unknown signature, or CUDA asked
            for a TFLite model.
        UntrustedModelError: Without ``trust_code``: a Keras model with Lambda layers or
            non-modeling Keras functions, a SavedModel or TFLite model with ops that write
            files or call Python; always: an ``.h5`` file whose weights are read from other
            files.
        ArchitectureError: If an HDF5 file holds weights only, or a custom layer is unknown.
        CorruptModelError: If the file or folder is damaged.
        CudaUnavailableError: If CUDA is asked for and TensorFlow sees no such GPU.
    """
    check_options(options, KNOWN_OPTIONS, loader="TensorFlow", path=path)
    if fmt is ModelFormat.TFLITE:
        if device.is_cuda:
            raise InvalidArgumentError(
                f"{path} is a TFLite model and TFLite runs on the CPU only; load it with "
                "device='cpu', or load the SavedModel or Keras file it came from on CUDA"
            )
        return _load_tflite(
            path,
            name=name,
            num_threads=options.get("num_threads"),
            trust_code=bool(options.get("trust_code", False)),
        )
    tf = import_tensorflow()
    tf_device = _tf_device(tf, device, path)
    if fmt in _KERAS_FORMATS:
        return _load_keras(
            tf,
            path,
            fmt,
            device,
            tf_device,
            name=name,
            call_mode=options.get("call_mode", "function"),
            trust_code=bool(options.get("trust_code", False)),
            custom_objects=options.get("custom_objects"),
        )
    if fmt is ModelFormat.SAVED_MODEL:
        return _load_saved_model(
            tf,
            path,
            device,
            tf_device,
            name=name,
            signature=options.get("signature", "serving_default"),
            trust_code=bool(options.get("trust_code", False)),
        )
    raise InvalidArgumentError(f"the TensorFlow backend cannot load {fmt.value} models ({path})")


def _tf_device(tf: ModuleType, device: Device, path: Path) -> str:
    if not device.is_cuda:
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if device.index >= len(gpus):
        seen = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
        raise CudaUnavailableError(
            f"cannot load {path} on {device}: TensorFlow sees {seen} (is the CUDA build of "
            "tensorflow installed, pip install 'tensorflow[and-cuda]', and a driver present?); "
            "load it with device='cpu' instead"
        )
    return f"/GPU:{device.index}"  # pragma: no cover - needs a GPU visible to TensorFlow


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    """A numpy dtype from a TensorFlow DType, a Keras dtype string or a numpy type."""
    as_numpy = getattr(dtype, "as_numpy_dtype", None)
    result: np.dtype[Any] = np.dtype(
        as_numpy if as_numpy is not None else dtype if isinstance(dtype, type) else str(dtype)
    )
    return result


def _shape(dims: Any) -> tuple[Dim, ...]:
    return tuple(None if d is None or int(d) < 0 else int(d) for d in dims)


# -- shared TensorFlow model ------------------------------------------------------------------


class _TensorFlowModel(Model):
    """What Keras and SavedModel models share: device placement, conversion, synchronisation."""

    def __init__(self, *, tf: ModuleType, tf_device: str, **kwargs: Any) -> None:
        super().__init__(framework="tensorflow", **kwargs)
        self._tf = tf
        self._tf_device = tf_device

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Copies numpy inputs to ``tf.Tensor`` objects on the model's device."""
        with self._tf.device(self._tf_device):
            return {k: self._tf.identity(self._tf.convert_to_tensor(v)) for k, v in inputs.items()}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copies outputs (``tf.Tensor`` or numpy) to host numpy arrays, waiting for them."""
        return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in outputs.items()}

    def synchronize(self) -> None:
        """Waits for the GPU work queued by TensorFlow (a no-op on the CPU).

        TensorFlow exposes no CUDA stream, so :attr:`stream_handle` is ``None``; on a GPU the
        tensors :meth:`run_native` returns may still be computing, and this waits for every
        device through ``tf.test.experimental.sync_devices()``. :meth:`to_numpy` waits by itself.
        """
        if self.device.is_cuda:  # pragma: no cover - needs a GPU visible to TensorFlow
            self._tf.test.experimental.sync_devices()

    def _run_error(self, exc: Exception, inputs: Mapping[str, Any]) -> PyinferError:
        """The typed error for a failed call: out of memory, or the model itself failed.

        The inputs were checked against the model's specs before the call, so a TensorFlow
        error here (``InvalidArgumentError`` from a graph that contradicts its own signature, a
        missing output) means the model is broken, e.g. a damaged ``saved_model.pb``.
        """
        oom = as_out_of_memory(exc)
        if oom is not None:
            return oom
        given = ", ".join(f"{n} {tuple(np.shape(v))}" for n, v in inputs.items())
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return InferenceError(
            f"model '{self.name}' ({self.path or self.format.value}) failed on inputs {given}: "
            f"{type(exc).__name__}: {detail}"
        )


# -- Keras ------------------------------------------------------------------------------------


class KerasModel(_TensorFlowModel):
    """A Keras model loaded from a ``.h5`` or ``.keras`` file.

    Inputs are named after the model's ``Input`` layers (or the keys of its input dict); outputs
    after the keys of its output dict, or else its output layers, in the model's own order.
    """

    def __init__(self, keras_model: Any, *, call_mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keras_model = keras_model
        self._call_mode = call_mode
        self._input_struct = getattr(keras_model, "_inputs_struct", None)
        self._dict_outputs = isinstance(getattr(keras_model, "_outputs_struct", None), dict)
        self._graph_call: Any = None
        if call_mode == "function":
            self._graph_call = self._tf.function(
                lambda x: keras_model(x, training=False), reduce_retracing=True
            )

    def _structure(self, inputs: Mapping[str, Any]) -> Any:
        names = self.input_names()
        if isinstance(self._input_struct, dict):
            return {n: inputs[n] for n in names}
        if len(names) == 1:
            return inputs[names[0]]
        return [inputs[n] for n in names]

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the model (``training=False``) in the call mode chosen at load time."""
        x = self._structure(inputs)
        try:
            with self._tf.device(self._tf_device):
                if self._call_mode == "predict":
                    batch = len(next(iter(inputs.values())))
                    result = self.keras_model.predict(x, verbose=0, batch_size=max(1, batch))
                elif self._graph_call is not None:
                    result = self._graph_call(x)
                else:
                    result = self.keras_model(x, training=False)
        except Exception as exc:
            raise self._run_error(exc, inputs) from exc
        return self._named(result)

    def _named(self, result: Any) -> dict[str, Any]:
        names = self.output_names()
        if isinstance(result, Mapping):
            return {n: result[n] for n in names}
        if isinstance(result, (list, tuple)):
            return dict(zip(names, result, strict=True))
        return {names[0]: result}


def _keras_config(path: Path, fmt: ModelFormat) -> Any:
    """The model's configuration as stored in the file, read without Keras (nothing runs)."""
    if fmt is ModelFormat.KERAS:
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise CorruptModelError(
                        f"{path} is a zip archive but not a Keras v3 file: it has no config.json; "
                        "save the model again with model.save('model.keras')",
                        path=path,
                    )
                text = archive.read("config.json")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            # NotImplementedError: a member whose header names a compression method no Keras
            # writes (a damaged header); zlib's errors are ValueError's kin in zipfile's wrapping.
            raise CorruptModelError(
                f"{path} is not a readable .keras archive ({exc}): the file is damaged or "
                "truncated; save or copy it again",
                path=path,
            ) from exc
        return _parse_json(text, path)
    h5py = importlib.import_module("h5py")  # installed with keras (untyped)
    _check_hdf5_global_heaps(path)
    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
            groups = set(f.keys())
            weight_attrs = "layer_names" in f.attrs
            outside = _h5_outside_references(h5py, f)
    except (OSError, ValueError, RuntimeError, KeyError, SystemError) as exc:
        # HDF5's errors reach Python as any of these, by the call that met the damage
        # (RuntimeError for a damaged group's symbol table or heap, KeyError for a bad link,
        # SystemError when a link name that is not UTF-8 fails inside h5py's visit callback).
        raise CorruptModelError(
            f"{path} is not a readable HDF5 file ({exc}): it is damaged or truncated; save or "
            "copy it again",
            path=path,
        ) from exc
    if outside:
        raise UntrustedModelError(
            f"{path} reads data from other files: {', '.join(outside[:5])}; a Keras .h5 model "
            "keeps its weights inside the file, and loading this one would copy whatever those "
            "files hold into the model. Save the model again (model.save('model.keras'))",
            path=path,
        )
    if config is None:
        if groups & {"layers", "vars", "model_weights"} or weight_attrs:
            raise ArchitectureError(
                f"{path} holds weights only (written by model.save_weights), not a model: it has "
                "no architecture to load. Build the model in code and call "
                "model.load_weights(path), then save the whole model with "
                "model.save('model.keras') and load that",
                path=path,
            )
        raise CorruptModelError(
            f"{path} is an HDF5 file but holds no Keras model (no model_config attribute); "
            "save the model with model.save('model.keras') or model.save('model.h5')",
            path=path,
        )
    return _parse_json(config, path)


def _h5_outside_references(h5py: Any, f: Any) -> list[str]:
    """Links and datasets of an HDF5 file that read other files, found without reading data.

    External links, datasets with external storage and virtual datasets all do. Keras 3.15
    refuses them too (its ``safe_get_h5_dataset``); pyinfer checks before any Keras sees the
    file, as for the rest of the model's configuration.
    """
    found: list[str] = []

    def link(name: str, info: Any) -> None:
        if isinstance(info, h5py.ExternalLink):
            found.append(f"/{name} -> {info.filename}:{info.path}")

    def item(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                files = ", ".join(str(e[0]) for e in obj.external)
                found.append(f"/{name} (external storage in {files})")
            elif obj.is_virtual:
                files = ", ".join(sorted({str(v.file_name) for v in obj.virtual_sources()}))
                found.append(f"/{name} (virtual, from {files})")

    visit_links = getattr(f, "visititems_links", None)  # h5py >= 3.11
    if callable(visit_links):
        visit_links(link)
    f.visititems(item)
    return found


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_hdf5_global_heaps(path: Path) -> None:
    """Refuses an HDF5 file whose global heap would make the HDF5 library loop forever.

    Variable-length strings (the ``model_config`` attribute of a Keras .h5 file) live in
    global heap collections ("GCOL"). HDF5 reads a collection object by object, each header
    giving the next one's offset; a free-space object of size 0 (zeroed bytes) sends it back
    to the same header without end, holding h5py's lock, and a size that runs past the
    collection makes the address wrap around (the same, or a crash). This walks each collection
    the same way first; in a sound file every object fits in its collection.

    Raises:
        CorruptModelError: If a collection holds an empty object or one that does not fit.
    """
    with path.open("rb") as f:
        head = f.read(16)
        if not head.startswith(_HDF5_SIGNATURE) or len(head) < 16:
            return  # h5py reports a file that is not HDF5 (or a user block) itself
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk_global_heaps(path, data)


def _walk_global_heaps(path: Path, data: mmap.mmap) -> None:
    # The size of "lengths" in the superblock: byte 14 in versions 0 and 1, 10 after.
    width = data[14] if data[8] in (0, 1) else data[10]
    if width not in (2, 4, 8):
        return  # h5py refuses the superblock
    header = 8 + width  # heap object index (2), reference count (2), reserved (4), size
    at = data.find(b"GCOL")
    while at != -1:
        if data[at + 4 : at + 8] == b"\x01\0\0\0" and at + 8 + width <= len(data):
            end = min(at + int.from_bytes(data[at + 8 : at + 8 + width], "little"), len(data))
            pos = at + 8 + width
            while pos + header <= end:
                index = int.from_bytes(data[pos : pos + 2], "little")
                size = int.from_bytes(data[pos + 8 : pos + header], "little")
                need = size if index == 0 else header + (size + 7) // 8 * 8
                if need == 0 or pos + need > end:
                    # HDF5 computes the next header's address in 64-bit arithmetic: an empty
                    # record stays in place, and a size past the collection wraps around.
                    raise CorruptModelError(
                        f"{path} is a damaged HDF5 file: the global heap at byte {at} (where "
                        f"variable-length strings such as the model configuration are kept) "
                        f"holds a record of {size} bytes at byte {pos}, "
                        f"{'empty' if need == 0 else 'past the end of the heap'}; save or copy "
                        "the file again",
                        path=path,
                    )
                pos += need
        at = data.find(b"GCOL", at + 4)


def _parse_json(text: Any, path: Path) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        return json.loads(str(text))
    except (ValueError, RecursionError) as exc:  # RecursionError: nested beyond the stack
        raise CorruptModelError(
            f"{path}: the model configuration stored in the file is not valid JSON ({exc}); "
            "the file is damaged, save it again",
            path=path,
        ) from exc


def _config_nodes(config: Any) -> Iterator[dict[str, Any]]:
    """Every object (dict) of a Keras config in document order, skipping what Keras never loads.

    Iterative, so a config nested deeper than Python's recursion limit cannot escape as a
    ``RecursionError``.
    """
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(reversed([v for k, v in node.items() if k not in _NOT_LOADED]))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _code_layers(config: Any) -> list[str]:
    """Names of the layers in a Keras config that carry Python code (Lambda layers)."""
    found: list[str] = []
    for node in _config_nodes(config):
        if node.get("class_name") in _CODE_CLASSES:
            inner = node.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            found.append(str(name or node.get("class_name")))
    return found


# Serialized objects whose configuration is Python code (marshalled bytecode or a function named
# by a string that Keras resolves): Lambda layers, Keras 3 lambdas, tf.keras 2 op layers.
_CODE_CLASSES = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"})
# Config entries Keras never deserializes with compile=False (the loss, metrics and optimizer).
_NOT_LOADED = frozenset({"compile_config"})
# Packages whose classes Keras itself imports by name (it takes only Keras objects from them).
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
# Keras namespaces that hold no modeling objects: file access, downloads, global settings,
# loading and saving. A model configuration that names anything in them is refused.
_NON_MODELING_PREFIXES = tuple(
    f"{root}.{part}"
    for root in ("keras", "keras.src")
    for part in (
        "utils",
        "config",
        "saving",
        "models.load_model",
        "preprocessing",
        "datasets",
        "callbacks",
        "backend",
        "export",
        "applications",
        "visualization",
        "distribution",
        "legacy.saving",
    )
)
_KERAS_BUILTIN_FUNCTION_MODULES = ("activations", "losses", "metrics")


def _foreign_references(
    config: Any, allowed: frozenset[str], keras: Any
) -> tuple[list[str], list[str]]:
    """What a Keras config names that is neither Keras' own modeling object nor the caller's.

    Every serialized object (a dict with ``class_name``) is checked. One with a ``module``
    outside Keras (``mypkg.layers``, ``os``, ``subprocess``, ``builtins.exec``...) must be in
    ``allowed`` (the caller's ``custom_objects`` and the objects the caller's code registered
    in Keras). One in a Keras namespace must not be a non-modeling API
    (``keras.utils.get_file``, ``keras.config.enable_unsafe_deserialization``...). Objects
    without a module (the ``.h5`` format) are looked up by Keras among its own objects and the
    caller's only.

    Args:
        config: The model configuration, as stored in the file.
        allowed: Names the caller supplies (class names and registered ``Package>Name`` forms).
        keras: The keras module (for the built-in function names).

    Returns:
        ``(foreign, non_modeling)``: ``module.name`` of each reference outside Keras that the
        caller did not supply, and of each non-modeling Keras API, once each.
    """
    foreign: list[str] = []
    non_modeling: list[str] = []
    denied = _keras_denied_names()

    def check(node: dict[str, Any]) -> None:
        module = node.get("module")
        cls = node.get("class_name")
        if not isinstance(module, str) or not isinstance(cls, str):
            return
        inner = node.get("config")
        name = inner if cls == "function" and isinstance(inner, str) else cls
        registered = node.get("registered_name")
        if {name, cls, registered} & allowed:
            return
        qualified = f"{module}.{name}"
        if module.split(".", 1)[0] in _KERAS_PACKAGES:
            if qualified in denied or qualified.startswith(_NON_MODELING_PREFIXES):
                non_modeling.append(qualified)
            return
        if module == "builtins" and cls == "function":
            for mod in _KERAS_BUILTIN_FUNCTION_MODULES:
                if callable(getattr(getattr(keras, mod, None), name, None)):
                    return
        foreign.append(qualified)

    for node in _config_nodes(config):
        check(node)
    return list(dict.fromkeys(foreign)), list(dict.fromkeys(non_modeling))


def _keras_denied_names() -> frozenset[str]:
    """Keras' own list of non-modeling APIs refused at deserialization, where it has one."""
    try:
        lib = importlib.import_module("keras.src.saving.serialization_lib")
    except ImportError:  # pragma: no cover - another Keras layout
        return frozenset()
    return frozenset(getattr(lib, "NON_MODELING_APIS", ()))


def _caller_objects(keras: Any, custom_objects: Mapping[str, Any] | None) -> frozenset[str]:
    """Names the caller supplies: ``custom_objects`` and what its code registered in Keras."""
    names = set(custom_objects or {})
    registry = getattr(getattr(keras, "saving", None), "get_custom_objects", None)
    if callable(registry):
        for key in registry():
            names.add(str(key))
            names.add(str(key).rsplit(">", 1)[-1])
    return frozenset(names)


@contextlib.contextmanager
def _keras_path(path: Path, fmt: ModelFormat) -> Iterator[Path]:
    """The path under a name Keras accepts: it picks the reader from the extension alone."""
    suffixes = (".keras",) if fmt is ModelFormat.KERAS else (".h5", ".hdf5")
    if path.suffix.lower() in suffixes:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pyinfer-keras-") as tmp:
        link = Path(tmp) / f"model{suffixes[0]}"
        link.symlink_to(path.resolve())
        yield link


def _load_keras(
    tf: ModuleType,
    path: Path,
    fmt: ModelFormat,
    device: Device,
    tf_device: str,
    *,
    name: str,
    call_mode: str,
    trust_code: bool,
    custom_objects: Any,
) -> KerasModel:
    if call_mode not in _CALL_MODES:
        raise InvalidArgumentError(
            f"call_mode={call_mode!r} for {path}: use one of {', '.join(_CALL_MODES)}"
        )
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise InvalidArgumentError(
            f"custom_objects for {path} must be a dict of name to class or function, "
            f"not {type(custom_objects).__name__}"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is not a file; a Keras model is one file", path=path)
    config = _keras_config(path, fmt)
    lambdas = _code_layers(config)
    if lambdas and not trust_code:
        raise UntrustedModelError(
            f"{path} holds Lambda layer(s) {', '.join(lambdas)}: their Python code is stored in "
            "the file and would run while the model is loaded, so a malicious file could run "
            "anything. If you trust where the file comes from, load it with trust_code=True "
            "(CLI: --trust-code)",
            path=path,
        )
    import keras

    foreign, non_modeling = _foreign_references(
        config, _caller_objects(keras, custom_objects), keras
    )
    if foreign:
        # Never handed to Keras, trusted or not: pyinfer imports no module a file names.
        first = foreign[0].rsplit(".", 1)[-1]
        raise ArchitectureError(
            f"{path} uses {', '.join(repr(f.rsplit('.', 1)[-1]) for f in foreign[:5])} "
            f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}), which is not a "
            "Keras object nor in custom_objects: it is code outside the file, and pyinfer "
            "does not import modules or functions a model file names. If it is your own code, "
            f"pass it with custom_objects={{'{first}': TheClass}}",
            path=path,
        )
    if non_modeling and not trust_code:
        raise UntrustedModelError(
            f"{path} names Keras functions that are not model parts: {', '.join(non_modeling)} "
            "(they read, download or write files, or change Keras settings, and would be "
            "called while the model is rebuilt); a model file has no use for them. If you "
            "trust where the file comes from, load it with trust_code=True (CLI: --trust-code)",
            path=path,
        )
    try:
        with _keras_path(path, fmt) as keras_path, device_scope(tf, tf_device):
            keras_model = keras.models.load_model(
                keras_path,
                custom_objects=dict(custom_objects) if custom_objects else None,
                compile=False,
                safe_mode=not trust_code,
            )
    except Exception as exc:
        raise _keras_error(exc, path) from exc
    inputs, outputs = _keras_specs(keras_model, path)
    weights = list(keras_model.weights)
    parameter_bytes = sum(
        int(np.prod(w.shape, dtype=np.int64)) * _np_dtype(w.dtype).itemsize for w in weights
    )
    return KerasModel(
        keras_model,
        call_mode=call_mode,
        tf=tf,
        tf_device=tf_device,
        name=name,
        format=fmt,
        device=device,
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=int(keras_model.count_params()),
        parameter_bytes=parameter_bytes,
        options={
            "call_mode": call_mode,
            "trust_code": trust_code,
            "custom_objects": sorted(custom_objects) if custom_objects else [],
        },
    )


@contextlib.contextmanager
def device_scope(tf: ModuleType, tf_device: str) -> Iterator[None]:
    """``tf.device(tf_device)`` as a typed context manager."""
    with tf.device(tf_device):
        yield


def _keras_error(exc: Exception, path: Path) -> ModelLoadError:
    text = str(exc)
    if "safe_mode" in text or "unsafe" in text.lower():
        return UntrustedModelError(
            f"{path}: Keras refused to load code stored in the file ({text}); load it with "
            "trust_code=True only if you trust where the file comes from",
            path=path,
        )
    missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if missing or "Unknown layer" in text:
        what = f"'{missing.group(1)}'" if missing else "a layer class"
        return ArchitectureError(
            f"{path} uses {what}, which Keras cannot find: it is custom code, not stored in "
            f"the file. Pass it with custom_objects={{'{missing.group(1) if missing else 'Name'}"
            "': TheClass}",
            path=path,
        )
    return CorruptModelError(
        f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {text}); the file "
        "is damaged or was written by an incompatible Keras version: save it again",
        path=path,
    )


def _keras_specs(keras_model: Any, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    try:
        in_tensors = list(keras_model.inputs)
        out_tensors = list(keras_model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ArchitectureError(
            f"{path} holds a Keras model whose inputs are not declared (a subclassed model "
            "never called before saving); pyinfer needs a functional or Sequential model with "
            "keras.Input layers: rebuild it so and save it again",
            path=path,
        ) from exc
    in_struct = getattr(keras_model, "_inputs_struct", None)
    in_names = list(in_struct) if isinstance(in_struct, dict) else [t.name for t in in_tensors]
    in_by_name = (
        dict(in_struct)
        if isinstance(in_struct, dict)
        else dict(zip(in_names, in_tensors, strict=True))
    )
    inputs = [
        TensorSpec(n, _shape(in_by_name[n].shape), _np_dtype(in_by_name[n].dtype)) for n in in_names
    ]
    out_struct = getattr(keras_model, "_outputs_struct", None)
    if isinstance(out_struct, dict):
        out_pairs = list(out_struct.items())
    else:
        names = getattr(keras_model, "output_names", None)
        if not names or len(names) != len(out_tensors):
            if len(out_tensors) == 1:
                names = [keras_model.layers[-1].name]
            else:
                names = [f"output_{i}" for i in range(len(out_tensors))]
        out_pairs = list(zip(names, out_tensors, strict=True))
    outputs = [TensorSpec(str(n), _shape(t.shape), _np_dtype(t.dtype)) for n, t in out_pairs]
    return inputs, outputs


# -- SavedModel -------------------------------------------------------------------------------


class SavedModelModel(_TensorFlowModel):
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
    if signatures is None:
        # A damaged object graph can restore its root as a plain object without signatures.
        raise CorruptModelError(
            f"{path} is a damaged SavedModel: its root object ({type(loaded).__name__}) has no "
            "signatures (saved_model.pb's object graph is damaged); export the model again",
            path=path,
        )
    available = list(signatures.keys())
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


# -- TFLite -----------------------------------------------------------------------------------


class TFLiteModel(Model):
    """A TFLite flatbuffer run by the TFLite interpreter on the CPU.

    Names come from the model's first signature where it has one (the names the model was
    exported with), else from the tensors. With a signature, inputs and outputs are sorted by
    name, as for a SavedModel (the converter's order of the graph's tensors follows the
    SavedModel's unordered maps); without one they are in the graph's order.
    An input whose ``shape_signature`` has ``-1`` is dynamic there: when a call brings another
    size, the input is resized (``resize_tensor_input``) and the tensors reallocated, once per
    change of shape. Inputs and outputs keep the model's dtypes (``int8`` for a fully quantized
    model): quantize them with the scale and zero point of the model's tensor details.
    Calls from several threads are safe and take turns: an interpreter holds one set of tensors,
    so a lock covers each call (load the model once per thread to run in parallel).
    """

    def __init__(
        self,
        interpreter: Any,
        input_index: Mapping[str, int],
        output_index: Mapping[str, int],
        **kwargs: Any,
    ) -> None:
        super().__init__(framework="tflite", **kwargs)
        self.interpreter = interpreter
        self._input_index = dict(input_index)
        self._output_index = dict(output_index)
        details = {d["index"]: d for d in interpreter.get_input_details()}
        self._current_shapes = {
            n: tuple(int(s) for s in details[i]["shape"]) for n, i in self._input_index.items()
        }
        self._run_lock = threading.Lock()  # one interpreter runs one call at a time

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """TFLite takes host arrays: returns them as they are."""
        return dict(inputs)

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The outputs are host arrays already."""
        return {k: np.asarray(v) for k, v in outputs.items()}

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Sets the inputs (resizing dynamic ones when their shape changed), invokes, copies out.

        One interpreter holds one set of input and output tensors, so calls from several
        threads take turns (a lock around the whole call); the outputs are copies.

        Raises:
            InferenceError: If the interpreter fails (its errors are plain ``RuntimeError`` and
                ``ValueError``): the inputs were checked against the model before, so the
                model itself is at fault, e.g. a weight whose data is missing from the file.
        """
        try:
            with self._run_lock:
                return self._run(inputs)
        except (RuntimeError, ValueError) as exc:
            if isinstance(exc, PyinferError):
                raise
            shapes = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in inputs.items())
            raise InferenceError(
                f"the TFLite interpreter failed running model '{self.name}' ({self.path}) on "
                f"inputs {shapes}: {str(exc).strip()[:500]}; the model file is damaged or "
                "was converted wrongly: convert or copy it again"
            ) from exc

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        resized = False
        for name, index in self._input_index.items():
            shape = tuple(int(s) for s in np.shape(inputs[name]))
            if shape != self._current_shapes[name]:
                self.interpreter.resize_tensor_input(index, list(shape), strict=True)
                self._current_shapes[name] = shape
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for name, index in self._input_index.items():
            self.interpreter.set_tensor(index, inputs[name])
        self.interpreter.invoke()
        return {n: self.interpreter.get_tensor(i) for n, i in self._output_index.items()}

    def close(self) -> None:
        """Drops the interpreter."""
        self.interpreter = None


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        tf = import_tensorflow()
        return tf.lite.Interpreter, "tf.lite"


def tflite_side_effects(path: Path) -> list[str]:
    """The TensorFlow ops (Flex ops) of a TFLite model that write files or call Python.

    A TFLite model runs TensorFlow kernels through custom operators named ``Flex<Op>``, stored
    as strings in the flatbuffer; they run only where the Flex delegate is linked in (the
    interpreters pyinfer uses refuse them), and pyinfer registers no custom operators itself.
    The names are found in the file's bytes, so the check costs one read.

    Args:
        path: The ``.tflite`` file.

    Returns:
        ``Flex<Op>`` for each op of :data:`SIDE_EFFECT_OPS` the model names.
    """
    data = path.read_bytes()
    return sorted(f"Flex{op}" for op in SIDE_EFFECT_OPS if f"Flex{op}".encode() in data)


def _load_tflite(path: Path, *, name: str, num_threads: Any, trust_code: bool) -> TFLiteModel:
    if num_threads is None:
        num_threads = physical_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidArgumentError(
            f"num_threads={num_threads!r} for {path}: give a positive number of threads"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is not a file; a TFLite model is one file", path=path)
    effects = tflite_side_effects(path)
    if effects and not trust_code:
        raise UntrustedModelError(
            f"{path} uses TensorFlow ops that write files or call Python: {', '.join(effects)} "
            "(Flex ops, run by the Flex delegate where it is linked in); no model needs them to "
            "compute its outputs. If you trust where the file comes from, load it with "
            "trust_code=True (CLI: --trust-code)",
            path=path,
        )
    count, nbytes = _tflite_constants(path)
    interpreter_class, runtime = _interpreter_class()
    # The file's bytes, not its path: from a path the interpreter keeps the file open and
    # memory-mapped for the model's life, so overwriting it in place (exporting again to the
    # same path) would change or cut the weights under a loaded model, and a read past the
    # new end is a SIGBUS. From bytes, the file is closed on return and may be replaced.
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}", path=path) from exc
    try:
        with warnings.catch_warnings():
            # tf.lite.Interpreter warns on construction that it moves to ai_edge_litert.
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise CorruptModelError(
            f"{path} is not a valid TFLite model ({str(exc).strip()[:500]}): the file is damaged "
            "or truncated; convert or copy it again",
            path=path,
        ) from exc
    in_details = {d["index"]: d for d in interpreter.get_input_details()}
    out_details = {d["index"]: d for d in interpreter.get_output_details()}
    input_index, output_index = _tflite_names(interpreter, in_details, out_details)
    inputs = [_tflite_spec(n, in_details[i]) for n, i in input_index.items()]
    outputs = [_tflite_spec(n, out_details[i]) for n, i in output_index.items()]
    return TFLiteModel(
        interpreter,
        input_index,
        output_index,
        name=name,
        format=ModelFormat.TFLITE,
        device=Device("cpu"),
        path=path,
        inputs=inputs,
        outputs=outputs,
        parameter_count=count,
        parameter_bytes=nbytes,
        options={"num_threads": num_threads, "runtime": runtime},
    )


def _tflite_spec(name: str, detail: Mapping[str, Any]) -> TensorSpec:
    dims = detail.get("shape_signature")
    if dims is None or len(dims) != len(detail["shape"]):
        dims = detail["shape"]
    return TensorSpec(name, _shape(dims), np.dtype(detail["dtype"]))


def _tflite_names(
    interpreter: Any, in_details: Mapping[int, Any], out_details: Mapping[int, Any]
) -> tuple[dict[str, int], dict[str, int]]:
    """Input and output name -> tensor index, from the first signature when it fits."""
    try:
        signatures = interpreter.get_signature_list()
    except (AttributeError, RuntimeError, ValueError):  # pragma: no cover - old runtimes
        signatures = {}
    for key in signatures:
        runner = interpreter.get_signature_runner(key)
        sig_in = {str(n): int(d["index"]) for n, d in runner.get_input_details().items()}
        sig_out = {str(n): int(d["index"]) for n, d in runner.get_output_details().items()}
        if set(sig_in.values()) == set(in_details) and set(sig_out.values()) == set(out_details):
            return dict(sorted(sig_in.items())), dict(sorted(sig_out.items()))
    return (
        {str(d["name"]): i for i, d in in_details.items()},
        {str(d["name"]): i for i, d in out_details.items()},
    )


def _tflite_constants(path: Path) -> tuple[int, int]:
    """Elements and bytes of the constant tensors stored in a TFLite flatbuffer.

    What is counted: every tensor of every subgraph whose buffer holds data in the file, each
    buffer once however many tensors share it. That is the weights and biases, but also the
    small constants a graph carries (reshape targets, padding amounts, axis lists), while
    constants the converter folded away (a zero bias) are not there to count; quantization
    scales and zero points (tensor metadata, not buffers) are not counted. Elements are the
    product of the tensor's shape; bytes the size of its buffer (``int8`` weights count one byte
    each).

    The walk also checks that every buffer lies inside the file, before the interpreter (which
    trusts the offsets) reads it.

    Returns:
        ``(elements, bytes)``.

    Raises:
        CorruptModelError: If the flatbuffer's tables or buffers point outside the file.
    """
    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema

    buf = _StrictBytes(path.read_bytes())
    count = nbytes = 0
    try:
        _check_tflite_structure(schema, buf)
        model = schema.Model.GetRootAs(buf, 0)
        if model.SubgraphsLength() == 0:
            raise ValueError("the model has no subgraph")
        seen: set[int] = set()
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for t in range(subgraph.TensorsLength()):
                tensor = subgraph.Tensors(t)
                index = tensor.Buffer()
                if index <= 0 or index in seen or index >= model.BuffersLength():
                    continue
                buffer = model.Buffers(index)
                if buffer.DataLength() > 0:
                    size = int(buffer.DataAsNumpy().nbytes)  # raises past the end of the file
                elif buffer.Offset() > 1:  # models over 2 GB keep buffers after the flatbuffer
                    size = int(buffer.Size())
                    if buffer.Offset() + size > len(buf):
                        raise ValueError(f"buffer {index} ends past the end of the file")
                else:
                    continue
                seen.add(index)
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.ones(1)
                count += int(np.prod(shape, dtype=np.int64))
                nbytes += size
    except Exception as exc:
        raise CorruptModelError(
            f"{path} is not a valid TFLite model ({type(exc).__name__}: {exc}): its flatbuffer "
            "is damaged or truncated; convert or copy it again",
            path=path,
        ) from exc
    return count, nbytes


class _StrictBytes(bytes):
    """The file's bytes, refusing a slice that runs past the end (a string's bytes + its NUL).

    flatbuffers' Python reader raises on every read past the end except a string's, which it
    slices: this makes that read raise too, as the interpreter's C++ reader would crash on it.
    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and (
            (key.start is not None and key.start < 0)
            or (key.stop is not None and key.stop >= len(self))
        ):
            raise ValueError(
                f"bytes {key.start}..{key.stop} are past the end of the file ({len(self)} bytes)"
            )
        return super().__getitem__(key)


def _check_tflite_structure(schema: Any, buf: bytes) -> None:
    """Reads every field of a TFLite flatbuffer in Python, before the interpreter's C++ does.

    The interpreter builds its graph from the flatbuffer without verifying it, trusting every
    offset, length and index: a damaged file crashes the process (SIGSEGV, SIGBUS) or makes it
    allocate without end. Unpacking the whole model with flatbuffers' Python reader touches the
    same offsets and lengths, each checked against the end of the file (``buf`` is
    :class:`_StrictBytes`), so damage raises here instead. The indices the graph links by
    (tensors, buffers, operator codes, subgraphs) are then checked against what exists.

    Raises:
        ValueError, TypeError, IndexError, struct.error: Where the flatbuffer is damaged (the
            caller maps them to :class:`CorruptModelError`).
    """
    if len(buf) < 8:
        raise ValueError(f"{len(buf)} bytes is too short for a TFLite flatbuffer")
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    subgraphs = model.subgraphs or []
    buffers = len(model.buffers or [])
    codes = len(model.operatorCodes or [])
    for s, subgraph in enumerate(subgraphs):
        tensors = len(subgraph.tensors or [])
        where = f"subgraph {s}"
        for t, tensor in enumerate(subgraph.tensors or []):
            if not 0 <= tensor.buffer < max(buffers, 1):
                raise ValueError(f"{where}: tensor {t} uses buffer {tensor.buffer} of {buffers}")
            _utf8(tensor.name, f"{where}: the name of tensor {t}")
            for dims in (tensor.shape, tensor.shapeSignature):
                for dim in list(dims if dims is not None else []):
                    if dim < -1:
                        raise ValueError(f"{where}: tensor {t} has dimension {dim}")
        indices = list(subgraph.inputs if subgraph.inputs is not None else [])
        indices += list(subgraph.outputs if subgraph.outputs is not None else [])
        for o, op in enumerate(subgraph.operators or []):
            if not 0 <= op.opcodeIndex < codes:
                raise ValueError(f"{where}: operator {o} has opcode {op.opcodeIndex} of {codes}")
            for part in (op.inputs, op.outputs, op.intermediates):
                indices += [i for i in (part if part is not None else []) if i != -1]
        bad = [int(i) for i in indices if not 0 <= i < tensors]
        if bad:
            raise ValueError(f"{where} refers to tensor {bad[0]}, but has {tensors} tensors")
        for i in subgraph.inputs if subgraph.inputs is not None else []:
            # An input is written by set_tensor: one whose data is in the (read-only) file
            # would be written in place.
            data = model.buffers[subgraph.tensors[i].buffer].data if buffers else None
            if data is not None and len(data) > 0:
                raise ValueError(f"{where}: input tensor {i} is a constant (its data is stored)")
    for m, meta in enumerate(model.metadata or []):
        if not 0 <= meta.buffer < buffers:
            raise ValueError(f"metadata {m} uses buffer {meta.buffer} of {buffers}")
    for signature in model.signatureDefs or []:
        key = _utf8(signature.signatureKey, "a signature's name")
        if not key:
            raise ValueError("a signature has no name")
        if not 0 <= signature.subgraphIndex < len(subgraphs):
            raise ValueError(f"signature {key!r} runs subgraph {signature.subgraphIndex}")
        tensors = len(subgraphs[signature.subgraphIndex].tensors or [])
        for entry in (signature.inputs or []) + (signature.outputs or []):
            _utf8(entry.name, f"a tensor name of signature {key!r}")
            if not 0 <= entry.tensorIndex < tensors:
                raise ValueError(f"signature {key!r} names tensor {entry.tensorIndex} of {tensors}")


def _utf8(text: bytes | None, what: str) -> str:
    """``text`` decoded (``""`` for ``None``); ``ValueError`` naming ``what`` if not UTF-8."""
    try:
        decoded = (text or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if "\0" in decoded:  # the interpreter reads names as C strings, cut at the first NUL
        raise ValueError(f"{what} holds a NUL byte: {decoded!r}")
    return decoded
