"""A small, seeded fuzzer that runs each campaign in worker processes it can watch.

A *campaign* turns an index into one input (deterministically, from a seed and the index) and
feeds it to the code under test. Every input must end in a valid result or a typed
:class:`pyinfer.errors.PyinferError`; anything else is a finding. The inputs run in child
processes, so the parent also sees what an in-process test cannot:

* a **crash** (the worker dies from a signal or exits early): the input is saved for replay and
  a fresh worker carries on after it;
* a **hang**: no progress within ``timeout_s`` for one input; the worker is killed, the input
  saved, and a fresh worker carries on;
* a **leak**: each worker reports its resident memory and open file descriptors after a warm-up,
  at the middle and at the end; memory that keeps growing over the second half, or descriptors
  that are not all closed again, fail the campaign.

Run a campaign from a test with :func:`fuzz`; replay one input with
``python tests/_fuzz.py replay CAMPAIGN CONFIG.json INDEX``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent

# -- campaigns ------------------------------------------------------------------------------


class Campaign(Protocol):
    """What a campaign offers: deterministic inputs, the run of one, and a way to save one."""

    def case(self, index: int) -> Any:
        """The input number ``index``; the same index always gives the same input."""

    def run(self, case: Any) -> str:
        """Feeds ``case`` to the code under test; returns ``"ok"`` or raises."""

    def save(self, case: Any, folder: Path) -> Path:
        """Writes ``case`` under ``folder`` for replay; returns where."""


#: Campaign factories by name: ``name -> factory(config)``. Campaign modules register here.
REGISTRY: dict[str, Callable[[Mapping[str, Any]], Campaign]] = {}

#: Modules that define campaigns; a worker imports them to fill :data:`REGISTRY`.
CAMPAIGN_MODULES = ("_fuzz_selftest", "_fuzz_loaders", "_fuzz_preprocessors")


def register(name: str) -> Callable[[Callable[..., Campaign]], Callable[..., Campaign]]:
    """Decorator: registers a campaign factory under ``name``."""

    def wrap(factory: Callable[..., Campaign]) -> Callable[..., Campaign]:
        REGISTRY[name] = factory
        return factory

    return wrap


def rng_for(seed: int | str, index: int) -> random.Random:
    """A random generator that depends only on ``seed`` and ``index``."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


# -- mutations of bytes and of file trees -----------------------------------------------------

#: A model on disk: relative path -> bytes (one entry for a single file, several for a folder).
Tree = dict[str, bytes]

MUTATIONS = (
    "random_bytes",
    "truncate",
    "bit_flips",
    "overwrite",
    "splice",
    "header_garbage",
    "zip_member",
)


def random_bytes(rng: random.Random, most: int = 4096) -> bytes:
    """Random bytes of a random length, sometimes empty, sometimes one byte value repeated."""
    n = rng.choice([0, 1, 2, 7, 16, rng.randrange(most + 1)])
    if rng.random() < 0.2:
        return bytes([rng.randrange(256)]) * n
    return rng.randbytes(n)


def mutate_bytes(data: bytes, rng: random.Random, kind: str) -> bytes:
    """One mutation of ``data`` of the given kind (see :data:`MUTATIONS`)."""
    if kind == "random_bytes" or not data:
        return random_bytes(rng)
    if kind == "truncate":
        cut = rng.choice([0, 1, len(data) // 2, len(data) - 1, rng.randrange(len(data))])
        return data[:cut]
    if kind == "bit_flips":
        out = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 4, 8, 32])):
            pos = rng.randrange(len(out))
            out[pos] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "overwrite":
        out = bytearray(data)
        start = rng.randrange(len(out))
        n = min(len(out) - start, rng.choice([1, 2, 4, 8, 64, 512]))
        fill = rng.choice(
            [b"\x00" * n, b"\xff" * n, rng.randbytes(n), (b"\x7f\xff\xff\xff" * n)[:n]]
        )
        out[start : start + n] = fill
        return bytes(out)
    if kind == "splice":
        a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
        if rng.random() < 0.5:
            return data[:a] + data[b:]  # delete a chunk
        return data[:b] + data[a:b] + data[b:]  # duplicate a chunk
    if kind == "header_garbage":
        keep = min(len(data), rng.choice([2, 4, 8, 16, 32, 64, 128, 512]))
        return data[:keep] + random_bytes(rng)
    raise ValueError(f"unknown mutation {kind!r}")


def mutate_zip_member(data: bytes, rng: random.Random) -> bytes | None:
    """Rewrites a zip archive with one member mutated and every checksum valid again.

    Returns ``None`` when ``data`` is not a zip archive. The result passes every integrity
    check of the archive itself, so the damage reaches the parser of the member.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            infos = src.infolist()
            members = [(info, src.read(info)) for info in infos]
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if not members:
        return None
    target = rng.randrange(len(members))
    kind = rng.choice(MUTATIONS[:6])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for i, (info, body) in enumerate(members):
            dst.writestr(info, mutate_bytes(body, rng, kind) if i == target else body)
    return out.getvalue()


def mutate_tree(seed: Tree, rng: random.Random, kind: str, suffix: str) -> Tree:
    """One mutated copy of the model ``seed``; ``random_bytes`` makes a new file ``*suffix``."""
    if kind == "random_bytes":
        return {f"model{suffix}": random_bytes(rng)}
    tree = dict(seed)
    # Damage the biggest files most often: they hold the structure and the weights.
    names = sorted(tree, key=lambda n: -len(tree[n]))
    name = names[0] if rng.random() < 0.6 else rng.choice(names)
    if kind == "zip_member":
        mutated = mutate_zip_member(tree[name], rng)
        if mutated is None:
            kind = rng.choice(MUTATIONS[1:6])
        else:
            tree[name] = mutated
            return tree
    if kind == "truncate" and len(tree) > 1 and rng.random() < 0.2:
        del tree[name]  # a file of the model missing altogether
        return tree
    tree[name] = mutate_bytes(tree[name], rng, kind)
    return tree


def read_tree(path: Path) -> Tree:
    """A model file, or every file under a model folder, as a :data:`Tree`."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def write_tree(tree: Tree, folder: Path) -> None:
    """Writes ``tree`` under ``folder``, which is emptied first."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in tree.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# -- the worker -----------------------------------------------------------------------------


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def _campaign(name: str, config: Mapping[str, Any]) -> Campaign:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for module in CAMPAIGN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return REGISTRY[name](config)


def outcome(campaign: Campaign, case: Any) -> tuple[str, str | None]:
    """Runs one input: ``(label, problem)``; ``problem`` is ``None`` when the outcome is allowed.

    The label is ``"ok"`` or the name of the error raised.
    """
    from pyinfer.errors import PyinferError

    try:
        return campaign.run(case), None
    except PyinferError as exc:
        return type(exc).__name__, None
    except Exception as exc:
        return f"UNEXPECTED {type(exc).__name__}", "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6)
        )


def worker(name: str, config: Mapping[str, Any], indices: list[int]) -> None:
    """Runs the given inputs of a campaign, reporting each on stdout as soon as it ends.

    Lines: ``done INDEX SECONDS LABEL``, ``problem JSON`` (an input that broke the contract),
    ``mark JSON`` (resident memory and open descriptors at a checkpoint).
    """
    out = sys.stdout
    campaign = _campaign(name, config)
    checkpoints = {
        indices[min(len(indices) - 1, max(1, len(indices) // 10))]: "warm",
        indices[len(indices) // 2]: "middle",
        indices[-1]: "end",
    }
    for index in indices:
        case = campaign.case(index)
        start = time.perf_counter()
        label, problem = outcome(campaign, case)
        took = time.perf_counter() - start
        if problem is not None:
            out.write(
                "problem "
                + json.dumps({"index": index, "label": label, "traceback": problem})
                + "\n"
            )
        if index in checkpoints:
            mark = {"mark": checkpoints[index], "rss": _rss_bytes(), "fds": _open_fds()}
            out.write("mark " + json.dumps(mark) + "\n")
        out.write(f"done {index} {took:.6f} {label}\n")
        out.flush()


# -- the parent -----------------------------------------------------------------------------


@dataclasses.dataclass
class Finding:
    """One input that broke the contract: a crash, a hang or an unexpected error."""

    kind: str
    index: int
    detail: str
    saved: Path | None = None

    def __str__(self) -> str:
        where = f" (saved: {self.saved})" if self.saved else ""
        return f"{self.kind} at input {self.index}{where}: {self.detail.strip()[-1500:]}"


@dataclasses.dataclass
class FuzzResult:
    """What a campaign did: inputs run, outcomes counted, findings, and the leak checks."""

    name: str
    inputs: int
    counts: Counter[str]
    findings: list[Finding]
    leaks: list[str]
    slowest_s: float
    wall_s: float

    def summary(self) -> str:
        """One line for the log: counts by outcome and the slowest input."""
        top = ", ".join(f"{k} {v}" for k, v in self.counts.most_common())
        return (
            f"{self.name}: {self.inputs} inputs in {self.wall_s:.0f} s, slowest "
            f"{self.slowest_s * 1e3:.0f} ms; {top}"
        )


def _save(name: str, config: Mapping[str, Any], index: int, folder: Path) -> Path | None:
    try:
        campaign = _campaign(name, config)
        return campaign.save(campaign.case(index), folder / f"{name}-{index}")
    except Exception:
        return None


# The worker imports this module as ``_fuzz`` (not ``__main__``), the name the campaign modules
# register under.
_WORKER_MAIN = (
    f"import sys; sys.path.insert(0, {str(HERE)!r}); import _fuzz; "
    "sys.exit(_fuzz._main(sys.argv[1:]))"
)


def _spawn(
    name: str, config: Mapping[str, Any], indices: list[int], stderr: Any
) -> subprocess.Popen[str]:
    spec = json.dumps({"name": name, "config": dict(config), "indices": indices})
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER_MAIN, "worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # A file, not a pipe: nobody reads a pipe while the worker runs, and a worker whose
        # frameworks log on every input would block once its 64 KiB were full (a false hang).
        stderr=stderr,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(spec)
    proc.stdin.close()
    return proc


class _Shard:
    """One worker process over a list of indices, restarted after each crash or hang."""

    def __init__(self, name: str, config: Mapping[str, Any], indices: list[int]) -> None:
        self.name, self.config, self.todo = name, config, list(indices)
        self.proc: subprocess.Popen[str] | None = None
        self.buffer = ""
        self.last_progress = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.marks: list[dict[str, dict[str, int]]] = []
        self.findings: list[Finding] = []
        self.slowest = 0.0

    def start(self) -> None:
        self.marks.append({})  # one set of checkpoints per worker process
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the worker ends
        self.proc = _spawn(self.name, self.config, self.todo, self.stderr)
        self.buffer = ""
        self.last_progress = time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None

    def fileno(self) -> int:
        assert self.proc is not None
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def read(self) -> None:
        """Reads what the worker wrote; on end of output, checks how it ended."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        chunk = os.read(self.fileno(), 65536).decode()
        if chunk:
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split("\n")
            for line in lines:
                if line.startswith("done "):
                    _, index, took, label = line.split(" ", 3)
                    if self.todo and self.todo[0] == int(index):
                        self.todo.pop(0)
                    self.counts[label] += 1
                    self.slowest = max(self.slowest, float(took))
                    self.last_progress = time.monotonic()
                elif line.startswith("problem "):
                    problem = json.loads(line[8:])
                    if len(self.findings) < 50:  # the counts keep the rest
                        self.findings.append(
                            Finding(problem["label"], problem["index"], problem["traceback"])
                        )
                elif line.startswith("mark "):
                    mark = json.loads(line[5:])
                    self.marks[-1][mark.pop("mark")] = mark
            return
        self._ended()

    def _ended(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait()
        self.stderr.seek(0)
        stderr = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc = None
        if rc == 0 and not self.todo:
            return
        if not self.todo:  # every input done, but the exit failed
            self.findings.append(Finding("crash at exit", -1, f"exit status {rc}\n{stderr}"))
            return
        index = self.todo.pop(0)
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        self.findings.append(Finding("crash", index, f"{how}\n{stderr[-3000:]}"))
        if self.todo:
            self.start()

    def check_hang(self, timeout_s: float) -> None:
        if self.proc is None or time.monotonic() - self.last_progress < timeout_s:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.proc = None
        index = self.todo.pop(0)
        self.findings.append(Finding("hang", index, f"no result within {timeout_s:.0f} s"))
        if self.todo:
            self.start()


def fuzz(
    name: str,
    config: Mapping[str, Any],
    count: int,
    *,
    workers: int = 2,
    timeout_s: float = 30.0,
    leak_bytes: int = 64 << 20,
    save_dir: Path | None = None,
) -> FuzzResult:
    """Runs inputs ``0..count-1`` of a campaign in ``workers`` watched processes.

    Args:
        name: The registered campaign.
        config: Its JSON-serialisable configuration (seed files, seed number, ...).
        count: How many inputs.
        workers: Worker processes in parallel; each takes every ``workers``-th input.
        timeout_s: The bound on one input (the first input of a worker includes its imports).
        leak_bytes: Resident memory a worker may gain between the middle and the end.
        save_dir: Where inputs that crash, hang or fail are saved for replay.

    Returns:
        The :class:`FuzzResult`; the caller asserts on its findings and leaks.
    """
    started = time.monotonic()
    save_dir = save_dir or Path(tempfile.mkdtemp(prefix=f"pyinfer-fuzz-{name}-"))
    shards = [_Shard(name, config, list(range(w, count, workers))) for w in range(workers)]
    for shard in shards:
        shard.start()
    while any(s.running for s in shards):
        live = [s for s in shards if s.running]
        ready, _, _ = select.select(live, [], [], 1.0)
        for shard in ready:
            shard.read()
        for shard in shards:
            shard.check_hang(timeout_s)
    counts: Counter[str] = Counter()
    findings: list[Finding] = []
    leaks: list[str] = []
    slowest = 0.0
    for shard in shards:
        findings.extend(shard.findings)
        counts.update(shard.counts)
        slowest = max(slowest, shard.slowest)
        for marks in shard.marks:
            if "middle" in marks and "end" in marks:
                grew = marks["end"]["rss"] - marks["middle"]["rss"]
                if grew > leak_bytes:
                    leaks.append(f"resident memory grew by {grew >> 20} MiB over the second half")
            if "warm" in marks and "end" in marks and marks["end"]["fds"] > marks["warm"]["fds"]:
                leaks.append(
                    f"open file descriptors went from {marks['warm']['fds']} after warm-up to "
                    f"{marks['end']['fds']} at the end"
                )
    counts["crash"] += sum(f.kind.startswith("crash") and f.index >= 0 for f in findings)
    counts["hang"] += sum(f.kind == "hang" for f in findings)
    for finding in findings:
        if finding.index >= 0:
            finding.saved = _save(name, config, finding.index, save_dir)
    return FuzzResult(
        name=name,
        inputs=sum(counts.values()),
        counts=+counts,
        findings=findings,
        leaks=leaks,
        slowest_s=slowest,
        wall_s=time.monotonic() - started,
    )


def iter_cases(name: str, config: Mapping[str, Any], count: int) -> Iterator[Any]:
    """The inputs of a campaign, in this process (for tests of the generators themselves)."""
    campaign = _campaign(name, config)
    for index in range(count):
        yield campaign.case(index)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        spec = json.loads(sys.stdin.read())
        worker(spec["name"], spec["config"], spec["indices"])
        return 0
    if argv[:1] == ["replay"] and len(argv) == 4:
        name, config_path, index = argv[1], argv[2], int(argv[3])
        config = json.loads(Path(config_path).read_text())
        campaign = _campaign(name, config)
        label, problem = outcome(campaign, campaign.case(index))
        print(label)
        if problem:
            print(problem)
        return 1 if problem else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import _fuzz  # the registry lives in the module the campaigns import, not in __main__

    sys.exit(_fuzz._main(sys.argv[1:]))
