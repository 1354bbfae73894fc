"""Format detection by content: magic numbers, a zip archive's table of contents, a protobuf walk.

:func:`detect_format` reads a few bytes (or a zip archive's table of contents, or a protobuf's
top-level fields) and decides the format from the content; the file extension only breaks ties
and, where it contradicts the content, earns a logged warning. The extension table is the
registry's (:data:`pyinfer.formats.EXTENSIONS`).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import BinaryIO

from pyinfer.backends.huggingface import folder_kind, is_safetensors
from pyinfer.errors import CorruptModelError, ModelNotFoundError, UnknownFormatError
from pyinfer.formats import EXTENSIONS, ModelFormat, format_names

__all__ = ["detect_format", "resolve_path"]

logger = logging.getLogger(__name__)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# torch.save's legacy format begins with a protocol-2 pickle of this magic number (a LONG1).
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

# ModelProto's top-level fields -> the protobuf wire type each must have (0 varint, 2 bytes).
_ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ONNX_GRAPH_FIELD = 7


def resolve_path(path: str | Path) -> Path:
    """A model path with ``~`` expanded, checked to exist.

    Raises:
        ModelNotFoundError: If nothing is there; the message names files of the same stem
            beside it (``model.onnx`` for ``model.pt``).
    """
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            near = sorted(q.name for q in p.parent.iterdir() if q.stem == p.stem)[:5]
            if near:
                hint = f" (did you mean {', '.join(near)}?)"
        raise ModelNotFoundError(f"model path {str(p)!r} does not exist{hint}", path=p)
    return p


def _read_varint(f: BinaryIO) -> int | None:
    result = 0
    for shift in range(0, 64, 7):
        byte = f.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
    return None


def _onnx_verdict(f: BinaryIO, size: int) -> str:
    """Walks a file's top-level protobuf fields.

    Returns:
        ``"onnx"``, ``"truncated"`` (a field runs past the end), ``"no-graph"`` (well-formed
        ModelProto fields but no graph) or ``"no"``.
    """
    f.seek(0)
    seen: set[int] = set()
    while True:
        pos = f.tell()
        if pos == size:
            if _ONNX_GRAPH_FIELD in seen:
                return "onnx"
            return "no-graph" if 1 in seen and len(seen) >= 2 else "no"
        tag = _read_varint(f)
        if tag is None:
            return "truncated" if len(seen) >= 2 else "no"
        field, wire = tag >> 3, tag & 7
        if _ONNX_MODEL_FIELDS.get(field) != wire:
            return "no"
        if wire == 0:
            if _read_varint(f) is None:
                return "truncated" if len(seen) >= 2 else "no"
        else:
            length = _read_varint(f)
            if length is None or f.tell() + length > size:
                # A field that runs past the end: a cut-off ONNX file if what came before
                # looked like one (ir_version first, as every writer puts it).
                return "truncated" if seen and 1 in seen else "no"
            f.seek(length, 1)
        seen.add(field)


def _zip_format(path: Path) -> ModelFormat | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptModelError(
            f"{path} is a damaged zip archive ({exc}); TorchScript, torch.save, torch.export "
            "and Keras files are zip archives: the file is probably truncated, so save or copy "
            "it again",
            path=path,
        ) from exc
    except NotImplementedError as exc:
        # zipfile refuses a central directory that claims a newer zip version than it reads
        # (a damaged header: torch and Keras write plain version 2.0 archives).
        raise CorruptModelError(
            f"{path} is a damaged zip archive: its directory asks for a zip feature no model "
            f"writer uses ({exc}); TorchScript, torch.save, torch.export and Keras files are "
            "plain zip archives, so this one is damaged: save or copy it again",
            path=path,
        ) from exc
    roots = set(names)
    if {"config.json", "metadata.json"} <= roots or (
        "config.json" in roots and "model.weights.h5" in roots
    ):
        return ModelFormat.KERAS
    tails = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in tails or any(t.startswith("models/") for t in tails):
        return ModelFormat.TORCH_EXPORT
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return ModelFormat.TORCHSCRIPT
    if "data.pkl" in tails:
        return ModelFormat.PYTORCH
    return None


def _content_format(path: Path) -> ModelFormat | None:
    """The format the content says, ``None`` when it matches none."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return ModelFormat.SAVED_MODEL
        kind = folder_kind(path)
        if kind == "torch":
            return ModelFormat.PYTORCH  # a Hugging Face folder: config.json + weights
        if kind == "onnx":
            return ModelFormat.ONNX  # a Hugging Face folder exported to ONNX
        return None
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
            if len(head) >= 8 and head[4:8] == b"TFL3":
                return ModelFormat.TFLITE
            if is_safetensors(head, size):
                return ModelFormat.PYTORCH  # weights only: a state_dict, like a .pth
            if head.startswith(_ZIP_SIGNATURES):
                return _zip_format(path)
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == _HDF5_SIGNATURE:
                    return ModelFormat.KERAS_H5
            if head.startswith(_TORCH_LEGACY_MAGIC):
                return ModelFormat.PYTORCH_LEGACY
            if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                return ModelFormat.PICKLE
            verdict = _onnx_verdict(f, size)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model file {str(path)!r}: {exc}", path=path) from exc
    if verdict == "onnx":
        return ModelFormat.ONNX
    if verdict == "truncated":
        raise CorruptModelError(
            f"{path} starts like an ONNX model but its data stops short of what its headers "
            "announce: the file is truncated; export or copy it again",
            path=path,
        )
    if verdict == "no-graph":
        raise CorruptModelError(
            f"{path} has the header fields of an ONNX model but no graph: it was cut off after "
            "its header or written incompletely; export or copy it again",
            path=path,
        )
    return None


def detect_format(path: str | Path) -> ModelFormat:
    """Detects a model's format from its content.

    A folder is a SavedModel (``saved_model.pb``), a Hugging Face model folder
    (``config.json`` with ``model.safetensors`` or ``pytorch_model.bin``: ``pytorch``) or a
    Hugging Face folder exported to ONNX (``config.json`` with ``model.onnx``: ``onnx``). The
    extension is only a tie-breaker: a ``.onnx`` file holding a TorchScript archive is
    TorchScript (with a warning in the log). ``saved_model.pb`` itself stands for its folder.

    Args:
        path: A model file, or a SavedModel folder.

    Returns:
        The detected format.

    Raises:
        ModelNotFoundError: If the path does not exist or cannot be read.
        CorruptModelError: If the content is a known container that is damaged (an empty file,
            a truncated zip archive or ONNX protobuf).
        UnknownFormatError: If the content matches no known format; the message lists them.
    """
    p = resolve_path(path)
    if p.is_file() and p.name in {"saved_model.pb", "saved_model.pbtxt"}:
        p = p.parent
    if p.is_file() and p.stat().st_size == 0:
        raise CorruptModelError(f"model file {str(p)!r} is empty (0 bytes)", path=p)
    fmt = _content_format(p)
    suffix = p.suffix.lower()
    expected = EXTENSIONS.get(suffix)
    if fmt is None:
        if p.is_dir():
            raise UnknownFormatError(
                f"{p} is a folder but not a TensorFlow SavedModel (no saved_model.pb in it) "
                "nor a Hugging Face model folder (config.json with model.safetensors, "
                "pytorch_model.bin or model.onnx); pass a model file, or the model folder itself",
                path=p,
            )
        said = ""
        if expected:
            said = f" although its extension '{suffix}' suggests {format_names(expected)}"
        raise UnknownFormatError(
            f"{p} is not a model file pyinfer recognises{said}: its content matches none of "
            "TorchScript, torch.save (zip or legacy), safetensors, torch.export (.pt2), ONNX, "
            "Keras (.h5/.keras), TensorFlow SavedModel (a folder), a Hugging Face model folder "
            "or TFLite",
            path=p,
        )
    if expected is not None and fmt not in expected:
        logger.warning(
            "%s has extension '%s' (%s) but its content is %s; loading it as %s",
            p,
            suffix,
            format_names(expected),
            fmt.value,
            fmt.value,
        )
    return fmt
