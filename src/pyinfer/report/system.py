"""How the machine is tuned for timing, and what to change: ``pyinfer env --check``'s findings.

:func:`read_system_tuning` reads the facts that make timings noisy or steady (pyperf's
``system show`` is the model): the CPU frequency governor of each CPU this process may run on,
turbo boost, SMT (hyper-threading) and the thread siblings of each core, the CPU affinity,
isolated and tickless (``nohz_full``) CPUs, and whether this is a virtual machine. Each is
``None`` where it cannot be read (containers often hide ``/sys``; virtual machines have no
``cpufreq``). Every path is read under a root folder, so tests give a fake tree.

:func:`tuning_findings` and :func:`load_findings` turn the facts and a load sample into
:class:`Finding` blocks: what is fine, what makes timings noisy and how to fix it. Nothing here
changes the machine.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyinfer.errors import InvalidArgumentError
from pyinfer.report.noise import BUSY_CPUS, STEAL_PERCENT, NoiseReading

__all__ = [
    "THREAD_VARIABLES",
    "Finding",
    "SystemTuning",
    "cpu_list_text",
    "load_findings",
    "one_thread_per_core",
    "parse_cpu_list",
    "read_system_tuning",
    "tuning_findings",
]

_CPU = Path("sys/devices/system/cpu")
#: Environment variables that set how many threads a framework's pool runs.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)
# How pinning is spelled in the fixes: the profiler's option, or taskset around any command.
_PIN = "`--cpus {cpus}` (pins pyinfer's worker processes) or `taskset -c {cpus} pyinfer ...`"


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """A CPU list as the kernel and ``taskset`` write it (``"0-3,8,10-11"``), sorted.

    Args:
        text: The list; empty (or blank) means none.

    Returns:
        The CPU numbers, sorted, without repeats.

    Raises:
        InvalidArgumentError: If a part is not a number or a range ``LOW-HIGH`` with
            ``LOW <= HIGH`` (the message quotes the list).
    """
    cpus: set[int] = set()
    whole = text.strip()
    for raw in whole.split(",") if whole else ():
        part = raw.strip()
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise InvalidArgumentError(
                f"CPU list {whole!r}: {part!r} is not a CPU number or a range such as 0-3"
            )
        cpus.update(range(int(low), int(high if dash else low) + 1))
    return tuple(sorted(cpus))


def cpu_list_text(cpus: Collection[int]) -> str:
    """CPU numbers as a compact list (``"0-3,8"``), the form :func:`parse_cpu_list` reads."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _read(root: Path, relative: Path | str) -> str | None:
    try:
        return (root / relative).read_text(encoding="utf-8", errors="replace").strip()
    except (OSError, ValueError):
        return None


def _cpus(root: Path, relative: Path | str) -> tuple[int, ...] | None:
    text = _read(root, relative)
    if text is None:
        return None
    try:
        return parse_cpu_list(text)
    except InvalidArgumentError:
        return None


@dataclass(frozen=True)
class SystemTuning:
    """The machine's settings that make timings steady or noisy (``None``: could not be read).

    Attributes:
        affinity: Logical CPUs this process may run on.
        governors: Each affinity CPU's frequency governor (``"performance"``, ``"powersave"``,
            ``"schedutil"``...), or ``None`` without ``cpufreq`` (VMs, many containers).
        turbo: Whether turbo boost is on.
        turbo_control: The file that turns it off (``intel_pstate/no_turbo`` or
            ``cpufreq/boost``), ``""`` when unknown.
        smt: SMT control as the kernel says it: ``"on"``, ``"off"``, ``"forceoff"``,
            ``"notsupported"`` or ``"notimplemented"``.
        smt_active: Whether sibling threads share cores now.
        siblings: The thread siblings of each core the affinity CPUs belong to (one group per
            core, each sorted), or ``None`` without ``topology``.
        isolated: CPUs kept from the scheduler at boot (``isolcpus=``).
        nohz_full: CPUs without the periodic timer tick (``nohz_full=``).
        hypervisor: Whether this is a virtual machine (the CPU's ``hypervisor`` flag).
    """

    affinity: tuple[int, ...]
    governors: dict[int, str] | None = None
    turbo: bool | None = None
    turbo_control: str = ""
    smt: str | None = None
    smt_active: bool | None = None
    siblings: tuple[tuple[int, ...], ...] | None = None
    isolated: tuple[int, ...] | None = None
    nohz_full: tuple[int, ...] | None = None
    hypervisor: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The facts as JSON-ready values (lists, string keys), as reports record them."""
        return {
            "affinity": list(self.affinity),
            "governors": None
            if self.governors is None
            else {str(k): v for k, v in self.governors.items()},
            "turbo": self.turbo,
            "turbo_control": self.turbo_control,
            "smt": self.smt,
            "smt_active": self.smt_active,
            "siblings": None if self.siblings is None else [list(g) for g in self.siblings],
            "isolated": None if self.isolated is None else list(self.isolated),
            "nohz_full": None if self.nohz_full is None else list(self.nohz_full),
            "hypervisor": self.hypervisor,
        }


def _affinity() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return tuple(range(os.cpu_count() or 1))


def _turbo(root: Path) -> tuple[bool | None, str]:
    no_turbo = _read(root, _CPU / "intel_pstate" / "no_turbo")
    if no_turbo in {"0", "1"}:
        return no_turbo == "0", str(Path("/") / _CPU / "intel_pstate" / "no_turbo")
    boost = _read(root, _CPU / "cpufreq" / "boost")
    if boost in {"0", "1"}:
        return boost == "1", str(Path("/") / _CPU / "cpufreq" / "boost")
    return None, ""


def _hypervisor(root: Path) -> bool | None:
    text = _read(root, "proc/cpuinfo")
    if text is None:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return "hypervisor" in value.split()
    return None


def read_system_tuning(
    root: Path = Path("/"), affinity: Collection[int] | None = None
) -> SystemTuning:
    """Reads the machine's timing-related settings (nothing is changed).

    Args:
        root: The file system root whose ``sys`` and ``proc`` are read (tests: a fake tree).
        affinity: The CPUs to describe (default: those this process may run on).

    Returns:
        The settings, ``None`` for each that cannot be read.
    """
    cpus = tuple(sorted(affinity)) if affinity is not None else _affinity()
    governors: dict[int, str] | None = {}
    groups: set[tuple[int, ...]] | None = set()
    for cpu in cpus:
        governor = _read(root, _CPU / f"cpu{cpu}" / "cpufreq" / "scaling_governor")
        if governor is None or governors is None:
            governors = None
        else:
            governors[cpu] = governor
        group = _cpus(root, _CPU / f"cpu{cpu}" / "topology" / "thread_siblings_list")
        if group is None or groups is None:
            groups = None
        else:
            groups.add(group)
    smt_active = _read(root, _CPU / "smt" / "active")
    turbo, control = _turbo(root)
    return SystemTuning(
        affinity=cpus,
        governors=governors or None,
        turbo=turbo,
        turbo_control=control,
        smt=_read(root, _CPU / "smt" / "control"),
        smt_active=None if smt_active not in {"0", "1"} else smt_active == "1",
        siblings=None if not groups else tuple(sorted(groups)),
        isolated=_cpus(root, _CPU / "isolated"),
        nohz_full=_cpus(root, _CPU / "nohz_full"),
        hypervisor=_hypervisor(root),
    )


def one_thread_per_core(tuning: SystemTuning) -> tuple[int, ...]:
    """One CPU of each core among the affinity CPUs (the first sibling): a pinning list."""
    if tuning.siblings is None:
        return tuning.affinity
    allowed = set(tuning.affinity)
    firsts = {min(set(g) & allowed) for g in tuning.siblings if set(g) & allowed}
    return tuple(sorted(firsts))


Status = Literal["ok", "noisy", "unknown"]


@dataclass(frozen=True)
class Finding:
    """One thing that makes timings steady or noisy on this machine.

    Attributes:
        topic: What it is about (``"CPU frequency governor"``).
        status: ``"ok"``, ``"noisy"`` (it makes timings noisy: see ``fix``) or ``"unknown"``.
        value: What was found (``"powersave on CPUs 0-1"``).
        why: Why it matters, or why it could not be read.
        fix: How to fix it (``""`` when nothing is to be done).
    """

    topic: str
    status: Status
    value: str
    why: str = ""
    fix: str = ""

    def lines(self) -> list[str]:
        """The finding as a block of text: a headline, then why and the fix, indented."""
        if self.status == "ok":
            head = f"{self.topic}: {self.value} - ok"
        else:
            head = f"{self.topic}: {self.value}" + (" - NOISY" if self.status == "noisy" else "")
        lines = [head]
        if self.why:
            lines.append(f"  {self.why}")
        if self.fix:
            lines.append(f"  Fix: {self.fix}")
        return lines


def _governor(t: SystemTuning) -> Finding:
    topic = "CPU frequency governor"
    if t.governors is None:
        return Finding(
            topic,
            "unknown",
            "unknown",
            "no cpufreq in /sys: a virtual machine or container, or the firmware sets the "
            "frequency",
        )
    slow = {cpu: g for cpu, g in t.governors.items() if g != "performance"}
    if not slow:
        return Finding(topic, "ok", "performance")
    by_name: dict[str, list[int]] = {}
    for cpu, name in slow.items():
        by_name.setdefault(name, []).append(cpu)
    value = "; ".join(f"{g} on CPUs {cpu_list_text(c)}" for g, c in sorted(by_name.items()))
    return Finding(
        topic,
        "noisy",
        value,
        "the clock speed follows the load, so the first calls after a pause and short runs are "
        "timed at a lower frequency than the rest",
        "`sudo cpupower frequency-set -g performance` (or `echo performance | sudo tee "
        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`)",
    )


def _turbo_finding(t: SystemTuning) -> Finding:
    topic = "Turbo boost"
    if t.turbo is None:
        return Finding(topic, "unknown", "unknown", "neither intel_pstate nor cpufreq says")
    if not t.turbo:
        return Finding(topic, "ok", "off")
    off = "1" if t.turbo_control.endswith("no_turbo") else "0"
    return Finding(
        topic,
        "noisy",
        "on",
        "the clock rises above its base while few cores are busy and falls back as the chip "
        "heats or other cores wake, so timings move with temperature and the machine's load",
        f"`echo {off} | sudo tee {t.turbo_control}`",
    )


def _smt(t: SystemTuning) -> Finding:
    topic = "SMT (hyper-threading)"
    shared = [g for g in t.siblings or () if len(set(g) & set(t.affinity)) > 1]
    if t.smt_active is None and t.smt is None:
        return Finding(topic, "unknown", "unknown", "/sys/devices/system/cpu/smt is not readable")
    if not t.smt_active and not shared:
        value = {"notsupported": "not supported by this CPU", "forceoff": "off (forced)"}
        return Finding(topic, "ok", value.get(t.smt or "", "off"))
    single = one_thread_per_core(t)
    pin = _PIN.format(cpus=cpu_list_text(single))
    if not shared:
        return Finding(
            topic,
            "ok",
            f"on, but this process runs on one thread per core (CPUs {cpu_list_text(t.affinity)})",
        )
    return Finding(
        topic,
        "noisy",
        "on",
        "the two threads of a core share its execution units, so work on a sibling thread "
        "slows the model; frameworks size their thread pools by physical cores",
        f"run on one thread per core: {pin}; or turn SMT off: "
        "`echo off | sudo tee /sys/devices/system/cpu/smt/control`",
    )


def _isolation(t: SystemTuning) -> Finding:
    topic = "Isolated CPUs"
    boot = "the kernel options isolcpus=LIST nohz_full=LIST rcu_nocbs=LIST"
    if t.isolated is None:
        return Finding(
            topic, "unknown", "unknown", "/sys/devices/system/cpu/isolated is not readable"
        )
    if not t.isolated:
        return Finding(
            topic,
            "noisy",
            "none",
            "the scheduler may run any other process on the CPUs being measured",
            f"keep CPUs for measuring with {boot} at boot, then run on them: "
            + _PIN.format(cpus="LIST")
            + "; without isolation, pinning to CPUs other work does not use still helps",
        )
    if set(t.affinity) <= set(t.isolated):
        return Finding(topic, "ok", f"{cpu_list_text(t.isolated)}, and this process runs on them")
    return Finding(
        topic,
        "noisy",
        f"{cpu_list_text(t.isolated)}, but this process may run on {cpu_list_text(t.affinity)}",
        "isolated CPUs help only the work pinned to them",
        "run on them: " + _PIN.format(cpus=cpu_list_text(t.isolated)),
    )


def _threads(t: SystemTuning, environ: Mapping[str, str], physical_cores: int) -> Finding:
    topic = "Threads"
    cpus = len(t.affinity)
    over = []
    for name in THREAD_VARIABLES:
        value = environ.get(name, "")
        if value.strip().isdigit() and int(value) > cpus:
            over.append(f"{name}={int(value)}")
    if over:
        return Finding(
            topic,
            "noisy",
            ", ".join(over),
            f"more threads than the {cpus} CPUs this process may run on: the threads take "
            "turns, and a call waits for the last one",
            f"set them to {physical_cores} (the physical cores here) or less, or unset them: "
            "the frameworks then run one thread per physical core",
        )
    return Finding(
        topic,
        "ok",
        f"the frameworks run one per physical core ({physical_cores} of the {cpus} CPUs this "
        "process may run on)",
    )


def tuning_findings(
    tuning: SystemTuning,
    *,
    physical_cores: int,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """What the machine's settings do to timings, one finding each.

    Args:
        tuning: What :func:`read_system_tuning` read.
        physical_cores: Physical cores among the affinity CPUs (what frameworks size their
            thread pools by).
        environ: The environment variables (default: this process's), for thread settings.

    Returns:
        Governor, turbo, SMT, isolated CPUs and threads, in that order.
    """
    env = os.environ if environ is None else environ
    return [
        _governor(tuning),
        _turbo_finding(tuning),
        _smt(tuning),
        _isolation(tuning),
        _threads(tuning, env, physical_cores),
    ]


def load_findings(
    tuning: SystemTuning,
    reading: NoiseReading,
    busiest: Sequence[tuple[int, str, float]] = (),
) -> list[Finding]:
    """What the machine's load over a sample does to timings: other processes, then steal.

    Args:
        tuning: The settings (for whether this is a virtual machine).
        reading: A load sample taken while this process idled.
        busiest: The busiest other processes meanwhile: ``(pid, name, CPUs)``.

    Returns:
        Two findings: other processes' load, and CPU steal (with whether this is a VM).
    """
    topic = "Other processes"
    if reading.other_cpus_busy is None:
        load = Finding(topic, "unknown", "unknown", "/proc/stat is not readable")
    else:
        other = reading.other_cpus_busy
        value = f"{other:.2f} of {reading.cpus} CPUs busy over {reading.duration_s:.1f} s"
        if reading.load_average_max is not None:
            value += f" (load average {reading.load_average_max:.2f})"
        top = ", ".join(f"{name} (pid {pid}) {cpus:.2f}" for pid, name, cpus in busiest)
        if top:
            top = f"busiest: {top} CPUs"
            if sum(cpus for _, _, cpus in busiest) < other - 0.25:
                top += " (the rest: processes that came and went, or that /proc does not show)"
        if other >= BUSY_CPUS:
            load = Finding(
                topic,
                "noisy",
                value,
                (top + "; " if top else "") + "a measurement now would share the CPUs with them",
                "wait for them to finish or stop them, or measure on CPUs they do not use: "
                + _PIN.format(cpus="LIST")
                + "; pyinfer profile warns when a run overlaps such load",
            )
        else:
            load = Finding(topic, "ok", value, top)
    topic = "Virtual machine"
    vm = {True: "yes", False: "no", None: "unknown"}[tuning.hypervisor]
    if reading.steal_percent is None:
        return [load, Finding(topic, "unknown", vm, "CPU steal could not be read")]
    value = f"{vm}, CPU steal {reading.steal_percent:.1f}% over {reading.duration_s:.1f} s"
    if reading.steal_percent >= STEAL_PERCENT:
        steal = Finding(
            topic,
            "noisy",
            value,
            "the host gives this machine's CPUs to its other guests; timings slow down while "
            "they are busy",
            "a dedicated host, or an instance type with dedicated cores (not burstable or "
            "shared-core)",
        )
    elif tuning.hypervisor:
        steal = Finding(
            topic,
            "ok",
            value,
            "the host's other guests may take CPU time later: pyinfer profile warns when the "
            f"steal reaches {STEAL_PERCENT:g}% during a run",
        )
    else:
        steal = Finding(topic, "ok", value)
    return [load, steal]
