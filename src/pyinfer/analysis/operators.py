"""Where the time goes: the operators of one inference, timed by the framework's own profiler.

:func:`measure_operators` takes two passes over the same inputs, in alternating rounds. The
latency pass times ``run_native`` calls with nothing else switched on (the figure the breakdown
is set against); the operator pass runs the model under its framework's profiler:

* torch (eager, TorchScript, ``torch.export``): ``torch.profiler`` on the CPU, each operator's
  *self* time (time in the operator minus the operators it called), so nothing is counted twice;
* ONNX Runtime: a second session on the same file with ``enable_profiling``, the same providers
  and thread count; its JSON trace's ``Node`` events (kernel times) are added up per operator;
* TensorFlow (Keras, SavedModel): the frozen graph of the model's call in a session with a full
  trace, each node's compute time added up per operation type (:mod:`~pyinfer.analysis.ops_tf`);
* TFLite: not timed per operator (its Python interpreter exposes no per-operator timing; the
  report says so).

Operators are grouped by class (:func:`~pyinfer.analysis.arithmetic.classify`: Conv, MatMul/Gemm,
Attention, Pooling, Elementwise, Data movement) keeping the framework's names; the difference
between the latency and the sum of operator times is the framework's overhead (scheduling,
Python, copies between operators).
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfer.analysis import arithmetic as ar
from pyinfer.analysis.arithmetic import Arithmetic
from pyinfer.analysis.count_torch import unoptimised_module
from pyinfer.analysis.ops_tf import METHOD as TF_METHOD
from pyinfer.analysis.ops_tf import TensorFlowPass
from pyinfer.backends.base import Model
from pyinfer.backends.frameworks import import_onnxruntime, import_torch
from pyinfer.errors import InvalidArgumentError
from pyinfer.loading.quiet import native_output_silenced

__all__ = ["OperatorBreakdown", "OperatorTime", "measure_operators", "parse_ort_profile"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorTime:
    """One class of operators in the breakdown.

    Attributes:
        op_class: The class (``Conv``, ``MatMul/Gemm``...).
        framework_ops: The framework's own operator names in it, slowest first.
        calls: Calls per inference.
        time_ms: Milliseconds per inference.
        macs: MACs per inference of the class, where counted (``None`` otherwise).
    """

    op_class: str
    framework_ops: tuple[str, ...]
    calls: float
    time_ms: float
    macs: int | None = None

    @property
    def gflops_per_s(self) -> float | None:
        """Achieved GFLOP/s of the class (FLOPs = 2 x MACs), where its MACs are known."""
        if not self.macs or self.time_ms <= 0:
            return None
        return 2 * self.macs / (self.time_ms * 1e-3) / 1e9


@dataclass(frozen=True)
class OperatorBreakdown:
    """The operator times of one inference against its end-to-end latency.

    Attributes:
        model: The model's name.
        framework: The runtime profiled.
        batch_size: The batch of each call.
        runs: Calls profiled (and timed in the latency pass).
        latency_ms: Mean end-to-end milliseconds per call in the latency pass: the operators'
            times are means per call too, so the two are set side by side.
        operators: Per class, slowest first (empty when unavailable).
        method: How the operators were timed, or ``"unavailable: why"``.
        arithmetic: The model's counted arithmetic, if counted.
        median_ms: Median end-to-end milliseconds per call in the latency pass.
    """

    model: str
    framework: str
    batch_size: int
    runs: int
    latency_ms: float
    operators: tuple[OperatorTime, ...]
    method: str
    arithmetic: Arithmetic | None = field(default=None, repr=False)
    median_ms: float | None = None

    @property
    def operator_ms(self) -> float:
        """The operators' milliseconds per call, added up."""
        return sum(op.time_ms for op in self.operators)

    @property
    def overhead_ms(self) -> float:
        """Latency not spent in an operator: the framework's overhead (negative: see docs)."""
        return self.latency_ms - self.operator_ms

    @property
    def coverage(self) -> float:
        """The fraction of the latency the listed operators account for."""
        return self.operator_ms / self.latency_ms if self.latency_ms > 0 else 0.0

    def share(self, op: OperatorTime) -> float:
        """An operator class's share of the end-to-end latency."""
        return op.time_ms / self.latency_ms if self.latency_ms > 0 else 0.0

    def table(self, top: int = 10) -> str:
        """The breakdown as a text table: the top classes, then the overhead line."""
        head = (
            f"{self.model} on {self.framework}, batch {self.batch_size}, {self.runs} runs: "
            f"{self.latency_ms:.2f} ms per call end to end (mean"
            + ("" if self.median_ms is None else f"; median {self.median_ms:.2f} ms")
            + ")"
        )
        if not self.operators:
            return f"{head}\noperators: {self.method}"
        lines = [
            head,
            f"{'class':<14} {'calls':>6} {'ms':>9} {'share':>7} {'GMACs':>8} {'GFLOP/s':>8}  "
            "framework operators",
        ]
        for op in self.operators[:top]:
            gmacs = f"{op.macs / 1e9:.3f}" if op.macs else "-"
            rate = f"{op.gflops_per_s:.1f}" if op.gflops_per_s else "-"
            lines.append(
                f"{op.op_class:<14} {op.calls:>6g} {op.time_ms:>9.3f} {self.share(op):>7.1%} "
                f"{gmacs:>8} {rate:>8}  {', '.join(op.framework_ops[:4])}"
            )
        lines.append(
            f"operators {self.operator_ms:.2f} ms ({self.coverage:.1%} of the latency); "
            f"framework overhead {self.overhead_ms:.2f} ms; timed with {self.method}"
        )
        return "\n".join(lines)


def _group(
    times: Mapping[str, tuple[int, float]], runs: int, arithmetic: Arithmetic | None
) -> tuple[OperatorTime, ...]:
    """Framework op name -> (calls, microseconds over all runs), grouped by class."""
    by_class: dict[str, list[tuple[str, int, float]]] = {}
    for name, (calls, micros) in times.items():
        by_class.setdefault(ar.classify(name), []).append((name, calls, micros))
    macs = arithmetic.macs_by_class if arithmetic is not None else {}
    out = []
    for op_class, members in by_class.items():
        members.sort(key=lambda m: -m[2])
        out.append(
            OperatorTime(
                op_class=op_class,
                framework_ops=tuple(m[0] for m in members),
                calls=sum(m[1] for m in members) / runs,
                time_ms=sum(m[2] for m in members) / runs / 1e3,
                macs=macs.get(op_class),
            )
        )
    return tuple(sorted(out, key=lambda o: -o.time_ms))


def parse_ort_profile(trace: Any, skip_runs: int = 0) -> dict[str, tuple[int, float]]:
    """ONNX Runtime's profile (its JSON trace, parsed): operator type -> (calls, microseconds).

    Only ``Node`` events whose name ends in ``_kernel_time`` are kernels; the ``_fence_*``
    events around them and the ``Session`` events are not operators.

    Args:
        trace: The trace's events.
        skip_runs: Leave out the kernels of the first ``skip_runs`` runs (``model_run``
            events), the warm-up.
    """
    starts = sorted(
        float(e.get("ts", 0))
        for e in trace
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    cutoff = starts[skip_runs] if 0 < skip_runs < len(starts) else float("-inf")
    times: dict[str, tuple[int, float]] = {}
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        if float(event.get("ts", 0)) < cutoff:
            continue
        op = str(event.get("args", {}).get("op_name", "")) or "unknown"
        calls, micros = times.get(op, (0, 0.0))
        times[op] = (calls + 1, micros + float(event.get("dur", 0)))
    return times


class _OrtPass:
    """A second session on the model's file with profiling on: same providers and threads."""

    def __init__(self, model: Model, native: Mapping[str, Any], warmup: int) -> None:
        ort = import_onnxruntime()
        session = model.session  # type: ignore[attr-defined]
        if model.path is None:
            raise InvalidArgumentError(f"model '{model.name}' has no file to profile")
        given = session.get_session_options()
        options = ort.SessionOptions()
        options.intra_op_num_threads = given.intra_op_num_threads
        options.inter_op_num_threads = given.inter_op_num_threads
        options.graph_optimization_level = given.graph_optimization_level
        options.execution_mode = given.execution_mode
        self._tmp = tempfile.TemporaryDirectory(prefix="pyinfer-ops-")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(self._tmp.name) / "ort")
        self._session = ort.InferenceSession(
            str(model.path), sess_options=options, providers=session.get_providers()
        )
        self._feed = dict(native)
        self._warmup = warmup
        self.run(warmup)

    def run(self, calls: int) -> None:
        for _ in range(calls):
            self._session.run(None, self._feed)

    def times(self) -> dict[str, tuple[int, float]]:
        try:
            trace = json.loads(Path(self._session.end_profiling()).read_text())
        finally:
            self._tmp.cleanup()
        return parse_ort_profile(trace, skip_runs=self._warmup)


#: TorchScript's profiling executor specialises a graph over its first calls: warm up past them.
_TORCHSCRIPT_WARMUP = 3

#: Where torch.profiler cannot see operators: a frozen TorchScript graph runs fused oneDNN groups.
_FROZEN_NOTE = (
    "; the TorchScript module as saved, unfrozen (the frozen graph's fused oneDNN groups hide "
    "their operators)"
)


def _call_module(torch: Any, module: Any, model: Model, native: Mapping[str, Any]) -> Any:
    with torch.no_grad():
        return module(*(native[spec.name] for spec in model.inputs))


class _TorchPass:
    """``torch.profiler`` around chunks of calls, each operator's self time added up."""

    def __init__(self, model: Model, native: Mapping[str, Any], warmup: int) -> None:
        self._torch = import_torch()
        self._model = model
        self._run: Callable[[], Any] = functools.partial(model.run_native, native)
        if model.options.get("freeze"):
            module = unoptimised_module(model)
            self._run = functools.partial(_call_module, self._torch, module, model, native)
        for _ in range(max(warmup, _TORCHSCRIPT_WARMUP)):
            self._run()
        self._times: dict[str, tuple[int, float]] = {}

    def run(self, calls: int) -> None:
        activities = [self._torch.profiler.ProfilerActivity.CPU]
        # Kineto writes profiler_start/stop lines (and, without a GPU, a failed device count)
        # straight to descriptor 2; they are kept at DEBUG level, off the console.
        with native_output_silenced(), self._torch.profiler.profile(activities=activities) as prof:
            for _ in range(calls):
                self._run()
            self._model.synchronize()
        for event in prof.events():
            name = str(event.name)
            if "::" not in name:
                continue  # a TorchScript frame ("forward"): interpreter time, not an operator
            parent = event.cpu_parent
            # a call is counted once, at the top of its class (conv2d, not the convolution in it)
            top = parent is None or ar.classify(str(parent.name)) != ar.classify(name)
            count, micros = self._times.get(name, (0, 0.0))
            self._times[name] = (count + int(top), micros + float(event.self_cpu_time_total))

    def times(self) -> dict[str, tuple[int, float]]:
        return self._times


#: The two passes alternate in this many rounds, so a change of the machine's load between them
#: falls on both alike (a busy shared machine otherwise skews the overhead line).
_ROUNDS = 5


#: A pause between the passes: the thread pool of the pass just run stops spinning on the cores.
_SETTLE_S = 0.05


def _chunks(runs: int) -> list[int]:
    rounds = min(runs, _ROUNDS)
    return [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]


def measure_operators(
    model: Model,
    batch_size: int = 1,
    *,
    runs: int = 20,
    warmup: int = 5,
    dims: Mapping[str, int] | None = None,
    arithmetic: Arithmetic | None = None,
) -> OperatorBreakdown:
    """Times the model end to end and, in a pass of its own, per operator.

    The two passes alternate in up to five rounds (``runs`` calls each in all), never in the
    same call, so profiling never enters the latency and a change of the machine's load falls
    on both.

    Args:
        model: The loaded model.
        batch_size: The batch of each call.
        runs: Calls timed in each pass.
        warmup: Calls before each pass, not timed.
        dims: Sizes of other named dynamic dimensions.
        arithmetic: The model's counted arithmetic (:func:`~pyinfer.analysis.count_macs`), to
            set MACs and GFLOP/s beside each class.

    Returns:
        The breakdown; for TFLite only the latency, with ``method`` saying why the operators
        are unavailable.

    Raises:
        InvalidArgumentError: If ``runs`` is under 1 or ``warmup`` negative.
    """
    if runs < 1 or warmup < 0:
        raise InvalidArgumentError(
            f"runs must be at least 1 and warmup 0 or more, not runs={runs}, warmup={warmup}"
        )
    arrays = model.example_inputs(batch_size, dims=dims)
    native = model.to_native(arrays)
    op_pass: _OrtPass | _TorchPass | TensorFlowPass | None = None
    if model.framework == "onnxruntime":
        op_pass = _OrtPass(model, native, warmup)
        method = "ONNX Runtime session profiling (kernel times, a separate session)"
    elif model.framework == "torch":
        op_pass = _TorchPass(model, native, warmup)
        method = "torch.profiler (self CPU time of each operator)"
        if model.options.get("freeze"):
            method += _FROZEN_NOTE
    elif model.framework == "tflite":
        method = "unavailable: the TFLite Python interpreter exposes no per-operator timing"
    else:
        op_pass = TensorFlowPass(model, arrays, warmup)
        method = TF_METHOD
    for _ in range(warmup):
        model.run_native(native)
    model.synchronize()
    samples: list[float] = []
    for chunk in _chunks(runs):  # the latency pass and the operator pass, in turns
        for _ in range(chunk):
            start = time.perf_counter()
            model.run_native(native)
            model.synchronize()
            samples.append((time.perf_counter() - start) * 1e3)
        if op_pass is not None:
            time.sleep(_SETTLE_S)
            op_pass.run(chunk)
            time.sleep(_SETTLE_S)
    times = op_pass.times() if op_pass is not None else {}
    latency = float(statistics.fmean(samples))
    return OperatorBreakdown(
        model=model.name,
        framework=model.framework,
        batch_size=batch_size,
        runs=runs,
        latency_ms=latency,
        operators=_group(times, runs, arithmetic),
        method=method,
        arithmetic=arithmetic,
        median_ms=float(statistics.median(samples)),
    )
