"""Reading a Keras model's configuration before Keras sees the file.

Refuses Lambda layers and marshalled functions (code), modules and functions outside Keras the
caller did not pass, non-modeling Keras APIs, and ``.h5`` files whose datasets read other files
or whose global heaps are damaged.
"""

from __future__ import annotations

import importlib
import json
import mmap
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyinfer.backends.base import ModelFormat
from pyinfer.errors import ArchitectureError, CorruptModelError, UntrustedModelError


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
