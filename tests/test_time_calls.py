from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import pyinfer
from pyinfer.errors import InvalidArgumentError


def test_returns_exactly_the_requested_count_and_calls_warmup_first() -> None:
    calls: list[int] = []
    recorder = pyinfer.time_calls(lambda: calls.append(1), 1234, warmup=17)
    assert recorder.count == 1234
    assert len(recorder.samples()) == 1234
    assert len(calls) == 1234 + 17
    assert not recorder.is_histogram


def test_durations_match_a_callable_that_sleeps_a_known_time() -> None:
    sleep_s = 0.005
    recorder = pyinfer.time_calls(lambda: time.sleep(sleep_s), 20, warmup=1)
    samples = recorder.samples()
    # A sleep never returns early; scheduling can only make it longer.
    assert samples.min() >= sleep_s * 1e9
    assert np.median(samples) < sleep_s * 1e9 * 3
    summary = recorder.summary()
    assert summary.count == 20
    assert summary.min == samples.min()


def test_durations_are_consistent_with_the_host_clock() -> None:
    start = pyinfer.now_ns()
    recorder = pyinfer.time_calls(lambda: sum(range(2000)), 500)
    wall = pyinfer.now_ns() - start
    total = float(recorder.samples().sum())
    assert 0 < total <= wall


def test_a_noop_sample_is_small() -> None:
    recorder = pyinfer.time_calls(lambda: None, 10_000, warmup=100)
    # The call plus one clock read: well under 10 us even on a loaded machine.
    assert recorder.summary().percentile(50) < 10_000


def test_works_with_builtin_callables_and_objects_with_call() -> None:
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def __call__(self) -> int:
            self.n += 1
            return self.n

    counter = Counter()
    assert pyinfer.time_calls(counter, 10).count == 10
    assert counter.n == 10
    assert pyinfer.time_calls(dict, 5).count == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fn": 42, "iterations": 1}, "fn must be callable, got an object of type int"),
        ({"fn": lambda: None, "iterations": 0}, "iterations must be at least 1, got 0"),
        ({"fn": lambda: None, "iterations": -5}, "iterations must be at least 1, got -5"),
        ({"fn": lambda: None, "iterations": 1, "warmup": -1}, "warmup must be non-negative"),
    ],
)
def test_bad_arguments_raise_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        pyinfer.time_calls(**kwargs)  # type: ignore[arg-type]


def test_an_exception_in_fn_propagates_with_the_partial_samples() -> None:
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 8:  # 3 warm-up calls, then 4 good timed calls, then this one fails
            raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded") as info:
        pyinfer.time_calls(flaky, 100, warmup=3)
    partial = info.value.partial_recorder  # type: ignore[attr-defined]
    assert isinstance(partial, pyinfer.LatencyRecorder)
    assert partial.count == 4


def test_an_exception_during_warmup_keeps_no_samples() -> None:
    def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input") as info:
        pyinfer.time_calls(broken, 10, warmup=2)
    assert info.value.partial_recorder.count == 0  # type: ignore[attr-defined]


def test_ctrl_c_stops_a_loop_of_c_callables_and_keeps_the_samples() -> None:
    # `dict` is a C callable: Python bytecode never runs, so the loop itself must see the signal.
    # SIGALRM from a kernel timer, handled like Ctrl-C, needs no other thread to take the GIL.
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            pyinfer.time_calls(dict, 10**9)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    partial = info.value.partial_recorder  # type: ignore[attr-defined]
    assert partial.count > 0
    assert partial.count % 64 == 0  # signals are checked every 64 calls
    assert np.all(partial.samples() >= 0)


def test_other_threads_run_while_c_callables_are_timed() -> None:
    # A C callable never releases the GIL by itself; the loop must let waiting threads in,
    # or a background sampler (or a Ctrl-C sent from a thread) would starve.
    ticks: list[int] = []
    stop = threading.Event()

    def background() -> None:
        while not stop.is_set():
            ticks.append(pyinfer.now_ns())
            time.sleep(0.001)

    thread = threading.Thread(target=background)
    thread.start()
    try:
        time.sleep(0.01)
        before = len(ticks)
        pyinfer.time_calls(dict, 3_000_000)  # about half a second
        during = len(ticks) - before
    finally:
        stop.set()
        thread.join()
    assert during >= 5
