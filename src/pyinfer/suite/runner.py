"""The benchmark suite: its models built or exported, then measured entry by entry in workers.

ResNet50 in each format and its batch sweep, BERT-base at several sequence lengths and
MobileNetV2 at several input sizes, each profiled the same way. The parent exports the models
that are files (or reuses them from the work folder); every entry is then measured in its own
fresh worker process, which loads the file or builds the model from its seed
(:mod:`pyinfer.suite.models`), with the entries' repetitions interleaved
(:mod:`pyinfer.suite.measure`). ResNet50's formats get their latency ratio to PyTorch eager,
with a 95% interval over the runs.

An entry that fails (an export, a load, out of memory) is recorded with its reason and the suite
goes on; Ctrl-C keeps the runs already finished (see :attr:`SuiteResult.interrupted`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfer.backends.base import LoadRequest
from pyinfer.errors import FrameworkNotInstalledError
from pyinfer.profiling import ProfilerSettings
from pyinfer.profiling.jobs import WorkerJob, WorkerResult
from pyinfer.report import one_line
from pyinfer.report.environment import Environment, collect_environment
from pyinfer.suite.artifacts import Artifacts, work_folder
from pyinfer.suite.busy import busy_cpus, busy_warning
from pyinfer.suite.measure import Measured, Subject, measure_interleaved
from pyinfer.suite.models import (
    Models,
    ModelSource,
    Skip,
    bert_base,
    mobilenet_v2,
    resnet50_eager,
    resnet_source,
)
from pyinfer.suite.ratios import LatencyRatio
from pyinfer.suite.results import (
    TABLE_NAMES,
    SuiteEntry,
    SuiteResult,
    failure_reason,
    run_medians,
)
from pyinfer.suite.settings import (
    FAILED,
    OK,
    SKIPPED,
    SUITE_FORMAT_LABELS,
    Progress,
    SuiteConfig,
    settings_dict,
)
from pyinfer.suite.tables import done_line

__all__ = ["run_suite"]

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    """One entry: its row, and how the parent prepares what its worker measures."""

    table: str
    device: str
    key: str
    label: str
    source: Callable[[], ModelSource]  # exports in the parent, if anything
    settings: ProfilerSettings
    profile: dict[str, Any]  # batch_size, batch_sizes, memory, throughput for the worker
    exports: bool = False  # whether preparing it may export a file

    @property
    def heading(self) -> str:
        return f"{self.device} {TABLE_NAMES[self.table]} {self.label}"

    def row(self) -> dict[str, Any]:
        return {"table": self.table, "device": self.device, "key": self.key, "label": self.label}


def _plans(config: SuiteConfig, models: Models, device: str) -> list[_Plan]:
    settings = config.profiler_settings()
    # --quick: no separate throughput run; throughput is items over the latency run's wall time.
    throughput = not (config.quick and config.settings is None)
    one = {"batch_size": 1, "throughput": throughput}
    seed = config.seed
    plans: list[_Plan] = []
    if "resnet50" in config.models:
        for fmt in config.formats:
            plans.append(
                _Plan(
                    "resnet50",
                    device,
                    fmt,
                    SUITE_FORMAT_LABELS[fmt],
                    functools.partial(resnet_source, models, fmt, device),
                    settings,
                    one,
                    exports=fmt != "pytorch",
                )
            )
        sweep = {
            "batch_size": 1,
            "batch_sizes": tuple(config.batch_sizes),
            "memory": False,
            "throughput": False,
        }
        eager = functools.partial(resnet50_eager, seed, config.image_size, device)
        plans.append(
            _Plan(
                "resnet50-batch",
                device,
                "sweep",
                "PyTorch (FP32) batch sweep",
                lambda: eager,
                settings,
                sweep,
            )
        )
    if "bert" in config.models:
        bert = functools.partial(bert_base, seed, dict(config.bert_config), device)
        for length in config.seq_lengths:
            per_length = dataclasses.replace(settings, input_dims={"sequence": length})
            plans.append(
                _Plan("bert", device, str(length), str(length), lambda: bert, per_length, one)
            )
    if "mobilenetv2" in config.models:
        mobilenet = functools.partial(mobilenet_v2, seed, device)
        for size in config.input_sizes:
            per_size = dataclasses.replace(settings, input_dims={"height": size, "width": size})
            plans.append(
                _Plan(
                    "mobilenetv2",
                    device,
                    str(size),
                    f"{size}x{size}",
                    lambda: mobilenet,
                    per_size,
                    one,
                )
            )
    return plans


def _job(plan: _Plan, source: ModelSource) -> WorkerJob:
    return WorkerJob(
        load=source if isinstance(source, LoadRequest) else None,
        build=None if isinstance(source, LoadRequest) else source,
        settings=plan.settings,
        cpus=plan.settings.cpus,
        label=plan.label,
        **plan.profile,
    )


def _prepare(plan: _Plan, say: Progress, elapsed: Callable[[], float]) -> Subject | SuiteEntry:
    """What the entry's workers measure, or the entry itself when it cannot run."""
    start = time.perf_counter()
    if plan.exports:
        say(f"preparing {plan.heading} (elapsed {elapsed():.0f} s)")
    try:
        source = plan.source()
    except Skip as exc:
        return SuiteEntry(**plan.row(), status=SKIPPED, reason=str(exc))
    except FrameworkNotInstalledError as exc:
        return SuiteEntry(
            **plan.row(), status=SKIPPED, reason=f"not installed: {one_line(str(exc))}"
        )
    except Exception as exc:
        logger.warning("%s failed: %s", plan.heading, exc, exc_info=True)
        return SuiteEntry(
            **plan.row(),
            status=FAILED,
            reason=failure_reason(exc),
            elapsed_s=time.perf_counter() - start,
        )
    return Subject(
        label=plan.label,
        heading=plan.heading,
        job=_job(plan, source),
        same_calls=plan.table != "resnet50-batch",
        prepare_s=time.perf_counter() - start,
    )


def _entry(plan: _Plan, subject: Subject, got: Measured, settings: ProfilerSettings) -> SuiteEntry:
    """The entry of what its runs gave: measured, failed, or not installed."""
    elapsed = subject.prepare_s + got.elapsed_s
    if got.error is not None:
        if isinstance(got.error, FrameworkNotInstalledError):
            reason = f"not installed: {one_line(str(got.error))}"
            return SuiteEntry(**plan.row(), status=SKIPPED, reason=reason)
        return SuiteEntry(
            **plan.row(), status=FAILED, reason=failure_reason(got.error), elapsed_s=elapsed
        )
    report = got.report(settings)
    return SuiteEntry(
        **plan.row(),
        status=OK,
        report=report,
        prepare_s=subject.prepare_s,
        elapsed_s=elapsed,
    )


def _with_ratios(entries: list[SuiteEntry]) -> list[SuiteEntry]:
    """ResNet50's formats with their latency ratio to PyTorch eager on the same device."""
    eager = {
        e.device: e.report
        for e in entries
        if e.table == "resnet50" and e.key == "pytorch" and e.report is not None
    }
    label = SUITE_FORMAT_LABELS["pytorch"]
    out = []
    for e in entries:
        reference = eager.get(e.device)
        if e.table == "resnet50" and e.key != "pytorch" and e.report and reference:
            ratio = LatencyRatio.between(label, run_medians(reference), run_medians(e.report))
            out.append(dataclasses.replace(e, ratio=ratio))
        else:
            out.append(e)
    return out


def run_suite(
    config: SuiteConfig | None = None,
    *,
    progress: Progress | None = None,
    worker: Callable[[WorkerJob], WorkerResult] | None = None,
) -> SuiteResult:
    """Runs the benchmark suite.

    Args:
        config: What to run (default: everything, full settings, the CPU plus CUDA if present).
        progress: Called with a line per step (which entry, elapsed time), for a user to watch.
        worker: Runs one entry's job (default: a fresh worker process on this machine; a Ray
            task on a cluster's node: :func:`pyinfer.cluster.run_suite_on_cluster`).

    Returns:
        The result. An entry that fails is recorded with its reason; Ctrl-C ends the run with
        ``interrupted`` set and the runs finished before it.

    Raises:
        InvalidArgumentError: On a bad configuration (checked before anything runs).
    """
    config = config or SuiteConfig()
    settings = config.profiler_settings()
    devices = config.resolved_devices()
    say = progress or (lambda line: logger.info("%s", line))
    load = busy_cpus()  # before the clock starts: sampling the machine is not the suite
    busy = busy_warning(load)
    if busy:
        say(busy)
    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    slots: list[SuiteEntry | tuple[_Plan, Subject]] = []
    environments: dict[str, Environment] = {}
    interrupted = False
    measured: list[Measured] = []
    try:
        with work_folder(config.work_dir) as folder:
            models = Models(config, Artifacts(folder))
            for device in devices:
                environments[device] = collect_environment(
                    cuda_device=0 if device == "cuda" else None
                )
            plans = [plan for device in devices for plan in _plans(config, models, device)]
            for plan in plans:
                prepared = _prepare(plan, say, elapsed)
                slots.append(prepared if isinstance(prepared, SuiteEntry) else (plan, prepared))
                if isinstance(prepared, SuiteEntry):
                    say(f"{plan.heading}: {prepared.status}: {prepared.reason}")
            models.forget()  # the parent keeps no model while the workers measure
            gc.collect()
            pairs = [slot for slot in slots if isinstance(slot, tuple)]
            subjects = [subject for _, subject in pairs]

            def finished(index: int, got: Measured) -> None:
                entry = _entry(*pairs[index], got, settings)
                say(f"[{index + 1}/{len(subjects)}] {done_line(entry)}")

            runs = settings.repetitions
            measured, interrupted = measure_interleaved(
                subjects, runs, say, on_finished=finished, start=start, worker=worker
            )
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        say("interrupted: keeping the entries finished so far")
    entries: list[SuiteEntry] = []
    results = iter(measured)
    for slot in slots:
        if isinstance(slot, SuiteEntry):
            entries.append(slot)
            continue
        got = next(results, None)
        if got is None or (not got.runs and got.error is None):
            continue  # not run, or dropped by Ctrl-C while it ran
        entries.append(_entry(*slot, got, settings))
    return SuiteResult(
        entries=tuple(_with_ratios(entries)),
        environments=environments,
        config=config.to_dict(),
        settings=settings_dict(settings),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
        busy_cpus=load,
    )
