"""Noise detection: the /proc readers on fake trees, the monitor with injected readers and a fake
clock (exact figures), the record's lines and warning, and the issue's acceptance test: a busy
loop on one core while the profiler measures is flagged, every time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyinfer import cli
from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings
from pyinfer.profiling.noise import (
    MIN_JUDGED_TICKS,
    BusyProcess,
    CpuTimes,
    NoiseMonitor,
    busiest_processes,
    read_cpu_times,
    read_load_average,
    read_own_cpu_ticks,
    read_process_ticks,
    sample_machine,
)
from pyinfer.report import ProfileReport
from pyinfer.report.noise import (
    BUSY_CPUS,
    STEAL_PERCENT,
    NoiseReading,
    combine_readings,
    noise_reasons,
    noise_warning,
)
from pyinfer.report.text import noise_lines
from pyinfer.suite import busy as suite_busy

SLOWER = "the timings are slower and noisier than the model"

# ---- the readers on a fake /proc ---------------------------------------------------------------

STAT = """\
cpu  1000 10 200 5000 40 5 15 30 7 0
cpu0 400 5 100 2500 20 2 8 10 3 0
cpu1 500 5 90 2400 20 3 7 20 4 0
cpu3 100 0 10 100 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""


def fake_proc(root: Path, **files: str) -> Path:
    for name, text in files.items():
        path = root / "proc" / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cpu_times_sum_the_chosen_cpus_columns(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, stat=STAT)
    # busy = user + nice + system + irq + softirq; idle = idle + iowait; guest is in user.
    assert read_cpu_times([0, 1], root=root) == CpuTimes(
        busy=400 + 5 + 100 + 2 + 8 + 500 + 5 + 90 + 3 + 7,
        idle=2520 + 2420,
        steal=30,
        total=1120 + 4940 + 30,
        cpus=2,
    )
    assert read_cpu_times([1, 7], root=root) == CpuTimes(605, 2420, 20, 3045, 1)
    # No chosen CPU is there (or none asked): the machine's line, over every CPU listed.
    assert read_cpu_times([7], root=root) == CpuTimes(1230, 5040, 30, 6300, 3)
    assert read_cpu_times(None, root=root) == CpuTimes(1230, 5040, 30, 6300, 3)


def test_cpu_times_of_an_old_kernel_without_steal_and_of_no_proc(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, stat="cpu  10 0 5 100 1\ncpu0 10 0 5 100 1\nintr 1\n")
    assert read_cpu_times([0], root=root) == CpuTimes(15, 101, 0, 116, 1)
    assert read_cpu_times([0], root=tmp_path / "nothing") is None
    garbled = fake_proc(tmp_path / "g", stat="cpu  a b c d e\ncpu0 1 2\n")
    assert read_cpu_times([0], root=garbled) is None


def test_own_ticks_load_average_and_processes(tmp_path: Path) -> None:
    # A command name with spaces and parentheses: the fields are counted after the last ')'.
    line = "42 (my (odd) name) R 1 42 42 0 -1 4194304 100 0 0 0 {utime} {stime} 0 0 20 0 3 0\n"
    root = fake_proc(
        tmp_path,
        self__stat=line.format(utime=250, stime=50),
        loadavg="1.52 0.80 0.40 3/120 999\n",
        **{"42__stat": line.format(utime=250, stime=50)},
        **{"7__stat": "7 (spin) R 1 7 7 0 -1 0 0 0 0 0 900 100 0 0\n"},
        **{"8__stat": "8 (truncated) R\n"},
        **{"sys__x": "not a process\n"},
    )
    assert read_own_cpu_ticks(root=root) == 300
    assert read_load_average(root=root) == 1.52
    assert read_process_ticks(root=root) == {42: ("my (odd) name", 300), 7: ("spin", 1000)}
    empty = tmp_path / "empty"
    assert (read_own_cpu_ticks(root=empty), read_load_average(root=empty)) == (None, None)
    assert read_process_ticks(root=empty) == {}


def test_the_busiest_processes_over_a_sample() -> None:
    before = {1: ("a", 100), 2: ("b", 0), 3: ("me", 0), 4: ("idle", 50), 6: ("gone", 0)}
    after = {1: ("a", 150), 2: ("b", 100), 3: ("me", 100), 4: ("idle", 52), 5: ("new", 80)}
    # 100 ticks a second, over 1 s: b took a whole CPU, a half; 'idle' (0.02) is under 0.05.
    assert busiest_processes(before, after, 1.0, ticks_per_s=100, exclude={3}) == [
        BusyProcess(2, "b", 1.0),
        BusyProcess(1, "a", 0.5),
    ]
    assert busiest_processes(before, after, 1.0, ticks_per_s=100, top=1) == [
        BusyProcess(2, "b", 1.0)
    ]
    assert busiest_processes(before, after, 0.0) == []


# ---- the monitor with injected readers ---------------------------------------------------------


class FakeMachine:
    """Readers over scripted samples: each sample advances the clock and the tick counters."""

    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.now = 0.0
        self.busy = self.idle = self.steal = self.own = 0
        self.load: float | None = 0.5
        self.fail: Exception | None = None

    def advance(
        self, seconds: float, *, own: float, other: float, steal: float = 0.0, hz: int = 100
    ) -> None:
        """``seconds`` pass; this process keeps ``own`` CPUs busy, others ``other`` CPUs."""
        ticks = round(seconds * hz * self.cpus)
        self.now += seconds
        own_ticks = round(seconds * hz * own)
        other_ticks = round(seconds * hz * other)
        steal_ticks = round(ticks * steal / 100)
        self.own += own_ticks
        self.busy += own_ticks + other_ticks
        self.steal += steal_ticks
        self.idle += ticks - own_ticks - other_ticks - steal_ticks

    def read_cpu(self) -> CpuTimes | None:
        if self.fail is not None:
            raise self.fail
        total = self.busy + self.idle + self.steal
        return CpuTimes(self.busy, self.idle, self.steal, total, self.cpus)

    def monitor(self, **kwargs: Any) -> NoiseMonitor:
        return NoiseMonitor(
            clock=lambda: self.now,
            read_cpu=self.read_cpu,
            read_own=lambda: self.own,
            read_load=lambda: self.load,
            thread=False,
            **kwargs,
        )


def test_a_quiet_run_reads_its_figures_exactly() -> None:
    machine = FakeMachine()
    with machine.monitor() as monitor:
        for load in (0.6, 0.9, 0.7):
            machine.advance(0.2, own=1.0, other=0.1)
            machine.load = load
            monitor.sample()
        machine.advance(0.2, own=1.0, other=0.1)
    assert monitor.reading() == NoiseReading(
        duration_s=pytest.approx(0.8),  # type: ignore[arg-type]
        samples=5,
        other_cpus_busy=0.1,
        other_cpus_busy_max=0.1,
        load_average_max=0.9,
        steal_percent=0.0,
        noisy=False,
        reasons=(),
        cpus=2,
    )


def test_other_processes_busy_make_the_run_noisy_with_the_figures() -> None:
    machine = FakeMachine()
    with machine.monitor() as monitor:
        machine.advance(0.2, own=1.0, other=0.2)
        monitor.sample()
        machine.advance(0.2, own=1.0, other=1.0)  # a busy loop started
        monitor.sample()
        machine.advance(0.6, own=1.0, other=0.8)
    reading = monitor.reading()
    # Over the window: (0.2*0.2 + 0.2*1.0 + 0.6*0.8) / 1.0 = 0.72 CPUs; the highest interval 1.0.
    assert (reading.other_cpus_busy, reading.other_cpus_busy_max) == (0.72, 1.0)
    assert reading.noisy
    assert reading.reasons == (
        "other processes kept 0.72 of 2 CPUs busy on average (max 1.00) while the latency "
        f"was measured: {SLOWER}",
    )


def test_steal_makes_the_run_noisy() -> None:
    machine = FakeMachine(cpus=4)
    with machine.monitor(during="over 1 s just now") as monitor:
        machine.advance(1.0, own=0.0, other=0.0, steal=3.0)
    reading = monitor.reading()
    assert (reading.other_cpus_busy, reading.steal_percent, reading.cpus) == (0.0, 3.0, 4)
    assert reading.reasons == (
        "the hypervisor gave 3.0% of the CPUs' time to other virtual machines (CPU steal) "
        f"over 1 s just now: {SLOWER}",
    )


def test_our_own_threads_are_not_counted_and_small_negatives_clamp_to_zero() -> None:
    machine = FakeMachine()
    with machine.monitor() as monitor:
        machine.advance(0.5, own=2.0, other=0.0)
        machine.own += 3  # the process's counters ran a few ticks ahead of the CPUs'
    reading = monitor.reading()
    assert (reading.other_cpus_busy, reading.noisy) == (0.0, False)


def test_a_window_too_short_for_the_tick_counters_is_shown_but_not_judged() -> None:
    machine = FakeMachine()
    seconds = (MIN_JUDGED_TICKS - 1) / 100
    with machine.monitor() as monitor:
        machine.advance(seconds, own=0.0, other=2.0)
    reading = monitor.reading()
    assert (reading.other_cpus_busy, reading.noisy, reading.reasons) == (2.0, False, ())
    with machine.monitor() as monitor:
        machine.advance(MIN_JUDGED_TICKS / 100, own=0.0, other=2.0)
    assert monitor.reading().noisy


def test_no_tick_passing_gives_no_figures() -> None:
    machine = FakeMachine()
    with machine.monitor() as monitor:
        pass
    reading = monitor.reading()
    assert reading == NoiseReading(0.0, 2, None, None, 0.5, None, False, (), 2)


def test_without_proc_the_figures_are_none_and_nothing_is_raised() -> None:
    monitor = NoiseMonitor(root=Path("/nonexistent"), thread=False)
    with monitor:
        pass
    reading = monitor.reading()
    assert reading.samples == 0
    assert (reading.other_cpus_busy, reading.other_cpus_busy_max) == (None, None)
    assert (reading.load_average_max, reading.steal_percent, reading.noisy) == (None, None, False)
    assert reading.summary() == f"not measured (0 samples over {reading.duration_s:.2f} s)"


def test_a_failing_reader_stops_sampling_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = FakeMachine()
    caplog.set_level("DEBUG", logger="pyinfer.profiling.noise")
    with machine.monitor() as monitor:
        machine.advance(0.5, own=1.0, other=1.0)
        assert monitor.sample()
        machine.fail = PermissionError("no /proc for you")
        machine.advance(0.5, own=1.0, other=0.0)
        assert not monitor.sample()
        machine.fail = None
        assert not monitor.sample()  # stopped for good
    reading = monitor.reading()
    assert (reading.samples, reading.other_cpus_busy) == (2, 1.0)  # the samples before it
    assert "noise sampling stopped: no /proc for you" in caplog.text


def test_the_thread_samples_while_the_measurement_runs() -> None:
    with NoiseMonitor(interval_s=0.02) as monitor:
        time.sleep(0.3)
    reading = monitor.reading()
    assert reading.samples >= 4  # start, end and the thread's in between
    assert reading.duration_s >= 0.3
    assert not [t for t in threading.enumerate() if t.name == "pyinfer-noise"]


# ---- the record: reasons, summary, warning, combination ----------------------------------------


NOISY = NoiseReading(
    duration_s=2.5,
    samples=14,
    other_cpus_busy=0.97,
    other_cpus_busy_max=1.0,
    load_average_max=2.3,
    steal_percent=0.4,
    noisy=True,
    reasons=(
        "other processes kept 0.97 of 2 CPUs busy on average (max 1.00) while the latency was "
        f"measured: {SLOWER}",
    ),
    cpus=2,
)
QUIET = NoiseReading(1.5, 9, 0.03, 0.1, 0.4, 0.0, False, (), 2)


def test_the_thresholds_judge_at_their_values() -> None:
    quiet = noise_reasons(cpus=2, other_cpus_busy=0.49, other_cpus_busy_max=0.9, steal_percent=1.99)
    assert quiet == ()
    both = noise_reasons(
        cpus=0, other_cpus_busy=BUSY_CPUS, other_cpus_busy_max=None, steal_percent=STEAL_PERCENT
    )
    assert both == (
        f"other processes kept 0.50 CPUs busy on average while the latency was measured: {SLOWER}",
        "the hypervisor gave 2.0% of the CPUs' time to other virtual machines (CPU steal) while "
        f"the latency was measured: {SLOWER}",
    )


def test_the_summary_and_the_warning() -> None:
    assert QUIET.summary() == (
        "other processes kept 0.03 of 2 CPUs busy on average (max 0.10), CPU steal 0.0%, load "
        "average up to 0.40, 9 samples over 1.50 s"
    )
    assert noise_warning(QUIET) == noise_warning(None) == ""
    assert noise_warning(NOISY, "mnv2.onnx: ") == (
        f"warning: mnv2.onnx: {NOISY.reasons[0]}\n"
        "warning: run `pyinfer env --check` for what makes timings noisy here and how to fix it"
    )


def test_noisy_runs_make_one_line_per_kind_of_noise_naming_the_runs() -> None:
    busy = replace(NOISY, duration_s=1.0, other_cpus_busy=0.6, other_cpus_busy_max=0.8)
    stolen = replace(QUIET, steal_percent=5.0, noisy=True, reasons=("steal",))
    combined = combine_readings([NOISY, QUIET, busy, stolen, NOISY])
    assert combined is not None
    # The busy runs' own average, weighted by duration: (0.97 * 2.5 * 2 + 0.6) / 6.
    assert combined.reasons == (
        "other processes kept 0.91 of 2 CPUs busy on average (max 1.00) while runs 1, 3 and 5 "
        f"of 5 measured the latency: {SLOWER}",
        "the hypervisor gave 5.0% of the CPUs' time to other virtual machines (CPU steal) "
        f"while run 4 of 5 measured the latency: {SLOWER}",
    )
    every = combine_readings([NOISY, NOISY])
    assert every is not None
    assert every.reasons == (
        "other processes kept 0.97 of 2 CPUs busy on average (max 1.00) while all 2 runs "
        f"measured the latency: {SLOWER}",
    )
    alone = combine_readings([NOISY])
    assert alone is not None
    assert alone.reasons == NOISY.reasons
    # Noisy on grounds other than load and steal: the run's own words, numbered.
    other = replace(QUIET, noisy=True, reasons=("the clock jumped",))
    odd = combine_readings([QUIET, other])
    assert odd is not None
    assert odd.reasons == ("run 2: the clock jumped",)


def test_readings_of_several_runs_combine() -> None:
    assert combine_readings([]) is None
    assert combine_readings([None, None]) is None
    combined = combine_readings([QUIET, None, NOISY])
    assert combined == NoiseReading(
        duration_s=4.0,
        samples=23,
        other_cpus_busy=pytest.approx((0.03 * 1.5 + 0.97 * 2.5) / 4.0),  # type: ignore[arg-type]
        other_cpus_busy_max=1.0,
        load_average_max=2.3,
        steal_percent=pytest.approx(0.25),  # type: ignore[arg-type]
        noisy=True,
        reasons=(
            "other processes kept 0.97 of 2 CPUs busy on average (max 1.00) while run 3 of 3 "
            f"measured the latency: {SLOWER}",
        ),
        cpus=2,
    )
    unmeasured = replace(QUIET, other_cpus_busy=None, steal_percent=None, duration_s=0.0)
    alone = combine_readings([unmeasured, replace(unmeasured, cpus=4)])
    assert alone is not None
    assert (alone.other_cpus_busy, alone.steal_percent, alone.cpus) == (None, None, 4)
    zero = combine_readings([replace(QUIET, duration_s=0.0), replace(NOISY, duration_s=0.0)])
    assert zero is not None
    assert zero.other_cpus_busy == pytest.approx(0.5)


def test_the_details_block_shows_the_load_and_a_warning_per_reason() -> None:
    from tests.test_report import make_report

    assert noise_lines(make_report()) == []
    assert noise_lines(make_report(noise=QUIET)) == [f"  Machine load: {QUIET.summary()}"]
    report = make_report(noise=NOISY)
    assert noise_lines(report) == [
        f"  Machine load: {NOISY.summary()}",
        f"  Warning: {NOISY.reasons[0]}",
    ]
    lines = report.to_text().splitlines()
    assert lines[-2:] == noise_lines(report)  # at the end of the Details block
    assert ProfileReport.from_json(report.to_json()) == report


def test_the_suite_uses_the_same_threshold_and_reader() -> None:
    assert suite_busy.BUSY_CPUS is BUSY_CPUS
    times = read_cpu_times()
    if times is None:  # pragma: no cover - not Linux
        pytest.skip("no /proc/stat")
    total, idle = suite_busy._cpu_times() or (0, 0)
    assert total >= times.total
    assert idle >= times.idle


def test_sample_machine_names_the_busiest_processes(tmp_path: Path) -> None:
    line = "{pid} ({name}) R 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0\n"
    state = {"busy": 0, "idle": 20_000, "ticks": 0, "now": 0.0}

    def write() -> None:
        busy, idle = state["busy"], state["idle"]
        fake_proc(
            tmp_path,
            stat=f"cpu  {busy} 0 0 {idle} 0 0 0 0\ncpu0 0 0 0 0 0\ncpu1 0 0 0 0 0\nintr 0\n",
            self__stat=line.format(pid=1, name="me", ticks=0),
            loadavg="1.00 1 1 1/1 1\n",
            **{"5__stat": line.format(pid=5, name="spin", ticks=state["ticks"])},
        )

    def sleep(seconds: float) -> None:
        # 0.5 s on 2 CPUs at 100 ticks a second: 100 ticks, of which spin took 50 (one CPU).
        state["busy"] += 50
        state["idle"] += 50
        state["ticks"] += 50
        state["now"] += seconds
        write()

    write()
    reading, busiest = sample_machine(
        0.5, root=tmp_path, cpus=[9], sleep=sleep, clock=lambda: float(state["now"])
    )
    assert busiest == [BusyProcess(5, "spin", 1.0)]
    assert (reading.samples, reading.cpus, reading.other_cpus_busy) == (2, 2, 1.0)
    assert reading.reasons[0].endswith(f"over 0.5 s just now: {SLOWER}")


# ---- the acceptance test: a busy loop on one core is flagged, every time -----------------


class SpinModel(Model):
    """A model whose call busy-waits 1 ms: it keeps one CPU busy, no framework needed."""

    def __init__(self) -> None:
        super().__init__(
            name="spin",
            format=ModelFormat.ONNX,
            framework="numpy",
            device=Device("cpu"),
            path=None,
            inputs=[TensorSpec("x", ("batch", 4))],
            outputs=[TensorSpec("y", ("batch", 4))],
            parameter_count=1,
            parameter_bytes=4,
        )

    def to_native(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return dict(inputs)

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        end = time.perf_counter_ns() + 1_000_000
        while time.perf_counter_ns() < end:
            pass
        return {"y": inputs["x"]}

    def to_numpy(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in outputs.items()}


ONE_SECOND = ProfilerSettings(
    warmup_iterations=3,
    warmup_until_settled=False,
    min_iterations=20,
    min_time_s=1.0,
    max_time_s=1.0,
    throughput_time_s=0.05,
)


@pytest.fixture
def busy_loop() -> Iterator[int]:
    """Another process spinning on a CPU (it says when it has started)."""
    code = "import sys; print('spinning', flush=True)\nwhile True: pass"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "spinning\n"
        yield process.pid
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc (Linux)")
def test_a_busy_loop_on_one_core_is_flagged_every_time(busy_loop: int) -> None:
    # The model keeps one CPU busy (one thread spinning) and the loop another: both CPUs of a
    # 2-core machine are then busy, at most one of them with this process's work, so the other
    # processes (the loop, and whatever else runs) take a whole CPU; with more cores the loop
    # has one to itself.
    for _ in range(3):
        report = PerformanceProfiler(SpinModel(), ONE_SECOND).profile(
            memory=False, throughput=False
        )
        noise = report.noise
        assert noise is not None
        assert noise.noisy, noise
        assert noise.reasons[0].startswith("other processes kept ")
        assert noise.reasons[0].endswith(f"while the latency was measured: {SLOWER}")
        assert f"  Warning: {noise.reasons[0]}" in report.to_text().splitlines()
        assert noise.duration_s >= 1.0
        assert noise.samples >= 4  # start, end, and the thread's every 0.2 s


def test_a_quiet_or_busy_run_reads_consistently() -> None:
    """Without load of our own making the machine may still be busy (CI): check the structure."""
    report = PerformanceProfiler(SpinModel(), replace(ONE_SECOND, min_time_s=0.5)).profile(
        memory=False, throughput=False
    )
    noise = report.noise
    assert noise is not None
    if not Path("/proc/stat").exists():  # pragma: no cover - not Linux
        assert (noise.other_cpus_busy, noise.noisy) == (None, False)
        return
    assert noise.cpus == len(os.sched_getaffinity(0))
    assert noise.other_cpus_busy is not None
    assert noise.other_cpus_busy_max is not None
    assert 0.0 <= noise.other_cpus_busy <= noise.other_cpus_busy_max <= noise.cpus
    assert noise.steal_percent is not None
    assert 0.0 <= noise.steal_percent <= 100.0
    assert noise.samples >= 3
    assert noise.duration_s >= 0.5
    assert noise.noisy == bool(noise.reasons)
    assert noise.noisy == (noise.other_cpus_busy >= BUSY_CPUS or noise.steal_percent >= 2.0)
    assert f"  Machine load: {noise.summary()}" in report.to_text().splitlines()
    assert ProfileReport.from_json(report.to_json()).noise == noise


def test_a_sweep_after_the_latency_keeps_the_latencys_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter(
        [replace(QUIET, samples=n) for n in (1, 2, 3)]  # latency, then one per sweep point
    )

    class Scripted(NoiseMonitor):
        def reading(self) -> NoiseReading:
            return next(readings)

    monkeypatch.setattr("pyinfer.profiling.profiler.NoiseMonitor", Scripted)
    settings = replace(ONE_SECOND, min_time_s=0.01, max_time_s=0.05)
    profiler = PerformanceProfiler(SpinModel(), settings)
    report = profiler.profile(batch_sizes=[1, 2], memory=False, throughput=False)
    assert report.noise is not None
    assert report.noise.samples == 1
    assert profiler.latency_noise is not None
    assert profiler.latency_noise.samples == 3


# ---- pyinfer profile warns on stderr ------------------------------------------------------------


def test_profile_warns_on_stderr_and_keeps_its_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module
    from tests.test_docs import _tiny_onnx

    onnx = require_module("onnx")
    require_module("onnxruntime")
    path = tmp_path / "model.onnx"
    _tiny_onnx(onnx, path)

    class Noisy(NoiseMonitor):
        def reading(self) -> NoiseReading:
            return NOISY

    monkeypatch.setattr("pyinfer.profiling.profiler.NoiseMonitor", Noisy)
    # One run, in this process, where the monitor is the stand-in (workers are fresh processes).
    argv = ["profile", str(path), "--repeat", "1", "--no-memory", "--warmup", "2"]
    argv += ["--iterations", "30"]
    argv += ["--stability", "99%"]
    code = cli.main([*argv, "--throughput-time", "0.1", "--json", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert code == 0
    assert f"  Warning: {NOISY.reasons[0]}" in captured.out.splitlines()
    assert captured.err == (f"{noise_warning(NOISY)}\nwrote JSON report to {tmp_path / 'r.json'}\n")
    assert ProfileReport.load(tmp_path / "r.json").noise == NOISY
