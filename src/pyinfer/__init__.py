"""pyinfer: load models of every common format, run them, and measure how fast they run.

``import pyinfer`` is light: it loads the native core and nothing else. Frameworks (torch,
onnxruntime, tensorflow) are imported only by the parts that need them, at first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer import _core
from pyinfer.core import (
    DEFAULT_PERCENTILES,
    ClockInfo,
    CudaEventTimer,
    LatencyRecorder,
    PinnedBuffer,
    PinnedRing,
    Summary,
    clock_info,
    cuda_available,
    cuda_device_count,
    cuda_device_name,
    cuda_device_total_memory,
    cuda_driver_version,
    cuda_mem_get_info,
    cuda_unavailable_reason,
    now_ns,
    peak_rss_bytes,
    peak_rss_method,
    reset_peak_rss,
    rss_bytes,
    summarize,
    time_calls,
)
from pyinfer.errors import (
    ArchitectureError,
    BufferInUseError,
    ClusterError,
    CorruptModelError,
    CudaError,
    CudaUnavailableError,
    DatasetSourceError,
    DeviceError,
    FrameworkNotInstalledError,
    InferenceError,
    InvalidArgumentError,
    InvalidInputError,
    MeasurementConflictError,
    ModelLoadError,
    ModelNotFoundError,
    OutOfMemoryError,
    PyinferError,
    UnknownFormatError,
    UntrustedModelError,
)

if TYPE_CHECKING:
    from pyinfer.analysis import count_macs
    from pyinfer.backends.base import Device, Model, TensorSpec
    from pyinfer.engine import (
        BatchMeasurement,
        BatchOutputs,
        BatchSizeChoice,
        DatasetResult,
        InferenceEngine,
        ItemFailure,
        ItemResult,
        Prediction,
        softmax,
        top_k,
        top_k_batch,
    )
    from pyinfer.formats import ModelFormat
    from pyinfer.load import find_capacity, load_test
    from pyinfer.loading import (
        ONNXModelLoader,
        PyTorchModelLoader,
        TensorFlowModelLoader,
        detect_format,
        load_model,
    )
    from pyinfer.preprocess import (
        CenterCrop,
        Compose,
        Decode,
        ImagePipeline,
        Normalize,
        ResizeShorter,
        TextPipeline,
        ToDtype,
        ToFloat,
        ToLayout,
        VocabTokenizer,
        WordPieceTokenizer,
        cast_arrays,
    )
    from pyinfer.profiling import (
        IntRange,
        PerformanceProfiler,
        ProfilerSettings,
        measure,
        profile_callable,
    )
    from pyinfer.report import ProfileReport, compare, comparison_table

# Names served on first access, so `import pyinfer` does not import numpy (base.py needs it).
_LAZY = {
    "Device": "pyinfer.backends.base",
    "Model": "pyinfer.backends.base",
    "ModelFormat": "pyinfer.formats",
    "TensorSpec": "pyinfer.backends.base",
    "ONNXModelLoader": "pyinfer.loading",
    "PyTorchModelLoader": "pyinfer.loading",
    "TensorFlowModelLoader": "pyinfer.loading",
    "detect_format": "pyinfer.loading",
    "load_model": "pyinfer.loading",
    "PerformanceProfiler": "pyinfer.profiling",
    "ProfilerSettings": "pyinfer.profiling",
    "measure": "pyinfer.profiling",
    "profile_callable": "pyinfer.profiling",
    "IntRange": "pyinfer.profiling",
    "ProfileReport": "pyinfer.report",
    "compare": "pyinfer.report",
    "comparison_table": "pyinfer.report",
    "count_macs": "pyinfer.analysis",
    "BatchMeasurement": "pyinfer.engine",
    "BatchOutputs": "pyinfer.engine",
    "BatchSizeChoice": "pyinfer.engine",
    "DatasetResult": "pyinfer.engine",
    "InferenceEngine": "pyinfer.engine",
    "ItemFailure": "pyinfer.engine",
    "ItemResult": "pyinfer.engine",
    "Prediction": "pyinfer.engine",
    "softmax": "pyinfer.engine",
    "top_k": "pyinfer.engine",
    "top_k_batch": "pyinfer.engine",
    "CenterCrop": "pyinfer.preprocess",
    "Compose": "pyinfer.preprocess",
    "Decode": "pyinfer.preprocess",
    "ImagePipeline": "pyinfer.preprocess",
    "Normalize": "pyinfer.preprocess",
    "ResizeShorter": "pyinfer.preprocess",
    "TextPipeline": "pyinfer.preprocess",
    "ToDtype": "pyinfer.preprocess",
    "ToFloat": "pyinfer.preprocess",
    "ToLayout": "pyinfer.preprocess",
    "VocabTokenizer": "pyinfer.preprocess",
    "WordPieceTokenizer": "pyinfer.preprocess",
    "cast_arrays": "pyinfer.preprocess",
    "find_capacity": "pyinfer.load",
    "load_test": "pyinfer.load",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyinfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__: str = _core.__version__

_PACKAGE_DIR = Path(__file__).resolve().parent


def get_include() -> str:
    """Returns the directory of pyinfer's public C++ headers.

    Add it to the include path of a C++ extension to ``#include <pyinfer/recorder.hpp>`` and use
    the same clock, recorder and CUDA timer as pyinfer itself (like ``pybind11.get_include()``).

    Returns:
        The absolute path of the ``include`` directory installed with the package.

    Raises:
        PyinferError: If the headers are not installed (an in-place development build).
    """
    installed = _PACKAGE_DIR / "include"
    if (installed / "pyinfer" / "version.hpp").is_file():
        return str(installed)
    raise PyinferError(
        f"pyinfer's C++ headers are not installed next to {_PACKAGE_DIR}; "
        "install the package with `pip install .` to get them"
    )


def get_cmake_dir() -> str:
    """Returns the directory holding ``pyinferConfig.cmake``.

    Pass it as ``-Dpyinfer_DIR=...`` (or append it to ``CMAKE_PREFIX_PATH``) and call
    ``find_package(pyinfer CONFIG REQUIRED)`` to link the ``pyinfer::headers`` target.

    Returns:
        The absolute path of the CMake package directory installed with the package.

    Raises:
        PyinferError: If the CMake package is not installed (an in-place development build).
    """
    cmake_dir = _PACKAGE_DIR / "share" / "cmake" / "pyinfer"
    if (cmake_dir / "pyinferConfig.cmake").is_file():
        return str(cmake_dir)
    raise PyinferError(
        f"pyinfer's CMake package is not installed next to {_PACKAGE_DIR}; "
        "install the package with `pip install .` to get it"
    )


__all__ = [
    "DEFAULT_PERCENTILES",
    "ArchitectureError",
    "BatchMeasurement",
    "BatchOutputs",
    "BatchSizeChoice",
    "BufferInUseError",
    "CenterCrop",
    "ClockInfo",
    "ClusterError",
    "Compose",
    "CorruptModelError",
    "CudaError",
    "CudaEventTimer",
    "CudaUnavailableError",
    "DatasetResult",
    "DatasetSourceError",
    "Decode",
    "Device",
    "DeviceError",
    "FrameworkNotInstalledError",
    "ImagePipeline",
    "InferenceEngine",
    "InferenceError",
    "IntRange",
    "InvalidArgumentError",
    "InvalidInputError",
    "ItemFailure",
    "ItemResult",
    "LatencyRecorder",
    "MeasurementConflictError",
    "Model",
    "ModelFormat",
    "ModelLoadError",
    "ModelNotFoundError",
    "Normalize",
    "ONNXModelLoader",
    "OutOfMemoryError",
    "PerformanceProfiler",
    "PinnedBuffer",
    "PinnedRing",
    "Prediction",
    "ProfileReport",
    "ProfilerSettings",
    "PyTorchModelLoader",
    "PyinferError",
    "ResizeShorter",
    "Summary",
    "TensorFlowModelLoader",
    "TensorSpec",
    "TextPipeline",
    "ToDtype",
    "ToFloat",
    "ToLayout",
    "UnknownFormatError",
    "UntrustedModelError",
    "VocabTokenizer",
    "WordPieceTokenizer",
    "__version__",
    "cast_arrays",
    "clock_info",
    "compare",
    "comparison_table",
    "count_macs",
    "cuda_available",
    "cuda_device_count",
    "cuda_device_name",
    "cuda_device_total_memory",
    "cuda_driver_version",
    "cuda_mem_get_info",
    "cuda_unavailable_reason",
    "detect_format",
    "find_capacity",
    "get_cmake_dir",
    "get_include",
    "load_model",
    "load_test",
    "measure",
    "now_ns",
    "peak_rss_bytes",
    "peak_rss_method",
    "profile_callable",
    "reset_peak_rss",
    "rss_bytes",
    "softmax",
    "summarize",
    "time_calls",
    "top_k",
    "top_k_batch",
]
