"""The energy readers on a fake powercap tree and a fake NVML.

(The profiler's throughput run reading them, and the report's line: tests/test_profiler_energy.py.)
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
from tests._powercap import rapl_zone

from pyinfer.analysis import energy as analysis_energy
from pyinfer.analysis.energy import EnergyReading, measure_energy, rapl_domains
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling import energy as profiling_energy


def test_rapl_packages_are_added_and_sub_zones_are_not(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    pkg0 = rapl_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    pkg1 = rapl_zone(root, "intel-rapl:1", "package-1", 999_000_000)  # wraps at 10**9
    rapl_zone(root, "intel-rapl:0:0", "core", 5)  # part of package-0
    rapl_zone(root, "intel-rapl:2", "psys", 7)  # the whole platform, packages included
    calls = []

    def call() -> None:  # each call spends 2 J on package 0 and 3 J on package 1
        calls.append(1)
        p0 = int((pkg0 / "energy_uj").read_text()) + 2_000_000
        p1 = (int((pkg1 / "energy_uj").read_text()) + 3_000_000) % 10**9
        (pkg0 / "energy_uj").write_text(str(p0))
        (pkg1 / "energy_uj").write_text(str(p1))

    reading = measure_energy(call, 4, 2, powercap_root=root)
    assert len(calls) == 4
    assert reading.source == "RAPL package-0, package-1"
    assert reading.joules == pytest.approx(20.0)
    assert reading.inferences == 8
    assert reading.joules_per_inference == pytest.approx(2.5)
    assert reading.average_watts == pytest.approx(20.0 / reading.seconds)
    assert reading.unavailable is None


def test_no_powercap_says_why(tmp_path: Path) -> None:
    reading = measure_energy(lambda: None, 1, 1, powercap_root=tmp_path / "none")
    assert reading.joules is None
    assert reading.joules_per_inference is None
    assert reading.line() == (
        f"Energy: unavailable: no {tmp_path / 'none'} (no powercap support in this "
        "kernel or container)"
    )
    (tmp_path / "empty").mkdir()
    assert rapl_domains(tmp_path / "empty") == (
        f"no RAPL zone under {tmp_path / 'empty'} (a virtual machine, or a CPU without RAPL)"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_counter_says_why(tmp_path: Path) -> None:
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").chmod(0)
    assert "is not readable by this user (root only since Linux 5.10" in str(rapl_domains(tmp_path))


def test_nvml_energy_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = {"mj": 50_000}
    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetTotalEnergyConsumption = lambda handle: counter["mj"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)

    def call() -> None:
        counter["mj"] += 1_500  # 1.5 J per call

    reading = measure_energy(call, 10, 4, gpu_index=0)
    assert reading.source == "NVML GPU 0"
    assert reading.joules == pytest.approx(15.0)
    assert reading.joules_per_inference == pytest.approx(15.0 / 40)


def test_nvml_without_a_counter_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]

    def no_gpu(index: int) -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    fake.nvmlDeviceGetHandleByIndex = no_gpu  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    reading = measure_energy(lambda: None, 1, 1, gpu_index=1)
    assert reading == EnergyReading(
        "NVML GPU 1",
        None,
        0.0,
        1,
        "NVML has no energy counter for GPU 1: NVML Shared Library Not Found",
    )


def test_bad_counts_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"at least 1, not 0 and 1"):
        measure_energy(lambda: None, 0, 1)


def test_the_analysis_names_are_the_profilers_readers() -> None:
    for name in analysis_energy.__all__:
        assert getattr(analysis_energy, name) is getattr(profiling_energy, name), name
