"""``pyinfer bench`` and ``pyinfer formats``: the suite and the format comparison, end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests._settings import NEVER_STABLE

import pyinfer
from pyinfer import cli, suite
from pyinfer.errors import FrameworkNotInstalledError, InvalidArgumentError
from pyinfer.profiling import repeat
from pyinfer.report import comparison_table, format_short
from pyinfer.suite import (
    FormatEntry,
    FormatsResult,
    SuiteConfig,
    SuiteResult,
)
from pyinfer.suite import busy as suite_busy
from pyinfer.suite import formats as suite_formats
from pyinfer.suite import models as suite_models
from pyinfer.suite import parity as suite_parity
from pyinfer.suite import runner as suite_runner
from pyinfer.suite import settings as suite_settings
from pyinfer.suite import tables as suite_tables

# The specification's header lines, character for character.
SPEC_FORMATS = (
    "Model Format    │ Latency (ms) │ Throughput (FPS) │ Memory (MB)",
    "────────────────┼──────────────┼──────────────────┼────────────",
)
SPEC_BERT = (
    "Sequence Length │ Latency (ms) │ Throughput (seq/s)",
    "────────────────┼──────────────┼───────────────────",
)
SPEC_MOBILENET = (
    "Input Size     │ Latency (ms) │ Throughput (FPS)",
    "───────────────┼──────────────┼─────────────────",
)
TINY_BERT = {
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
MOBILENET_32 = ["bench", "--only", "mobilenetv2", "--input-sizes", "32", "--quick"]
MOBILENET_32 += ["--device", "cpu"]


def _after(lines: list[str], header: tuple[str, str]) -> list[str]:
    """The table's lines from its header on (header, rule, rows up to a blank line)."""
    start = lines.index(header[0])
    # A failed row's reason widens the last column; the header stays the specification's.
    assert lines[start + 1].startswith(header[1])
    end = start + 2
    while end < len(lines) and "│" in lines[end]:
        end += 1
    return lines[start:end]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")]


def _expected_code(result: SuiteResult) -> int:
    return 3 if result.unstable else 0


@pytest.fixture
def torchvision_ok(torchvision_module: Any) -> Any:
    return torchvision_module


def test_mobilenet_table_json_and_markdown(
    torchvision_ok: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    argv = [*MOBILENET_32[:4], "32,64", *MOBILENET_32[5:], "--json", str(out_json)]
    code = cli.main([*argv, "--markdown", str(out_md)])
    captured = capsys.readouterr()
    result = SuiteResult.load(out_json)
    # A figure that missed its target warns but exits 0 (3 with --strict, as the JSON says).
    assert code == 0
    assert result.to_dict()["exit_code"] == _expected_code(result)
    lines = captured.out.splitlines()
    assert lines[:2] == ["MobileNetV2 (Lightweight Model)", "==============================="]
    env = result.environments["cpu"]
    assert lines[3] == f"CPU ({env.cpu_model}, {env.physical_cores} cores)"
    table = _after(lines, SPEC_MOBILENET)
    assert len(table) == 4
    for row, entry, size in zip(table[2:4], result.entries, (32, 64), strict=True):
        assert entry.report is not None
        assert entry.report.input_shapes == {"x": (1, 3, size, size)}
        assert entry.report.batch_size == 1
        mark = "" if entry.stable else "~"
        assert _cells(row) == [
            f"{size}x{size}",
            format_short(entry.report.latency.stats.mean_ms) + mark,
            f"{entry.report.throughput_fps:.1f}",
        ]
        # --quick makes no throughput run: FPS is items over the latency run's wall time.
        assert entry.report.throughput is None
        assert entry.report.memory is not None
        assert entry.report.memory.runs == 1
    assert result.settings["warmup_iterations"] == 3
    assert result.config["input_sizes"] == [32, 64]
    assert captured.out.endswith(result.summary_line() + "\n")
    assert re.search(r"^\[1/2\] cpu MobileNetV2 32x32 \(elapsed \d+ s\)$", captured.err, re.M)
    md = out_md.read_text()
    assert md.startswith("### MobileNetV2 (Lightweight Model)\n\n**CPU (")
    assert "```\n" + "\n".join(table) in md
    raw = json.loads(out_json.read_text())
    assert raw["kind"] == "pyinfer-bench-suite"
    assert raw["schema_version"] == "1.2"
    assert raw["outcome"] == result.outcome.name.lower()
    assert raw["tables"][0]["table"].splitlines()[:2] == list(SPEC_MOBILENET)
    assert raw["entries"][0]["report"]["latency"]["stats"]["count"] >= 1
    first = result.entries[0]
    assert first.report is not None
    memory = first.report.memory
    assert memory is not None
    assert raw["rows"][0] == {
        "table": "mobilenetv2",
        "device": "cpu",
        "status": "ok",
        "reason": "",
        "row": "32x32",
        "latency_ms": first.report.latency.stats.mean_ms,
        "latency_median_ms": first.report.latency.stats.median_ms,
        "throughput": first.report.throughput_fps,
        "memory_mb": (memory.parameter_bytes + (memory.peak_activation_bytes or 0)) / 2**20,
        "stable": first.stable,
        "latency_ratio": None,
        "latency_ratio_low": None,
        "latency_ratio_high": None,
    }


def test_bert_table_through_the_library(torch_module: Any) -> None:
    pytest.importorskip("transformers")
    lines: list[str] = []
    config = SuiteConfig(
        models=("bert",),
        seq_lengths=(8, 16),
        bert_config=TINY_BERT,
        quick=True,
        devices=("cpu",),
    )
    result = suite.run_suite(config, progress=lines.append)
    assert [e.status for e in result.entries] == ["ok", "ok"]
    text = result.to_text().splitlines()
    assert text[0] == "BERT-Base (Text Classification)"
    table = _after(text, SPEC_BERT)
    for row, entry, length in zip(table[2:], result.entries, (8, 16), strict=True):
        assert entry.report is not None
        # Real token ids with the tokenizer's attention mask (and type ids), not ids alone.
        names = ("input_ids", "attention_mask", "token_type_ids")
        assert entry.report.input_shapes == dict.fromkeys(names, (1, length))
        assert entry.report.input_dtypes == dict.fromkeys(names, "int64")
        assert _cells(row)[0] == f"{length}"
        mean = format_short(entry.report.latency.stats.mean_ms)
        assert _cells(row)[1] == mean + ("" if entry.stable else "~")
        assert _cells(row)[2] == f"{entry.report.throughput_fps:.1f}"
    assert any(re.fullmatch(r"\[1/2\] cpu BERT-Base seq 8 \(elapsed \d+ s\)", x) for x in lines)
    assert result.config["bert_config"] == TINY_BERT


def test_resnet_formats_batch_sweep_and_reused_exports(
    torchvision_ok: Any,
    onnx_module: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    argv = ["bench", "--only", "resnet50", "--formats", "pytorch,torchscript,onnx"]
    argv += ["--image-size", "32", "--batch-sizes", "1,2", "--quick", "--device", "cpu"]
    argv += ["--work-dir", str(work), "--json", str(tmp_path / "r.json")]
    code = cli.main(argv)
    out = capsys.readouterr().out.splitlines()
    result = SuiteResult.load(tmp_path / "r.json")
    assert code == 0
    table = _after(out, SPEC_FORMATS)
    labels = [_cells(row)[0] for row in table[2:5]]
    assert labels == ["PyTorch (FP32)", "TorchScript", "ONNX (FP32)"]
    formats = [e for e in result.entries if e.table == "resnet50"]
    assert [e.report.format for e in formats if e.report] == ["pytorch", "torchscript", "onnx"]
    if all(e.stable for e in formats):  # then the rows are exactly report.comparison_table's
        reports = [e.report for e in formats if e.report]
        labels = ["PyTorch (FP32)", "TorchScript", "ONNX (FP32)"]
        assert "\n".join(table) == comparison_table(reports, labels=labels)
    assert all(e.report and e.report.memory is not None for e in formats)
    batch_header = out.index("Batch Size │ Latency (ms) │ Throughput (FPS) │ Batches/s (RPS)")
    env = result.environments["cpu"]
    assert out[batch_header - 1] == (
        f"Batch Processing (CPU {env.cpu_model}, {env.physical_cores} cores; PyTorch FP32)"
    )
    assert [_cells(r)[0] for r in out[batch_header + 2 : batch_header + 4]] == ["1", "2"]
    sweep = next(e for e in result.entries if e.table == "resnet50-batch")
    assert sweep.report is not None
    assert sweep.report.batch_curve is not None
    batch_rows = [r for r in result.rows() if r["table"] == "resnet50-batch"]
    assert [(r["row"], r["latency_ms"]) for r in batch_rows] == [
        (str(p.batch_size), p.latency_mean_ms) for p in sweep.report.batch_curve.points
    ]
    kept = sorted(p.name for p in work.iterdir())
    assert "resnet50.torchscript.pt" in kept
    assert "resnet50.onnx" in kept
    manifest = json.loads((work / "pyinfer-bench-manifest.json").read_text())
    stamp = (work / "resnet50.onnx").stat().st_mtime_ns
    assert manifest["resnet50.onnx"]["key"].startswith("resnet50-onnx|image=32|seed=0|")

    # A second run finds the exports and reuses them instead of exporting again (its entries
    # measured in this process: the exports are the parent's business).
    monkeypatch.setattr(repeat, "run_worker", _in_process())
    argv2 = ["bench", "--only", "resnet50", "--formats", "onnx", "--image-size", "32"]
    argv2 += ["--batch-sizes", "1", "--quick", "--device", "cpu", "--work-dir", str(work)]
    cli.main(argv2)
    assert (work / "resnet50.onnx").stat().st_mtime_ns == stamp
    # A different size is a different model: exported again, beside the first.
    (work / "resnet50.onnx").write_bytes(b"changed")
    cli.main(argv2)
    assert (work / "resnet50.onnx").stat().st_size > len(b"changed")
    capsys.readouterr()


def _in_process(fail_at: int = 0, interrupt_at: int = 0) -> Any:
    """A ``run_worker`` that runs jobs here; call ``fail_at`` fails, ``interrupt_at`` stops."""
    from pyinfer.errors import InferenceError
    from pyinfer.profiling import worker

    calls: list[str] = []

    def run(job: Any, folder: Path | None = None) -> Any:
        calls.append(job.label)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        if len(calls) == fail_at:
            raise InferenceError(f"{job.label}: boom")
        return worker.run_job(job)

    return run


def test_a_failed_entry_shows_why_and_exits_1(
    torchvision_ok: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(repeat, "run_worker", _in_process(fail_at=1))
    argv = [*MOBILENET_32[:4], "32,40", *MOBILENET_32[5:]]
    assert cli.main(argv) == cli.EXIT_FAILED
    lines = capsys.readouterr().out.splitlines()
    table = _after(lines, SPEC_MOBILENET)
    assert _cells(table[2]) == ["32x32", "-", "failed: InferenceError: 32x32: boom"]
    assert _cells(table[3])[0] == "40x40"  # the suite went on
    assert re.search(
        r"^2 entries: 1 measured, 1 failed(, 1 not stable)?; wall time \d+\.\d s$",
        "\n".join(lines),
        re.MULTILINE,
    )


def test_a_missing_framework_is_skipped_not_failed(
    torchvision_ok: Any, onnx_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = suite_runner.resnet_source

    def no_tf(models: Any, fmt: str, device: str) -> Any:
        if fmt in {"tensorflow", "tflite"}:
            raise FrameworkNotInstalledError(
                "TensorFlow is not installed: pip install pyinfer-toolkit[tf]"
            )
        return real(models, fmt, device)

    monkeypatch.setattr(suite_runner, "resnet_source", no_tf)
    monkeypatch.setattr(repeat, "run_worker", _in_process())
    config = SuiteConfig(
        models=("resnet50",),
        formats=("pytorch", "tensorflow", "tflite"),
        batch_sizes=(1,),
        image_size=32,
        quick=True,
        devices=("cpu",),
    )
    result = suite.run_suite(config)
    assert [e.status for e in result.entries] == ["ok", "skipped", "skipped", "ok"]
    assert result.exit_code in (cli.EXIT_OK, cli.EXIT_UNSTABLE)
    text = result.to_text().splitlines()
    # "Keras (FP32)", a row the specification does not have, keeps its first column's width.
    table = _after(text, SPEC_FORMATS)
    assert _cells(table[3]) == [
        "Keras (FP32)",
        "-",
        "-",
        "skipped: not installed",
    ]
    assert (
        "Keras (FP32): skipped: not installed: TensorFlow is not installed: "
        "pip install pyinfer-toolkit[tf]" in text
    )


def test_an_unstable_entry_is_marked(
    torchvision_ok: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(suite_settings, "quick_settings", lambda: NEVER_STABLE)
    monkeypatch.setattr(repeat, "run_worker", _in_process())
    assert cli.main(MOBILENET_32) == cli.EXIT_OK  # a warning; --strict makes it 3
    lines = capsys.readouterr().out.splitlines()
    table = _after(lines, SPEC_MOBILENET)
    assert _cells(table[2])[0] == "32x32"
    assert _cells(table[2])[1].endswith("~")
    after = lines[lines.index(table[-1]) + 1]
    assert after == (
        "~ not stable: the figure missed its stability or reproducibility target (see the JSON)"
    )
    assert any(line.startswith("1 entries: 1 measured, 1 not stable; ") for line in lines)


def test_ctrl_c_keeps_the_finished_entries(
    torchvision_ok: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(repeat, "run_worker", _in_process(interrupt_at=2))
    out_json = tmp_path / "partial.json"
    argv = [*MOBILENET_32[:4], "32,40,48", *MOBILENET_32[5:], "--json", str(out_json)]
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    table = _after(captured.out.splitlines(), SPEC_MOBILENET)
    assert [_cells(r)[0] for r in table[2:] if "│" in r] == ["32x32"]
    assert "interrupted: keeping the entries finished so far" in captured.err
    result = SuiteResult.load(out_json)
    assert result.interrupted
    assert len(result.entries) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--only", "resnet,bert"],
            "--only: unknown name 'resnet'; use one or more of resnet50, bert, mobilenetv2",
        ),
        (
            ["--formats", "pytorch,caffe"],
            "--formats: unknown name 'caffe'; use one or more of pytorch, onnx, torchscript, "
            "tensorflow, tflite",
        ),
        (
            ["--input-sizes", "16"],
            "--input-sizes must be at least 32 (MobileNetV2 halves its input five times), got 16",
        ),
        (
            ["--seq-lengths", "128,1000"],
            "--seq-lengths must be at most 512 (BERT-base's position embeddings), got 1000",
        ),
    ],
)
def test_bad_suite_options_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *argv]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == f"pyinfer bench: error: {message}\n"


def test_cuda_asked_without_a_gpu_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    if pyinfer.cuda_available():
        pytest.skip("this machine has CUDA")
    assert cli.main([*MOBILENET_32[:-1], "cuda"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("pyinfer bench: error: --device cuda asks for CUDA, which is not ")


def test_suite_json_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"kind": "something"}')
    with pytest.raises(InvalidArgumentError, match="not a pyinfer suite result"):
        SuiteResult.load(tmp_path / "x.json")
    with pytest.raises(InvalidArgumentError, match="cannot read the suite result"):
        SuiteResult.load(tmp_path / "missing.json")
    data = {"kind": "pyinfer-bench-suite", "schema_version": "2.0"}
    with pytest.raises(
        InvalidArgumentError,
        match=r"^suite result schema 2\.0 is newer than this pyinfer reads \(1\.x\); upgrade",
    ):
        SuiteResult.from_dict(data)


def test_subprocess_bench_runs_and_reports_progress() -> None:
    pytest.importorskip("torchvision")
    env = dict(os.environ, PYTHONPATH=str(Path(pyinfer.__file__).parents[1]))
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfer", *MOBILENET_32],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert _cells(_after(lines, SPEC_MOBILENET)[2])[0] == "32x32"
    assert re.search(r"^\[1/1\] cpu MobileNetV2 32x32 \(elapsed \d+ s\)$", proc.stderr, re.M)


# ---- formats ----------------------------------------------------------------------------------


def _torch_pickle(torch: Any, path: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    torch.save(net, path)
    return path


def test_formats_of_a_torch_module(
    torch_module: Any, onnx_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _torch_pickle(torch_module, tmp_path / "mlp.pt")
    work, out_json = tmp_path / "exports", tmp_path / "f.json"
    argv = ["formats", str(model), "--trust-code", "--input-shape", "1x8", "--quick"]
    code = cli.main([*argv, "--work-dir", str(work), "--json", str(out_json)])
    out = capsys.readouterr().out.splitlines()
    result = FormatsResult.load(out_json)
    assert code == 0  # an unstable figure warns; only --strict fails the command
    assert [e.format for e in result.entries] == ["eager", "torchscript", "torch-export", "onnx"]
    assert [e.status for e in result.entries] == ["ok"] * 4
    assert result.entries[0].original
    assert result.entries[0].parity is None
    for e in result.entries[1:]:
        assert e.parity is True
        assert e.relative_error is not None
        assert e.relative_error <= suite.PARITY_TOLERANCE
        assert Path(e.path).parent == work
        assert Path(e.path).exists()
    assert sorted(p.name for p in work.iterdir()) == [
        "mlp.onnx",
        "mlp.onnx.data",
        "mlp.pt2",
        "mlp.torchscript.pt",
        "pyinfer-bench-manifest.json",
    ]
    assert out[0].startswith("mlp.pt (pytorch) on CPU (")
    assert out[0].endswith(", batch 1")
    header = (
        "Model Format    │ Latency (ms) │ Throughput (FPS) │ Memory (MB) │ Latency ratio     │ "
        "Parity"
    )
    start = out.index(header)
    rows = [_cells(r) for r in out[start + 2 : start + 6]]
    assert [r[0] for r in rows] == [
        "PyTorch (FP32)",
        "TorchScript",
        "torch.export",
        "ONNX (FP32)",
    ]
    assert rows[0][5] == "reference"
    assert rows[3][5] == f"ok ({result.entries[3].relative_error:.1e})"
    # One run each (--quick): the latency ratios have no interval, and the note says why.
    assert [r[4] for r in rows] == ["1.00x"] + [
        e.ratio.text() for e in result.entries[1:] if e.ratio
    ]
    assert all(e.ratio and e.ratio.low is None for e in result.entries[1:])
    assert out[-3] == (
        "Parity: each output's largest difference from the original's, over that output's "
        "largest magnitude (ok within 1e-04); integer and boolean outputs must be equal"
    )
    assert out[-2] == (
        "Latency ratio: the latency over the original's, estimated from the runs' medians "
        "(fresh processes, interleaved), with its 95% interval; no interval from 1 run(s) a "
        "side: it needs --repeat 4 or more"
    )
    assert out[-1] == result.recommendation()
    assert out[-1].startswith("fastest at batch 1: ")
    assert out[-1].endswith("; all outputs match")
    assert all(e.report and e.report.input_shapes == {"input": (1, 8)} for e in result.entries[:1])


def test_formats_of_a_keras_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import require_module

    require_module("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu")])
    from pyinfer.export import export_keras

    path = export_keras(net, tmp_path / "small.keras")
    code = cli.main(
        ["formats", str(path), "--quick", "--batch-size", "2", "--json", str(tmp_path / "k.json")]
    )
    out = capsys.readouterr().out.splitlines()
    result = FormatsResult.load(tmp_path / "k.json")
    assert code == 0  # an unstable figure warns; only --strict fails the command
    assert [e.format for e in result.entries] == ["keras", "saved-model", "tflite"]
    assert [e.parity for e in result.entries] == [None, True, True]
    assert result.entries[2].tolerance == suite.PARITY_TOLERANCE_TFLITE
    assert all(e.report and e.report.batch_size == 2 for e in result.entries)
    assert out[0].startswith("small.keras (keras) on CPU (")
    assert out[0].endswith(", batch 2")


def test_formats_of_an_onnx_file_is_itself_only(
    torch_module: Any, onnx_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyinfer.export import export_onnx

    torch_module.manual_seed(0)
    path = export_onnx(
        torch_module.nn.Linear(4, 3), tmp_path / "lin.onnx", torch_module.ones(1, 4)
    )[0]
    assert cli.main(["formats", str(path), "--formats", "tflite"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        f"pyinfer formats: error: --formats: tflite not reachable from {path} (onnx); "
        "reachable: onnx\n"
    )
    code = cli.main(["bench", str(path), "--quick"])  # `bench MODEL` is the same command
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert (
        "nothing else is reachable from an ONNX file: pyinfer exports from torch modules and "
        "Keras models only" in out
    )
    assert _cells(out[4])[0] == "ONNX (FP32)"
    assert _cells(out[4])[5] == "reference"
    assert out[-1] == "fastest at batch 1: ONNX (FP32) (the original)"
    assert not any(line.startswith("Parity: ") for line in out)  # nothing was compared


def test_formats_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["formats", str(tmp_path / "nope.onnx")]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("pyinfer formats: error: ")
    assert "nope.onnx" in err
    assert cli.main(["formats", str(tmp_path), "--formats", "eager,jax"]) == cli.EXIT_FAILED


def test_parity_measure() -> None:
    import numpy as np

    ref = {"y": np.array([[1.0, -4.0]], np.float32)}
    close = {"y": np.array([[1.0, -4.0002]], np.float32)}
    check = suite_parity.output_parity(ref, close, 1e-4)
    difference = float(np.float32(-4.0002)) + 4.0  # float32's nearest value to -4.0002
    assert check.max_abs == pytest.approx(-difference)
    assert check.relative == pytest.approx(-difference / 4)
    assert check.ok
    assert (check.output, check.detail) == ("y", "")
    far = suite_parity.output_parity(ref, {"z": np.array([[1.0, -3.0]], np.float32)}, 1e-4)
    assert not far.ok
    assert far.detail == "output 'y': relative error 2.5e-01 over the tolerance 1e-04"
    with pytest.raises(InvalidArgumentError, match=r"output 'y': shape \(2,\) against"):
        suite_parity.output_parity(ref, {"y": np.zeros(2)}, 1e-4)
    with pytest.raises(InvalidArgumentError, match=r"2 outputs \(a, b\) against the original's 1"):
        suite_parity.output_parity(ref, {"a": np.zeros(2), "b": np.zeros(2)}, 1e-4)


def test_parity_compares_every_output_by_name_and_names_the_one_that_differs() -> None:
    import numpy as np

    ref = {
        "score": np.array([[0.5, 2.0]], np.float32),
        "label": np.array([1, 0, 1], np.int64),
        "mask": np.array([True, False]),
    }
    # Another order of the same names: matched by name, not position.
    same = {"mask": ref["mask"].copy(), "label": ref["label"].copy(), "score": ref["score"] + 1e-6}
    assert suite_parity.output_parity(ref, same, 1e-4).ok
    # The first output matches; the integer one differs by one class in one of three items.
    wrong_label = {**same, "label": np.array([1, 1, 1], np.int64)}
    check = suite_parity.output_parity(ref, wrong_label, 1e-4)
    assert not check.ok
    assert check.output == "label"
    assert check.detail == "output 'label': 1 of 3 values differ"
    assert check.relative == float("inf")
    wrong_mask = {**same, "mask": np.array([True, True])}
    assert (
        suite_parity.output_parity(ref, wrong_mask, 1e-4).detail
        == "output 'mask': 1 of 2 values differ"
    )
    # NaN where the original has NaN is equal; NaN where it has a number is not.
    nan_ref = {"y": np.array([np.nan, 1.0], np.float32)}
    assert suite_parity.output_parity(nan_ref, {"y": np.array([np.nan, 1.0], np.float32)}, 1e-4).ok
    assert not suite_parity.output_parity(
        nan_ref, {"y": np.array([np.nan, np.nan], np.float32)}, 1e-4
    ).ok


def test_a_mismatching_or_failed_format_exits_1() -> None:
    env = suite_runner.collect_environment()
    entries = (
        FormatEntry("eager", "PyTorch (FP32)", "ok", original=True),
        FormatEntry(
            "onnx",
            "ONNX (FP32)",
            "ok",
            parity=False,
            relative_error=0.5,
            parity_output="logits",
            mismatch="output 'logits': relative error 5.0e-01 over the tolerance 1e-04",
        ),
        FormatEntry(
            "torch-export",
            "torch.export",
            "ok",
            parity=False,
            relative_error=float("inf"),
            parity_output="label",
            mismatch="output 'label': 1 of 3 values differ",
        ),
        FormatEntry("torchscript", "TorchScript", "failed", reason="export failed: X: y"),
    )
    result = FormatsResult("m.pt", "pickle", "cpu", 1, entries, "", env, {}, 1.0)
    assert result.exit_code == cli.EXIT_FAILED
    assert result.recommendation() == "no format was measured"
    rows = [_cells(r) for r in result.table().splitlines()[2:]]
    assert rows[3] == ["TorchScript", "-", "-", "-", "-", "failed: export failed: X: y"]
    assert result.entries[1].parity_text() == "MISMATCH logits (5.0e-01)"
    assert result.entries[2].parity_text() == "MISMATCH label"
    assert FormatsResult.from_json(result.to_json()) == result


def test_a_busy_machine_is_called_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert suite_busy.busy_warning(0.4) == ""
    assert suite_busy.busy_warning(None) == ""
    assert suite_busy.busy_warning(1.25) == (
        "warning: other processes kept 1.2 of 2 CPUs busy before the suite started: expect "
        "noisy and unstable measurements"
    )
    env = suite_runner.collect_environment()
    busy = SuiteResult((), {"cpu": env}, {}, {}, 3.0, busy_cpus=1.5)
    assert busy.summary_line() == (
        "0 entries: 0 measured; wall time 3.0 s\n" + suite_busy.busy_warning(1.5)
    )
    assert SuiteResult.from_json(busy.to_json()) == busy
    # /proc/stat: 300 jiffies of which 100 idle over the sample -> 2/3 of 2 CPUs busy.
    samples = iter([(1000, 500), (1300, 600)])
    monkeypatch.setattr(suite_busy, "_cpu_times", lambda: next(samples))
    assert suite_busy.busy_cpus(0.001) == pytest.approx(4 / 3)


def test_a_missing_package_names_its_extra() -> None:
    with pytest.raises(FrameworkNotInstalledError) as info:
        suite_models._require("no_such_package_for_pyinfer.models", "text", "BERT-base")
    assert str(info.value).startswith(
        "BERT-base needs no_such_package_for_pyinfer (No module named "
        "'no_such_package_for_pyinfer'); pip install 'pyinfer-toolkit[text]'"
    )


def test_formats_ctrl_c_keeps_the_finished_formats(
    torch_module: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _torch_pickle(torch_module, tmp_path / "mlp.pt")
    monkeypatch.setattr(repeat, "run_worker", _in_process(interrupt_at=3))
    out_json = tmp_path / "f.json"
    argv = ["formats", str(model), "--trust-code", "--input-shape", "1x8", "--quick"]
    assert cli.main([*argv, "--json", str(out_json)]) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert "interrupted: keeping the formats finished so far" in captured.err
    assert "interrupted: the format running then was dropped" in captured.out.splitlines()
    result = FormatsResult.load(out_json)
    assert result.interrupted
    assert [e.format for e in result.entries] == ["eager", "torchscript"]


def test_formats_ctrl_c_while_exporting_measures_nothing(
    torch_module: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _torch_pickle(torch_module, tmp_path / "mlp.pt")
    real = suite_formats._export
    started: list[str] = []

    def stop_at_torch_export(fmt: str, *args: Any) -> Path:
        if fmt == "torch-export":
            raise KeyboardInterrupt
        return real(fmt, *args)

    monkeypatch.setattr(suite_formats, "_export", stop_at_torch_export)
    monkeypatch.setattr(repeat, "run_worker", lambda job, folder=None: started.append(job.label))
    argv = ["formats", str(model), "--trust-code", "--input-shape", "1x8", "--quick"]
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert "interrupted: keeping the formats finished so far" in captured.err
    assert started == []  # the exports come first; no worker was started
    assert "no format was measured" in captured.out.splitlines()


def test_an_export_that_fails_is_a_failed_row(
    torch_module: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _torch_pickle(torch_module, tmp_path / "mlp.pt")

    def no_export(fmt: str, *args: Any) -> Path:
        raise RuntimeError(f"cannot write {fmt}")

    monkeypatch.setattr(suite_formats, "_export", no_export)
    argv = ["formats", str(model), "--trust-code", "--input-shape", "1x8", "--quick"]
    assert cli.main([*argv, "--formats", "torchscript"]) == cli.EXIT_FAILED
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("TorchScript "))
    assert _cells(row) == ["TorchScript", "-", "-", "-", "-", "failed: export failed"]
    assert "TorchScript: failed: export failed: RuntimeError: cannot write torchscript" in out
    assert out[-1].endswith("; failed: TorchScript")


# torch's own warnings while it traces an exported program and runs its legacy ONNX exporter on
# a ScriptModule (the suite's -W error would turn them into failed exports).
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:no signature found for:UserWarning")
@pytest.mark.parametrize(
    ("exporter", "name", "formats"),
    [
        ("export_torchscript", "mlp_ts.pt", ["torchscript", "onnx"]),
        ("export_torch_program", "mlp.pt2", ["torch-export", "torchscript", "onnx"]),
    ],
)
def test_formats_of_torchscript_and_torch_export_files(
    torch_module: Any,
    onnx_module: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    exporter: str,
    name: str,
    formats: list[str],
) -> None:
    from pyinfer import export

    torch_module.manual_seed(0)
    net = torch_module.nn.Sequential(torch_module.nn.Linear(8, 4), torch_module.nn.Tanh())
    path = getattr(export, exporter)(net, tmp_path / name, torch_module.randn(2, 8))
    out_json = tmp_path / "f.json"
    code = cli.main(
        ["formats", str(path), "--quick", "--input-shape", "1x8", "--json", str(out_json)]
    )
    capsys.readouterr()
    result = FormatsResult.load(out_json)
    assert code == 0  # an unstable figure warns; only --strict fails the command
    assert [e.format for e in result.entries] == formats
    assert [e.status for e in result.entries] == ["ok"] * len(formats)
    assert [e.parity for e in result.entries] == [None] + [True] * (len(formats) - 1)


def test_formats_of_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import require_module

    require_module("tensorflow")
    import keras

    from pyinfer.export import export_keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    path = export_keras(net, tmp_path / "sm", format="saved_model")
    code = cli.main(["formats", str(path), "--quick", "--work-dir", str(tmp_path / "w")])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    rows = [_cells(line) for line in out if line.startswith(("SavedModel ", "TFLite "))]
    assert [r[0] for r in rows] == ["SavedModel", "TFLite (FP32)"]
    assert rows[0][5] == "reference"
    assert rows[1][5].startswith("ok (")
    assert (
        "from a SavedModel: Keras is not reachable (the folder does not keep the Keras model)"
        in out
    )
    assert (tmp_path / "w" / "sm.tflite").is_file()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_formats_of_a_torchscript_conv_net_exports_the_module_as_written(
    torch_module: Any, onnx_module: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """pyinfer runs TorchScript frozen and oneDNN-optimised; those mkldnn ops have no ONNX
    form, so the ONNX row is exported from the file's module as written, and torch's graph
    dump on a failed export never reaches stdout."""
    from pyinfer import export

    torch_module.manual_seed(0)
    net = torch_module.nn.Sequential(
        torch_module.nn.Conv2d(3, 4, 3),
        torch_module.nn.BatchNorm2d(4),
        torch_module.nn.ReLU(),
        torch_module.nn.AdaptiveAvgPool2d(1),
        torch_module.nn.Flatten(),
    ).eval()
    path = export.export_torchscript(net, tmp_path / "conv.pt", torch_module.randn(1, 3, 16, 16))
    out_json = tmp_path / "f.json"
    argv = ["formats", str(path), "--quick", "--input-shape", "1x3x16x16", "--json", str(out_json)]
    code = cli.main(argv)
    out = capfd.readouterr().out
    result = FormatsResult.load(out_json)
    assert code == 0, out  # an unstable figure warns; only --strict fails the command
    assert [(e.format, e.status, e.parity) for e in result.entries] == [
        ("torchscript", "ok", None),
        ("onnx", "ok", True),
    ]
    assert "graph(" not in out
    onnx_row = next(line for line in out.splitlines() if line.startswith("ONNX (FP32) "))
    assert _cells(onnx_row)[5].startswith("ok (")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input-shape", "3,224,224"], "must be a whole shape with the batch first"),
        (["--input-shape", "8"], "one size is only the batch"),
        (["--input-shape", "2x8", "--batch-size", "4"], "has batch 2, which contradicts"),
    ],
)
def test_formats_input_shape_is_the_profile_syntax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    try:
        code = cli.main(["formats", str(model), *argv])
    except SystemExit as exc:  # argparse refuses a malformed value itself
        code = int(exc.code or 0)
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_formats_of_a_two_input_module_with_named_shapes(
    torch_module: Any, onnx_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests._bench_nets import TwoInputs

    torch_module.manual_seed(0)
    path = tmp_path / "two.pt"
    torch_module.save(TwoInputs(), path)
    out_json = tmp_path / "two.json"
    argv = ["formats", str(path), "--trust-code", "--quick", "--json", str(out_json)]
    code = cli.main([*argv, "--input-shape", "a=2x8", "--input-shape", "b=2x3"])
    capsys.readouterr()
    result = FormatsResult.load(out_json)
    assert code == 0  # an unstable figure warns; only --strict fails the command
    assert result.batch_size == 2
    assert [(e.format, e.status) for e in result.entries] == [
        ("eager", "ok"),
        ("torchscript", "ok"),
        ("torch-export", "ok"),
        ("onnx", "ok"),
    ]
    assert [e.parity for e in result.entries] == [None, True, True, True]
    original = result.entries[0].report
    assert original is not None
    assert original.input_shapes == {"a": (2, 8), "b": (2, 3)}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["1x8", "b=1x3"], "with several inputs name each one: --input-shape a=1x8"),
        (["a=1x8", "a=1x4"], "--input-shape a=1x4: input 'a' is given twice"),
        (
            ["a=1x8", "b=2x3"],
            "--input-shape b=2x3 has batch 2, which contradicts --input-shape a=1x8",
        ),
        (["=1x8"], "the input's name before = is empty"),
    ],
)
def test_formats_input_shapes_that_do_not_fit_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], specs: list[str], message: str
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    argv = ["formats", str(model)]
    for spec in specs:
        argv += ["--input-shape", spec]
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_formats_refuses_a_batch_a_fixed_batch_model_cannot_run(
    onnx_module: Any, onnxruntime_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helper = onnx_module.helper
    tensor = onnx_module.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", tensor, [1, 8])],
        [helper.make_tensor_value_info("y", tensor, [1, 8])],
    )
    path = tmp_path / "fixed.onnx"
    onnx_module.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    code = cli.main(["formats", str(path), "--quick", "--batch-size", "4"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_USAGE
    assert captured.out == ""
    assert captured.err == (
        "pyinfer formats: error: --batch-size 4: model 'fixed' has a fixed batch size of 1 "
        "(input x: (1, 8) float32); use --batch-size 1, or export it with a dynamic batch\n"
    )


def test_formats_of_a_state_dict_with_its_architecture_as_an_option(
    torch_module: Any, onnx_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch_module.manual_seed(0)
    net = torch_module.nn.Linear(8, 4)
    path = tmp_path / "weights.pt"
    torch_module.save(net.state_dict(), path)
    out_json = tmp_path / "sd.json"
    argv = ["formats", str(path), "--quick", "--input-shape", "1x8", "--json", str(out_json)]
    argv += [
        "--option",
        "architecture=torch.nn:Linear",
        "--option",
        'architecture_kwargs={"in_features": 8, "out_features": 4}',
    ]
    argv += ["--formats", "onnx"]
    code = cli.main(argv)
    capsys.readouterr()
    result = FormatsResult.load(out_json)
    assert code == 0  # an unstable figure warns; only --strict fails the command
    assert [(e.format, e.status, e.parity) for e in result.entries] == [
        ("eager", "ok", None),
        ("onnx", "ok", True),
    ]


def test_formats_work_dir_reuses_exports_of_the_same_model_and_redoes_a_changed_one(
    torch_module: Any, tmp_path: Path
) -> None:
    model, work = _torch_pickle(torch_module, tmp_path / "mlp.pt"), tmp_path / "exports"

    def run() -> FormatEntry:
        result = suite.compare_formats(
            model,
            formats=["torchscript"],
            input_shape=[8],
            work_dir=work,
            quick=True,
            trust_code=True,
        )
        assert [e.format for e in result.entries] == ["eager", "torchscript"]
        return result.entries[1]

    first = run()
    written = work / "mlp.torchscript.pt"
    stamp = written.stat().st_mtime_ns
    assert (first.reused, first.parity, Path(first.path)) == (False, True, written)
    second = run()
    assert (second.reused, second.parity) == (True, True)
    assert written.stat().st_mtime_ns == stamp
    # The same file name with other weights: exported again, and its outputs still match.
    torch_module.manual_seed(1)
    net = torch_module.nn.Sequential(
        torch_module.nn.Linear(8, 16), torch_module.nn.ReLU(), torch_module.nn.Linear(16, 4)
    )
    torch_module.save(net, model)
    third = run()
    assert (third.reused, third.parity) == (False, True)
    assert written.stat().st_mtime_ns != stamp


def test_the_batch_table_marks_each_unstable_latency() -> None:
    from pyinfer.report import BatchCurve, BatchPoint

    curve = BatchCurve(
        (
            BatchPoint(1, 2.0, 2.0, 2.5, 500.0, stable=True),
            BatchPoint(2, 3.5, 3.4, 4.0, 571.4, stable=False),
        )
    )
    report: Any = type("Report", (), {"batch_curve": curve})()  # only what the table reads
    entry = suite.SuiteEntry("resnet50-batch", "cpu", "sweep", "sweep", "ok", report=report)
    lines = suite_tables._batch(entry).splitlines()
    assert lines[0] == "Batch Size │ Latency (ms) │ Throughput (FPS) │ Batches/s (RPS)"
    assert [_cells(line) for line in lines[2:4]] == [
        ["1", "2.00", "500.0", "500.0"],
        ["2", "3.50~", "571.4", "285.7"],
    ]
    assert lines[4] == (
        "~ not stable at batch 2: the stability or reproducibility target was not met (see the "
        "JSON)"
    )
    # sweep's table (no footnote there) stays unmarked.
    assert "~" not in curve.to_table()


@pytest.mark.parametrize("command", ["bench", "formats"])
def test_help_examples_are_valid_command_lines(command: str) -> None:
    import argparse
    import shlex

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    epilog = sub.choices[command].epilog
    examples = [line.strip() for line in epilog.splitlines()[1:]]
    commands = [shlex.split(line) for line in examples if line.startswith("pyinfer ")]
    assert len(commands) >= 2
    for argv in commands:
        args = parser.parse_args(argv[1:])  # argparse exits 2 on an unknown or malformed option
        assert args.command == command


def test_formats_a_real_sigint_prints_the_finished_rows_and_exits_130(
    torch_module: Any, tmp_path: Path
) -> None:
    import signal

    model = _torch_pickle(torch_module, tmp_path / "mlp.pt")
    env = dict(os.environ, PYTHONPATH=str(Path(pyinfer.__file__).parents[1]))
    argv = ["formats", str(model), "--trust-code", "--input-shape", "1x8", "--repeat", "1"]
    argv += ["--json", str(tmp_path / "i.json")]
    proc = subprocess.Popen(  # full settings: each row takes seconds, time to interrupt it
        [sys.executable, "-m", "pyinfer", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Started from a background job, the child would ignore SIGINT: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[2/4] TorchScript (elapsed"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_INTERRUPTED, "".join(seen) + err
    assert "interrupted: keeping the formats finished so far" in err
    lines = out.splitlines()
    assert [_cells(line)[0] for line in lines if "│" in line][1:] == ["PyTorch (FP32)"]
    assert lines[-1] == "interrupted: the format running then was dropped"
    result = FormatsResult.load(tmp_path / "i.json")
    assert result.interrupted
    assert [e.format for e in result.entries] == ["eager"]


def test_a_formats_json_of_schema_1_0_still_loads() -> None:
    env = suite_runner.collect_environment()
    entries = (
        FormatEntry("eager", "PyTorch (FP32)", "ok", original=True),
        FormatEntry("onnx", "ONNX (FP32)", "ok", parity=True, relative_error=1e-7),
    )
    data = FormatsResult("m.pt", "pickle", "cpu", 1, entries, "", env, {}, 1.0).to_dict()
    assert data["schema_version"] == "1.2"
    data["schema_version"] = "1.0"
    for entry in data["entries"]:  # the fields 1.1 and 1.2 added
        del entry["parity_output"], entry["mismatch"], entry["reused"], entry["ratio"]
    loaded = FormatsResult.from_dict(data)
    assert loaded.entries[1].parity is True
    assert (loaded.entries[1].mismatch, loaded.entries[1].reused) == ("", False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["bench", "m.onnx", "--only", "bert", "--device", "all"],
            "pyinfer bench: error: --only, --device all apply to the suite, not to comparing "
            "the formats of m.onnx",
        ),
        (
            ["bench", "--batch-size", "4", "--trust-code"],
            "pyinfer bench: error: --batch-size, --trust-code apply to a MODEL given to compare "
            "its formats",
        ),
    ],
)
def test_bench_refuses_options_that_do_not_apply_instead_of_ignoring_them(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1
