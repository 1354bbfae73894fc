"""Checkpoints: finding the weights in a checkpoint dict and fitting them to an architecture.

A state_dict is matched against an architecture (a module instance, a factory or an import
string ``"pkg.mod:attr"``); the :class:`LoadReport` says how its keys matched.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pyinfer.backends import frameworks
from pyinfer.backends.huggingface import is_safetensors
from pyinfer.backends.torch.messages import _few
from pyinfer.errors import (
    ArchitectureError,
    CorruptModelError,
    FrameworkNotInstalledError,
    InvalidArgumentError,
)

logger = logging.getLogger(__name__)


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
_EMA_KEYS = ("ema", "model_ema", "state_dict_ema", "ema_state_dict")
_PREFIXES = ("module.", "_orig_mod.")


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """How a state_dict fitted its architecture.

    Attributes:
        missing_keys: Keys the architecture has and the checkpoint lacks.
        unexpected_keys: Keys the checkpoint has and the architecture lacks.
        shape_mismatches: ``(key, checkpoint shape, architecture shape)`` for each key in both
            whose shapes differ.
        stripped_prefixes: Prefixes removed from every key (``module.``, ``_orig_mod.``).
        source_key: The checkpoint entry the weights came from (``None`` for a bare
            state_dict).
        ignored_keys: Other top-level checkpoint entries (optimizer, epoch, ...).
    """

    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    shape_mismatches: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    stripped_prefixes: tuple[str, ...] = ()
    source_key: str | None = None
    ignored_keys: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every key matched in name and shape."""
        return not (self.missing_keys or self.unexpected_keys or self.shape_mismatches)

    def summary(self) -> str:
        """The problems in one line: counts and the first few keys of each kind."""
        parts = []
        if self.missing_keys:
            parts.append(f"{len(self.missing_keys)} missing key(s) ({_few(self.missing_keys)})")
        if self.unexpected_keys:
            parts.append(
                f"{len(self.unexpected_keys)} unexpected key(s) ({_few(self.unexpected_keys)})"
            )
        if self.shape_mismatches:
            shown = [
                f"{k}: checkpoint {tuple(a)} vs architecture {tuple(b)}"
                for k, a, b in self.shape_mismatches
            ]
            parts.append(f"{len(self.shape_mismatches)} shape mismatch(es) ({_few(shown)})")
        return "; ".join(parts) if parts else "all keys matched"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as recorded in ``model.options["load_report"]``."""
        return {
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
            "shape_mismatches": [
                {"key": k, "checkpoint": list(a), "architecture": list(b)}
                for k, a, b in self.shape_mismatches
            ],
            "stripped_prefixes": list(self.stripped_prefixes),
            "source_key": self.source_key,
            "ignored_keys": list(self.ignored_keys),
        }


def is_safetensors_file(path: Path) -> bool:
    """Whether ``path`` is a safetensors file (8-byte header length, then a JSON object)."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
        return is_safetensors(head, path.stat().st_size)
    except OSError:
        return False


def _load_safetensors(path: Path, tdev: Any) -> dict[str, Any]:
    """A safetensors file's tensors: a state_dict, which runs no code when read.

    Raises:
        CorruptModelError: If the safetensors library cannot read it (the cause is named).
        FrameworkNotInstalledError: If ``safetensors`` is missing.
    """
    try:
        from safetensors.torch import load_file  # optional: only this format needs it
    except ImportError as exc:
        raise FrameworkNotInstalledError(
            f"{path} is a safetensors file; reading it needs the safetensors package: "
            "pip install safetensors"
        ) from exc
    try:
        return dict(load_file(str(path), device=str(tdev)))
    except Exception as exc:
        raise CorruptModelError(
            f"{path} could not be read as a safetensors file ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the file is damaged or truncated: save or copy it again",
            path=path,
        ) from exc


def _is_state_dict(torch: ModuleType, obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _module_from_object(
    torch: ModuleType, obj: Any, path: Path, opts: Mapping[str, Any]
) -> tuple[Any, LoadReport | None, bool]:
    """The module a loaded object stands for, the state_dict report, and whether EMA existed."""
    if isinstance(obj, torch.nn.Module):
        if "architecture" in opts:
            logger.warning("%s holds a whole module; ignoring architecture=...", path)
        return obj, None, False
    if not isinstance(obj, Mapping):
        raise ArchitectureError(
            f"{path} holds a {type(obj).__name__}, not a module, state_dict or checkpoint dict; "
            "pyinfer can only run torch modules",
            path=path,
        )
    ema_keys = [k for k in _EMA_KEYS if k in obj]
    weights, source, ignored = _pick_weights(torch, obj, path, opts, ema_keys)
    if isinstance(weights, torch.nn.Module):
        return weights, LoadReport(source_key=source, ignored_keys=ignored), bool(ema_keys)
    module = _architecture(torch, path, opts)
    report = _fit_state_dict(module, weights, path, opts, source=source, ignored=ignored)
    return module, report, bool(ema_keys)


def _pick_weights(
    torch: ModuleType,
    obj: Mapping[Any, Any],
    path: Path,
    opts: Mapping[str, Any],
    ema_keys: Sequence[str],
) -> tuple[Any, str | None, tuple[str, ...]]:
    if _is_state_dict(torch, obj):
        if opts.get("use_ema"):
            raise ArchitectureError(
                f"use_ema=True but {path} is a bare state_dict with no EMA weights; load it "
                "without use_ema",
                path=path,
            )
        return obj, None, ()
    keys = [str(k) for k in obj]
    explicit = opts.get("state_dict_key")
    if explicit is not None:
        if explicit not in obj:
            raise ArchitectureError(
                f"state_dict_key={explicit!r} is not in the checkpoint {path}; its keys are "
                f"{_few(keys)}",
                path=path,
            )
        candidates: Sequence[str] = (explicit,)
    elif opts.get("use_ema"):
        if not ema_keys:
            raise ArchitectureError(
                f"use_ema=True but the checkpoint {path} has no EMA weights (looked for "
                f"{', '.join(_EMA_KEYS)}; it has {_few(keys)}); load it without use_ema or "
                "name the entry with state_dict_key=...",
                path=path,
            )
        candidates = ema_keys
    else:
        candidates = [k for k in _STATE_DICT_KEYS if k in obj]
    for key in candidates:
        value = _unwrap(torch, obj[key])
        if value is not None:
            if ema_keys and not opts.get("use_ema"):
                logger.info(
                    "%s also has EMA weights (%s); pass use_ema=True to load those instead",
                    path,
                    ", ".join(ema_keys),
                )
            return value, key, tuple(k for k in keys if k != key)
    raise ArchitectureError(
        f"{path} is a checkpoint dict but none of its entries holds model weights (it has "
        f"{_few(keys)}; looked for {', '.join(candidates or _STATE_DICT_KEYS)}); name the entry "
        "with state_dict_key='...'",
        path=path,
    )


def _unwrap(torch: ModuleType, value: Any) -> Any:
    """A state_dict or module inside a checkpoint entry (EMA wrappers nest one level)."""
    if isinstance(value, torch.nn.Module) or _is_state_dict(torch, value):
        return value
    if isinstance(value, Mapping):
        for key in ("state_dict", "module", "model"):
            if key in value and (
                isinstance(value[key], torch.nn.Module) or _is_state_dict(torch, value[key])
            ):
                return value[key]
    return None


def _architecture(torch: ModuleType, path: Path, opts: Mapping[str, Any]) -> Any:
    arch = opts.get("architecture")
    if arch is None:
        raise ArchitectureError(
            f"{path} holds only weights (a state_dict), not the model's architecture; pass the "
            "architecture to fill, e.g. load_model(path, architecture='torchvision.models:"
            "resnet50') or architecture=MyNet (a class, factory or module instance), with "
            "architecture_kwargs={...} for its arguments (CLI: --option "
            "architecture=torchvision.models:resnet50)",
            path=path,
        )
    kwargs = dict(opts.get("architecture_kwargs") or {})
    if isinstance(arch, torch.nn.Module):
        if kwargs:
            logger.warning("architecture is a module instance; ignoring architecture_kwargs")
        return arch
    if isinstance(arch, str):
        factory = _import_factory(arch, path)
        label = arch
    elif callable(arch):
        factory = arch
        label = getattr(arch, "__qualname__", repr(arch))
    else:
        raise InvalidArgumentError(
            f"architecture must be an nn.Module, a callable or an import string "
            f"'pkg.module:attr', not {type(arch).__name__}"
        )
    if _accepts(factory, "weights") and "weights" not in kwargs:
        kwargs["weights"] = None  # never download pretrained weights we would overwrite
    try:
        module = factory(**kwargs)
    except Exception as exc:
        raise ArchitectureError(
            f"building the architecture {label}(**{kwargs!r}) for {path} failed: "
            f"{type(exc).__name__}: {exc}; check architecture_kwargs",
            path=path,
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise ArchitectureError(
            f"the architecture {label} returned a {type(module).__name__}, not a torch.nn.Module",
            path=path,
        )
    return module


def _import_factory(spec: str, path: Path) -> Callable[..., Any]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgumentError(
            f"architecture import string {spec!r} must look like 'package.module:attribute', "
            "e.g. 'torchvision.models:resnet50'"
        )
    frameworks.ensure_triton_safe()  # torchvision and many model zoos import triton
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ArchitectureError(
            f"cannot import the architecture {spec!r} for {path}: {exc}; check the spelling and "
            "that its package is installed",
            path=path,
        ) from exc
    if not callable(obj):
        raise ArchitectureError(
            f"the architecture {spec!r} is a {type(obj).__name__}, not a class or factory",
            path=path,
        )
    return obj  # type: ignore[no-any-return]


def _accepts(func: Callable[..., Any], param: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return param in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _strip_prefixes(
    state: Mapping[str, Any], target: set[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    out = dict(state)
    stripped: list[str] = []
    changed = True
    while changed and out:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in out) and not all(
                k.startswith(prefix) for k in target
            ):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                stripped.append(prefix)
                changed = True
    return out, tuple(stripped)


def _fit_state_dict(
    module: Any,
    state: Mapping[str, Any],
    path: Path,
    opts: Mapping[str, Any],
    *,
    source: str | None,
    ignored: tuple[str, ...],
) -> LoadReport:
    expected = module.state_dict()
    weights, stripped = _strip_prefixes(state, set(expected))
    mismatches = tuple(
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in weights.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    )
    report = LoadReport(
        missing_keys=tuple(k for k in expected if k not in weights),
        unexpected_keys=tuple(k for k in weights if k not in expected),
        shape_mismatches=mismatches,
        stripped_prefixes=stripped,
        source_key=source,
        ignored_keys=ignored,
    )
    strict = opts.get("strict", True)
    if not report.ok:
        if strict:
            raise ArchitectureError(
                f"the weights in {path} do not fit the architecture "
                f"{type(module).__name__}: {report.summary()}; pass the architecture the "
                "checkpoint was saved from (and its architecture_kwargs, such as num_classes), "
                "or strict=False to load the keys that fit",
                path=path,
            )
        logger.warning(
            "loading %s into %s with strict=False: %s",
            path,
            type(module).__name__,
            report.summary(),
        )
    bad = {k for k, _, _ in mismatches}
    fitting = {k: v for k, v in weights.items() if k not in bad}
    module.load_state_dict(fitting, strict=False)
    return report
