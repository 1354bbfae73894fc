"""The benchmark suite and the formats comparison, as a library.

The ``pyinfer bench`` and ``pyinfer formats`` commands (and users) call it; it never prints
results or picks exit statuses.

:func:`run_suite` builds ResNet50, BERT-base and MobileNetV2 with random weights, exports them,
and profiles every entry with the same settings; :func:`compare_formats` takes a user's model
file across every format reachable from its framework, with output parity. Every entry is
measured in its own fresh worker process, its repetitions interleaved with the other entries',
and formats get their latency ratio to the reference with a 95% interval over the runs. Their
results render as tables, Markdown and JSON, and say how they ended (:class:`Outcome`). The
quick-start demo (:mod:`pyinfer.suite.demo`) lives here too.
"""

from __future__ import annotations

from pyinfer.suite.formats import compare_formats
from pyinfer.suite.ratios import LatencyRatio, ratio_between
from pyinfer.suite.results import (
    BENCH_SCHEMA_VERSION,
    FormatEntry,
    FormatsResult,
    Outcome,
    SuiteEntry,
    SuiteResult,
)
from pyinfer.suite.runner import run_suite
from pyinfer.suite.settings import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_INPUT_SIZES,
    DEFAULT_SEQ_LENGTHS,
    FORMAT_CHOICES,
    PARITY_TOLERANCE,
    PARITY_TOLERANCE_TFLITE,
    QUICK_REPETITIONS,
    RESNET_IMAGE_SIZE,
    SUITE_FORMAT_LABELS,
    SUITE_FORMATS,
    SUITE_MODELS,
    SUITE_REPETITIONS,
    SuiteConfig,
    full_settings,
    quick_settings,
)

__all__ = [
    "BENCH_SCHEMA_VERSION",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_INPUT_SIZES",
    "DEFAULT_SEQ_LENGTHS",
    "FORMAT_CHOICES",
    "PARITY_TOLERANCE",
    "PARITY_TOLERANCE_TFLITE",
    "QUICK_REPETITIONS",
    "RESNET_IMAGE_SIZE",
    "SUITE_FORMATS",
    "SUITE_FORMAT_LABELS",
    "SUITE_MODELS",
    "SUITE_REPETITIONS",
    "FormatEntry",
    "FormatsResult",
    "LatencyRatio",
    "Outcome",
    "SuiteConfig",
    "SuiteEntry",
    "SuiteResult",
    "compare_formats",
    "full_settings",
    "quick_settings",
    "ratio_between",
    "run_suite",
]
