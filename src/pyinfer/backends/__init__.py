"""One module per framework, all behind the :class:`~pyinfer.backends.base.Model` interface.

Only ``base`` is imported here; each framework's module (``torch_backend``, ``onnx_backend``,
``tf_backend``) imports its framework and is itself imported only when a model of it is loaded.
"""

from __future__ import annotations

from pyinfer.backends.base import Device, Dim, Model, ModelFormat, TensorSpec, parse_device

__all__ = ["Device", "Dim", "Model", "ModelFormat", "TensorSpec", "parse_device"]
