"""One package per framework, all behind the :class:`~pyinfer.backends.base.Model` interface.

What belongs here: the ``Model`` interface and the hooks the engine and profiler call on it
(``base``), importing the frameworks safely (``frameworks``), and one package per framework
(``torch``, ``onnx``, ``tensorflow``) with its model class, options, loading and safety checks.
Only ``base`` is imported here; each framework's package imports its framework and is itself
imported only when a model of it is loaded.
"""

from __future__ import annotations

from pyinfer.backends.base import Device, Dim, Model, ModelFormat, TensorSpec, parse_device

__all__ = ["Device", "Dim", "Model", "ModelFormat", "TensorSpec", "parse_device"]
