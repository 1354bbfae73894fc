"""Upload to the device: batches staged in a pinned-memory ring and copied to the model's GPU.

On CUDA the engine stages each batch in a pinned ring slot and starts its upload while the
previous batch computes (torch: on a side stream; ONNX Runtime: into device ``OrtValue``s).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pyinfer import _core
from pyinfer.backends.base import Model
from pyinfer.engine.results import Arrays
from pyinfer.errors import BufferInUseError

logger = logging.getLogger(__name__)

_ALIGN = 256  # bytes between tensors staged in one pinned slot


class _CudaUploader:
    """Stages batches in a pinned ring and uploads them to the model's GPU (CUDA only).

    torch: the copy is enqueued with ``non_blocking=True`` on a side stream, and the model's
    compute stream waits on an event recorded after it, so the upload of batch k+1 overlaps the
    compute of batch k. ONNX Runtime: the batch is copied from pinned memory into ``OrtValue``s
    on the device (the backend then runs through its IO binding).
    """

    def __init__(self, model: Model, *, allow_pageable: bool = False) -> None:
        self.model = model
        self.allow_pageable = allow_pageable  # tests run the staging logic without a GPU
        self.ring: Any = None
        self._side: Any = None
        self._torch: Any = None
        if model.framework == "torch":
            from pyinfer.backends.frameworks import import_torch

            self._torch = import_torch()
            self._tdev = self._torch.device(str(model.device))
            self._side = self._torch.cuda.Stream(device=self._tdev)

    def _slot_views(self, arrays: Arrays) -> tuple[int, Arrays]:
        need = sum(-(-a.nbytes // _ALIGN) * _ALIGN for a in arrays.values())
        if self.ring is None or self.ring.slot_nbytes < need:
            self.close()
            self.ring = _core.PinnedRing(
                need, 2, device=self.model.device.index, allow_pageable=self.allow_pageable
            )
        index = self.ring.acquire()
        raw = self.ring.slot(index).numpy(np.uint8)
        views: Arrays = {}
        offset = 0
        for name, array in arrays.items():
            view = raw[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(view, array)
            views[name] = view
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        return index, views

    def stage(self, arrays: Arrays) -> dict[str, Any]:
        """Copies a batch into a pinned slot and starts its upload; returns device tensors."""
        index, views = self._slot_views(arrays)
        if self._torch is None:  # ONNX Runtime: synchronous copy out of pinned memory
            try:
                return self.model.to_native(views)
            finally:
                self.ring.release(index, 0)
        torch = self._torch
        compute = torch.cuda.current_stream(self._tdev)
        with torch.cuda.stream(self._side):
            tensors = {
                k: torch.from_numpy(v).to(self._tdev, non_blocking=True) for k, v in views.items()
            }
            uploaded = torch.cuda.Event()
            uploaded.record(self._side)
        self.ring.release(index, int(self._side.cuda_stream))
        compute.wait_event(uploaded)
        channels_last = bool(self.model.options.get("channels_last"))
        out: dict[str, Any] = {}
        for name, tensor in tensors.items():
            tensor.record_stream(compute)  # the allocator must not reuse it before compute ends
            laid_out = tensor
            if channels_last and tensor.dim() == 4:
                laid_out = tensor.contiguous(memory_format=torch.channels_last)
            out[name] = laid_out
        return out

    def close(self) -> None:
        """Waits for uploads in flight and frees the ring (or leaves it to the last view)."""
        if self.ring is not None:
            try:
                self.ring.close()
            except BufferInUseError:
                # A view is still alive (say, in the traceback of an error the caller holds):
                # the ring's memory goes when the last view does.
                logger.debug("pinned ring still has views; freed when they are")
            self.ring = None
