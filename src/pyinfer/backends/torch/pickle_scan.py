"""Reading the imports of a pickle without running it (:func:`pickle_globals`).

The opcodes are walked, nothing is unpickled: this is how a plain pickle, a ``torch.save`` file
that needs more than ``weights_only`` allows, or a ``.pt2`` entry is named before any of it runs.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from pyinfer.backends.torch.messages import _corrupt


def _all_pickle_globals(stream: IO[bytes]) -> list[str]:
    """The globals of every pickle in a stream (a legacy ``torch.save`` file holds several)."""
    found: list[str] = []
    for _ in range(8):
        start = stream.tell()
        if not stream.read(1):
            break
        stream.seek(start)
        found.extend(pickle_globals(stream))
        if stream.tell() <= start:
            break
    return list(dict.fromkeys(found))


def _weights_only_globals(torch: ModuleType) -> set[str]:
    """The globals torch's ``weights_only`` unpickler accepts (tensor rebuilders, containers)."""
    unpickler = getattr(torch, "_weights_only_unpickler", None)
    allowed = getattr(unpickler, "_get_allowed_globals", None)
    return set(allowed()) if callable(allowed) else set()


def _file_globals(torch: ModuleType, path: Path) -> list[str]:
    """The globals of a ``torch.save`` file (zip or legacy) beyond ``weights_only``'s, by name.

    Used for the message only: torch's own error names builtins without their module.
    """
    try:
        if zipfile.is_zipfile(path):
            with path.open("rb") as f:
                names = _nested_archive_globals(f.read())
        else:
            with path.open("rb") as f:
                names = _all_pickle_globals(f)
    except OSError:
        return []
    allowed = _weights_only_globals(torch)
    return [n for n in names if n not in allowed]


def _nested_archive_globals(data: bytes) -> list[str]:
    """The globals of the pickles in a ``torch.save`` zip archive held in memory."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            for info in inner.infolist():
                if info.filename.endswith(".pkl"):
                    with inner.open(info) as member:
                        found.extend(pickle_globals(member))
    except (zipfile.BadZipFile, OSError, ValueError):
        return [COMPUTED_GLOBAL]  # an unreadable archive torch might still read: not proven safe
    return list(dict.fromkeys(found))


def _untrusted_globals(exc: BaseException) -> list[str]:
    text = str(exc)
    found = re.findall(r"GLOBAL ([\w.]+)", text)
    return [g for g in found if not g.endswith(".")]


def _scan_pickle(path: Path) -> list[str]:
    """The globals a pickle would import, read without running it; corrupt files raise."""
    try:
        with path.open("rb") as f:
            return pickle_globals(f, strict=True)
    except Exception as exc:
        raise _corrupt(path, "Python pickle", exc) from exc


#: What :func:`pickle_globals` reports for an import whose name is computed while unpickling.
COMPUTED_GLOBAL = "<a name computed while unpickling>"
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


_STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)


def _python3_name(module: str, name: str = "") -> str:
    """``module.name`` as unpickling imports it (``__builtin__.exec`` is ``builtins.exec``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def pickle_globals(stream: IO[bytes], *, strict: bool = False) -> list[str]:
    """The globals (``module.name``) one pickle imports, read without unpickling anything.

    The opcodes are walked with :mod:`pickletools` and the unpickler's stack is followed (memo
    included), so a ``STACK_GLOBAL`` whose names were stored in the memo and fetched later is
    still named; a name built any other way is reported as :data:`COMPUTED_GLOBAL`. Extension
    codes (``EXT1``...) are reported too. Reading stops at the pickle's ``STOP``.

    Args:
        stream: A binary stream at the start of the pickle.
        strict: Raise on a damaged pickle; otherwise return what was found before the damage
            (a real unpickler would have imported those before failing).

    Returns:
        The globals in the order they appear, each once.
    """
    found: list[str] = []
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in {"GLOBAL", "INST"}:
                found.append(_python3_name(*str(arg).split(" ", 1)))
            elif name == "STACK_GLOBAL":
                attr = stack.pop() if stack else None
                module = stack.pop() if stack else None
                named = isinstance(module, str) and isinstance(attr, str)
                found.append(f"{module}.{attr}" if named else COMPUTED_GLOBAL)
                stack.append(None)
                continue
            elif name.startswith("EXT"):
                found.append(f"<extension code {arg}>")
            if name == "MARK":
                marks.append(len(stack))
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in _PUT_OPS:
                memo[arg] = stack[-1] if stack else None
            elif name in _GET_OPS:
                stack.append(memo.get(arg))
            elif name not in {"PROTO", "FRAME", "STOP"}:
                before = opcode.stack_before
                if pickletools.markobject in before:
                    depth = marks.pop() if marks else 0
                    del stack[depth:]
                    below = before.index(pickletools.markobject)
                else:
                    below = len(before)
                if below:
                    del stack[-below:]
                pushed = arg if name in _STRING_OPS else None
                stack.extend(pushed for _ in opcode.stack_after)
    except Exception:
        if strict:
            raise
    return list(dict.fromkeys(found))


def _legacy_truncated(path: Path) -> bool:
    """Whether a legacy torch.save file's pickles (magic, protocol, sys info, data) are cut."""
    try:
        with path.open("rb") as f:
            for _ in range(4):
                for _op in pickletools.genops(f):
                    pass
    except Exception:
        return True
    return False
