"""Interrupts and crashes, with real signals: Ctrl-C (SIGINT) and SIGTERM keep and write what was
measured, a second signal stops the writing without leaving a part of a file, SIGKILL during a
write never leaves a truncated report, and a truncated or incomplete report never loads.

The commands run as ``python -m pyinfer`` in a process of their own, on tiny ONNX models built
here; a signal is sent once their progress (a log line, the progress bar) shows the measurement
under way.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.test_report import make_report

import pyinfer
from pyinfer import cli
from pyinfer.errors import InvalidArgumentError
from pyinfer.report import (
    STALE_TEMP_S,
    BatchCurve,
    ProfileReport,
    SweepReport,
    write_atomic,
)
from pyinfer.suite import SuiteResult
from pyinfer.suite.artifacts import Artifacts as _Artifacts

SRC = str(Path(pyinfer.__file__).parents[1])
HANG_S = 120  # a generous bound: every process here ends in seconds


def _conv_onnx(path: Path, size: int, channels: int, layers: int) -> Path:
    """A small conv classifier ``x: (batch, 3, size, size) -> scores: (batch, 4)``, seeded."""
    from tests.conftest import require_module

    onnx = require_module("onnx")
    require_module("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, previous, width = [], [], "x", 3
    for i in range(layers):
        weight = (rng.standard_normal((channels, width, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("Conv", [previous, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        previous, width = f"r{i}", channels
    inits.append(numpy_helper.from_array(rng.standard_normal((channels, 4)).astype("f4"), "wf"))
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "wf"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``fast``: a few ms a call; ``slow``: tens of ms a call on 224x224, to run images through;
    ``images``: a folder of 40 small PNG files."""
    from tests.conftest import require_module

    require_module("PIL")
    from PIL import Image

    folder = tmp_path_factory.mktemp("interrupts")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(40):
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"img{i:03d}.png")
    return {
        "fast": _conv_onnx(folder / "fast.onnx", 32, 8, 2),
        "slow": _conv_onnx(folder / "slow.onnx", 224, 32, 4),
        "images": images,
    }


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Process:
    """A process whose stdout and stderr are read as they come, by two threads."""

    def __init__(self, argv: list[str], cwd: Path | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            # A test runner started in the background has SIGINT ignored, and a child inherits
            # that (pyinfer, like Python, keeps a signal ignored at start ignored): reset it.
            preexec_fn=_default_sigint,  # noqa: PLW1509 - it only resets one signal
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:  # text mode: a progress bar's \r ends a line too
            lines.append(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first stderr line matching ``pattern``, once it comes."""
        deadline = time.monotonic() + HANG_S
        seen = 0
        while time.monotonic() < deadline:
            for line in self.err[seen:]:
                found = re.search(pattern, line)
                if found:
                    return found
                seen += 1
            if self.popen.poll() is not None and seen == len(self.err):
                break
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} on stderr:\n{''.join(self.err)}")

    def finish(self) -> tuple[int, str, str]:
        """The exit status, stdout and stderr, once the process has ended."""
        code = self.popen.wait(timeout=HANG_S)
        for reader in self._readers:
            reader.join(timeout=HANG_S)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        return code, "".join(self.out), "".join(self.err)


def _pyinfer(*argv: object) -> _Process:
    args = [str(a) for a in argv]
    if {"profile", "sweep"} & set(args) and "--repeat" not in args:
        args += ["--repeat", "1"]  # these tests stop one process; repetitions have their own
    return _Process([sys.executable, "-m", "pyinfer", *args])


def _script(code: str, *argv: object) -> _Process:
    return _Process([sys.executable, "-c", code, *map(str, argv)])


def _no_temp_files(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


# ---- sweep, profile, run, bench under SIGINT and SIGTERM --------------------------------------


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, cli.EXIT_INTERRUPTED), (signal.SIGTERM, cli.EXIT_TERMINATED)],
)
def test_sweep_stopped_during_a_later_batch_keeps_the_finished_ones(
    nets: dict[str, Path], tmp_path: Path, signum: int, status: int
) -> None:
    json_path, csv_path = tmp_path / "sweep.json", tmp_path / "sweep.csv"
    timing = ["--warmup", "2", "--min-time", "2", "--max-time", "2"]
    process = _pyinfer(
        "--verbose", "sweep", nets["fast"], "--batch-sizes", "1,2,4", *timing,
        "--json", json_path, "--csv", csv_path,
    )  # fmt: skip
    process.wait_for(r"latency of 'fast' at batch 1: ")  # batch 1 is done
    process.wait_for(r"timing 'fast' at batch 2 after")  # batch 2 is warm: samples come
    time.sleep(0.5)
    process.popen.send_signal(signum)
    code, out, err = process.finish()
    assert code == status, err
    assert "Traceback" not in err
    report = SweepReport.load(json_path)
    assert report.interrupted
    points = report.batch_curve.points
    assert [p.batch_size for p in points] == [1, 2]  # batch 4 never started
    first, second = points
    assert first.ok
    assert not first.interrupted
    assert first.samples >= 100
    assert second.interrupted
    assert second.stable is not True
    # Measured from the calls timed before, or (too few of them) a failed point saying so.
    assert second.ok or second.error == f"interrupted after {second.samples} samples"
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [(r["batch_size"], r["interrupted"]) for r in rows] == [("1", "False"), ("2", "True")]
    assert float(rows[0]["latency_mean_ms"]) == pytest.approx(first.latency_mean_ms)
    table = out.splitlines()
    assert table[0] == "Model: fast (onnx on cpu)"
    assert [line.split("│")[0].strip() for line in table[3:5]] == ["1", "2"]
    assert f"interrupted: results so far written to {json_path}, {csv_path}\n" in err
    if signum == signal.SIGTERM:
        assert err.endswith("pyinfer sweep: stopped by SIGTERM (exit status 143)\n")
    _no_temp_files(tmp_path)


def test_profile_stopped_by_sigterm_writes_every_report_and_exits_143(
    nets: dict[str, Path], tmp_path: Path
) -> None:
    paths = {ext: tmp_path / f"report.{ext}" for ext in ("json", "csv", "md")}
    process = _pyinfer(
        "--verbose", "profile", nets["fast"], "--warmup", "2", "--iterations", "100000000",
        "--no-memory", "--json", paths["json"], "--csv", paths["csv"],
        "--markdown", paths["md"],
    )  # fmt: skip
    process.wait_for(r"timing 'fast' at batch 1 after")
    time.sleep(0.5)
    process.popen.send_signal(signal.SIGTERM)
    code, out, err = process.finish()
    assert code == cli.EXIT_TERMINATED == 143, err
    report = ProfileReport.load(paths["json"])
    count = report.latency.stats.count
    assert report.stability_reason == f"interrupted after {count} samples"
    assert not report.stable
    assert f"Iterations: {count} (" in out
    (row,) = csv.DictReader(paths["csv"].read_text().splitlines())
    assert (row["iterations"], row["stable"]) == (str(count), "False")
    assert paths["md"].read_text() == report.to_markdown()
    assert err.endswith(
        f"interrupted: results so far written to {paths['json']}, {paths['csv']}, {paths['md']}\n"
        "pyinfer profile: stopped by SIGTERM (exit status 143)\n"
    )


@pytest.mark.parametrize(
    ("suffix", "signum", "status"),
    [
        (".json", signal.SIGINT, cli.EXIT_INTERRUPTED),
        (".npz", signal.SIGTERM, cli.EXIT_TERMINATED),
    ],
)
def test_run_over_a_folder_stopped_part_way_writes_the_items_done(
    nets: dict[str, Path], tmp_path: Path, suffix: str, signum: int, status: int
) -> None:
    output = tmp_path / f"out{suffix}"
    process = _pyinfer(
        "run", nets["slow"], nets["images"], "--batch-size", "2", "--progress", "--top-k", "2",
        "--output", output,
    )  # fmt: skip
    process.wait_for(r"\b([4-9]|1\d)/40 ")  # a few batches done, most to go
    process.popen.send_signal(signum)
    code, out, err = process.finish()
    assert code == status, err
    assert "Traceback" not in err
    files = sorted(nets["images"].iterdir())
    printed = out.splitlines()
    done = len(printed)
    assert 4 <= done < 40
    assert [line.split(":")[0] for line in printed] == [str(p) for p in files[:done]]
    ran = f"({done} of 40 input(s) ran, {40 - done} not run)"
    assert f"interrupted: results so far written to {output} {ran}\n" in err
    if suffix == ".json":
        written = json.loads(output.read_text())
        assert (written["inputs"], written["interrupted"], written["failures"]) == (40, True, [])
        assert [i["source"] for i in written["items"]] == [str(p) for p in files[:done]]
        assert all(len(i["top_k"]) == 2 for i in written["items"])
        return
    with np.load(output) as arrays:
        assert list(arrays["sources"]) == [str(p) for p in files[:done]]
        scores = arrays["scores"]
    assert scores.shape == (done, 4)
    # The figures are the model's: the first image again, in this process.
    from pyinfer import InferenceEngine, load_model
    from pyinfer.preprocess import ImagePipeline

    model = load_model(nets["slow"])
    engine = InferenceEngine(model, ImagePipeline.for_model(model))
    np.testing.assert_allclose(engine.predict(files[0])["scores"], scores[0], rtol=1e-5)


def test_bench_suite_interrupted_in_its_second_entry_writes_the_first(tmp_path: Path) -> None:
    from tests.conftest import require_module

    require_module("torchvision")
    json_path, md_path = tmp_path / "bench.json", tmp_path / "bench.md"
    process = _pyinfer(
        "bench", "--only", "mobilenetv2", "--input-sizes", "32,48", "--quick",
        "--json", json_path, "--markdown", md_path,
    )  # fmt: skip
    process.wait_for(r"^\[2/2\] cpu MobileNetV2 48x48")
    process.popen.send_signal(signal.SIGINT)
    code, out, err = process.finish()
    assert code == cli.EXIT_INTERRUPTED, err
    assert "interrupted: keeping the entries finished so far" in err
    result = SuiteResult.load(json_path)
    assert result.interrupted
    assert [(e.label, e.status) for e in result.entries] == [("32x32", "ok")]
    assert result.entries[0].report is not None
    assert result.entries[0].report.input_shapes == {"x": (1, 3, 32, 32)}
    assert md_path.read_text() == result.to_markdown()
    assert "(interrupted: the entry running then was dropped)" in out
    _no_temp_files(tmp_path)


_API_RUN = """
import json, os, signal, sys, threading
import numpy as np
from pyinfer import InferenceEngine, load_model

model = load_model(sys.argv[1])
engine = InferenceEngine(model, batch_size=2)
real, calls = model.run_native, [0]

def run_native(inputs):
    calls[0] += 1
    if calls[0] == 4:  # three batches done: a real Ctrl-C, from another thread
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()
    return real(inputs)

model.run_native = run_native
data = np.random.default_rng(0).standard_normal((40, 3, 224, 224)).astype(np.float32)
try:
    engine.run_dataset(data)
    print(json.dumps({"finished": True}))
except KeyboardInterrupt as exc:
    partial = exc.partial_result
    done = [o["scores"] for o in partial.outputs]
    model.run_native = real
    again = engine.predict_batch(data[: len(done)])["scores"]
    print(json.dumps({
        "interrupted": partial.interrupted,
        "sources": partial.sources,
        "batch_sizes": partial.batch_sizes,
        "failures": len(partial.failures),
        "same": bool(np.allclose(np.stack(done), again, rtol=1e-5, atol=1e-6)),
        "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("pyinfer")),
    }))
"""


def test_run_dataset_under_a_real_sigint_keeps_the_batches_done(nets: dict[str, Path]) -> None:
    code, out, err = _script(_API_RUN, nets["slow"]).finish()
    assert code == 0, err
    result = json.loads(out)
    assert result["interrupted"] is True
    done = len(result["sources"])
    assert 6 <= done < 40
    assert result["sources"] == [f"item {i}" for i in range(done)]
    assert sum(result["batch_sizes"]) == done
    assert (result["failures"], result["same"]) == (0, True)
    assert result["threads"] == []  # the preprocessing workers were stopped


# ---- a second signal while the results are written --------------------------------------------

_SLOW_SECOND_WRITE = """
import os, sys, time
real_fsync, writes = os.fsync, [0]

def fsync(fd):
    writes[0] += 1
    sys.stderr.write(f"fsync {writes[0]}\\n")
    sys.stderr.flush()
    if writes[0] == 2:
        time.sleep(60)  # the second file: time for another Ctrl-C
    real_fsync(fd)

os.fsync = fsync
from pyinfer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_while_writing_stops_at_once_leaving_complete_files(
    nets: dict[str, Path], tmp_path: Path
) -> None:
    paths = [tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.md"]
    process = _script(
        _SLOW_SECOND_WRITE,
        "--verbose", "profile", nets["fast"], "--repeat", "1", "--warmup", "2",
        "--iterations", "100000000", "--no-memory", "--json", paths[0], "--csv", paths[1],
        "--markdown", paths[2],
    )  # fmt: skip
    process.wait_for(r"timing 'fast' at batch 1 after")
    time.sleep(0.5)
    process.popen.send_signal(signal.SIGINT)
    process.wait_for(r"^fsync 2$")  # the JSON is written; the CSV is being written
    process.popen.send_signal(signal.SIGINT)
    start = time.monotonic()
    code, out, err = process.finish()
    assert time.monotonic() - start < 30  # it did not wait for the write
    assert code == cli.EXIT_INTERRUPTED, err
    assert out.startswith("Profiling Results:\n")
    assert ProfileReport.load(paths[0]).stability_reason.startswith("interrupted after")
    assert not paths[1].exists()
    assert not paths[2].exists()
    _no_temp_files(tmp_path)
    assert err.endswith(
        f"wrote JSON report to {paths[0]}\nfsync 2\npyinfer profile: interrupted again: stopped "
        "without writing the rest; the files reported as written are complete, the others were "
        "not written\n"
    )


def test_signal_handlers_are_put_back_and_an_ignored_sigint_stays_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(["env", "--json"]) == cli.EXIT_OK
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    capsys.readouterr()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from pyinfer.cli.signals import stop_signals

        with stop_signals() as signals:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == signals._handle
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing happens
            with pytest.raises(KeyboardInterrupt, match="SIGTERM"):  # noqa: PT012
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here, at once
        assert signals.received == [signal.SIGTERM]
        assert signals.terminated
        assert not signals.repeated
        assert signals.exit_status(cli.EXIT_INTERRUPTED) == cli.EXIT_TERMINATED
        assert signals.exit_status(cli.EXIT_OK) == cli.EXIT_OK
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) == before[1]


# ---- SIGKILL while writing, and the temporary files it leaves ---------------------------------

_WRITE_FOREVER = """
import sys
from pathlib import Path
from pyinfer.report import write_atomic

data = Path(sys.argv[1]).read_bytes()
write_atomic(sys.argv[2], data)
print("ready", flush=True)
while True:
    write_atomic(sys.argv[2], data)  # what ProfileReport.save and every pyinfer command use
"""


def test_sigkill_while_writing_never_leaves_a_truncated_report(tmp_path: Path) -> None:
    samples = np.random.default_rng(0).lognormal(np.log(5e6), 0.1, 50_000)
    template = make_report(samples_ns=samples).save(tmp_path / "template.json")
    size = template.stat().st_size
    assert size > 1_000_000  # a write takes long enough for a kill to land inside it
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "report.json"
    rng = random.Random(7)
    outcomes = {"absent": 0, "complete": 0}
    for _ in range(20):
        process = _script(_WRITE_FOREVER, template, target)
        deadline = time.monotonic() + HANG_S
        while not process.out and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        process.popen.kill()
        process.finish()
        if not target.exists():
            outcomes["absent"] += 1
            continue
        assert target.stat().st_size == size
        loaded = ProfileReport.load(target)
        assert loaded.latency.stats.count == 50_000
        outcomes["complete"] += 1
    assert sum(outcomes.values()) == 20
    assert outcomes["complete"] > 0
    leftovers = sorted(p for p in folder.iterdir() if p != target)
    assert all(re.fullmatch(r"\.report\.json\.[a-z0-9_]{8}\.tmp", p.name) for p in leftovers)
    # What a reader sees: only the report; the leftovers are hidden and match no *.json.
    assert sorted(folder.glob("*.json")) == [target]
    # The next write removes leftovers older than STALE_TEMP_S, and only those.
    stale = folder / ".report.json.abcd1234.tmp"
    stale.write_bytes(b'{"model": "trunc')
    old = time.time() - STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    fresh = folder / ".report.json.zzzz9999.tmp"
    fresh.write_bytes(b"{")
    other = folder / ".other.json.abcd1234.tmp"
    other.write_bytes(b"{")
    os.utime(other, (old, old))
    write_atomic(target, template.read_bytes())
    assert not stale.exists()
    assert fresh.exists()
    assert other.exists()


_SLOW_EXPORT = """
import sys, time
from pathlib import Path
from pyinfer.suite.artifacts import Artifacts as _Artifacts

def write(path):
    with open(path, "wb") as f:
        for _ in range(1000):
            f.write(b"x" * 1000)
            f.flush()
            print("wrote", flush=True)
            time.sleep(0.01)

_Artifacts(Path(sys.argv[1])).get("model.onnx", sys.argv[2], write)
"""


def test_an_export_killed_half_written_is_exported_again_not_reused(tmp_path: Path) -> None:
    key = "onnx|model=abc|versions"
    written: list[Path] = []

    def export(path: Path) -> None:
        path.write_bytes(b"a complete export")
        written.append(path)

    # A complete export, recorded; then one that a later run rewrites (the file changed on disk)
    # and that is killed half way.
    _Artifacts(tmp_path).get("model.onnx", key, export)
    model = tmp_path / "model.onnx"
    os.utime(model, ns=(0, 0))
    process = _script(_SLOW_EXPORT, tmp_path, key)
    deadline = time.monotonic() + HANG_S
    while len(process.out) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.popen.kill()
    process.finish()
    assert 5_000 <= model.stat().st_size < 1_000_000  # half-written
    manifest = json.loads((tmp_path / _Artifacts.MANIFEST).read_text())
    assert "model.onnx" not in manifest  # nothing vouches for it
    artifacts = _Artifacts(tmp_path)
    assert artifacts.get("model.onnx", key, export) == model
    assert artifacts.reused == []
    assert len(written) == 2
    assert model.read_bytes() == b"a complete export"
    again = _Artifacts(tmp_path)
    again.get("model.onnx", key, export)
    assert again.reused == ["model.onnx"]
    assert len(written) == 2


# ---- truncated and incomplete reports ---------------------------------------------------------


def _load_text(loader: Any, text: bytes) -> tuple[Any, str | None]:
    """What ``loader.from_json(text)`` gives: the record, or the typed error's message."""
    try:
        return loader.from_json(text), None
    except InvalidArgumentError as exc:
        return None, str(exc)


def _small_report() -> ProfileReport:
    return make_report(samples_ns=np.array([5.0e6, 5.1e6, 4.9e6, 5.2e6, 5.05e6]))


@pytest.mark.parametrize("kind", ["profile", "sweep"])
def test_every_truncation_of_a_report_is_refused_naming_the_file(tmp_path: Path, kind: str) -> None:
    report = _small_report()
    record: ProfileReport | SweepReport = report
    if kind == "sweep":
        assert report.batch_curve is not None
        record = SweepReport(
            "m", "onnx", "onnxruntime", "cpu", "CPU", {"x": "(batch, 8) float32"}, {},
            report.batch_curve, report.environment, interrupted=True,
        )  # fmt: skip
    loader = type(record)
    data = (record.to_json() + "\n").encode()
    assert len(data) < 20_000
    complete = len(data.rstrip())
    prefix = f"{loader.JSON_WHAT} is not valid JSON: "
    refused = []
    for cut in range(len(data) + 1):
        loaded, message = _load_text(loader, data[:cut])
        if message is not None:
            assert message.startswith(prefix), (cut, message)
            refused.append(cut)
            continue
        assert cut >= complete, cut
        assert loaded == record, cut
    assert refused == list(range(complete))
    # From a file, the message names it (a sample of the cuts: each is a file write).
    path = tmp_path / "report.json"
    for cut in [*range(0, complete, 97), complete - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(InvalidArgumentError) as caught:
            loader.load(path)
        assert str(caught.value).startswith(f"{path}: {prefix}")
    path.write_bytes(data[:complete])
    assert loader.load(path) == record


def test_a_complete_json_missing_a_required_field_is_refused_naming_it(tmp_path: Path) -> None:
    full = _small_report().to_dict()
    path = tmp_path / "report.json"
    required = {
        "": ["model", "format", "framework", "device", "device_name", "batch_size", "latency"],
        "latency": ["batch_size", "stats", "samples_ns", "stable", "stability_reason"],
        "latency.stats": ["count", "mean_ms", "p99_ms"],
    }
    for where, names in required.items():
        for name in names:
            data = json.loads(json.dumps(full))
            parent = data
            for part in filter(None, where.split(".")):
                parent = parent[part]
            del parent[name]
            path.write_text(json.dumps(data))
            root = "report" + (f".{where}" if where else "")
            with pytest.raises(InvalidArgumentError) as caught:
                ProfileReport.load(path)
            assert str(caught.value) == f"{path}: {root}: field '{name}' is missing"
    data = json.loads(json.dumps(full))
    del data["batch_curve"]["points"]
    with pytest.raises(InvalidArgumentError, match=r"^report\.batch_curve: field 'points'"):
        ProfileReport.from_dict(data)
    # Valid JSON with every field, but the raw samples cut short: refused, not half-filled.
    data = json.loads(json.dumps(full))
    data["latency"]["samples_ns"] = data["latency"]["samples_ns"][:3]
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidArgumentError) as caught:
        ProfileReport.load(path)
    assert str(caught.value) == (
        f"{path}: report.latency.samples_ns holds 3 samples, but report.latency.stats.count "
        "says 5: the report is incomplete"
    )
    data["latency"]["samples_ns"] = []  # left out on purpose (a stripped report): it loads
    assert ProfileReport.from_dict(data).latency.stats.count == 5
    assert BatchCurve.from_dict(full["batch_curve"]) == _small_report().batch_curve


def test_an_interrupt_inside_a_chunk_keeps_the_calls_timed_before_it() -> None:
    from pyinfer.profiling.stopping import CHUNK_TIME_S, StoppingRule, collect
    from pyinfer.profiling.timing import timed_samples as _timed_samples

    calls = [0]

    def call() -> None:
        calls[0] += 1
        if calls[0] == 250:
            raise KeyboardInterrupt

    typical_ns = CHUNK_TIME_S / 100 * 1e9  # chunks of 100 calls: the third one is cut at 50
    rule = StoppingRule(min_iterations=1000, max_iterations=1000, min_time_s=0.0)
    with pytest.raises(KeyboardInterrupt) as caught:
        collect(lambda n: _timed_samples(call, n), rule, time.perf_counter, typical_ns=typical_ns)
    kept = caught.value.partial_samples_ns  # type: ignore[attr-defined]
    assert len(kept) == 249  # the call that raised is not a sample
    assert np.all(np.asarray(kept) > 0)


# ---- exports: staged beside the target, moved into place once complete -----------------------

_SLOW_STAGED_EXPORT = """
import sys, time
from pathlib import Path
from pyinfer.export import _staged

with _staged(Path(sys.argv[1])) as staged:
    with open(staged, "wb") as f:
        for _ in range(1000):
            f.write(b"n" * 1000)
            f.flush()
            print("wrote", flush=True)
            time.sleep(0.01)
"""


def test_an_export_killed_part_way_leaves_the_old_model_and_a_hidden_staging_folder(
    tmp_path: Path,
) -> None:
    from pyinfer.export import STALE_STAGING_S, _staged

    out = tmp_path / "model.onnx"
    out.write_bytes(b"old model")
    (tmp_path / "model.onnx.data").write_bytes(b"old weights")
    process = _script(_SLOW_STAGED_EXPORT, out)
    deadline = time.monotonic() + HANG_S
    while len(process.out) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.popen.kill()
    process.finish()
    assert out.read_bytes() == b"old model"
    assert (tmp_path / "model.onnx.data").read_bytes() == b"old weights"
    (staging,) = [p for p in tmp_path.iterdir() if p.name.endswith(".export")]
    assert re.fullmatch(r"\.model\.onnx\.[a-z0-9_]{8}\.export", staging.name)
    assert (staging / "model.onnx").stat().st_size >= 5_000  # the half-written one, hidden

    # An export that fails leaves the old files too, and no staging folder of its own.
    def failing_export(staged: Path) -> None:
        staged.write_bytes(b"half")
        raise RuntimeError("exporter failed")

    with pytest.raises(RuntimeError, match="exporter failed"), _staged(out) as staged:
        failing_export(staged)
    assert out.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".export")] == [staging.name]
    # A new model with its weights replaces the pair; the killed export's folder, once stale,
    # is removed by it.
    old = time.time() - STALE_STAGING_S - 60
    os.utime(staging, (old, old))
    with _staged(out) as staged:
        staged.write_bytes(b"new model")
        staged.with_name("model.onnx.data").write_bytes(b"new weights")
    assert out.read_bytes() == b"new model"
    assert (tmp_path / "model.onnx.data").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]
    # A model without external data: the old weights file goes, it is not this model's.
    with _staged(out) as staged:
        staged.write_bytes(b"self-contained")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    # A folder (a SavedModel) replaces the old folder whole.
    saved = tmp_path / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "variables" / "old.index").write_bytes(b"old")
    with _staged(saved) as staged:
        staged.mkdir()
        (staged / "saved_model.pb").write_bytes(b"graph")
    assert sorted(p.name for p in saved.iterdir()) == ["saved_model.pb"]


def test_formats_rebuilds_a_truncated_cached_export_instead_of_loading_it(
    torch_module: Any, tmp_path: Path
) -> None:
    from pyinfer.suite import compare_formats

    torch_module.manual_seed(0)
    net = torch_module.nn.Sequential(torch_module.nn.Linear(8, 4))
    model, work = tmp_path / "mlp.pt", tmp_path / "exports"
    torch_module.save(net, model)

    def run() -> Any:
        result = compare_formats(
            model, formats=["torchscript"], input_shape=[8], work_dir=work, quick=True,
            trust_code=True,
        )  # fmt: skip
        assert [(e.format, e.status) for e in result.entries] == [
            ("eager", "ok"),
            ("torchscript", "ok"),
        ]
        return result.entries[1]

    assert run().reused is False
    cached = work / "mlp.torchscript.pt"
    data, stat = cached.read_bytes(), cached.stat()
    # What a writer killed half-way (an older pyinfer, another tool) leaves: half the file,
    # even with the modification time it had.
    cached.write_bytes(data[: len(data) // 2])
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = run()
    assert (again.reused, again.parity) == (False, True)  # exported again, loaded, it matches
    assert cached.stat().st_size > len(data) // 2
