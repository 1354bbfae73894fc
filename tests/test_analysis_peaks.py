"""The machine's peaks: the best library's GEMM is the peak, cached, never exceeded in a report."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from pyinfer.analysis import peaks as peaks_module
from pyinfer.analysis.peaks import (
    MachinePeaks,
    cache_path,
    calibrate,
    fraction_of_peak,
    machine_peaks,
    roofline,
)
from pyinfer.errors import InvalidArgumentError

PEAKS = MachinePeaks(
    machine="test machine",
    fp32_gflops=200.0,
    gemm_gflops={"numpy": 180.0, "torch": 200.0, "onnxruntime": 190.0},
    bandwidth_gbs=20.0,
    measured_at=0.0,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_peak_is_the_best_fp32_gemm_of_the_libraries() -> None:
    measured = calibrate(gemm_size=64, triad_elements=4096, repeats=1)
    fp32 = {k: v for k, v in measured.gemm_gflops.items() if k in {"numpy", "torch", "onnxruntime"}}
    assert "numpy" in fp32
    assert measured.fp32_gflops == max(fp32.values())
    assert measured.bandwidth_gbs > 0
    assert measured.ridge_intensity == measured.fp32_gflops / measured.bandwidth_gbs


def test_bad_calibration_sizes_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"gemm_size=0, triad_elements=8, repeats=1"):
        calibrate(gemm_size=0, triad_elements=8, repeats=1)


def test_peaks_are_cached_per_machine_and_measured_again_on_demand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fake_calibrate() -> MachinePeaks:
        calls.append(1)
        return dataclasses.replace(PEAKS, measured_at=float(len(calls)))

    monkeypatch.setattr(peaks_module, "calibrate", fake_calibrate)
    first = machine_peaks()
    assert first.measured_at == 1.0
    assert json.loads(cache_path().read_text())["fp32_gflops"] == 200.0
    assert machine_peaks() == first  # from the cache
    assert len(calls) == 1
    assert machine_peaks(recalibrate=True).measured_at == 2.0
    assert len(calls) == 2


def test_a_model_faster_than_the_peak_raises_it_and_never_shows_over_100_percent() -> None:
    fraction, same = fraction_of_peak(150.0, PEAKS)
    assert fraction == 0.75
    assert same is PEAKS
    fraction, raised = fraction_of_peak(250.0, PEAKS)
    assert fraction == 1.0
    assert raised.fp32_gflops == 250.0
    assert raised.notes == (
        "a model ran at 250.0 GFLOP/s, above the calibrated 200.0: the peak was raised to it "
        "(recalibrate with pyinfer ops --recalibrate)",
    )
    assert json.loads(cache_path().read_text())["fp32_gflops"] == 250.0


def test_roofline_position() -> None:
    # ridge at 200 / 20 = 10 FLOP/byte
    assert roofline(39.2, PEAKS) == peaks_module.Roofline(39.2, 200.0, "compute-bound")
    assert roofline(5.0, PEAKS) == peaks_module.Roofline(5.0, 100.0, "memory-bound")


def test_roofline_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pyinfer.analysis.roofline_plot import plot_roofline

    path = plot_roofline(PEAKS, [("model", 39.2, 150.0), ("Conv", 50.0, 160.0)], tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_profile_report_carries_its_arithmetic_line_and_old_reports_still_load() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _reports import report_with_runs
    from pyinfer.report import ArithmeticSummary, ProfileReport

    plain = report_with_runs(None, per_call_ms=40.0)
    counted = dataclasses.replace(plain, arithmetic=ArithmeticSummary(4_089_184_256, "onnx"))
    assert counted.arithmetic is not None
    assert counted.arithmetic.flops == 8_178_368_512
    line = "  Arithmetic: 4.089 G MACs (8.18 GFLOP, FLOPs = 2 x MACs) per call, 204.5 GFLOP/s "
    assert line + "achieved at the median latency" in counted.to_text().splitlines()
    assert ProfileReport.from_json(counted.to_json()).arithmetic == counted.arithmetic
    old = json.loads(plain.to_json())
    del old["arithmetic"]  # a report written before the field existed
    assert ProfileReport.from_dict(old).arithmetic is None
    assert "Arithmetic:" not in plain.to_text()


def _matmul_model(tmp_path: Path, leading: list[str], k: int, n: int) -> Path:
    """ONNX `x @ w`, w all ones (k x n), x's leading dimensions named by `leading`."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import numpy as np

    helper = onnx.helper
    weight = onnx.numpy_helper.from_array(np.ones((k, n), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [*leading, k])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [*leading, n])],
        initializer=[weight],
    )
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_with_arithmetic_counts_the_profiled_model_or_leaves_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _matmul_model(tmp_path, ["batch"], 3, 5)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _reports import report_with_runs
    from pyinfer import load_model
    from pyinfer.analysis import counting, with_arithmetic

    model = load_model(path)
    plain = report_with_runs(None, per_call_ms=1.0)  # batch 1
    counted = with_arithmetic(plain, model)
    assert counted.arithmetic is not None
    assert counted.arithmetic.macs == 15
    assert counted.arithmetic.method == "onnx.shape_inference over the graph"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr(counting, "count_macs", broken)
    assert with_arithmetic(plain, model) is plain


def test_with_arithmetic_counts_the_sequence_the_profile_ran(tmp_path: Path) -> None:
    path = _matmul_model(tmp_path, ["batch", "sequence"], 8, 4)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _reports import report_with_runs
    from pyinfer import load_model
    from pyinfer.analysis import with_arithmetic

    model = load_model(path)
    # A profile at batch 3 and 32 tokens: 3 * 32 * 8 * 4 MACs, the sequence read from the
    # shapes as run (the model itself has no size for it).
    ran = dataclasses.replace(
        report_with_runs(None, per_call_ms=1.0), batch_size=3, input_shapes={"x": (3, 32, 8)}
    )
    counted = with_arithmetic(ran, model)
    assert counted.arithmetic is not None
    assert counted.arithmetic.macs == 3 * 32 * 8 * 4


@pytest.mark.parametrize(
    ("macs", "text"),
    [
        (4_089_184_256, "4.089 G MACs (8.18 GFLOP, FLOPs = 2 x MACs)"),
        (100_000_000, "0.100 G MACs (0.20 GFLOP, FLOPs = 2 x MACs)"),
        (300_774, "0.301 M MACs (0.60 MFLOP, FLOPs = 2 x MACs)"),
        (58_000, "58.000 k MACs (116.00 kFLOP, FLOPs = 2 x MACs)"),
        (100, "0.100 k MACs (0.20 kFLOP, FLOPs = 2 x MACs)"),
        (15, "15 MACs (30 FLOP, FLOPs = 2 x MACs)"),
    ],
)
def test_arithmetic_counts_read_in_units_that_keep_their_digits(macs: int, text: str) -> None:
    from pyinfer.report.formatting import format_macs

    assert format_macs(macs) == text
