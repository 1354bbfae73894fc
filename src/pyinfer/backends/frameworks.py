"""Importing the frameworks safely, once, and the thread defaults they share.

Every backend imports its framework through this module, never directly at the top of a module,
so that

* ``import pyinfer`` stays light and works with no framework installed;
* a missing framework raises :class:`~pyinfer.errors.FrameworkNotInstalledError` naming the extra
  to install (``pip install 'pyinfer-toolkit[torch]'``);
* TensorFlow and torch can share one process. TensorFlow loads its libraries with
  ``RTLD_GLOBAL``, which puts its copy of LLVM in the global symbol scope; when triton (imported by
  ``torch._dynamo``, ``torch.export``, torchvision and the ONNX exporter) is loaded after that, the
  static initialisers of triton's own LLVM bind to TensorFlow's objects and the interpreter dies
  with a segmentation fault. Importing triton first is safe, and costs about 0.13 s, so
  :func:`import_tensorflow` does it; :func:`ensure_triton_safe` turns the one order pyinfer cannot
  repair (the caller imported TensorFlow before pyinfer) into a clear error instead of a crash;
* TensorFlow is told to grow its GPU memory on demand before it touches a GPU, so it leaves room
  for torch or ONNX Runtime in the same process.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from functools import cache
from types import ModuleType

from pyinfer.errors import FrameworkNotInstalledError, PyinferError

__all__ = [
    "ensure_triton_safe",
    "import_onnxruntime",
    "import_protobuf",
    "import_seconds",
    "import_tensorflow",
    "import_torch",
    "physical_cores",
]

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_import_seconds = 0.0


def import_seconds() -> float:
    """Total seconds pyinfer has spent importing frameworks in this process.

    :func:`pyinfer.load_model` reads it before and after a load to report the framework import
    apart from the model's own load time.
    """
    return _import_seconds


def _timed_import(module: str, extra: str, what: str) -> ModuleType:
    global _import_seconds  # noqa: PLW0603 - one process-wide counter, guarded by _lock
    with _lock:
        if module in sys.modules:
            return sys.modules[module]
        start = time.perf_counter()
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] != module.split(".", maxsplit=1)[0]:
                # The framework is there but one of its own dependencies is broken.
                raise FrameworkNotInstalledError(
                    f"{what} is installed but failed to import ({exc}); reinstall it with "
                    f"pip install 'pyinfer-toolkit[{extra}]'"
                ) from exc
            raise FrameworkNotInstalledError(
                f"{what} is needed for this model but is not installed; "
                f"install it with: pip install 'pyinfer-toolkit[{extra}]'"
            ) from exc
        _import_seconds += time.perf_counter() - start
        return mod


def ensure_triton_safe() -> None:
    """Makes sure importing triton now cannot crash the interpreter.

    Call before anything that may import triton (``torch._dynamo``, ``torch.export``,
    torchvision, the ONNX exporter). Imports triton right away when TensorFlow is not loaded yet
    (the safe order for the rest of the process).

    Raises:
        PyinferError: If TensorFlow was imported before triton, outside pyinfer: importing triton
            now would kill the process, so the message says how to order the imports instead.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    if "tensorflow" in sys.modules:
        raise PyinferError(
            "TensorFlow was imported before triton, and importing triton now (which torch "
            "needs for torch.export, torch._dynamo and torchvision) would crash the "
            "interpreter: their LLVM copies clash. Import pyinfer, torch._dynamo or triton "
            "before tensorflow, or load the TensorFlow model through pyinfer.load_model, "
            "which imports them in a safe order"
        )
    _timed_import("triton", "torch", "triton")


def import_torch() -> ModuleType:
    """Imports torch (``pip install 'pyinfer-toolkit[torch]'``)."""
    return _timed_import("torch", "torch", "PyTorch (torch)")


def import_onnxruntime() -> ModuleType:
    """Imports onnxruntime (``pip install 'pyinfer-toolkit[onnx]'`` or ``[onnx-gpu]``)."""
    return _timed_import("onnxruntime", "onnx", "ONNX Runtime (onnxruntime)")


def import_onnx() -> ModuleType:
    """Imports the onnx package, for model inspection and export (``pyinfer-toolkit[onnx]``)."""
    return _timed_import("onnx", "onnx", "the onnx package")


def import_protobuf() -> ModuleType:
    """Imports protobuf (``google.protobuf``, which ONNX Runtime depends on).

    With the parts that build message classes at run time (``descriptor_pb2``,
    ``descriptor_pool``, ``message_factory``), reachable as attributes of the module returned.
    """
    for part in ("descriptor_pb2", "descriptor_pool", "message_factory"):
        _timed_import(f"google.protobuf.{part}", "onnx", "the protobuf package")
    return sys.modules["google.protobuf"]


def import_tensorflow() -> ModuleType:
    """Imports TensorFlow in a process-safe way, with GPU memory growth switched on.

    Triton is imported first where it is installed (see the module docstring), TensorFlow's C++
    log noise is turned down unless the caller set ``TF_CPP_MIN_LOG_LEVEL``, and every GPU gets
    memory growth before TensorFlow initialises it.

    Returns:
        The ``tensorflow`` module.

    Raises:
        FrameworkNotInstalledError: If TensorFlow is not installed (``pyinfer-toolkit[tf]``).
    """
    with _lock:
        if "tensorflow" in sys.modules:
            return sys.modules["tensorflow"]
        try:
            ensure_triton_safe()
        except FrameworkNotInstalledError:  # pragma: no cover - a broken torch install
            logger.warning("triton could not be imported before TensorFlow", exc_info=True)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = _timed_import("tensorflow", "tf", "TensorFlow (tensorflow)")
        _enable_memory_growth(tf)
        return tf


def _enable_memory_growth(tf: ModuleType) -> None:
    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # pragma: no cover - no GPU support compiled in
        return
    for gpu in gpus:  # pragma: no cover - needs a GPU visible to TensorFlow
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # The GPU was initialised already (the caller used TensorFlow before pyinfer).
            logger.warning(
                "TensorFlow had already initialised %s; memory growth could not be enabled, so "
                "TensorFlow may hold most of its memory",
                gpu.name,
            )


@cache
def physical_cores() -> int:
    """The number of physical cores this process may run on (hyper-threads counted once).

    Read from ``/sys/devices/system/cpu/cpuN/topology`` for the CPUs in this process's affinity
    mask, so containers and ``taskset`` are honoured; falls back to the number of usable CPUs.

    Returns:
        At least 1.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/core_id") as f:  # noqa: PTH123 - tiny sysfs reads
                core = f.read().strip()
            with open(f"{topology}/physical_package_id") as f:  # noqa: PTH123
                package = f.read().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))
