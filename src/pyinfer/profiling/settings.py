"""How to measure: :class:`ProfilerSettings`, its defaults, and the checks of its values."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pyinfer.backends.base import Model
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling.stopping import StoppingRule, WarmupPolicy
from pyinfer.report.repetitions import DEFAULT_REPRODUCIBILITY_TARGET

__all__ = [
    "DEFAULT_STABILITY_TARGET",
    "MIN_CALLS_PER_RUN",
    "TIMING_METHODS",
    "IntRange",
    "ProfilerSettings",
    "as_batch_size",
    "check_for_model",
    "is_int",
    "settings_record",
]

#: ``timing`` values: ``auto`` (CUDA events where the model exposes a stream, else host),
#: ``cuda-events`` (insist on events) and ``host`` (host clock; on a GPU with a
#: synchronisation after every call).
TIMING_METHODS = ("auto", "cuda-events", "host")


#: Default stability rule: the median known within +-1% at 95% confidence, half the 2% accuracy
#: the profiler promises at the median. The coefficient of variation (``"cv"``, for
#: "latency std under 5% of the mean") is the other choice; it is not the default because one
#: preempted call in ten thousand (3 ms against 25 us, seen on this project's CI machine) puts
#: it above 100% while every percentile up to P99 stays put, and because it does not shrink with
#: more samples, so a noisy machine would run every measurement to its cap. Std as % of mean is
#: reported either way.
DEFAULT_STABILITY_TARGET = 0.01


#: The fewest timed calls a run of a repeated measurement makes (see
#: :meth:`ProfilerSettings.spread_over`): its median and that median's interval need them.
MIN_CALLS_PER_RUN = 20
#: The fewest warm-up calls a run of a repeated measurement makes before its warm-up settles
#: (one settling window's worth: the window the settling compares against).
MIN_WARMUP_PER_RUN = 5


@dataclass(frozen=True)
class IntRange:
    """Integers drawn at random from ``[low, high)``: the legal values of an integer input.

    Attributes:
        low: The smallest value.
        high: One past the largest value.
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        if not (is_int(self.low) and is_int(self.high)) or self.high <= self.low:
            raise InvalidArgumentError(
                f"an integer range needs integers low < high, got [{self.low!r}, {self.high!r})"
            )


@dataclass(frozen=True)
class ProfilerSettings:
    """How to measure; every duration is in seconds and every threshold a fraction.

    Attributes:
        batch_size: Items per call, an integer (default: the engine's batch size, else 1; a
            model with a fixed batch runs its own).
        input_dims: Sizes of named dynamic dimensions other than the batch (``sequence=128``),
            each at least 1.
        inputs: Given inputs, input name to array, instead of random ones: one item (without
            the batch axis) or a batch; each is replicated or sliced along the input's batch
            axis to the batch size measured, and an input without a batch axis (a 0-d sample
            rate) is passed as given. Inputs left out are random (:meth:`Model.example_inputs`).
        input_values: Values for some inputs, input name to a number (a constant, such as a
            sample rate: ``{"sr": 16000}``, filled to the input's shape) or an
            :class:`IntRange` (random integers in a legal range, such as token ids); applied
            after ``inputs``.
        seed: Seed of the random example inputs (0 or more).
        warmup_iterations: Untimed calls before measuring (10-50 is the usual advice).
        warmup_until_settled: Then keep warming up until the median settles.
        min_iterations: Minimum timed calls before a run may stop as stable.
        min_time_s: Minimum measured time before a run may stop as stable.
        max_iterations: Cap on timed calls.
        max_time_s: Cap on measured time.
        stability_target: The stability measure must reach this (0.01: 1%; see
            :data:`DEFAULT_STABILITY_TARGET`).
        stability_metric: ``"median_ci"`` (relative half-width of the median's 95% confidence
            interval, the default) or ``"cv"`` (std/mean, "latency std under 5% of the mean":
            use it with ``stability_target=0.05``).
        timing: ``"auto"``, ``"cuda-events"`` or ``"host"`` (see :data:`TIMING_METHODS`).
        cuda_graphs: torch on CUDA only: time the replay of a CUDA graph of the call.
        throughput_time_s: Duration of a throughput run (finite).
        memory_runs: Calls in the memory pass.
        repetitions: Latency runs, each in a fresh worker process that loads the model anew
            (1: one run, in this process). See :mod:`pyinfer.profiling.repeat`.
        reproducibility_target: With several repetitions, a repeat of the whole measurement
            must be expected within this fraction of the median for the result to count as
            stable (0.10: results reproducible within 10% across runs).
        cpus: Logical CPUs to pin the worker processes to (empty: wherever the OS runs them).
        energy: Read the energy counters around the throughput run's calls (RAPL on the CPU,
            NVML on the model's GPU; two reads, nothing during the calls) for its joules per
            inference and average watts; ``False`` leaves the report's ``energy`` empty.
    """

    batch_size: int | None = None
    input_dims: Mapping[str, int] = field(default_factory=dict)
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    input_values: Mapping[str, float | IntRange] = field(default_factory=dict)
    seed: int = 0
    warmup_iterations: int = 10
    warmup_until_settled: bool = True
    min_iterations: int = 100
    min_time_s: float = 1.0
    max_iterations: int = 10_000
    max_time_s: float = 30.0
    stability_target: float = DEFAULT_STABILITY_TARGET
    stability_metric: str = "median_ci"
    timing: str = "auto"
    cuda_graphs: bool = False
    throughput_time_s: float = 2.0
    memory_runs: int = 3
    repetitions: int = 1
    reproducibility_target: float = DEFAULT_REPRODUCIBILITY_TARGET
    cpus: tuple[int, ...] = ()
    energy: bool = True

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", as_batch_size(self.batch_size, "batch_size"))
        for name in (
            "warmup_iterations",
            "min_iterations",
            "max_iterations",
            "memory_runs",
            "repetitions",
        ):
            value = getattr(self, name)
            if not is_int(value):
                raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in (
            "min_time_s",
            "max_time_s",
            "stability_target",
            "throughput_time_s",
            "reproducibility_target",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(
                value, (bool, np.bool_)
            ):
                raise InvalidArgumentError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not is_int(self.seed) or self.seed < 0:
            raise InvalidArgumentError(f"seed must be an integer of 0 or more, got {self.seed!r}")
        for name, size in self.input_dims.items():
            if not isinstance(name, str) or not is_int(size) or size < 1:
                raise InvalidArgumentError(
                    f"input_dims must map dimension names to sizes of at least 1, got "
                    f"{name!r}: {size!r}"
                )
        for name, array in self.inputs.items():
            if not isinstance(name, str) or not isinstance(array, np.ndarray):
                raise InvalidArgumentError(
                    f"inputs must map input names to numpy arrays, got {name!r}: "
                    f"{type(array).__name__}"
                )
        for name, value in self.input_values.items():
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            if not isinstance(name, str) or not (number or isinstance(value, IntRange)):
                raise InvalidArgumentError(
                    f"input_values must map input names to a number or an IntRange, got "
                    f"{name!r}: {value!r}"
                )
        if self.timing not in TIMING_METHODS:
            raise InvalidArgumentError(
                f"unknown timing {self.timing!r}; use one of "
                + ", ".join(repr(t) for t in TIMING_METHODS)
            )
        if not 0.0 < self.throughput_time_s < math.inf:
            raise InvalidArgumentError(
                f"throughput_time_s must be above 0 and finite, got {self.throughput_time_s}"
            )
        if self.memory_runs < 1:
            raise InvalidArgumentError(f"memory_runs must be at least 1, got {self.memory_runs}")
        if self.repetitions < 1:
            raise InvalidArgumentError(f"repetitions must be at least 1, got {self.repetitions}")
        if not 0.0 < self.reproducibility_target < math.inf:
            raise InvalidArgumentError(
                "reproducibility_target must be above 0 and finite (0.10 is 10%), got "
                f"{self.reproducibility_target}"
            )
        cpus = tuple(self.cpus)
        if any(not is_int(c) or c < 0 for c in cpus) or len(set(cpus)) != len(cpus):
            raise InvalidArgumentError(
                f"cpus must be distinct CPU numbers of 0 or more, got {list(self.cpus)!r}"
            )
        object.__setattr__(self, "cpus", tuple(int(c) for c in cpus))
        if not isinstance(self.energy, (bool, np.bool_)):
            raise InvalidArgumentError(f"energy must be True or False, got {self.energy!r}")
        object.__setattr__(self, "energy", bool(self.energy))
        self.stopping_rule()  # validates the rule's fields, with their own messages
        self.warmup_policy()

    def spread_over(self, repetitions: int) -> ProfilerSettings:
        """These settings spread over ``repetitions`` runs that together take about one run's time.

        Each run gets a share of the minimum count and time and of the time cap (at least
        :data:`MIN_CALLS_PER_RUN` calls: a run's median needs them) and of the warm-up calls
        (at least 5, one settling window), and stops at its minimums; the stability target
        applies to the calls of all runs together, so the runs know the median about as well
        as one run of these settings would, and what a repeated measurement adds (the
        between-run variance) comes nearly free. The command line applies it to its defaults
        when ``--repeat`` is above 1; options given explicitly apply to each run as given.

        Args:
            repetitions: The number of runs (1 returns these settings unchanged).

        Raises:
            InvalidArgumentError: If ``repetitions`` is not an integer of at least 1.
        """
        if not is_int(repetitions) or repetitions < 1:
            raise InvalidArgumentError(f"repetitions must be at least 1, got {repetitions!r}")
        n = int(repetitions)
        if n == 1:
            return dataclasses.replace(self, repetitions=1)
        min_iterations = max(MIN_CALLS_PER_RUN, math.ceil(self.min_iterations / n))
        return dataclasses.replace(
            self,
            repetitions=n,
            warmup_iterations=max(MIN_WARMUP_PER_RUN, math.ceil(self.warmup_iterations / n)),
            min_iterations=min_iterations,
            max_iterations=max(min_iterations, math.ceil(self.max_iterations / n)),
            min_time_s=self.min_time_s / n,
            max_time_s=max(self.min_time_s / n, self.max_time_s / n),
        )

    def stopping_rule(self) -> StoppingRule:
        """The stopping rule these settings describe."""
        return StoppingRule(
            min_iterations=self.min_iterations,
            min_time_s=self.min_time_s,
            max_iterations=self.max_iterations,
            max_time_s=self.max_time_s,
            stability_target=self.stability_target,
            stability_metric=self.stability_metric,
        )

    def warmup_policy(self) -> WarmupPolicy:
        """The warm-up these settings describe."""
        return WarmupPolicy(
            iterations=self.warmup_iterations, until_settled=self.warmup_until_settled
        )


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (Python's or numpy's), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_batch_size(value: object, what: str) -> int:
    """``value`` as a plain ``int`` of at least 1 (a numpy integer is one; 2.5 or True is not).

    Raises:
        InvalidArgumentError: If ``value`` is not an integer of at least 1.
    """
    if not is_int(value):
        raise InvalidArgumentError(f"{what} must be an integer, got {value!r}")
    batch = operator.index(value)  # type: ignore[arg-type]
    if batch < 1:
        raise InvalidArgumentError(f"{what} must be at least 1, got {batch}")
    return batch


def check_for_model(settings: ProfilerSettings, model: Model) -> None:
    """Refuses settings that ask for something the model cannot do.

    Raises:
        InvalidArgumentError: If CUDA graphs or CUDA events are asked of a model that cannot
            give them.
    """
    m, s = model, settings
    where = f"model '{m.name}' runs on {m.framework} on {m.device}"
    if s.cuda_graphs and not m.supports_cuda_graphs:
        raise InvalidArgumentError(f"cuda_graphs needs a torch model on CUDA; {where}")
    if s.timing == "cuda-events":
        if not m.device.is_cuda:
            raise InvalidArgumentError(f"timing='cuda-events' needs a CUDA model; {where}")
        if m.stream_handle is None:
            raise InvalidArgumentError(
                f"timing='cuda-events' needs the model's CUDA stream, and {where} without "
                "exposing one; use timing='host'"
            )


def settings_record(settings: ProfilerSettings) -> dict[str, object]:
    """The settings as JSON-ready values for a report: given arrays described, not copied."""
    record: dict[str, object] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "inputs":
            value = {k: f"{tuple(v.shape)} {v.dtype.name}" for k, v in value.items()}
        elif f.name == "input_values":
            value = {k: [v.low, v.high] if isinstance(v, IntRange) else v for k, v in value.items()}
        elif isinstance(value, Mapping):
            value = dict(value)
        record[f.name] = value
    return record
