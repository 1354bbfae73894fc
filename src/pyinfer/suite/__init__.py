"""The benchmark suite and the formats comparison, as a library.

The ``pyinfer bench`` and ``pyinfer formats`` commands (and users) call it; it never prints
results or picks exit statuses.

:func:`run_suite` builds ResNet50, BERT-base and MobileNetV2 with random weights, exports them,
loads them back and profiles every entry with the same settings; :func:`compare_formats` takes a
user's model file across every format reachable from its framework, with output parity. Their
results render as tables, Markdown and JSON, and say how they ended (:class:`Outcome`). The
quick-start demo (:mod:`pyinfer.suite.demo`) lives here too.
"""

from __future__ import annotations

from pyinfer.suite.formats import compare_formats
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
    RESNET_IMAGE_SIZE,
    SUITE_FORMAT_LABELS,
    SUITE_FORMATS,
    SUITE_MODELS,
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
    "RESNET_IMAGE_SIZE",
    "SUITE_FORMATS",
    "SUITE_FORMAT_LABELS",
    "SUITE_MODELS",
    "FormatEntry",
    "FormatsResult",
    "Outcome",
    "SuiteConfig",
    "SuiteEntry",
    "SuiteResult",
    "compare_formats",
    "full_settings",
    "quick_settings",
    "run_suite",
]
