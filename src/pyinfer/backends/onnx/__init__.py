"""ONNX models run by ONNX Runtime.

:func:`load` turns an ``.onnx`` file (with its external data files beside it, where it has
them) into an :class:`OnnxModel`: an ``onnxruntime.InferenceSession`` behind the
:class:`~pyinfer.backends.base.Model` interface.

Defaults, chosen for speed and for honest measurements:

* graph optimisation level ``ORT_ENABLE_ALL``;
* intra-op threads = the physical cores this process may use (ONNX Runtime's own default counts
  hyper-threads and was measured slower: 55 ms against 47 ms for ResNet50 at batch 1 on a
  2-core machine, see ``benchmarks/bench_onnx_threads.py``);
* providers from the device: ``CPUExecutionProvider`` on the CPU; on ``cuda:N``,
  ``CUDAExecutionProvider`` for device ``N`` followed by the CPU provider (for the few operators
  CUDA lacks). Asking for CUDA where ONNX Runtime cannot use it is an error unless the caller
  passes ``allow_fallback=True``, and so is a session that silently dropped the CUDA provider
  (``onnxruntime-gpu`` without its CUDA libraries does that with a mere log line): the providers
  the session actually got are checked after it is created, so nobody profiles the CPU while
  believing it is the GPU.

On CUDA the session runs on a stream pyinfer knows (``user_compute_stream``): the caller's
(option ``stream``) or, where torch with CUDA is importable, a new ``torch.cuda.Stream``. Its
handle is :attr:`OnnxModel.stream_handle`, for timing with CUDA events. Without torch the
session keeps ONNX Runtime's own stream and the handle is ``None``.

Everything applied is recorded in :attr:`OnnxModel.options`.

Modules: ``loader`` (:func:`load`), ``settings`` (the options), ``session`` (providers, session
options, the CUDA stream), ``proto`` (reading the protobuf: external data, parameter sizes),
``specs`` (input and output specs), ``model`` (:class:`OnnxModel`).
"""

from __future__ import annotations

from pyinfer.backends.onnx.loader import load
from pyinfer.backends.onnx.model import OnnxModel
from pyinfer.backends.onnx.proto import external_data_files
from pyinfer.backends.onnx.settings import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    EXECUTION_MODES,
    GRAPH_OPTIMIZATION_LEVELS,
    KNOWN_OPTIONS,
)

__all__ = [
    "CPU_PROVIDER",
    "CUDA_PROVIDER",
    "EXECUTION_MODES",
    "GRAPH_OPTIMIZATION_LEVELS",
    "KNOWN_OPTIONS",
    "OnnxModel",
    "external_data_files",
    "load",
]
