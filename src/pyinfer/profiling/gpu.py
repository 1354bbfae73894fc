"""GPU utilisation sampled through NVML while a throughput run goes on, and NVML's device index.

pynvml is optional (``pyinfer-toolkit[gpu]``) and imported at first use; without it, or when NVML
fails, the utilisation is reported as unavailable with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

from pyinfer.report import GpuUtilization

__all__ = ["NVML_PERIOD_S", "UtilizationSampler", "nvml_index"]

logger = logging.getLogger(__name__)

#: NVML averages utilisation over its own sample period (1/6 s to 1 s depending on the GPU);
#: sampling it faster than 10 Hz only repeats values.
NVML_PERIOD_S = 0.1


def nvml_index(cuda_index: int) -> int:
    """NVML counts every GPU; CUDA only those in CUDA_VISIBLE_DEVICES (when given as numbers)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    if cuda_index < len(visible) and visible[cuda_index].strip().isdigit():
        return int(visible[cuda_index])
    return cuda_index


class UtilizationSampler:
    """Samples the GPU's utilisation through NVML in a background thread."""

    def __init__(self, device_index: int) -> None:
        self._index = device_index
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self.unavailable = ""

    def start(self) -> None:
        """Starts sampling; where NVML cannot be used, records why in ``unavailable``."""
        try:
            import pynvml
        except ImportError:
            self.unavailable = 'pynvml is not installed (pip install "pyinfer-toolkit[gpu]")'
            return
        try:
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index(self._index))
        except Exception as exc:
            self.unavailable = f"NVML failed: {exc}"
            return
        self._nvml = pynvml
        self._thread = threading.Thread(target=self._run, name="pyinfer-nvml", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
        except Exception as exc:  # a failed query loses a sample, never the run
            self.unavailable = f"NVML failed: {exc}"
            return
        self._samples.append(float(rates.gpu))

    def _run(self) -> None:
        while not self._stop.wait(NVML_PERIOD_S):
            self._sample()

    def stop(self) -> GpuUtilization:
        """Stops sampling and summarises the samples (one more is taken at the end)."""
        if self._thread is None:
            return GpuUtilization(unavailable=self.unavailable)
        self._stop.set()
        self._thread.join()
        self._sample()  # one at the end, so a short run still has a figure
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            logger.debug("nvmlShutdown failed: %s", exc)
        if not self._samples:
            return GpuUtilization(unavailable=self.unavailable)
        values = np.asarray(self._samples)
        return GpuUtilization(float(values.mean()), float(values.max()), int(values.size))
