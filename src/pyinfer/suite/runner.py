"""The benchmark suite: its models built, exported, loaded and profiled entry by entry.

ResNet50 in each format and its batch sweep, BERT-base at several sequence lengths and
MobileNetV2 at several input sizes, each profiled the same way.

An entry that fails (an export, a load, out of memory) is recorded with its reason and the suite
goes on; Ctrl-C keeps the entries already finished (see :attr:`SuiteResult.interrupted`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfer.errors import FrameworkNotInstalledError
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings
from pyinfer.report import ProfileReport, one_line
from pyinfer.report.environment import Environment, collect_environment
from pyinfer.suite.artifacts import Artifacts, work_folder
from pyinfer.suite.busy import busy_cpus, busy_warning
from pyinfer.suite.models import Models, Skip, bert_model, mobilenet_model, resnet_model
from pyinfer.suite.results import SuiteEntry, SuiteResult, failure_reason
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

_TABLE_NAMES = {
    "resnet50": "ResNet50",
    "resnet50-batch": "ResNet50",
    "bert": "BERT-Base seq",
    "mobilenetv2": "MobileNetV2",
}


@dataclass
class _Job:
    table: str
    device: str
    key: str
    label: str
    run: Callable[[], tuple[ProfileReport, float]]


def _profile(
    model: Any, settings: ProfilerSettings, *, prepare_s: float, **kwargs: Any
) -> tuple[ProfileReport, float]:
    try:
        report = PerformanceProfiler(model, settings).profile(**kwargs)
    finally:
        model.close()
    return report, prepare_s


def _timed(build: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    model = build()
    return model, time.perf_counter() - start


def _jobs(config: SuiteConfig, models: Models, device: str) -> list[_Job]:
    settings = config.profiler_settings()
    # --quick: no separate throughput run; throughput is items over the latency run's time.
    throughput = not (config.quick and config.settings is None)
    jobs: list[_Job] = []
    if "resnet50" in config.models:
        for fmt in config.formats:

            def run_format(fmt: str = fmt) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: resnet_model(models, fmt, device))
                return _profile(
                    model, settings, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("resnet50", device, fmt, SUITE_FORMAT_LABELS[fmt], run_format))

        def run_sweep() -> tuple[ProfileReport, float]:
            model, prep = _timed(lambda: resnet_model(models, "pytorch", device))
            return _profile(
                model,
                settings,
                prepare_s=prep,
                batch_size=1,
                batch_sizes=list(config.batch_sizes),
                memory=False,
                throughput=False,
            )

        jobs.append(
            _Job("resnet50-batch", device, "sweep", "PyTorch (FP32) batch sweep", run_sweep)
        )
    if "bert" in config.models:
        for length in config.seq_lengths:

            def run_bert(length: int = length) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: bert_model(models, device))
                per_length = dataclasses.replace(settings, input_dims={"sequence": length})
                return _profile(
                    model, per_length, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("bert", device, str(length), str(length), run_bert))
    if "mobilenetv2" in config.models:
        for size in config.input_sizes:

            def run_mobilenet(size: int = size) -> tuple[ProfileReport, float]:
                model, prep = _timed(lambda: mobilenet_model(models, device))
                per_size = dataclasses.replace(settings, input_dims={"height": size, "width": size})
                return _profile(
                    model, per_size, prepare_s=prep, batch_size=1, throughput=throughput
                )

            jobs.append(_Job("mobilenetv2", device, str(size), f"{size}x{size}", run_mobilenet))
    return jobs


def _run_job(job: _Job) -> SuiteEntry:
    start = time.perf_counter()
    base: dict[str, Any] = {
        "table": job.table,
        "device": job.device,
        "key": job.key,
        "label": job.label,
    }
    try:
        report, prepare_s = job.run()
    except Skip as exc:
        return SuiteEntry(**base, status=SKIPPED, reason=str(exc))
    except FrameworkNotInstalledError as exc:
        return SuiteEntry(**base, status=SKIPPED, reason=f"not installed: {one_line(str(exc))}")
    except Exception as exc:
        logger.warning("%s %s failed: %s", job.device, job.label, exc, exc_info=True)
        return SuiteEntry(
            **base, status=FAILED, reason=failure_reason(exc), elapsed_s=time.perf_counter() - start
        )
    return SuiteEntry(
        **base,
        status=OK,
        report=report,
        prepare_s=prepare_s,
        elapsed_s=time.perf_counter() - start,
    )


def run_suite(
    config: SuiteConfig | None = None, *, progress: Progress | None = None
) -> SuiteResult:
    """Runs the benchmark suite.

    Args:
        config: What to run (default: everything, full settings, the CPU plus CUDA if present).
        progress: Called with a line per step (which entry, elapsed time), for a user to watch.

    Returns:
        The result. An entry that fails is recorded with its reason; Ctrl-C ends the run with
        ``interrupted`` set and the entries finished before it.

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
    entries: list[SuiteEntry] = []
    environments: dict[str, Environment] = {}
    interrupted = False
    try:
        with work_folder(config.work_dir) as folder:
            artifacts = Artifacts(folder)
            models = Models(config, artifacts)
            for device in devices:
                environments[device] = collect_environment(
                    cuda_device=0 if device == "cuda" else None
                )
            jobs = [job for device in devices for job in _jobs(config, models, device)]
            for number, job in enumerate(jobs, 1):
                say(
                    f"[{number}/{len(jobs)}] {job.device} {_TABLE_NAMES[job.table]} {job.label} "
                    f"(elapsed {time.perf_counter() - start:.0f} s)"
                )
                entry = _run_job(job)
                entries.append(entry)
                say(f"[{number}/{len(jobs)}] {done_line(entry)}")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: keeping the entries finished so far")
    return SuiteResult(
        entries=tuple(entries),
        environments=environments,
        config=config.to_dict(),
        settings=settings_dict(settings),
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
        busy_cpus=load,
    )
