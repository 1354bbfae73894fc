"""The torch loader's options (:data:`KNOWN_OPTIONS`), their checks, the device and thread count."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pyinfer.backends.base import Device, check_options
from pyinfer.errors import CudaUnavailableError, DeviceError, InvalidArgumentError

#: Every option :func:`load` and :func:`from_module` accept.
KNOWN_OPTIONS = frozenset(
    {
        "architecture",
        "architecture_kwargs",
        "strict",
        "trust_code",
        "use_ema",
        "state_dict_key",
        "input_shapes",
        "input_dtypes",
        "channels_last",
        "freeze",
        "optimize",
        "num_threads",
    }
)


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, KNOWN_OPTIONS, loader="PyTorch loader", path=None)
    kwargs = options.get("architecture_kwargs")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InvalidArgumentError(
            f"architecture_kwargs must be a dict of keyword arguments, not {type(kwargs).__name__}"
        )
    threads = options.get("num_threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidArgumentError(f"num_threads must be a positive int, not {threads!r}")
    for flag in ("strict", "trust_code", "use_ema", "freeze", "optimize"):
        if flag in options and not isinstance(options[flag], bool):
            raise InvalidArgumentError(f"{flag} must be True or False, not {options[flag]!r}")
    cl = options.get("channels_last")
    if cl is not None and not isinstance(cl, bool):
        raise InvalidArgumentError(f"channels_last must be True, False or None, not {cl!r}")
    return dict(options)


def _torch_device(torch: ModuleType, device: Device) -> Any:
    if not device.is_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = (
            "this torch build has no CUDA support (install a CUDA build of torch)"
            if build is None
            else f"torch (built for CUDA {build}) finds no usable GPU or driver"
        )
        raise CudaUnavailableError(
            f"device {device} was asked for but {why}; use device='cpu' to run on the CPU"
        )
    count = int(torch.cuda.device_count())
    if device.index >= count:
        raise DeviceError(
            f"device {device} does not exist: torch sees {count} GPU(s) "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", device.index)


def _apply_threads(torch: ModuleType, opts: Mapping[str, Any]) -> None:
    threads = opts.get("num_threads")
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
