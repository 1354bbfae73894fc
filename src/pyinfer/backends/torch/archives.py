"""Safety checks of TorchScript and ``torch.export`` archives before torch reads them.

TorchScript tensors must lie inside their storage records (:func:`_check_archive_tensors`);
a ``.pt2`` archive must hold no code (:func:`export_archive_code`) unless the caller trusts it,
and its weights must match the graph (:func:`_check_program_weights`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import lzma
import pickle
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfer.backends.torch.messages import _corrupt
from pyinfer.backends.torch.pickle_scan import (
    _all_pickle_globals,
    _nested_archive_globals,
    _weights_only_globals,
)
from pyinfer.errors import CorruptModelError

#: What reading a damaged zip archive's members raises: bad headers and checksums, damaged
#: compressed data, compression methods or encryption Python's zipfile does not read.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


class _Opaque:
    """Whatever a pickle builds that :func:`_check_archive_tensors` does not look at.

    Takes any arguments, state, items and appends, so the pickle's structure is walked without
    importing or running anything it names.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return _Opaque()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    """A tensor storage a TorchScript pickle refers to: its record, dtype and element count."""

    key: str
    type_name: str
    numel: Any = None


#: The rebuild functions whose first arguments are (storage, offset, size, stride).
_REBUILD_TENSOR = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_qtensor"})


class _TensorLayoutReader(pickle.Unpickler):
    """Reads the tensors a TorchScript pickle declares, importing nothing.

    Every global resolves to :class:`_Opaque` except the tensor rebuild functions, which record
    ``(storage, offset, size, stride)``; storages come back as :class:`_StorageRef`.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.tensors: list[tuple[Any, Any, Any, Any]] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in _REBUILD_TENSOR:
            return self._rebuild
        if module == "torch" and name.endswith("Storage"):
            return name
        return _Opaque

    def _rebuild(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Opaque:
        self.tensors.append((storage, offset, size, stride))
        return _Opaque()

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            return _StorageRef(str(pid[2]), str(pid[1]), pid[4] if len(pid) > 4 else None)
        raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}")


def _check_archive_tensors(torch: ModuleType, path: Path) -> None:
    """Checks that every tensor of a TorchScript archive lies inside its storage record.

    ``torch.jit.load`` builds each tensor of ``data.pkl`` and ``constants.pkl`` over the bytes of
    its record (``data/N``, ``constants/N``) without checking that the record holds the
    tensor's extent; a short or missing record, or a size, stride or offset damaged in the
    pickle, gives a tensor that reads past its memory and crashes the interpreter when the
    module runs. This walks the pickles first (importing nothing) and refuses such a file.

    Raises:
        CorruptModelError: If a pickle cannot be read, or a tensor does not fit its record.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos:
                return  # torch.jit.load says what is wrong with an empty archive
            prefix = infos[0].filename.split("/", 1)[0]
            sizes = {i.filename: i.file_size for i in infos}
            pickles = {
                name: archive.read(f"{prefix}/{name}.pkl")
                for name in ("data", "constants")
                if f"{prefix}/{name}.pkl" in sizes
            }
    except _ZIP_ERRORS as exc:
        raise _corrupt(path, "TorchScript archive", exc) from exc
    for name, data in pickles.items():
        reader = _TensorLayoutReader(data)
        try:
            reader.load()
        except Exception as exc:
            raise _corrupt(path, f"TorchScript archive (its {name}.pkl)", exc) from exc
        for layout in reader.tensors:
            # torch.jit.load reads the storages of data.pkl from data/, of constants.pkl
            # from constants/.
            problem = _tensor_layout_problem(torch, layout, sizes, f"{prefix}/{name}/")
            if problem:
                raise CorruptModelError(
                    f"{path} is a damaged TorchScript archive: a tensor of its {name}.pkl "
                    f"{problem}; save the module again (torch.jit.save)",
                    path=path,
                )


def _storage_itemsize(torch: ModuleType, type_name: str) -> int | None:
    """Bytes per element of a pickled storage type (``FloatStorage``, ``Float8_e4m3fnStorage``)."""
    try:
        return int(torch.storage._get_dtype_from_pickle_storage_type(type_name).itemsize)
    except (KeyError, AttributeError):
        pass
    # TorchScript names a storage after the C++ scalar type, which Python's table lacks for the
    # newer dtypes (UInt16, Float8_e4m3fn, Bits8, ...): their torch names, lower-cased.
    wanted = type_name.removesuffix("Storage").lower()
    wanted = {"complexhalf": "complex32"}.get(wanted, wanted)
    dtype = vars(torch).get(wanted)  # vars: never torch's lazy __getattr__ imports
    return int(dtype.itemsize) if isinstance(dtype, torch.dtype) else None


def _tensor_layout_problem(
    torch: ModuleType,
    layout: tuple[Any, Any, Any, Any],
    records: Mapping[str, int],
    folder: str,
) -> str | None:
    """What is wrong with one tensor's ``(storage, offset, size, stride)``; ``None`` if it fits.

    Args:
        torch: The torch module.
        layout: As the pickle declares it.
        records: The archive's member sizes by name.
        folder: Where the pickle's storage records lie (``"archive/data/"``).
    """
    storage, offset, size, stride = layout
    if not isinstance(storage, _StorageRef):
        return "has no storage record"
    dims = [offset, *size, *stride] if isinstance(size, tuple) and isinstance(stride, tuple) else []
    if not dims or len(size) != len(stride) or not all(isinstance(d, int) for d in dims):
        return f"has a damaged layout (size {size!r}, stride {stride!r}, offset {offset!r})"
    if offset < 0 or any(d < 0 for d in size) or any(d < 0 for d in stride):
        return f"has a negative size, stride or offset ({size}, {stride}, {offset})"
    itemsize = _storage_itemsize(torch, storage.type_name)
    if itemsize is None:
        return None  # a type torch.jit.load does not know either: it refuses the file itself
    record = folder + storage.key
    if record not in records:
        return f"refers to a storage record {record!r} the archive lacks"
    held = records[record]
    if isinstance(storage.numel, int) and not 0 <= storage.numel * itemsize <= held:
        # torch.jit.load sizes the storage by this count, over the record's bytes.
        return (
            f"has a storage of {storage.numel} elements ({storage.numel * itemsize} bytes) in "
            f"its record {record!r}, which holds {held} bytes"
        )
    if 0 in size:
        return None
    needed = (offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) + 1) * itemsize
    if needed > held:
        return (
            f"of shape {tuple(size)} needs {needed} bytes of its storage record {record!r}, "
            f"which holds {held}"
        )
    return None


def _check_program_weights(path: Path, program: Any) -> None:
    """Checks each weight of a loaded ``.pt2`` against the placeholder its graph declares.

    ``torch.export.load`` takes the shapes of the weights from the archive's weight config and
    the graph from ``models/*.json`` without comparing them: a damaged config gives a program
    that loads and fails (or computes garbage) at its first call.

    Raises:
        CorruptModelError: If a weight's shape or dtype differs from its placeholder's.
    """
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    tensors = {**program.state_dict, **program.constants}
    lifted = {
        **sig.inputs_to_parameters,
        **sig.inputs_to_buffers,
        **sig.inputs_to_lifted_tensor_constants,
    }
    for placeholder, fqn in lifted.items():
        node = placeholders.get(placeholder)
        declared = node.meta.get("val") if node is not None else None
        tensor = tensors.get(fqn)
        if declared is None or tensor is None or not hasattr(tensor, "shape"):
            continue  # torch refuses a missing weight itself, with a message naming it
        want = tuple(declared.shape)
        if all(isinstance(d, int) for d in want) and (
            want != tuple(tensor.shape) or declared.dtype != tensor.dtype
        ):
            raise CorruptModelError(
                f"{path} is a damaged torch.export program (.pt2): weight {fqn!r} is stored "
                f"as {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')} but its "
                f"graph expects {want} {str(declared.dtype).removeprefix('torch.')} (the "
                "archive's weight config or graph was damaged); export it again",
                path=path,
            )


_PT2_AOTI_DIR = "data/aotinductor/"
_PT2_PAYLOAD_DIRS = ("data/weights/", "data/constants/")
_PT2_NOT_PICKLED = ("custom_obj_",)  # read by torch's C++ unpickler, which runs no Python
_ZIP_MAGIC = b"PK\x03\x04"


def export_archive_code(torch: ModuleType, path: Path) -> list[str]:
    """What in a ``torch.export`` archive (``.pt2``) would run code when loaded, read safely.

    ``torch.export.load`` unpickles in full (``weights_only=False``) the weights and constants an
    archive marks as pickled, its opaque objects and, when ``weights_only`` loading fails, its
    sample inputs and legacy weight files; it also loads the shared libraries of AOTInductor
    packages. Every entry that is not a raw tensor payload is read here: pickles (plain or inside
    a nested ``torch.save`` archive) with :func:`pickle_globals`, which unpickles nothing.

    Args:
        torch: The torch module.
        path: The archive.

    Returns:
        One description per finding (``"imports os.system (in data/sample_inputs/model.pt)"``,
        ``"a compiled AOTInductor library (data/aotinductor/...)"``); empty when the archive
        holds only the graph and tensors. Globals that torch's ``weights_only`` loader accepts
        (tensor rebuild functions, plain containers) are not code.
    """
    allowed = _weights_only_globals(torch)
    findings: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            raw = _pt2_raw_payloads(archive, infos)
            for info in infos:
                name = info.filename
                if _PT2_AOTI_DIR in name:
                    findings.append(f"a compiled AOTInductor package entry ({name})")
                    continue
                base = name.rsplit("/", 1)[-1]
                if name in raw or name.endswith(".json") or base.startswith(_PT2_NOT_PICKLED):
                    continue
                with archive.open(info) as member:
                    head = member.read(4)
                if head[:1] == b"\x80":
                    with archive.open(info) as member:
                        names = _all_pickle_globals(member)
                elif head == _ZIP_MAGIC:
                    names = _nested_archive_globals(archive.read(info))
                else:
                    continue
                findings.extend(f"imports {g} (in {name})" for g in names if g not in allowed)
    except Exception as exc:  # a damaged archive: zipfile, zlib or EOF errors
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc
    return findings


def _pt2_raw_payloads(archive: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]) -> set[str]:
    """The archive entries its payload configs declare raw tensor bytes (never unpickled)."""
    raw: set[str] = set()
    for info in infos:
        name = info.filename
        folder = next((d for d in _PT2_PAYLOAD_DIRS if d in name), None)
        if folder is None or not name.endswith("_config.json"):
            continue
        try:
            config = json.loads(archive.read(info)).get("config", {})
        except (ValueError, AttributeError):
            continue  # torch will fail on it too; the pickles are still scanned
        prefix = name[: name.index(folder) + len(folder)]
        for entry in config.values() if isinstance(config, dict) else ():
            if not isinstance(entry, dict) or entry.get("use_pickle"):
                continue
            file = str(entry.get("path_name", ""))
            if file.startswith("opaque_obj_"):
                continue  # unpickled with pickle.loads whatever the config says
            raw.add(prefix + file)
    return raw
