"""Reading torch model files: TorchScript, ``torch.export`` programs, ``torch.save``, pickles."""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.backends.base import ModelFormat
from pyinfer.backends.torch.archives import (
    _check_archive_tensors,
    _check_program_weights,
    export_archive_code,
)
from pyinfer.backends.torch.messages import _corrupt, _few
from pyinfer.backends.torch.pickle_scan import (
    _file_globals,
    _legacy_truncated,
    _scan_pickle,
    _untrusted_globals,
)
from pyinfer.errors import CorruptModelError, UntrustedModelError

logger = logging.getLogger(__name__)


_TRUST_HINT = (
    "unpickling it would run code stored in the file, which can do anything your user can "
    "(delete files, steal credentials). If you trust where the file came from, load it with "
    "trust_code=True (CLI: --trust-code); better, save only the weights "
    "(torch.save(model.state_dict(), path)) and load them with architecture=..."
)


def _load_torchscript(torch: ModuleType, path: Path, tdev: Any) -> Any:
    _check_archive_tensors(torch, path)
    try:
        with warnings.catch_warnings():
            # torch 2.14 deprecates torch.jit.* with a FutureWarning; TorchScript files still
            # load and run, and are a format users have.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            module = torch.jit.load(str(path), map_location=tdev)
    except Exception as exc:
        raise _corrupt(path, "TorchScript archive", exc) from exc
    return module


def _load_export(torch: ModuleType, path: Path, tdev: Any, *, trust: bool) -> Any:
    code = export_archive_code(torch, path)
    if code:
        if not trust:
            raise UntrustedModelError(
                f"{path} is a torch.export archive that holds code: {_few(code)}; "
                "torch.export.load would run it while loading (it unpickles such entries in "
                f"full), and {_TRUST_HINT}",
                path=path,
            )
        logger.warning("loading %s, which holds code, in full (trust_code=True)", path)
    frameworks.ensure_triton_safe()
    # torch.export.load logs a full traceback at WARNING before raising on a damaged archive
    # (the error raised below says the same in one line), and its serde module logs the
    # weights_only fallback of a trusted archive with a malformed format string.
    quiet = [logging.getLogger(n) for n in ("torch.export", "torch._export.serde.serialize")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL if q.name != "torch.export" else logging.ERROR)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    calls = getattr(program, "module_call_graph", None)
    if not calls or getattr(calls[0], "signature", None) is None:
        # torch.export.load accepts a program whose call graph lost the signature of its
        # entry point; program.module() then fails on it with an AttributeError.
        raise CorruptModelError(
            f"{path} is a damaged torch.export program (.pt2): its module call graph has no "
            "signature for the entry point (models/*.json was damaged); export it again",
            path=path,
        )
    _check_program_weights(path, program)
    try:
        return _exported_module(program, tdev)
    except Exception as exc:
        # The program deserialised, but torch cannot rebuild a module from it: the graph in
        # the archive (bytes we did not write) contradicts itself.
        raise _corrupt(path, "torch.export program (.pt2)", exc) from exc


def _is_exported_program(obj: Any) -> bool:
    return type(obj).__name__ == "ExportedProgram" and hasattr(obj, "graph_signature")


def _exported_module(program: Any, tdev: Any) -> Any:
    module = program.module()
    module = module.to(tdev)
    # The program is kept so its graph gives the input and output specs.
    module._pyinfer_program = program
    return module


def _load_pickled(
    torch: ModuleType, path: Path, fmt: ModelFormat, tdev: Any, *, trust: bool
) -> Any:
    if fmt is ModelFormat.PICKLE:
        globals_ = _scan_pickle(path)
        if not trust:
            shown = _few(globals_) if globals_ else "no code"
            raise UntrustedModelError(
                f"{path} is a plain Python pickle that imports {shown}: {_TRUST_HINT}",
                path=path,
            )
        try:
            with path.open("rb") as f:
                obj = pickle.load(f)  # the caller opted in: trust_code=True
        except Exception as exc:
            raise _corrupt(path, "Python pickle", exc) from exc
        return _to_device(torch, obj, tdev)
    what = "torch.save file" + (" (legacy format)" if fmt is ModelFormat.PYTORCH_LEGACY else "")
    try:
        return torch.load(str(path), map_location=tdev, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _untrusted_globals(exc)
        if not names or (fmt is ModelFormat.PYTORCH_LEGACY and _legacy_truncated(path)):
            raise _corrupt(path, what, exc) from exc
        if not trust:
            names = _file_globals(torch, path) or names
            raise UntrustedModelError(
                f"{path} holds more than weights: loading it needs {_few(names)} (a whole "
                f"pickled model or other Python objects), and {_TRUST_HINT}",
                path=path,
            ) from exc
    except Exception as exc:
        if "legacy .tar format" in str(exc) and not trust:
            raise UntrustedModelError(
                f"{path} is a torch.save file in the old tar format (torch < 0.4), which torch "
                f"reads only by unpickling it in full: {_TRUST_HINT}",
                path=path,
            ) from exc
        raise _corrupt(path, what, exc) from exc
    logger.warning("unpickling %s in full, running code from it (trust_code=True)", path)
    try:
        with warnings.catch_warnings():
            # torch warns that weights_only=False is unsafe: the caller chose it knowingly.
            warnings.filterwarnings("ignore", category=FutureWarning)
            return torch.load(str(path), map_location=tdev, weights_only=False)
    except Exception as exc:
        raise _corrupt(path, what, exc) from exc


def _to_device(torch: ModuleType, obj: Any, tdev: Any) -> Any:
    if isinstance(obj, (torch.nn.Module, torch.Tensor)):
        return obj.to(tdev)
    if isinstance(obj, dict):
        return {k: _to_device(torch, v, tdev) for k, v in obj.items()}
    return obj
