"""The machine's timing settings read from fake /sys and /proc trees (exact results), the
findings and fixes ``pyinfer env --check`` prints, the environment that records them, and the
command itself with its readers swapped."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pyinfer import cli
from pyinfer.errors import InvalidArgumentError
from pyinfer.profiling import noise as noise_module
from pyinfer.profiling.noise import BusyProcess
from pyinfer.report import Environment, encode_json
from pyinfer.report import system as system_module
from pyinfer.report.codec import decode_json
from pyinfer.report.environment import collect_environment
from pyinfer.report.noise import NoiseReading
from pyinfer.report.system import (
    Finding,
    SystemTuning,
    cpu_list_text,
    load_findings,
    one_thread_per_core,
    parse_cpu_list,
    read_system_tuning,
    tuning_findings,
)

CPU = "sys/devices/system/cpu"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def bare_metal(root: Path, *, governors: tuple[str, ...], smt: str = "on") -> Path:
    """Four logical CPUs on two cores (0,2 and 1,3 are siblings), intel_pstate."""
    files = {
        f"{CPU}/intel_pstate/no_turbo": "0",
        f"{CPU}/smt/control": smt,
        f"{CPU}/smt/active": "1" if smt == "on" else "0",
        f"{CPU}/isolated": "",
        "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu vme sse2 avx2\n",
    }
    for cpu, governor in enumerate(governors):
        files[f"{CPU}/cpu{cpu}/cpufreq/scaling_governor"] = governor
        files[f"{CPU}/cpu{cpu}/topology/thread_siblings_list"] = f"{cpu % 2},{cpu % 2 + 2}"
    return tree(root, files)


def test_cpu_lists_read_and_write_as_the_kernel_does() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpu_list(" 5, 1-2 ,2") == (1, 2, 5)
    assert parse_cpu_list("") == parse_cpu_list("  \n") == ()
    assert cpu_list_text([11, 0, 1, 2, 3, 8, 10, 3]) == "0-3,8,10-11"
    assert cpu_list_text([]) == ""
    for bad, part in (("0-", "0-"), ("3-1", "3-1"), ("a", "a"), ("1,,2", ""), ("-1", "-1")):
        with pytest.raises(InvalidArgumentError) as info:
            parse_cpu_list(bad)
        assert str(info.value) == (
            f"CPU list {bad!r}: {part!r} is not a CPU number or a range such as 0-3"
        )


def test_a_tuned_down_bare_metal_machine(tmp_path: Path) -> None:
    root = bare_metal(tmp_path, governors=("powersave", "performance", "powersave", "schedutil"))
    tuning = read_system_tuning(root, affinity=[0, 1, 2, 3])
    assert tuning == SystemTuning(
        affinity=(0, 1, 2, 3),
        governors={0: "powersave", 1: "performance", 2: "powersave", 3: "schedutil"},
        turbo=True,
        turbo_control="/sys/devices/system/cpu/intel_pstate/no_turbo",
        smt="on",
        smt_active=True,
        siblings=((0, 2), (1, 3)),
        isolated=(),
        nohz_full=None,
        hypervisor=False,
    )
    assert one_thread_per_core(tuning) == (0, 1)
    assert tuning.to_dict() == {
        "affinity": [0, 1, 2, 3],
        "governors": {"0": "powersave", "1": "performance", "2": "powersave", "3": "schedutil"},
        "turbo": True,
        "turbo_control": "/sys/devices/system/cpu/intel_pstate/no_turbo",
        "smt": "on",
        "smt_active": True,
        "siblings": [[0, 2], [1, 3]],
        "isolated": [],
        "nohz_full": None,
        "hypervisor": False,
    }
    findings = tuning_findings(tuning, physical_cores=2, environ={"OMP_NUM_THREADS": "8"})
    assert [f.lines() for f in findings] == [
        [
            "CPU frequency governor: powersave on CPUs 0,2; schedutil on CPUs 3 - NOISY",
            "  the clock speed follows the load, so the first calls after a pause and short "
            "runs are timed at a lower frequency than the rest",
            "  Fix: `sudo cpupower frequency-set -g performance` (or `echo performance | sudo "
            "tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`)",
        ],
        [
            "Turbo boost: on - NOISY",
            "  the clock rises above its base while few cores are busy and falls back as the "
            "chip heats or other cores wake, so timings move with temperature and the "
            "machine's load",
            "  Fix: `echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo`",
        ],
        [
            "SMT (hyper-threading): on - NOISY",
            "  the two threads of a core share its execution units, so work on a sibling "
            "thread slows the model; frameworks size their thread pools by physical cores",
            "  Fix: run on one thread per core: `--cpus 0-1` (pins pyinfer's worker processes) "
            "or `taskset -c 0-1 pyinfer ...`; or turn SMT off: `echo off | sudo tee "
            "/sys/devices/system/cpu/smt/control`",
        ],
        [
            "Isolated CPUs: none - NOISY",
            "  the scheduler may run any other process on the CPUs being measured",
            "  Fix: keep CPUs for measuring with the kernel options isolcpus=LIST "
            "nohz_full=LIST rcu_nocbs=LIST at boot, then run on them: `--cpus LIST` (pins "
            "pyinfer's worker processes) or `taskset -c LIST pyinfer ...`; without isolation, "
            "pinning to CPUs other work does not use still helps",
        ],
        [
            "Threads: OMP_NUM_THREADS=8 - NOISY",
            "  more threads than the 4 CPUs this process may run on: the threads take turns, "
            "and a call waits for the last one",
            "  Fix: set them to 2 (the physical cores here) or less, or unset them: the "
            "frameworks then run one thread per physical core",
        ],
    ]


def test_a_tuned_machine_is_ok_everywhere(tmp_path: Path) -> None:
    root = bare_metal(tmp_path, governors=("performance",) * 4, smt="off")
    tree(
        root,
        {
            f"{CPU}/intel_pstate/no_turbo": "1",
            f"{CPU}/isolated": "2-3",
            f"{CPU}/nohz_full": "2-3",
            f"{CPU}/cpu2/topology/thread_siblings_list": "2",
            f"{CPU}/cpu3/topology/thread_siblings_list": "3",
        },
    )
    tuning = read_system_tuning(root, affinity=[2, 3])
    assert (tuning.isolated, tuning.nohz_full, tuning.siblings) == ((2, 3), (2, 3), ((2,), (3,)))
    findings = tuning_findings(tuning, physical_cores=2, environ={"OMP_NUM_THREADS": "2"})
    assert [f.lines() for f in findings] == [
        ["CPU frequency governor: performance - ok"],
        ["Turbo boost: off - ok"],
        ["SMT (hyper-threading): off - ok"],
        ["Isolated CPUs: 2-3, and this process runs on them - ok"],
        [
            "Threads: the frameworks run one per physical core (2 of the 2 CPUs this process "
            "may run on) - ok"
        ],
    ]
    # Isolated CPUs this process does not run on: pin to them.
    elsewhere = tuning_findings(
        dataclasses.replace(tuning, affinity=(0, 1, 2, 3)), physical_cores=4, environ={}
    )[3]
    assert elsewhere == Finding(
        "Isolated CPUs",
        "noisy",
        "2-3, but this process may run on 0-3",
        "isolated CPUs help only the work pinned to them",
        "run on them: `--cpus 2-3` (pins pyinfer's worker processes) or `taskset -c 2-3 "
        "pyinfer ...`",
    )


def test_smt_on_but_one_thread_per_core_in_use_and_cpufreq_boost(tmp_path: Path) -> None:
    root = bare_metal(tmp_path, governors=("performance",) * 4)
    (root / CPU / "intel_pstate" / "no_turbo").unlink()
    tree(root, {f"{CPU}/cpufreq/boost": "1"})
    tuning = read_system_tuning(root, affinity=[0, 1])
    assert (tuning.turbo, tuning.turbo_control) == (True, "/sys/devices/system/cpu/cpufreq/boost")
    _, turbo, smt = tuning_findings(tuning, physical_cores=2, environ={})[:3]
    assert smt.lines() == [
        "SMT (hyper-threading): on, but this process runs on one thread per core (CPUs 0-1) - ok"
    ]
    assert turbo.fix == "`echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost`"
    tree(root, {f"{CPU}/cpufreq/boost": "0"})
    assert read_system_tuning(root, affinity=[0]).turbo is False


def test_a_virtual_machine_or_container_that_hides_sys(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            f"{CPU}/smt/control": "notsupported",
            f"{CPU}/smt/active": "0",
            "proc/cpuinfo": "flags\t\t: fpu sse2 hypervisor\n",
        },
    )
    tuning = read_system_tuning(root, affinity=[0, 1])
    assert tuning == SystemTuning(
        affinity=(0, 1), smt="notsupported", smt_active=False, hypervisor=True
    )
    assert [f.lines() for f in tuning_findings(tuning, physical_cores=2, environ={})][:4] == [
        [
            "CPU frequency governor: unknown",
            "  no cpufreq in /sys: a virtual machine or container, or the firmware sets the "
            "frequency",
        ],
        ["Turbo boost: unknown", "  neither intel_pstate nor cpufreq says"],
        ["SMT (hyper-threading): not supported by this CPU - ok"],
        ["Isolated CPUs: unknown", "  /sys/devices/system/cpu/isolated is not readable"],
    ]
    nothing = read_system_tuning(tmp_path / "none", affinity=[0])
    assert nothing == SystemTuning(affinity=(0,))
    assert tuning_findings(nothing, physical_cores=1, environ={})[2] == Finding(
        "SMT (hyper-threading)", "unknown", "unknown", "/sys/devices/system/cpu/smt is not readable"
    )
    # An ARM CPU lists "Features", not "flags"; a cpuinfo with neither does not say.
    arm = tree(tmp_path / "arm", {"proc/cpuinfo": "Features\t: fp asimd evtstrm\n"})
    assert read_system_tuning(arm, affinity=[0]).hypervisor is False
    other = tree(tmp_path / "other", {"proc/cpuinfo": "processor\t: 0\n"})
    assert read_system_tuning(other, affinity=[0]).hypervisor is None


def test_a_governor_missing_on_one_cpu_is_unknown_and_a_bad_list_is_unread(
    tmp_path: Path,
) -> None:
    root = bare_metal(tmp_path, governors=("performance", "performance"))
    tree(root, {f"{CPU}/isolated": "garbage"})
    tuning = read_system_tuning(root, affinity=[0, 1, 2])
    assert (tuning.governors, tuning.isolated, tuning.siblings) == (None, None, None)
    assert one_thread_per_core(tuning) == (0, 1, 2)


QUIET = NoiseReading(0.5, 2, 0.03, 0.03, 0.4, 0.0, False, (), 2)
BUSY = NoiseReading(0.5, 2, 1.78, 1.78, 2.5, 3.5, True, ("...",), 2)


def test_load_findings_name_the_busiest_processes_and_the_steal() -> None:
    vm = SystemTuning(affinity=(0, 1), hypervisor=True)
    load, steal = load_findings(vm, BUSY, [(12, "python", 0.98), (40, "cc1plus", 0.3)])
    assert load.lines() == [
        "Other processes: 1.78 of 2 CPUs busy over 0.5 s (load average 2.50) - NOISY",
        "  busiest: python (pid 12) 0.98, cc1plus (pid 40) 0.30 CPUs (the rest: processes that "
        "came and went, or that /proc does not show); a measurement now would share the CPUs "
        "with them",
        "  Fix: wait for them to finish or stop them, or measure on CPUs they do not use: "
        "`--cpus LIST` (pins pyinfer's worker processes) or `taskset -c LIST pyinfer ...`; "
        "pyinfer profile warns when a run overlaps such load",
    ]
    assert steal.lines() == [
        "Virtual machine: yes, CPU steal 3.5% over 0.5 s - NOISY",
        "  the host gives this machine's CPUs to its other guests; timings slow down while they "
        "are busy",
        "  Fix: a dedicated host, or an instance type with dedicated cores (not burstable or "
        "shared-core)",
    ]
    load, steal = load_findings(vm, QUIET, [(12, "python", 0.05)])
    assert load.lines() == [
        "Other processes: 0.03 of 2 CPUs busy over 0.5 s (load average 0.40) - ok",
        "  busiest: python (pid 12) 0.05 CPUs",
    ]
    assert steal.lines() == [
        "Virtual machine: yes, CPU steal 0.0% over 0.5 s - ok",
        "  the host's other guests may take CPU time later: pyinfer profile warns when the "
        "steal reaches 2% during a run",
    ]
    metal = SystemTuning(affinity=(0,), hypervisor=False)
    assert load_findings(metal, QUIET)[1].lines() == [
        "Virtual machine: no, CPU steal 0.0% over 0.5 s - ok"
    ]
    unread = NoiseReading(0.5, 0, None, None, None, None, False, (), 0)
    assert [f.lines() for f in load_findings(SystemTuning(affinity=(0,)), unread)] == [
        ["Other processes: unknown", "  /proc/stat is not readable"],
        ["Virtual machine: unknown", "  CPU steal could not be read"],
    ]


# ---- the environment records the settings ------------------------------------------------------


def test_the_environment_records_the_settings_and_old_reports_still_load() -> None:
    env = collect_environment()
    assert env.system == read_system_tuning().to_dict()
    assert decode_json(Environment, json.loads(json.dumps(encode_json(env))), "env") == env
    old = encode_json(env)
    del old["system"]
    assert decode_json(Environment, old, "env").system == {}


# ---- pyinfer env --check -----------------------------------------------------------------------


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM with two CPUs, one of them kept busy by a process named spin."""
    tuning = SystemTuning(
        affinity=(0, 1),
        smt="notsupported",
        smt_active=False,
        siblings=((0,), (1,)),
        isolated=(),
        hypervisor=True,
    )
    reading = NoiseReading(0.5, 2, 1.0, 1.0, 1.2, 0.0, True, ("r",), 2)
    monkeypatch.setattr(system_module, "read_system_tuning", lambda: tuning)
    monkeypatch.setattr(
        noise_module, "sample_machine", lambda seconds: (reading, [BusyProcess(9, "spin", 1.0)])
    )
    monkeypatch.setattr("pyinfer.backends.frameworks.physical_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.mark.usefixtures("machine")
def test_env_check_prints_a_block_per_finding_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["env", "--check"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == (
        "CPU frequency governor: unknown\n"
        "  no cpufreq in /sys: a virtual machine or container, or the firmware sets the "
        "frequency\n"
        "\n"
        "Turbo boost: unknown\n"
        "  neither intel_pstate nor cpufreq says\n"
        "\n"
        "SMT (hyper-threading): not supported by this CPU - ok\n"
        "\n"
        "Isolated CPUs: none - NOISY\n"
        "  the scheduler may run any other process on the CPUs being measured\n"
        "  Fix: keep CPUs for measuring with the kernel options isolcpus=LIST nohz_full=LIST "
        "rcu_nocbs=LIST at boot, then run on them: `--cpus LIST` (pins pyinfer's worker "
        "processes) or `taskset -c LIST pyinfer ...`; without isolation, pinning to CPUs other "
        "work does not use still helps\n"
        "\n"
        "Threads: the frameworks run one per physical core (2 of the 2 CPUs this process may "
        "run on) - ok\n"
        "\n"
        "Other processes: 1.00 of 2 CPUs busy over 0.5 s (load average 1.20) - NOISY\n"
        "  busiest: spin (pid 9) 1.00 CPUs; a measurement now would share the CPUs with them\n"
        "  Fix: wait for them to finish or stop them, or measure on CPUs they do not use: "
        "`--cpus LIST` (pins pyinfer's worker processes) or `taskset -c LIST pyinfer ...`; "
        "pyinfer profile warns when a run overlaps such load\n"
        "\n"
        "Virtual machine: yes, CPU steal 0.0% over 0.5 s - ok\n"
        "  the host's other guests may take CPU time later: pyinfer profile warns when the "
        "steal reaches 2% during a run\n"
        "\n"
        "2 of these 7 findings make timings noisy here (marked NOISY); 2 could not be read. "
        "pyinfer profile warns when a run overlaps other load; --cpus LIST pins its worker "
        "processes to CPUs.\n"
    )


@pytest.mark.usefixtures("machine")
def test_env_check_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["findings", "system", "load", "busiest"]
    assert [(f["topic"], f["status"]) for f in data["findings"]] == [
        ("CPU frequency governor", "unknown"),
        ("Turbo boost", "unknown"),
        ("SMT (hyper-threading)", "ok"),
        ("Isolated CPUs", "noisy"),
        ("Threads", "ok"),
        ("Other processes", "noisy"),
        ("Virtual machine", "ok"),
    ]
    assert data["findings"][3]["fix"].startswith("keep CPUs for measuring with the kernel")
    assert data["system"]["hypervisor"] is True
    assert data["load"]["other_cpus_busy"] == 1.0
    assert data["busiest"] == [{"pid": 9, "name": "spin", "cpus": 1.0}]


def test_env_check_on_this_machine_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--check"]) == 0
    out = capsys.readouterr().out
    topics = [
        "CPU frequency governor: ",
        "Turbo boost: ",
        "SMT (hyper-threading): ",
        "Isolated CPUs: ",
        "Threads: ",
        "Other processes: ",
        "Virtual machine: ",
    ]
    heads = [block.splitlines()[0] for block in out.split("\n\n")]
    assert [h[: len(t)] for h, t in zip(heads, topics, strict=False)] == topics
    assert "findings make timings noisy here" in heads[-1] or heads[-1].startswith("nothing of")


def test_env_text_shows_unknown_settings_as_unknown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "pyinfer.report.environment.read_system_tuning", lambda: SystemTuning(affinity=(0,))
    )
    assert cli.main(["env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[1].strip() for line in lines if line.startswith("system.")] == [
        "[0]",
        "unknown",
        "unknown",
        "(none)",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]
