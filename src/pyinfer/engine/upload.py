"""Upload to the device: batches staged in a pinned-memory ring and copied to the model's GPU.

On CUDA the engine stages each batch in a pinned ring slot and starts its upload while the
previous batch computes (torch: on a side stream; ONNX Runtime: into device ``OrtValue``s).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pyinfer import core
from pyinfer.backends.base import Model
from pyinfer.engine.results import Arrays
from pyinfer.errors import BufferInUseError

logger = logging.getLogger(__name__)

_ALIGN = 256  # bytes between tensors staged in one pinned slot


class _CudaUploader:
    """Stages batches in a pinned ring and uploads them to the model's GPU (CUDA only).

    Each batch is copied into a ring slot of page-locked memory, and the model's
    :meth:`~pyinfer.backends.base.Model.upload_async` starts the copy to the device (torch: on a
    side stream its compute stream waits for, so the upload of batch k+1 overlaps the compute of
    batch k; ONNX Runtime: a copy into device ``OrtValue``s, complete on return). The slot is
    released on the stream the copy was issued on, so it is reused only once the copy is done.
    """

    def __init__(self, model: Model, *, allow_pageable: bool = False) -> None:
        self.model = model
        self.allow_pageable = allow_pageable  # tests run the staging logic without a GPU
        self.ring: Any = None

    def _slot_views(self, arrays: Arrays) -> tuple[int, Arrays]:
        need = sum(-(-a.nbytes // _ALIGN) * _ALIGN for a in arrays.values())
        if self.ring is None or self.ring.slot_nbytes < need:
            self.close()
            self.ring = core.PinnedRing(
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
        try:
            tensors, stream = self.model.upload_async(views)
        except BaseException:
            self.ring.release(index, 0)
            raise
        self.ring.release(index, stream)
        return tensors

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
