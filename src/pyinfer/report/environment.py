"""The machine and software a measurement was taken on, recorded with every report.

Nothing here imports a framework: versions come from the installed distributions' metadata, and
torch's thread count is read only when torch is already imported (by the model being profiled).
CUDA facts come from the native core, and only for a model that runs on CUDA, so profiling on
the CPU never loads the driver.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import logging
import os
import platform
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfer import core
from pyinfer.backends.frameworks import physical_cores
from pyinfer.report.system import read_system_tuning

__all__ = ["Environment", "collect_environment", "cpu_model"]

logger = logging.getLogger(__name__)

# Distributions whose versions are recorded (the frameworks pyinfer runs and what it needs).
# pyinfer's own version is the running module's: its distribution is `pyinfer-toolkit`, and an
# unrelated project named `pyinfer` on PyPI must not be reported in its place.
_DISTRIBUTIONS = (
    "numpy",
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "nvidia-ml-py",
)
# Environment variables that set thread pools or pin work, recorded when set.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "CUDA_VISIBLE_DEVICES",
)


@dataclass(frozen=True)
class Environment:
    """Where and with what a result was measured.

    Attributes:
        hostname: The machine's name.
        timestamp: When the measurement ended (ISO 8601, UTC).
        python: Python version.
        platform: ``platform.platform()``.
        cpu_model: The CPU's model name.
        physical_cores: Physical cores this process may run on (hyper-threads counted once;
            the same count that sets ONNX Runtime's and TFLite's default threads).
        logical_cores: Logical CPUs of the machine.
        affinity: Logical CPUs this process may run on.
        threads: Thread settings: ``torch_threads`` when torch is imported, thread-related
            environment variables, and the model's thread options.
        gpu_name: The model's GPU (``""`` on the CPU).
        gpu_driver: CUDA version the driver supports, ``"13.0"`` (``""`` on the CPU).
        gpu_memory_bytes: Total memory of the model's GPU (0 on the CPU).
        versions: Installed version of pyinfer, numpy and each framework found.
        clock: The clock the timed loop reads and what a read costs.
        model_options: The options the model was loaded with (speed-ups applied).
        concurrent_measurements: Other pyinfer processes that measured on the same device
            while this measurement ran, one line each (their figures and these may be
            distorted); empty when none was seen.
        system: The machine's timing-related settings
            (:meth:`pyinfer.report.system.SystemTuning.to_dict`): frequency governor per CPU,
            turbo, SMT and thread siblings, affinity, isolated and ``nohz_full`` CPUs, whether
            a virtual machine; ``None`` for each that could not be read (empty in reports
            written before pyinfer recorded them).
    """

    hostname: str
    timestamp: str
    python: str
    platform: str
    cpu_model: str
    physical_cores: int
    logical_cores: int
    affinity: int
    threads: dict[str, Any] = field(default_factory=dict)
    gpu_name: str = ""
    gpu_driver: str = ""
    gpu_memory_bytes: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    clock: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    concurrent_measurements: tuple[str, ...] = ()
    system: dict[str, Any] = field(default_factory=dict)


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or what ``platform`` knows."""
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    found: dict[str, str] = {"pyinfer": core.__version__}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _threads(options: dict[str, Any]) -> dict[str, Any]:
    threads: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        threads["torch_threads"] = int(torch.get_num_threads())
        threads["torch_interop_threads"] = int(torch.get_num_interop_threads())
    for name in _THREAD_VARIABLES:
        if name in os.environ:
            threads[name] = os.environ[name]
    for key, value in options.items():
        if "thread" in key:
            threads[f"model.{key}"] = value
    return threads


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def collect_environment(
    *,
    model_options: dict[str, Any] | None = None,
    cuda_device: int | None = None,
    concurrent_measurements: Sequence[str] = (),
) -> Environment:
    """Records the environment now.

    Args:
        model_options: The model's options (``Model.options``).
        cuda_device: The CUDA device the model runs on, or ``None`` on the CPU.
        concurrent_measurements: Other processes seen measuring on the same device meanwhile.

    Returns:
        The environment.
    """
    options = _jsonable(dict(model_options or {}))
    gpu_name, gpu_driver, gpu_memory = "", "", 0
    if cuda_device is not None:
        try:
            gpu_name = core.cuda_device_name(cuda_device)
            version = core.cuda_driver_version()
            gpu_driver = f"{version // 1000}.{version % 1000 // 10}"
            gpu_memory = core.cuda_device_total_memory(cuda_device)
        except Exception as exc:
            logger.warning("could not describe CUDA device %d: %s", cuda_device, exc)
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    return Environment(
        hostname=socket.gethostname(),
        timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        physical_cores=physical_cores(),
        logical_cores=os.cpu_count() or 0,
        affinity=affinity,
        threads=_jsonable(_threads(options)),
        gpu_name=gpu_name,
        gpu_driver=gpu_driver,
        gpu_memory_bytes=gpu_memory,
        versions=_versions(),
        clock=_jsonable(core.clock_info().to_dict()),
        model_options=options,
        concurrent_measurements=tuple(concurrent_measurements),
        system=read_system_tuning().to_dict(),
    )
