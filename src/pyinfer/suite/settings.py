"""What the suite runs and how it measures: models, formats, sizes, tolerances and settings.

The format tables here (:data:`SUITE_FORMATS`, :data:`SUITE_FORMAT_LABELS`,
:data:`FORMAT_CHOICES`) name the formats the way the suite's tables and ``--formats`` do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyinfer
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling import ProfilerSettings
from pyinfer.report import encode_json

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_INPUT_SIZES",
    "DEFAULT_SEQ_LENGTHS",
    "FAILED",
    "FORMAT_CHOICES",
    "FORMAT_ROW_LABELS",
    "OK",
    "PARITY_TOLERANCE",
    "PARITY_TOLERANCE_TFLITE",
    "QUICK_REPETITIONS",
    "QUICK_STABILITY_TARGET",
    "RESNET_IMAGE_SIZE",
    "SKIPPED",
    "SUITE_FORMATS",
    "SUITE_FORMAT_LABELS",
    "SUITE_MODELS",
    "SUITE_REPETITIONS",
    "Progress",
    "SuiteConfig",
    "full_settings",
    "measurement_settings",
    "quick_settings",
    "runs_of",
    "settings_dict",
]

#: The suite's models, in the order of its tables.
SUITE_MODELS = ("resnet50", "bert", "mobilenetv2")
#: ResNet50's formats, in its table's row order (PyTorch, ONNX, TorchScript), then TensorFlow's.
SUITE_FORMATS = ("pytorch", "onnx", "torchscript", "tensorflow", "tflite")
#: The table's row names; TensorFlow's (a Keras ``.keras`` file run by TensorFlow) fits the
#: table's 16-character first column, so the header keeps its width.
SUITE_FORMAT_LABELS = {
    "pytorch": "PyTorch (FP32)",
    "onnx": "ONNX (FP32)",
    "torchscript": "TorchScript",
    "tensorflow": "Keras (FP32)",
    "tflite": "TFLite (FP32)",
}
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DEFAULT_SEQ_LENGTHS = (128, 256, 512)
DEFAULT_INPUT_SIZES = (224, 320)
RESNET_IMAGE_SIZE = 224
#: BERT-base's ``max_position_embeddings``: its longest sequence.
BERT_MAX_POSITIONS = 512

#: Formats ``compare_formats`` knows, by the name ``--formats`` takes.
FORMAT_CHOICES = ("eager", "torchscript", "torch-export", "onnx", "keras", "saved-model", "tflite")
FORMAT_ROW_LABELS = {
    "eager": "PyTorch (FP32)",
    "torchscript": "TorchScript",
    "torch-export": "torch.export",
    "onnx": "ONNX (FP32)",
    "keras": "Keras",
    "saved-model": "SavedModel",
    "tflite": "TFLite (FP32)",
}
#: Parity tolerance: the largest output difference, relative to the largest magnitude of the
#: original's output, that still counts as the same result. float32 formats reorder sums
#: (fused BatchNorm, other kernels), which moves results by a few 1e-6 of their range; 1e-4
#: leaves room for deep models while catching a wrong layout or a dropped layer. TFLite's
#: XNNPACK kernels drift more, hence 1e-3.
PARITY_TOLERANCE = 1e-4
PARITY_TOLERANCE_TFLITE = 1e-3
#: ``--quick``'s stability target: the median known within +-2%, the accuracy the profiler
#: promises at the median (its default, 1%, takes more calls than a few seconds give a model
#: that takes half a second). The std-over-mean test would flag every fast model on a shared
#: machine, where one preempted call in a hundred sends it over 5%.
QUICK_STABILITY_TARGET = 0.02

#: Runs of each entry, each in a fresh worker process, unless asked otherwise: enough for the
#: ratios between formats to have their 95% interval (4 or more runs a side).
SUITE_REPETITIONS = 5
#: ``--quick``'s runs of each entry: one fresh worker process per entry, which keeps the quick
#: suite within 1.5 times its time in one process (every worker imports its framework and loads
#: its model anew); no between-run figures, so no intervals on the ratios.
QUICK_REPETITIONS = 1

#: An entry's status: measured, failed (with its reason), or not possible here.
OK, FAILED, SKIPPED = "ok", "failed", "skipped"

#: Called with a line per step of a run, for a user to watch.
Progress = Callable[[str], None]


def quick_settings() -> ProfilerSettings:
    """Short measurement settings for ``--quick``: the whole suite in minutes on 2 CPU cores.

    Three warm-up calls, then at least 10 timed calls and 0.5 s, capped at 3 s per entry; stable
    when the median's 95% confidence interval is within +-2% (:data:`QUICK_STABILITY_TARGET`).
    No separate throughput run: throughput is items over the latency run's wall time. One
    memory call.
    """
    return ProfilerSettings(
        warmup_iterations=3,
        warmup_until_settled=False,
        min_iterations=10,
        min_time_s=0.5,
        max_iterations=1000,
        max_time_s=3.0,
        stability_target=QUICK_STABILITY_TARGET,
        memory_runs=1,
    )


def full_settings() -> ProfilerSettings:
    """The profiler's defaults, with the time cap lowered to 20 s per entry."""
    return ProfilerSettings(max_time_s=20.0)


def runs_of(settings: ProfilerSettings | None, repetitions: int | None, *, quick: bool) -> int:
    """Runs of each entry: ``repetitions`` if given, else the settings', else the mode's."""
    if repetitions is not None:
        return repetitions
    if settings is not None:
        return settings.repetitions
    return QUICK_REPETITIONS if quick else SUITE_REPETITIONS


def measurement_settings(
    settings: ProfilerSettings | None,
    *,
    quick: bool,
    repetitions: int,
    cpus: Sequence[int] = (),
) -> ProfilerSettings:
    """The settings of a suite or a format comparison measured in ``repetitions`` runs.

    Args:
        settings: Explicit settings, applied to each run as given (``None``: the mode's).
        quick: Use :func:`quick_settings` (else :func:`full_settings`) when none are given;
            those are spread over the runs (:meth:`ProfilerSettings.spread_over`), so the runs
            together take about one run's time.
        repetitions: Runs of each entry.
        cpus: CPUs to pin the workers to (empty: those of ``settings``, if any).
    """
    if settings is not None:
        chosen = dataclasses.replace(settings, repetitions=repetitions)
    else:
        chosen = (quick_settings() if quick else full_settings()).spread_over(repetitions)
    if cpus:
        chosen = dataclasses.replace(chosen, cpus=tuple(cpus))
    return chosen


def settings_dict(settings: ProfilerSettings) -> dict[str, Any]:
    """Profiler settings as JSON-ready values, as the results record them."""
    data = encode_json(settings)
    assert isinstance(data, dict)
    return data


def _names(values: Sequence[str], allowed: Sequence[str], option: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise InvalidArgumentError(
            f"{option}: unknown name {', '.join(repr(u) for u in unknown) or 'none given'}; "
            f"use one or more of {', '.join(allowed)}"
        )
    return tuple(dict.fromkeys(values))


def _sizes(values: Sequence[int], option: str) -> tuple[int, ...]:
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise InvalidArgumentError(f"{option} must be integers of at least 1, got {list(values)}")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class SuiteConfig:
    """What :func:`run_suite` runs.

    Attributes:
        models: Some of :data:`SUITE_MODELS`.
        formats: ResNet50's formats, some of :data:`SUITE_FORMATS`.
        devices: ``"cpu"`` and/or ``"cuda"``; empty: the CPU, plus CUDA when available.
        batch_sizes: ResNet50's batch sweep (PyTorch eager).
        seq_lengths: BERT's sequence lengths.
        input_sizes: MobileNetV2's square input sizes (at least 32: its five stride-2 stages).
        image_size: ResNet50's input size.
        quick: Use :func:`quick_settings` (else :func:`full_settings`).
        settings: Explicit profiler settings for each run (override ``quick``; the batch size
            and dims are set per entry).
        repetitions: Runs of each entry, each in its own fresh worker process, interleaved
            across the entries (``None``: ``settings.repetitions`` when settings are given,
            else :data:`QUICK_REPETITIONS` with ``quick`` and :data:`SUITE_REPETITIONS`
            without). The suite's own settings are spread over the runs
            (:meth:`ProfilerSettings.spread_over`); explicit ones apply to each run as given.
        cpus: Logical CPUs to pin the worker processes to (empty: as ``settings.cpus``, or
            wherever the OS runs them).
        work_dir: Keep exported models here and reuse them on the next run; ``None``: a
            temporary folder, removed at the end.
        bert_config: Overrides of ``transformers.BertConfig`` (a smaller BERT for tests).
        seed: Seed of the random weights and inputs.
    """

    models: tuple[str, ...] = SUITE_MODELS
    formats: tuple[str, ...] = SUITE_FORMATS
    devices: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seq_lengths: tuple[int, ...] = DEFAULT_SEQ_LENGTHS
    input_sizes: tuple[int, ...] = DEFAULT_INPUT_SIZES
    image_size: int = RESNET_IMAGE_SIZE
    quick: bool = False
    settings: ProfilerSettings | None = None
    repetitions: int | None = None
    cpus: tuple[int, ...] = ()
    work_dir: Path | None = None
    bert_config: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.repetitions is not None and (
            not isinstance(self.repetitions, int)
            or isinstance(self.repetitions, bool)
            or self.repetitions < 1
        ):
            raise InvalidArgumentError(
                f"--repeat must be an integer of at least 1, got {self.repetitions!r}"
            )
        object.__setattr__(self, "cpus", tuple(self.cpus))
        object.__setattr__(self, "models", _names(self.models, SUITE_MODELS, "--only"))
        object.__setattr__(self, "formats", _names(self.formats, SUITE_FORMATS, "--formats"))
        if self.devices:
            _names(self.devices, ("cpu", "cuda"), "--device")
        object.__setattr__(self, "batch_sizes", _sizes(self.batch_sizes, "--batch-sizes"))
        object.__setattr__(self, "seq_lengths", _sizes(self.seq_lengths, "--seq-lengths"))
        positions = int(self.bert_config.get("max_position_embeddings", BERT_MAX_POSITIONS))
        if "bert" in self.models and max(self.seq_lengths) > positions:
            raise InvalidArgumentError(
                f"--seq-lengths must be at most {positions} (BERT-base's position embeddings), "
                f"got {max(self.seq_lengths)}"
            )
        sizes = _sizes(self.input_sizes, "--input-sizes")
        if min(sizes) < 32:
            raise InvalidArgumentError(
                f"--input-sizes must be at least 32 (MobileNetV2 halves its input five times), "
                f"got {min(sizes)}"
            )
        object.__setattr__(self, "input_sizes", sizes)
        if self.image_size < 32:
            raise InvalidArgumentError(
                f"--image-size must be at least 32 (ResNet50 halves its input five times), "
                f"got {self.image_size}"
            )

    @property
    def runs(self) -> int:
        """Runs of each entry: as given, else the settings', else the mode's default."""
        return runs_of(self.settings, self.repetitions, quick=self.quick)

    def profiler_settings(self) -> ProfilerSettings:
        """The settings every entry uses, with its runs (``repetitions``) and CPUs."""
        return measurement_settings(
            self.settings, quick=self.quick, repetitions=self.runs, cpus=self.cpus
        )

    def resolved_devices(self) -> tuple[str, ...]:
        """The devices to run on: as given, or the CPU plus CUDA when available."""
        if self.devices:
            return self.devices
        return ("cpu", "cuda") if pyinfer.cuda_available() else ("cpu",)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values."""
        return {
            "models": list(self.models),
            "formats": list(self.formats),
            "devices": list(self.resolved_devices()),
            "batch_sizes": list(self.batch_sizes),
            "seq_lengths": list(self.seq_lengths),
            "input_sizes": list(self.input_sizes),
            "image_size": self.image_size,
            "quick": self.quick,
            "repetitions": self.runs,
            "cpus": list(self.cpus),
            "work_dir": None if self.work_dir is None else str(self.work_dir),
            "bert_config": dict(self.bert_config),
            "seed": self.seed,
        }
