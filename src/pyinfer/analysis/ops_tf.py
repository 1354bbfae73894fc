"""TensorFlow operators timed one by one: the model's frozen graph in a session with a full trace.

TensorFlow's own profiler (``tf.profiler.experimental``) writes a TensorBoard trace that needs
TensorBoard's profile plugin to read. The step statistics of a graph session need nothing more:
the model's call (a Keras model, or a SavedModel signature) is traced at the inputs' shapes, its
variables frozen into constants and its nested functions inlined (the graph
:func:`~pyinfer.analysis.count_tf.frozen_function` counts), and that graph runs in a
``tf.compat.v1.Session`` with ``RunOptions(trace_level=FULL_TRACE)``. Each executed node's
compute time (``op_start`` to ``op_end``) is added up under the kernel that ran it
(``_MklNativeConv2D``, a convolution with its batch norm folded in; ``DepthwiseConv2dNative``,
``_MklMatMul``...). The session runs the same kernels on the same runtime as
the model's ``tf.function``; the latency the breakdown is set against is the model's own call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from pyinfer.analysis.count_tf import frozen_function, model_call
from pyinfer.backends.base import Model
from pyinfer.backends.frameworks import import_tensorflow

__all__ = ["METHOD", "TensorFlowPass"]

#: How the operators were timed, for the breakdown's last line.
METHOD = (
    "TensorFlow step statistics (each node's compute time, the frozen graph in a session with "
    "a full trace)"
)

#: Nodes that are no computation of the model: its inputs, constants and the session's fetches.
_NOT_OPERATORS = frozenset({"Placeholder", "Const", "NoOp", "_Retval", "_Arg", "Identity"})

#: A node's timeline label: ``name = Type(inputs)``.
_LABEL = re.compile(r"^[^=]+ = ([A-Za-z_][\w]*)\(")


class TensorFlowPass:
    """Runs a TensorFlow model's frozen graph under a full trace; op type -> calls, microseconds.

    Args:
        model: A Keras or SavedModel model (``framework == "tensorflow"``).
        arrays: One call's inputs, input name to array.
        warmup: Untraced runs before the first traced one.
    """

    def __init__(self, model: Model, arrays: Mapping[str, np.ndarray], warmup: int) -> None:
        tf = import_tensorflow()
        self._tf = tf
        shapes = {k: tuple(int(d) for d in v.shape) for k, v in arrays.items()}
        dtypes = {k: v.dtype.name for k, v in arrays.items()}
        frozen = frozen_function(model_call(model), shapes, dtypes)
        graph_def = frozen.graph.as_graph_def()
        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        self._types = {op.name: op.type for op in self._graph.get_operations()}
        placeholders = {t.name.split(":")[0]: t.name for t in frozen.inputs}
        self._feed = {placeholders[name]: np.asarray(arrays[name]) for name in arrays}
        self._fetch = [t.name for t in frozen.outputs]
        self._session = tf.compat.v1.Session(graph=self._graph)
        self._times: dict[str, tuple[int, float]] = {}
        for _ in range(warmup):
            self._session.run(self._fetch, feed_dict=self._feed)

    def run(self, calls: int) -> None:
        """``calls`` traced runs; each node's compute time added to its operation type."""
        v1 = self._tf.compat.v1
        options = v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE)
        for _ in range(calls):
            metadata = v1.RunMetadata()
            self._session.run(
                self._fetch, feed_dict=self._feed, options=options, run_metadata=metadata
            )
            self._add(metadata.step_stats)

    def _add(self, step_stats: Any) -> None:
        for device in step_stats.dev_stats:
            for node in device.node_stats:
                op_type = self._executed_type(node)
                if op_type is None or op_type in _NOT_OPERATORS:
                    continue  # the session's own nodes (_SOURCE), inputs and constants
                nanos = node.op_end_rel_nanos - node.op_start_rel_nanos
                if nanos <= 0:  # a runtime that fills only the microsecond fields
                    nanos = (node.op_end_rel_micros - node.op_start_rel_micros) * 1000
                micros = max(0, nanos) / 1e3
                calls, total = self._times.get(op_type, (0, 0.0))
                self._times[op_type] = (calls + 1, total + float(micros))

    def _executed_type(self, node: Any) -> str | None:
        """The kernel that ran: the timeline's ``name = Type(...)``, else the graph's type.

        The session's optimiser rewrites the graph: a ``Conv2D`` and the ``Mul`` of its folded
        batch norm run as one ``_MklNativeConv2D`` (or ``_FusedConv2D``) under the ``Mul``'s
        name, so the graph's type of that name would be wrong.
        """
        match = _LABEL.match(node.timeline_label)
        if match:
            return match.group(1)
        return self._types.get(node.node_name.split(":")[0])

    def times(self) -> dict[str, tuple[int, float]]:
        """Operation type -> (calls, microseconds) over every traced run; closes the session."""
        self._session.close()
        return self._times
