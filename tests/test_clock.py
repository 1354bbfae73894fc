from __future__ import annotations

import itertools
import time

import pyinfer


def test_now_ns_is_the_monotonic_clock() -> None:
    # Python's time.monotonic_ns reads the same CLOCK_MONOTONIC: ours must fall between two reads.
    before = time.monotonic_ns()
    ours = pyinfer.now_ns()
    after = time.monotonic_ns()
    assert before <= ours <= after


def test_now_ns_never_goes_back() -> None:
    reads = [pyinfer.now_ns() for _ in range(10_000)]
    assert all(b >= a for a, b in itertools.pairwise(reads))
    assert reads[-1] > reads[0]


def test_now_ns_measures_a_sleep() -> None:
    start = pyinfer.now_ns()
    time.sleep(0.02)
    elapsed = pyinfer.now_ns() - start
    assert 20_000_000 <= elapsed < 2_000_000_000


def test_clock_info_describes_the_clock() -> None:
    info = pyinfer.clock_info()
    assert info.source == "clock_gettime(CLOCK_MONOTONIC)"
    assert info.kernel_clocksource  # "tsc", "kvm-clock", ... or "unknown"
    assert 0 < info.resolution_ns <= 1_000_000
    # A read costs more than nothing and far less than a millisecond on any sane system.
    assert 0 < info.read_cost_ns < 1_000_000
    assert info.min_step_ns >= 0
    as_dict = info.to_dict()
    assert as_dict["source"] == info.source
    assert as_dict["read_cost_ns"] == info.read_cost_ns
    assert set(as_dict) == {
        "source",
        "kernel_clocksource",
        "resolution_ns",
        "read_cost_ns",
        "min_step_ns",
        "timed_loop_clock",
        "timed_loop_read_cost_ns",
    }
    assert 0 < info.timed_loop_read_cost_ns < 1_000_000
    if info.kernel_clocksource != "tsc":
        assert info.timed_loop_clock == "clock_gettime(CLOCK_MONOTONIC)"
    else:  # rdtsc where the CPU says the TSC is invariant, else the same fallback
        assert info.timed_loop_clock.startswith(("rdtsc (invariant TSC", "clock_gettime"))
    assert "ClockInfo(source=" in repr(info)
