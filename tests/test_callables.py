"""Timing a plain callable: profile_callable, PerformanceProfiler(fn), the adapter, its errors
and its repetitions in one process."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import InferenceError, InvalidArgumentError, OutOfMemoryError
from pyinfer.profiling import CallableModel, PerformanceProfiler
from pyinfer.profiling.callables import IN_PROCESS_RUNS, process_loader, qualified_name
from pyinfer.profiling.code_timing import profile_callable
from pyinfer.report import LatencyStats, ProfileReport

from ._settings import FAST_RUNS


class Counter:
    """A callable that counts its calls and keeps the arguments of the last one."""

    def __init__(self, fail_on: int | None = None, error: Exception | None = None) -> None:
        self.calls = 0
        self.last: tuple[tuple[object, ...], dict[str, object]] | None = None
        self.fail_on = fail_on
        self.error = error or ValueError("the input ran out")

    def __reduce__(self) -> str:
        # It counts the calls of this process: refusing to pickle keeps its repetitions here.
        raise TypeError("a Counter counts the calls of this process")

    def __call__(self, *args: object, **kwargs: object) -> int:
        self.calls += 1
        self.last = (args, kwargs)
        if self.calls == self.fail_on:
            raise self.error
        return self.calls


def module_level_work(x: int) -> int:
    return x + 1


def test_every_call_is_counted_once_and_gets_the_arguments() -> None:
    fn = Counter()
    report = profile_callable(fn, 3, "a", settings=FAST_RUNS, scale=2.5)
    lat = report.latency
    # The first call (cold start), the warm-up, then the timed calls: nothing else.
    assert fn.calls == 1 + lat.warmup_iterations + lat.iterations
    assert lat.warmup_iterations == FAST_RUNS.warmup_iterations
    assert FAST_RUNS.min_iterations <= lat.iterations <= FAST_RUNS.max_iterations
    assert fn.last == ((3, "a"), {"scale": 2.5})
    assert report.memory is None
    assert report.throughput is None
    assert report.cold_start.first_inference_ms is not None
    assert report.cold_start.load_time_s is None


def test_the_report_names_the_callable_and_holds_its_samples_statistics() -> None:
    report = profile_callable(module_level_work, 1, settings=FAST_RUNS)
    assert report.model == f"{module_level_work.__module__}.module_level_work"
    assert (report.format, report.framework, report.device) == ("python", "python", "cpu")
    assert report.device_name.startswith("CPU (")
    assert report.latency.stats == LatencyStats.from_samples_ns(report.latency.samples_ns)
    assert report.latency.timing_method.startswith("host timed loop")
    text = report.to_text()
    assert f"Model: {report.model}\n" in text
    assert ProfileReport.from_json(report.to_json()) == report


def test_a_sleeping_callable_is_timed_at_least_as_long_as_it_sleeps() -> None:
    report = profile_callable(time.sleep, 0.002, settings=FAST_RUNS)
    assert report.model == "time.sleep"
    assert report.latency.stats.min_ms >= 2.0  # sleep never returns early


def test_a_named_report_and_array_arguments_in_the_input_shape() -> None:
    x = np.zeros((4, 8), dtype=np.float32)
    report = profile_callable(np.add, x, 1.0, settings=FAST_RUNS, name="add one", out=x)
    assert report.model == "add one"
    assert report.input_shapes == {"arg0": (4, 8), "out": (4, 8)}
    assert report.input_dtypes == {"arg0": "float32", "out": "float32"}
    assert report.label == "python (FP32)"


def test_the_timed_call_is_the_bare_callable_or_its_partial() -> None:
    fn = Counter()
    assert CallableModel(fn).prepared_call().call is fn
    call = CallableModel(fn, (1,), {"k": 2}).prepared_call().call
    assert isinstance(call, functools.partial)
    assert (call.func, call.args, call.keywords) == (fn, (1,), {"k": 2})


def test_qualified_names() -> None:
    def local() -> None:
        pass

    assert qualified_name(local) == (f"{__name__}.test_qualified_names.<locals>.local")
    assert qualified_name(
        functools.partial(
            functools.partial(local),
        )
    ) == qualified_name(local)
    assert qualified_name(Counter()) == f"{__name__}.Counter.__call__"
    assert qualified_name(len) == "len"
    assert qualified_name(np.sort) == "numpy.sort"


def test_the_profiler_takes_a_callable_and_measures_what_it_can() -> None:
    fn = Counter()
    profiler = PerformanceProfiler(fn, FAST_RUNS)
    assert isinstance(profiler.model, CallableModel)
    assert profiler.model.name == f"{__name__}.Counter.__call__"
    report = profiler.profile()
    assert report.memory is not None
    assert report.memory.parameter_bytes == 0
    assert report.throughput is not None
    assert report.throughput.calls >= 5
    assert fn.calls > report.latency.iterations


def test_a_model_is_still_a_model_not_a_callable() -> None:
    # Model defines __call__; it must keep the model path (checked through its type).
    class Engine:
        def __init__(self, model: CallableModel) -> None:
            self.model = model

        def __call__(self) -> None:  # an engine may be callable: its .model wins
            raise AssertionError("the engine itself must not be timed")

    inner = CallableModel(Counter())
    assert PerformanceProfiler(Engine(inner)).model is inner
    assert PerformanceProfiler(inner).model is inner


def test_not_a_callable_is_refused_with_what_was_given() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=re.escape(
            "PerformanceProfiler needs a pyinfer Model (from load_model), an object with a "
            "'.model' that is one, or a callable to time, not int"
        ),
    ):
        PerformanceProfiler(3)
    with pytest.raises(
        InvalidArgumentError,
        match=re.escape(
            "pyinfer times a callable (a function, a method, a functools.partial...), not "
            "str 'not code'"
        ),
    ):
        profile_callable("not code")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="name must be a non-empty string, got ''"):
        profile_callable(len, "x", name="")


def test_a_callable_that_raises_on_its_first_call() -> None:
    def broken() -> float:
        return 1 / 0

    with pytest.raises(InferenceError) as info:
        profile_callable(broken, settings=FAST_RUNS)
    assert str(info.value) == (
        f"callable '{__name__}.test_a_callable_that_raises_on_its_first_call.<locals>.broken' "
        "raised on its first call: ZeroDivisionError: division by zero; pyinfer times code "
        "that runs without error with the arguments given"
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_callable_that_raises_later_while_timed() -> None:
    fn = Counter(fail_on=5)
    with pytest.raises(
        InferenceError, match=re.escape("raised while it was timed: ValueError: the input ran out")
    ) as info:
        profile_callable(fn, settings=FAST_RUNS, name="reader")
    assert str(info.value).startswith("callable 'reader' raised while it was timed")
    assert isinstance(info.value.__cause__, ValueError)
    assert fn.calls == 5


def test_pyinfer_errors_and_out_of_memory_keep_their_type() -> None:
    own = InvalidArgumentError("bad size")
    with pytest.raises(InvalidArgumentError, match=r"^bad size$"):
        profile_callable(Counter(fail_on=1, error=own), settings=FAST_RUNS)
    with pytest.raises(OutOfMemoryError):
        profile_callable(Counter(fail_on=2, error=MemoryError("no room")), settings=FAST_RUNS)


def test_a_sweep_of_a_callable_is_refused() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=re.escape(
            "callable 'len' takes no batch, so it has no batch-size sweep; sweep a model, or "
            "time the callable once per size"
        ),
    ):
        PerformanceProfiler(CallableModel(len, ("ab",))).profile(batch_sizes=[1, 2])


def test_repetitions_of_a_callable_run_in_this_process_and_say_so() -> None:
    fn = Counter()
    report = profile_callable(fn, settings=dataclasses.replace(FAST_RUNS, repetitions=3))
    reps = report.repetitions
    assert reps is not None
    assert reps.count == 3
    assert reps.method.endswith(IN_PROCESS_RUNS)
    # Later runs make as many timed calls as the first; the pooled samples are all of them.
    assert len({r.samples for r in reps.runs}) == 1
    assert report.latency.iterations == sum(r.samples for r in reps.runs)
    assert fn.calls == 3 + report.latency.warmup_iterations + report.latency.iterations
    assert "  Runs: 3 in one process; medians " in report.to_text()


def test_the_names_are_exported_from_pyinfer() -> None:
    assert pyinfer.profile_callable is profile_callable
    assert pyinfer.measure is pyinfer.profiling.measure
    assert {"measure", "profile_callable"} <= set(pyinfer.__all__)


DOC = Path(__file__).resolve().parents[1] / "docs" / "timing-code.md"


def doc_examples() -> list[str]:
    """The Python blocks of docs/timing-code.md, in order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize(
    ("index", "printed"),
    [
        (0, "Model: __main__.normalize\n"),
        (1, "json.dumps "),
        (
            2,
            "5 t interval over 5 run medians, log scale\n"
            "5 t interval over 5 run medians, log scale; " + IN_PROCESS_RUNS + "\n",
        ),
        (3, "1990 samples; "),
        (4, "300 calls, median "),
    ],
)
def test_the_examples_of_the_manual_run(
    index: int,
    printed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(doc_examples()[index], f"timing-code.md example {index + 1}", "exec")
    exec(code, {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert printed in out
    if index == 0:
        assert ProfileReport.load(tmp_path / "normalize.json").model == "__main__.normalize"
    if index == 4:
        assert out.endswith("True\n")


@pytest.mark.parametrize(
    ("timed_before", "kept"),
    [
        (8, [10, 10, 8]),  # Ctrl-C after 8 timed calls of run 3: its part is kept too
        (2, [10, 10]),  # after 2: too few for statistics, runs 1 and 2 only
    ],
)
def test_ctrl_c_during_a_later_run_keeps_the_runs_measured(
    timed_before: int, kept: list[int]
) -> None:
    # Each run makes 1 + 2 + 10 calls: the first (cold start), FAST_RUNS's 2 warm-up calls and
    # 10 timed ones; Ctrl-C lands in run 3's timed calls.
    settings = dataclasses.replace(FAST_RUNS, repetitions=3, max_iterations=10)
    fn = Counter(fail_on=2 * 13 + 1 + 2 + timed_before + 1, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as info:
        profile_callable(fn, settings=settings)
    partial = info.value.partial_result  # type: ignore[attr-defined]
    assert isinstance(partial, ProfileReport)
    assert partial.repetitions is not None
    assert [r.samples for r in partial.repetitions.runs] == kept
    assert partial.latency.iterations == sum(kept)


def record_pid(path: str) -> None:
    """Appends this process's id to ``path``: where a call ran."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")


def test_repetitions_of_an_importable_callable_run_in_fresh_processes(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    settings = dataclasses.replace(FAST_RUNS, repetitions=2, max_iterations=10)
    report = profile_callable(record_pid, str(pids), settings=settings)
    reps = report.repetitions
    assert reps is not None
    assert reps.count == 2
    assert "one process" not in reps.method
    assert "  Runs: 2 in fresh processes; medians " in report.to_text()
    seen = pids.read_text().split()
    assert len(seen) == 2 * (1 + 2 + 10)  # per run: first call, warm-up, timed calls
    assert len(set(seen)) == 2
    assert str(os.getpid()) not in seen


def test_what_can_be_loaded_in_a_fresh_process() -> None:
    x = np.arange(5.0)
    loader = process_loader(CallableModel(np.sort, (x,), {"kind": "stable"}, name="sort"))
    assert isinstance(loader, functools.partial)
    again = loader()
    assert isinstance(again, CallableModel)
    assert (again.function, again.kwargs, again.name) == (np.sort, {"kind": "stable"}, "sort")
    np.testing.assert_array_equal(again.args[0], x)
    assert again.fresh_processes is False  # a worker does not start workers
    assert process_loader(CallableModel(np.sort, (x,), fresh_processes=False)) is None
    assert process_loader(CallableModel(lambda: None)) is None
    assert process_loader(CallableModel(Counter())) is None
    main = type("Script", (), {"__module__": "__main__", "__call__": lambda self: None})
    assert process_loader(CallableModel(np.sort, (main,))) is None
