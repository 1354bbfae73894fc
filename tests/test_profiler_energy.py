"""Energy in the throughput run: counters read around its calls, the report's line and JSON.

A fake powercap tree whose counters the model's own calls advance by known amounts gives exact
joules; a fake NVML does the same for a model on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from tests._powercap import rapl_zone
from tests.test_profiler import FAST, FakeCudaModel, FakeEventTimer, FakeNvml, SpinModel, fast

from pyinfer import core as _core
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling import PerformanceProfiler, ProfilerSettings
from pyinfer.profiling import energy as profiling_energy
from pyinfer.profiling.energy import EnergyMeter
from pyinfer.profiling.repeat import merge_reports
from pyinfer.report import EnergyReading, ProfileReport, combine_energy
from pyinfer.report.text import report_markdown

#: What each call costs on each package: 2 J and 3 J (in microjoules).
PACKAGE_UJ = (2_000_000, 3_000_000)
#: Package 1's counter wraps here (it starts 1 J below it).
WRAP_UJ = 10**9


@pytest.fixture
def powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two packages (and a sub-zone, not added again), pointed at by the profiler's reader."""
    root = tmp_path / "powercap"
    zones = [
        rapl_zone(root, "intel-rapl:0", "package-0", 1_000_000),
        rapl_zone(root, "intel-rapl:1", "package-1", WRAP_UJ - 1_000_000),
    ]
    rapl_zone(root, "intel-rapl:0:0", "core", 5)
    monkeypatch.setattr(profiling_energy, "POWERCAP", root)
    return zones


class WattModel(SpinModel):
    """Each call spends 2 J on package 0 and 3 J on package 1 of the fake powercap tree."""

    def __init__(self, zones: list[Path]) -> None:
        super().__init__(base_ns=2e5)
        self.zones = zones

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        for zone, spent in zip(self.zones, PACKAGE_UJ, strict=True):
            counter = zone / "energy_uj"
            counter.write_text(str((int(counter.read_text()) + spent) % WRAP_UJ))
        return super().run_native(inputs)


def test_the_throughput_run_reads_joules_per_inference_and_watts(powercap: list[Path]) -> None:
    model = WattModel(powercap)
    report = PerformanceProfiler(model, FAST).profile(batch_size=4)
    tput = report.throughput
    assert tput is not None
    energy = tput.energy
    assert energy is not None
    # Only the throughput run's calls are read (the memory, latency and probe calls are not);
    # package 1 wrapped at 10**9 uJ on its first call and is undone.
    assert model.calls > tput.calls >= 5
    assert energy.source == "RAPL package-0, package-1"
    assert energy.joules == pytest.approx(5.0 * tput.calls, rel=1e-12)
    assert energy.inferences == 4 * tput.calls
    assert energy.joules_per_inference == pytest.approx(1.25, rel=1e-12)
    assert energy.seconds == tput.wall_s
    watts = 5.0 * tput.calls / tput.wall_s
    assert energy.average_watts == pytest.approx(watts, rel=1e-12)
    line = f"  Energy: 1.25 J per inference, {watts:.1f} W average over {tput.wall_s:.2f} s"
    assert f"{line} (RAPL package-0, package-1)" in report.to_text().splitlines()
    again = ProfileReport.from_json(report.to_json())
    assert again == report
    assert again.throughput is not None
    assert again.throughput.energy == energy
    assert json.loads(report.to_json())["throughput"]["energy"]["joules"] == energy.joules


def test_the_counters_are_read_twice_in_the_throughput_run_and_never_in_the_latency_run(
    powercap: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = profiling_energy.read_rapl_uj

    def counted(zones: list[Path]) -> dict[Path, int]:
        reads.append(len(zones))
        return real(zones)

    monkeypatch.setattr(profiling_energy, "read_rapl_uj", counted)
    profiler = PerformanceProfiler(WattModel(powercap), FAST)
    profiler.measure_latency()
    assert reads == []
    profiler.measure_throughput()
    assert reads == [2, 2]


def test_energy_can_be_switched_off_and_the_switch_is_checked(powercap: list[Path]) -> None:
    tput = PerformanceProfiler(WattModel(powercap), fast(energy=False)).measure_throughput()
    assert tput.energy is None
    with pytest.raises(InvalidArgumentError, match=r"^energy must be True or False, got 'no'$"):
        ProfilerSettings(energy="no")  # type: ignore[arg-type]
    assert ProfilerSettings().energy is True


def test_no_powercap_says_why_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profiling_energy, "POWERCAP", tmp_path / "none")
    report = PerformanceProfiler(SpinModel(base_ns=2e5), FAST).profile(memory=False)
    assert report.throughput is not None
    energy = report.throughput.energy
    assert energy is not None
    assert energy.joules is None
    why = f"no {tmp_path / 'none'} (no powercap support in this kernel or container)"
    assert energy.unavailable == why
    assert f"  Energy: unavailable: {why}" in report.to_text().splitlines()
    assert f"| Energy | unavailable: {why} |" in report_markdown(report).splitlines()


def test_a_counter_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    zone = tmp_path / "intel-rapl:0"
    (zone / "energy_uj").mkdir(parents=True)  # a folder: unreadable even by root
    meter = EnergyMeter(powercap_root=tmp_path)
    meter.start()
    reading = meter.stop(1.0, 10)
    assert reading.unavailable is not None
    assert reading.unavailable.startswith(f"{zone / 'energy_uj'} cannot be read: [Errno 21]")
    assert reading.text() == f"unavailable: {reading.unavailable}"


def test_a_counter_wrapping_between_the_reads_is_undone(tmp_path: Path) -> None:
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 262_143_000_000, max_uj=262_143_328_850)
    meter = EnergyMeter(powercap_root=tmp_path)
    meter.start()
    (zone / "energy_uj").write_text("671150")  # 1 J after wrapping
    reading = meter.stop(0.5, 4)
    assert reading.joules == pytest.approx(1.0, abs=1e-12)
    assert (reading.joules_per_inference, reading.average_watts) == (0.25, 2.0)
    assert reading.line() == (
        "Energy: 0.25 J per inference, 2.0 W average over 0.50 s (RAPL package-0)"
    )


class JouleNvml(FakeNvml):
    """A fake NVML with the energy counter: 1.5 J (1500 mJ) per call of the model."""

    def __init__(self) -> None:
        super().__init__(used=[500 << 20])
        self.millijoules = 80_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        return self.millijoules


class JouleCudaModel(FakeCudaModel):
    def __init__(self, nvml: JouleNvml) -> None:
        super().__init__("onnxruntime")
        self.nvml = nvml

    def run_native(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.nvml.millijoules += 1_500
        return super().run_native(inputs)


@pytest.fixture
def joule_gpu(monkeypatch: pytest.MonkeyPatch) -> JouleNvml:
    """A fake CUDA device 1, seen by NVML as GPU 5 (CUDA_VISIBLE_DEVICES=3,5)."""
    monkeypatch.setattr(_core, "CudaEventTimer", FakeEventTimer)
    monkeypatch.setattr(_core, "cuda_device_name", lambda index: f"Fake GPU {index}")
    monkeypatch.setattr(_core, "cuda_driver_version", lambda: 13000)
    monkeypatch.setattr(_core, "cuda_device_total_memory", lambda index: 80 << 20)
    nvml = JouleNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    return nvml


def test_a_gpu_model_reads_nvml_on_its_own_gpu(joule_gpu: JouleNvml) -> None:
    model = JouleCudaModel(joule_gpu)
    tput = PerformanceProfiler(model, FAST).measure_throughput(batch_size=2)
    energy = tput.energy
    assert energy is not None
    assert energy.source == "NVML GPU 5"
    assert 5 in joule_gpu.handles
    assert energy.joules == pytest.approx(1.5 * tput.calls, rel=1e-12)
    assert energy.joules_per_inference == pytest.approx(0.75, rel=1e-12)
    assert joule_gpu.open == 0  # the meter and the sampler shut NVML down


def test_a_gpu_without_the_counter_says_why(joule_gpu: JouleNvml) -> None:
    def no_counter(handle: int) -> int:
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    joule_gpu.nvmlDeviceGetTotalEnergyConsumption = no_counter  # type: ignore[method-assign]
    tput = PerformanceProfiler(JouleCudaModel(joule_gpu), FAST).measure_throughput()
    assert tput.energy is not None
    assert tput.energy.line() == (
        "Energy: unavailable: NVML has no energy counter for GPU 5: NVML_ERROR_NOT_SUPPORTED"
    )
    assert joule_gpu.open == 0


# ---- several runs, older reports -----------------------------------------------------------


def test_runs_combine_by_summing_joules_seconds_and_inferences(powercap: list[Path]) -> None:
    first = PerformanceProfiler(WattModel(powercap), FAST).profile(memory=False)
    assert first.throughput is not None
    one = EnergyReading("RAPL package-0", 10.0, 2.0, 40)
    two = EnergyReading("RAPL package-0", 30.0, 4.0, 60)
    gone = EnergyReading("RAPL", None, 1.0, 8, "no RAPL zone")
    runs = [
        dataclasses.replace(first, throughput=dataclasses.replace(first.throughput, energy=e))
        for e in (one, two, gone)
    ]
    merged = merge_reports(runs, FAST, lambda overlaps: first.environment)
    assert merged.throughput is not None
    assert merged.throughput.energy == EnergyReading("RAPL package-0", 40.0, 6.0, 100)
    assert merged.throughput.energy.joules_per_inference == 0.4  # not the mean of 0.25 and 0.5
    assert combine_energy([gone, None]) is gone
    assert combine_energy([None]) is None


def test_a_report_of_schema_1_2_loads_without_energy(powercap: list[Path]) -> None:
    report = PerformanceProfiler(WattModel(powercap), FAST).profile(memory=False)
    data = json.loads(report.to_json())
    assert data["schema_version"] == "1.3"
    del data["throughput"]["energy"]
    data["schema_version"] = "1.2"
    older = ProfileReport.from_json(json.dumps(data))
    assert older.throughput is not None
    assert older.throughput.energy is None
    assert report.throughput is not None
    assert older.throughput == dataclasses.replace(report.throughput, energy=None)
    assert not any(line.startswith("  Energy") for line in older.to_text().splitlines())
