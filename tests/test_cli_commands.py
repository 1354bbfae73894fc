"""The ``pyinfer`` subcommands (info, run, profile, sweep, compare, env) on tiny generated models,
through ``cli.main`` and, for the real exit statuses and Ctrl-C, through ``python -m pyinfer``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer import cli
from pyinfer.cli import common as cli_common
from pyinfer.cli import env as cli_env
from pyinfer.cli import model_args
from pyinfer.cli import run as cli_run
from pyinfer.cli.parser import loader_option
from pyinfer.errors import InvalidArgumentError
from pyinfer.report import SCHEMA_VERSION, BatchCurve, BatchPoint, ProfileReport, SweepReport

# Short measurements: a few dozen calls, a tenth of a second of throughput.
QUICK = ["--warmup", "2", "--min-time", "0.05", "--max-time", "0.3", "--throughput-time", "0.1"]
EXACT = ["--warmup", "2", "--iterations", "30", "--throughput-time", "0.1"]
SEQ_SHAPES = ["--option", 'input_shapes={"x": ["batch", "sequence", 8]}']


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A conv classifier (ONNX), an MLP with 3 classes and one with 1 output (ONNX), a
    TorchScript model with a dynamic sequence dimension, and a folder of images with one broken.
    """
    from tests.conftest import require_module  # conftest under --import-mode=importlib

    torch = require_module("torch")
    require_module("onnxruntime")
    from pyinfer.export import export_onnx, export_torchscript

    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
    export_onnx(conv, folder / "conv.onnx", torch.randn(1, 3, 16, 16), dynamo=False)
    export_torchscript(conv, folder / "conv.ts", torch.randn(1, 3, 16, 16))
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    export_onnx(mlp, folder / "mlp.onnx", torch.randn(1, 8), dynamo=False)
    export_onnx(torch.nn.Linear(8, 1), folder / "reg.onnx", torch.randn(1, 8), dynamo=False)

    class Seq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 2)

        def forward(self, x: Any) -> Any:
            return self.lin(x.mean(dim=1))

    export_torchscript(Seq(), folder / "seq.pt", torch.randn(1, 5, 8))

    from PIL import Image

    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"img{i}.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    np.save(folder / "x.npy", rng.standard_normal((5, 8)).astype(np.float32))
    return {
        "conv": folder / "conv.onnx",
        "conv_ts": folder / "conv.ts",
        "mlp": folder / "mlp.onnx",
        "reg": folder / "reg.onnx",
        "seq": folder / "seq.pt",
        "images": images,
        "npy": folder / "x.npy",
    }


#: Commands that measure in --repeat fresh processes by default; these tests are about other
#: things and measure once, in this process, unless they say --repeat (tests/test_repeat.py
#: and the tests of --repeat below are about repetitions).
REPEATING = {"profile", "sweep"}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = [str(a) for a in argv]
    if args and args[0] in REPEATING and "--repeat" not in args:
        args += ["--repeat", "1"]
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- info -------------------------------------------------------------------------------------


def test_info_describes_the_model(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = models["conv"]
    code, out, err = run_cli(["info", path, "--option", "intra_op_threads=1"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:10] == [
        "Model:       conv",
        f"File:        {path} ({path.stat().st_size / 1024:.1f} kB)",
        "Format:      onnx",
        "Framework:   onnxruntime",
        "Device:      cpu",
        "Inputs:",
        "  input: (batch, 3, 16, 16) float32",
        "Outputs:",
        "  output: (batch, 4) float32",
        "Parameters:  260 (1.0 kB)",  # (8*27 + 8 + 8*4 + 4) float32
    ]
    assert re.fullmatch(
        r"Load time:   \d+\.\d{3} s( \(framework import \d+\.\d\d s apart\))?", lines[10]
    )
    assert lines[11] == "Options:"
    assert "  intra_op_threads     1" in lines
    assert '  providers            ["CPUExecutionProvider"]' in lines


def test_info_json_holds_the_description_and_the_file(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["info", models["seq"], *SEQ_SHAPES, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["format"] == "torchscript"
    assert data["framework"] == "torch"
    assert data["inputs"] == [{"name": "x", "shape": ["batch", "sequence", 8], "dtype": "float32"}]
    assert data["parameter_count"] == 18
    assert data["parameter_bytes"] == 72
    assert data["file_bytes"] == models["seq"].stat().st_size
    assert data["options"]["input_shapes"] == {"x": ["batch", "sequence", 8]}
    assert data["load_time_s"] > 0


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["--option", "bogus=1"],
            2,
            "pyinfer info: error: unknown ONNX option(s) 'bogus' for ",
        ),
        (["--format", "nope"], 2, "pyinfer info: error: unknown model format 'nope'; known: "),
        (["--device", "tpu"], 2, "pyinfer info: error: "),
    ],
)
def test_info_bad_options(
    models: dict[str, Path],
    argv: list[str],
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    got, out, err = run_cli(["info", models["mlp"], *argv], capsys)
    assert got == code
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_the_providers_example_of_the_error_works_as_an_option(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["info", models["mlp"], "--option", "providers=CPUExecutionProvider"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    example = re.search(r"such as (\[.*?\])", err)
    assert example is not None
    # Copied into --option, the example is a list of names (JSON), not a string.
    assert loader_option(f"providers={example[1]}") == (
        "providers",
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )


@pytest.mark.parametrize("model", ["mlp", "conv_ts"])
def test_cuda_without_a_gpu_is_one_line_and_exit_1(
    models: dict[str, Path], model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if pyinfer.cuda_available():
        pytest.skip("this machine has a GPU")
    code, out, err = run_cli(["info", models[model], "--device", "cuda"], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("pyinfer info: error: ")
    assert err.count("\n") == 1
    assert "cpu" in err.lower()  # the way out


def test_option_values_are_json_or_text() -> None:
    assert loader_option("threads=2") == ("threads", 2)
    assert loader_option("trust=true") == ("trust", True)
    assert loader_option('shapes={"x": [null, 3]}') == ("shapes", {"x": [None, 3]})
    assert loader_option("signature=serving_default") == ("signature", "serving_default")
    with pytest.raises(Exception, match="must be KEY=VALUE, got 'novalue'"):
        loader_option("novalue")


def test_the_format_names_are_the_loader_formats() -> None:
    from pyinfer.backends.base import ModelFormat

    assert set(cli.MODEL_FORMATS) == {f.value for f in ModelFormat}


def test_a_missing_model_is_exit_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["info", tmp_path / "nope.onnx"], capsys)
    assert code == 1
    assert err == f"pyinfer info: error: model path '{tmp_path / 'nope.onnx'}' does not exist\n"


# ---- run --------------------------------------------------------------------------------------


def expected_top_k(model_path: Path, images: list[Path], k: int) -> list[str]:
    from pyinfer.preprocess import ImagePipeline

    model = pyinfer.load_model(model_path)
    pipeline = ImagePipeline.for_model(model)
    lines = []
    for image in images:
        item = pipeline(image)  # one input without the batch dimension
        logits = model({k: v[None] for k, v in item.items()})["output"][0].astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities, kind="stable")[:k]
        text = "; ".join(f"class {i} {probabilities[i]:.4f}" for i in best)
        lines.append(f"{image}: {text}")
    return lines


def test_run_prints_top_k_and_lists_failures(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = models["images"]
    out_json = tmp_path / "out.json"
    code, out, err = run_cli(
        ["run", models["conv"], images, "--top-k", "2", "--no-progress", "--output", out_json],
        capsys,
    )
    assert code == 1  # one item failed
    good = sorted(images.glob("*.png"))
    assert out.splitlines() == expected_top_k(models["conv"], good, 2)
    broken = images / "broken.jpg"
    assert f"failed: {broken}: InvalidInputError: cannot decode image {broken}" in err
    assert "3 of 4 input(s) ran, 1 failed" in err
    written = json.loads(out_json.read_text())
    assert [i["source"] for i in written["items"]] == [str(p) for p in good]
    assert [len(i["top_k"]) for i in written["items"]] == [2, 2, 2]
    first = written["items"][0]["top_k"][0]
    assert set(first) == {"class_index", "label", "score"}
    assert out.splitlines()[0].startswith(f"{good[0]}: class {first['class_index']} ")
    assert written["failures"] == [
        {"source": str(broken), "reason": written["failures"][0]["reason"]}
    ]
    assert written["failures"][0]["reason"].startswith("InvalidInputError: cannot decode image")


def test_run_labels_name_the_classes(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\nfish\n")
    image = models["images"] / "img0.png"
    code, out, _ = run_cli(
        ["run", models["conv"], image, "--top-k", "1", "--labels", labels], capsys
    )
    assert code == 0
    (expected,) = expected_top_k(models["conv"], [image], 1)
    index = int(expected.split("class ")[1].split()[0])
    name = ["cat", "dog", "bird", "fish"][index]
    assert out == expected.replace(f"class {index}", name) + "\n"


def test_run_refuses_labels_that_do_not_match_the_classes_before_running(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    for model in (models["conv"], models["conv_ts"]):  # outputs declared, or known once run
        argv = ["run", model, models["images"], "--labels", labels, "--input-shape", "1x3x16x16"]
        if model == models["conv"]:
            argv = argv[:-2]
        code, out, err = run_cli(argv, capsys)
        assert (code, out) == (2, "")
        assert "ran" not in err  # refused before running
        assert err.endswith(
            f"pyinfer run: error: --labels {labels}: 2 labels for a model of 4 classes; give one "
            "label per line, one per class\n"
        )


def test_run_casts_float64_arrays_and_names_unreadable_ones(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(5).standard_normal((2, 8))  # numpy's default dtype, float64
    np.save(tmp_path / "x64.npy", x)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    reference = pyinfer.load_model(models["mlp"])(x.astype(np.float32))["output"]
    out_file = tmp_path / "out.npy"
    inputs = [tmp_path / n for n in ("x64.npy", "obj.npy", "junk.npy", "junk.npz")]
    code, _, err = run_cli(["run", models["mlp"], *inputs, "--output", out_file], capsys)
    assert code == 1
    np.testing.assert_allclose(np.load(out_file), reference, rtol=1e-5, atol=1e-6)
    assert err.splitlines()[:3] == [
        f"failed: {inputs[1]}: it holds Python objects (an object array), which pyinfer does "
        "not unpickle; save numeric arrays",
        f"failed: {inputs[2]}: not a .npy file: it does not start with numpy's header",
        f"failed: {inputs[3]}: not a .npz file: it does not start with numpy's header",
    ]
    code, _, err = run_cli(["run", models["mlp"], inputs[0], "--cast", "none"], capsys)
    assert code == 1
    assert "must be float32, got float64" in err


def test_run_outputs_of_different_shapes_go_to_json_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module

    torch = require_module("torch")
    from pyinfer.export import export_torchscript

    class Double(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2

    model = export_torchscript(Double(), tmp_path / "double.pt", torch.randn(1, 3))
    np.save(tmp_path / "a.npy", np.ones((1, 3), np.float32))
    np.save(tmp_path / "b.npy", np.ones((1, 5), np.float32))
    inputs = [tmp_path / "a.npy", tmp_path / "b.npy", "--batch-size", "1"]
    code, _, err = run_cli(["run", model, *inputs, "--output", tmp_path / "o.npz"], capsys)
    assert code == 2
    assert err.endswith(
        f"pyinfer run: error: --output {tmp_path / 'o.npz'}: output 'output' has a different "
        "shape per item ((3,), (5,)), which one .npz array cannot hold; write a .json file\n"
    )
    code, _, err = run_cli(["run", model, *inputs, "--output", tmp_path / "o.json"], capsys)
    assert code == 0, err
    items = json.loads((tmp_path / "o.json").read_text())["items"]
    assert [len(i["top_k"]) for i in items] == [3, 5]


def test_run_json_output_has_float32_values_as_short_decimals(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "o.json"
    code, _, err = run_cli(["run", models["conv"], models["images"], "--output", out_file], capsys)
    assert code == 1, err  # the broken image
    text = out_file.read_text()
    scores = [p["score"] for item in json.loads(text)["items"] for p in item["top_k"]]
    assert scores
    for score in scores:
        assert score == float(str(np.float32(score)))  # the shortest decimal of the float32
        assert len(repr(score)) <= 16
    reg = tmp_path / "reg.json"
    x = np.asarray([[0.1] * 8], np.float32)
    np.save(tmp_path / "x.npy", x)
    assert run_cli(["run", models["reg"], tmp_path / "x.npy", "--output", reg], capsys)[0] == 0
    (value,) = json.loads(reg.read_text())["items"][0]["outputs"]["output"]
    assert value == float(str(pyinfer.load_model(models["reg"])(x)["output"][0, 0]))


def test_run_says_why_no_output_file_was_written(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = models["images"] / "broken.jpg"
    out_file = tmp_path / "o.npz"
    code, out, err = run_cli(["run", models["conv"], broken, "--output", out_file], capsys)
    assert (code, out) == (1, "")
    assert not out_file.exists()
    assert err.splitlines()[-2:] == [
        "0 of 1 input(s) ran, 1 failed",
        f"{out_file} not written: no item ran (a .json file lists the failures)",
    ]


def test_run_arrays_writes_every_output(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.load(models["npy"])
    reference = pyinfer.load_model(models["mlp"])(x)["output"]
    npz = tmp_path / "out.npz"
    code, out, err = run_cli(["run", models["mlp"], models["npy"], "--output", npz], capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"{models['npy']}[{i}]" for i in range(5)]
    assert "5 of 5 input(s) ran, 0 failed" in err
    with np.load(npz) as saved:
        np.testing.assert_allclose(saved["output"], reference, rtol=1e-5, atol=1e-6)
        assert list(saved["sources"]) == [f"{models['npy']}[{i}]" for i in range(5)]
    npy = tmp_path / "out.npy"
    assert run_cli(["run", models["mlp"], models["npy"], "--output", npy], capsys)[0] == 0
    np.testing.assert_allclose(np.load(npy), reference, rtol=1e-5, atol=1e-6)


def test_run_a_torchscript_model_whose_outputs_are_known_once_it_runs(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(3).standard_normal((3, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    reference = pyinfer.load_model(models["conv"])(x)["output"]
    npy = tmp_path / "out.npy"
    code, out, err = run_cli(
        ["run", models["conv_ts"], tmp_path / "x.npy", "--top-k", "1", "--output", npy], capsys
    )
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == [
        f"{tmp_path / 'x.npy'}[{i}]" for i in range(3)
    ]
    np.testing.assert_allclose(np.load(npy), reference, rtol=1e-4, atol=1e-5)


def test_run_images_on_a_torchscript_model_with_input_shape(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    images = sorted(p for p in models["images"].iterdir() if p.suffix == ".png")
    _, expected, _ = run_cli(["run", models["conv"], *images, "--top-k", "2"], capsys)
    code, out, err = run_cli(
        ["run", models["conv_ts"], *images, "--top-k", "2", "--input-shape", "1x3x16x16"], capsys
    )
    assert code == 0, err
    assert out == expected
    # Without it: what to give, as a command-line option.
    code, out, err = run_cli(["run", models["conv_ts"], images[0]], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"pyinfer run: error: {images[0]} is an image, but model 'conv' does not declare the "
        "shape of its input 'input', so its image size and layout are unknown: give it, such as "
        "--input-shape 1x3x224x224\n"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sequence=5", "--input-shape sequence=5: run takes whole shapes, such as 1x3x224x224"),
        ("1x3x16x16", "--input-shape 1x3x16x16: model 'conv' (onnx) declares its input shapes "),
    ],
)
def test_run_input_shape_misuse(
    models: dict[str, Path], spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["run", models["conv"], models["images"], "--input-shape", spec], capsys
    )
    assert (code, out) == (2, "")
    assert err.startswith(f"pyinfer run: error: {message}")


def test_run_summarises_an_output_that_is_not_scores(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.load(models["npy"])
    y = pyinfer.load_model(models["reg"])(x)["output"].astype(np.float64)
    one = tmp_path / "one.npy"
    np.save(one, x[0])  # one item, without the batch dimension
    code, out, _ = run_cli(["run", models["reg"], models["npy"], one], capsys)
    assert code == 0
    y6 = np.concatenate([y, y[:1]])
    assert out == (
        f"output: (6, 1) float32  min {y6.min():.4g}  mean {y6.mean():.4g}  max {y6.max():.4g}\n"
    )


def test_run_lists_arrays_that_do_not_fit(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 8), np.float32))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 7), np.float32))
    keys = tmp_path / "keys.npz"
    np.savez(keys, y=np.zeros((2, 8), np.float32))
    code, out, err = run_cli(["run", models["mlp"], cube, wrong, keys, models["npy"]], capsys)
    assert code == 1
    assert len(out.splitlines()) == 5  # x.npy's items still ran
    assert (
        f"failed: {cube}: 'input' has shape (2, 2, 8); the model takes (batch, 8) (one item "
        "without the batch dimension, or a batch)"
    ) in err
    assert f"failed: {wrong}[0]: InvalidInputError: " in err
    assert f"failed: {keys}: its keys (y) are not the model's inputs (input)" in err
    assert "5 of 9 input(s) ran, 4 failed" in err


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["missing.png"], 1, "pyinfer run: error: input missing.png does not exist\n"),
        (["--output", "x.txt"], 2, "pyinfer run: error: --output x.txt: use a .npy, .npz or "),
        (["--labels", "nolabels.txt"], 1, "pyinfer run: error: cannot read labels file "),
        (["--output", "/no/such/dir/o.json"], 2, "pyinfer run: error: cannot write /no/such"),
        (["picture.png"], 2, "pyinfer run: error: picture.png is read as an image, but model "),
    ],
)
def test_run_bad_arguments(
    models: dict[str, Path],
    extra: list[str],
    code: int,
    message: str,
    *,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(models["npy"].parent)
    (models["npy"].parent / "picture.png").write_bytes(b"")
    got, _, err = run_cli(["run", models["mlp"], models["npy"], *extra], capsys)
    assert got == code
    assert err.startswith(message)


def test_run_searches_sub_folders_of_an_input_folder(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    # A dataset laid out by class, a notes file and a hidden checkpoint folder.
    pixels = np.random.default_rng(4).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    for rel in ("cat/b.png", "cat/a.jpg", "dog/c.png", "top.png", ".ipynb_checkpoints/x.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / rel)
    (tmp_path / "notes.txt").write_text("not an image")
    code, out, err = run_cli(["run", models["conv"], tmp_path, "--top-k", "1"], capsys)
    assert code == 0, err
    sources = [line.split(": ")[0] for line in out.splitlines()]
    assert sources == [
        str(tmp_path / r) for r in ("cat/a.jpg", "cat/b.png", "dog/c.png", "top.png")
    ]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    code, _, err = run_cli(["run", models["conv"], empty], capsys)
    assert code == 1
    assert err.startswith(f"pyinfer run: error: input folder {empty} holds no image files (.bmp")
    assert err.endswith("), in it or its sub-folders\n")


def test_run_interrupted_keeps_the_batches_that_finished(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_load = cli_run.load_from_args

    def load_then_break(args: Any) -> Any:
        model = real_load(args)
        run_native, calls = model.run_native, [0]

        def interrupted_on_the_second_call(inputs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 2:
                raise KeyboardInterrupt
            return run_native(inputs)

        model.run_native = interrupted_on_the_second_call  # type: ignore[method-assign]
        return model

    monkeypatch.setattr(cli_run, "load_from_args", load_then_break)
    out_json = tmp_path / "partial.json"
    code, out, err = run_cli(
        ["run", models["mlp"], models["npy"], "--batch-size", "2", "--output", out_json], capsys
    )
    assert code == 130
    assert [line.split(":")[0] for line in out.splitlines()] == [
        f"{models['npy']}[0]",
        f"{models['npy']}[1]",
    ]
    assert f"interrupted: results so far written to {out_json}" in err
    assert len(json.loads(out_json.read_text())["items"]) == 2


# ---- profile ----------------------------------------------------------------------------------


def test_profile_prints_the_report_and_writes_the_files(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {s: tmp_path / f"r.{s}" for s in ("json", "csv", "md")}
    code, out, err = run_cli(
        [
            "profile",
            models["mlp"],
            "--batch-size",
            "4",
            *EXACT,
            "--stability",
            "99%",
            "--json",
            files["json"],
            "--csv",
            files["csv"],
            "--markdown",
            files["md"],
        ],
        capsys,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:6] == [
        "Profiling Results:",
        "==================",
        "Model: mlp",
        lines[3],
        "Input Shape: (4, 8)",
        lines[5],
    ]
    assert lines[3].startswith("Device: CPU (")
    assert re.fullmatch(r"Iterations: 30 \(\d+ warmup\)", lines[5])
    for expected in ("Latency Statistics:", "Memory Usage:", "Details:"):
        assert expected in lines
    report = ProfileReport.load(files["json"])
    assert report.latency.stats.count == 30
    assert report.batch_size == 4
    assert report.stable
    assert out == report.to_text() + "\n"
    assert files["csv"].read_text() == report.to_csv()
    assert files["md"].read_text() == report.to_markdown()
    assert f"wrote JSON report to {files['json']}" in err


@pytest.mark.parametrize(("strict", "status"), [(False, 0), (True, cli.EXIT_UNSTABLE)])
def test_an_unstable_profile_warns_and_exits_3_only_when_strict(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    strict: bool,
    status: int,
) -> None:
    path = tmp_path / "r.json"
    argv = ["profile", models["mlp"], *EXACT, "--stability", "0.000001", "--json", path]
    code, out, err = run_cli(argv + ["--strict"] * strict, capsys)
    assert code == status
    report = ProfileReport.load(path)
    assert not report.stable
    assert "Latency Statistics:" in out
    assert (
        f"warning: pyinfer profile: {report.stability_reason}; the figures above are what "
        "was measured: give it more time (--max-time), more runs (--repeat) or a quieter "
        "machine; "
        + ("exit status 3 (--strict)" if strict else "exit status 0 (--strict makes it 3)")
        + "\n"
    ) in err
    assert report.stability_reason.startswith("NOT stable: median 95% CI ")


def test_profile_with_a_sweep_prints_the_batch_table_and_plots(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "p.png"
    code, out, err = run_cli(
        [
            "profile",
            models["mlp"],
            *QUICK,
            "--no-memory",
            "--batch-sizes",
            "1,2",
            "--latency-budget",
            "1000",
            "--plot",
            plot,
        ],
        capsys,
    )
    assert code in (0, 3), err
    assert "Memory Usage:" not in out
    assert "Batch Size │ Latency (ms) │ Throughput (FPS) │ Batches/s (RPS)" in out
    assert re.search(r"^  Best batch: batch [12]: .* within the 1000 ms budget$", out, re.M)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "p_batches.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_input_shape_sizes_dynamic_dimensions(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.json"
    base = ["profile", models["seq"], *SEQ_SHAPES, *EXACT, "--no-memory", "--json", path]
    assert run_cli([*base, "--input-shape", "sequence=6"], capsys)[0] in (0, 3)
    assert ProfileReport.load(path).input_shapes == {"x": (1, 6, 8)}
    assert run_cli([*base, "--input-shape", "x=3x7x8"], capsys)[0] in (0, 3)
    report = ProfileReport.load(path)
    assert (report.input_shapes, report.batch_size) == ({"x": (3, 7, 8)}, 3)
    assert run_cli([*base, "--input-shape", "2x5x8"], capsys)[0] in (0, 3)
    assert ProfileReport.load(path).input_shapes == {"x": (2, 5, 8)}


@pytest.mark.parametrize("spec", ["2x3x16x16", "input=2x3x16x16"])
def test_input_shape_gives_a_torchscript_model_its_shape(
    models: dict[str, Path], spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A traced TorchScript file declares no input shape: a whole --input-shape is enough.
    path = tmp_path / "ts.json"
    argv = ["profile", models["conv_ts"], "--input-shape", spec, *EXACT, "--no-memory"]
    code, _, err = run_cli([*argv, "--json", path], capsys)
    assert code in (0, 3), err
    report = ProfileReport.load(path)
    assert (report.input_shapes, report.batch_size) == ({"input": (2, 3, 16, 16)}, 2)
    # The batch stays dynamic: a sweep takes the rest of the shape and its own batch sizes.
    code, out, err = run_cli(
        ["sweep", models["conv_ts"], "--input-shape", spec, "--batch-sizes", "1,3", *EXACT],
        capsys,
    )
    assert code in (0, 3), err
    assert re.search(r"^\s+3\s+│", out, re.M)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            "[null, 5]",
            "input_shapes['input'] = (?, 5) contradicts input 'input' of {path}, "
            "declared (batch, 8): dimension 1 is fixed at 8",
        ),
        (
            "[null, 2, 8]",
            "input_shapes['input'] = (?, 2, 8) has 3 dimensions, but input 'input' "
            "of {path} is declared (batch, 8)",
        ),
    ],
)
def test_input_shapes_that_contradict_a_torch_export_program_are_refused(
    tmp_path: Path, shape: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module

    torch = require_module("torch")
    from pyinfer.export import export_torch_program

    path = export_torch_program(torch.nn.Linear(8, 3), tmp_path / "lin.pt2", torch.randn(1, 8))
    option = f'input_shapes={{"input": {shape}}}'
    code, out, err = run_cli(["profile", path, "--option", option, *EXACT], capsys)
    assert (code, out) == (2, "")  # was an internal error: a guard of the program failed
    assert err == f"pyinfer profile: error: {message.format(path=path)}\n"


def test_an_input_shapes_option_wins_over_input_shape(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    option = ["--option", 'input_shapes={"input": [null, 3, 8, 8]}']
    code, out, err = run_cli(
        ["profile", models["conv_ts"], *option, "--input-shape", "1x3x16x16", *EXACT], capsys
    )
    assert (code, out) == (2, "")
    assert "dimension 2 of input 'input' is fixed at 8 (?, 3, 8, 8), not 16" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input-shape", "x=3x7x9"], "--input-shape x=3x7x9: dimension 2 of input 'x' is fixed "),
        (["--input-shape", "x=3x7"], "--input-shape x=3x7: input 'x' has 3 dimensions"),
        (["--input-shape", "x=3xAx8"], "--input-shape x=3xAx8: a shape is sizes joined by x"),
        (
            ["--input-shape", "x=3x7x8", "--batch-size", "2"],
            "--input-shape x=3x7x8: batch 3 contradicts batch size 2",
        ),
        (
            ["--input-shape", "x=1x7x8", "--input-shape", "sequence=6"],
            "--input-shape sequence=6: dimension 'sequence' is 6 here and 7 elsewhere",
        ),
        (["--input-shape", "width=3"], "'width' is neither an input of model 'seq' (x) nor one"),
        ([], "has the dynamic dimension 'sequence' (batch, sequence, 8); give its size: "),
        (["--iterations", "5", "--max-time", "1"], "--iterations N times exactly N calls"),
        (["--latency-budget", "5"], "--latency-budget chooses among --batch-sizes"),
        (["--json", "/no/such/dir/r.json"], "cannot write /no/such/dir/r.json: no folder"),
        (["--json", "/tmp"], "cannot write /tmp: it is a folder"),
        (["--plot", "/tmp/x.svg"], "--plot /tmp/x.svg: the plot is a PNG image; give a .png"),
        (["--plot", "/tmp"], "--plot /tmp: the plot is a PNG image"),
    ],
)
def test_profile_bad_usage_exits_2_before_measuring(
    models: dict[str, Path],
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = time.perf_counter()
    code, out, err = run_cli(["profile", models["seq"], *SEQ_SHAPES, *extra], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("pyinfer profile: error: ")
    assert message in err
    assert time.perf_counter() - start < 5.0  # refused before any measurement


def test_an_unwritable_output_folder_is_refused_before_measuring(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = cli_common.os.access
    # os.access as an unprivileged user sees it (the tests may run as root).
    monkeypatch.setattr(
        cli_common.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )
    code, out, err = run_cli(
        ["sweep", models["mlp"], "--batch-sizes", "1", "--csv", locked / "c.csv"], capsys
    )
    assert (code, out) == (2, "")
    assert err == (
        f"pyinfer sweep: error: cannot write {locked / 'c.csv'}: folder {locked} is not writable\n"
    )


def test_a_plot_that_cannot_be_written_is_an_error_naming_it(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("matplotlib")

    def full(*_: Any, **__: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ProfileReport, "plot_latency", full)
    plot = tmp_path / "p.png"
    code, out, err = run_cli(["profile", models["mlp"], *EXACT, "--plot", plot], capsys)
    assert code == 2
    assert out.startswith("Profiling Results:")
    assert err.endswith(
        f"pyinfer profile: error: cannot write the latency plot to {plot}: No space left on "
        "device\n"
    )


def test_input_shape_contradictions_between_inputs() -> None:
    from pyinfer.backends.base import Device, Model, ModelFormat, TensorSpec

    class TwoInputs(Model):
        def __init__(self) -> None:
            super().__init__(
                name="two",
                format=ModelFormat.ONNX,
                framework="numpy",
                device=Device("cpu"),
                path=None,
                inputs=[
                    TensorSpec("ids", ("batch", "sequence"), np.int64),
                    TensorSpec("mask", ("batch", "sequence"), np.int64),
                ],
                outputs=[TensorSpec("y", ("batch", 2))],
                parameter_count=0,
                parameter_bytes=0,
                options={},
            )

        def run_native(self, inputs: Any) -> dict[str, Any]:
            return {}

        def to_native(self, inputs: Any) -> dict[str, Any]:
            return dict(inputs)

        def to_numpy(self, outputs: Any) -> dict[str, np.ndarray]:
            return dict(outputs)

    model = TwoInputs()
    assert model_args.input_shapes(["ids=2x16", "mask=2x16"], model, None) == (
        {"sequence": 16},
        2,
    )
    assert model_args.input_shapes(["batch=4", "sequence=8"], model, None) == ({"sequence": 8}, 4)
    with pytest.raises(pyinfer.InvalidArgumentError, match="'sequence' is 12 here and 16 "):
        model_args.input_shapes(["ids=2x16", "mask=2x12"], model, None)
    with pytest.raises(pyinfer.InvalidArgumentError, match="has 2 inputs; give NAME=SHAPE"):
        model_args.input_shapes(["2x16"], model, None)
    with pytest.raises(pyinfer.InvalidArgumentError, match="must be an integer of at least 1"):
        model_args.input_shapes(["sequence=0"], model, None)


def interrupt_after(monkeypatch: pytest.MonkeyPatch, samples: int, on_run: int = 1) -> None:
    """Makes the ``on_run``-th latency measurement raise KeyboardInterrupt once it has taken
    ``samples`` samples (before the chunk that would pass them)."""
    from pyinfer.profiling import profiler

    real_collect = profiler.collect
    runs = [0]

    def collect(source: Any, *args: Any, **kwargs: Any) -> Any:
        runs[0] += 1
        if runs[0] != on_run:
            return real_collect(source, *args, **kwargs)
        taken = [0]

        def breaking(n: int) -> np.ndarray:
            if taken[0] >= samples:
                raise KeyboardInterrupt
            taken[0] += n
            return np.asarray(source(n))

        return real_collect(breaking, *args, **kwargs)

    monkeypatch.setattr(profiler, "collect", collect)


def test_profile_interrupted_prints_and_writes_what_it_measured(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupt_after(monkeypatch, 40)
    path = tmp_path / "partial.json"
    code, out, err = run_cli(
        ["profile", models["mlp"], "--warmup", "2", "--iterations", "100000", "--json", path],
        capsys,
    )
    assert code == 130
    report = ProfileReport.load(path)
    n = report.latency.stats.count
    assert n >= 40
    assert not report.stable
    assert report.stability_reason == f"interrupted after {n} samples"
    assert report.throughput is None  # interrupted before it
    assert report.memory is not None  # finished before
    assert f"  Stability: interrupted after {n} samples" in out.splitlines()
    assert err.endswith(f"interrupted: results so far written to {path}\n")


def test_profile_interrupted_before_any_sample_says_so(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupt_after(monkeypatch, 0)
    code, out, err = run_cli(["profile", models["mlp"], *EXACT], capsys)
    assert (code, out) == (130, "")
    assert err.endswith("interrupted: results so far none: nothing was measured yet\n")


# ---- sweep ------------------------------------------------------------------------------------


def test_sweep_prints_the_table_knee_and_best_and_writes_the_curve(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {s: tmp_path / f"c.{s}" for s in ("json", "csv")}
    code, out, err = run_cli(
        [
            "sweep",
            models["mlp"],
            "--batch-sizes",
            "4,1",
            *EXACT,
            "--stability",
            "99%",
            "--json",
            files["json"],
            "--csv",
            files["csv"],
        ],
        capsys,
    )
    assert code == 0, err
    saved = json.loads(files["json"].read_text())
    # The saved sweep says what was measured, where and how, like a profile report.
    assert saved["schema_version"] == SCHEMA_VERSION
    assert (saved["model"], saved["format"], saved["framework"]) == ("mlp", "onnx", "onnxruntime")
    assert (saved["device"], saved["interrupted"]) == ("cpu", False)
    assert saved["device_name"].startswith("CPU (")
    assert saved["inputs"] == {"input": "(batch, 8) float32"}
    assert saved["settings"]["max_iterations"] == 30
    assert saved["settings"]["max_time_s"] == "inf"
    assert saved["settings"]["stability_target"] == pytest.approx(0.99)
    assert saved["environment"]["versions"]["pyinfer"] == pyinfer.__version__
    report = SweepReport.load(files["json"])
    assert SweepReport.from_json(report.to_json()) == report
    curve = report.batch_curve
    assert [p.batch_size for p in curve.points] == [1, 4]
    assert all(p.stable for p in curve.points)
    assert files["csv"].read_text() == curve.to_csv()
    lines = out.splitlines()
    assert lines[0] == "Model: mlp (onnx on cpu)"
    assert "\n".join(lines[1:5]) == curve.to_table()
    assert lines[-2] == (
        f"Knee: batch {curve.knee_batch_size} (the smallest reaching 90% of the best throughput)"
    )
    assert lines[-1] == f"Best batch: {curve.best_reason}"


def test_sweep_shows_out_of_memory_and_exits_3_when_a_point_is_unstable(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyinfer import profiler

    curve = BatchCurve(
        (
            BatchPoint(1, 0.5, 0.5, 0.6, 2000.0, stable=True),
            BatchPoint(2, 0.8, 0.8, 0.9, 2500.0, stable=False),
            BatchPoint(4, error="out of memory: CUDA out of memory", out_of_memory=True),
        ),
        2,
        None,
        2,
        "batch 2: the highest throughput, 2500.0 FPS (no latency budget given)",
    )
    monkeypatch.setattr(
        profiler.PerformanceProfiler, "sweep_batch_sizes", lambda self, sizes, budget: curve
    )
    argv = ["sweep", models["mlp"], "--batch-sizes", "1,2,4"]
    assert run_cli(argv, capsys)[0] == 0  # it warns; --strict fails it
    code, out, err = run_cli([*argv, "--strict"], capsys)
    assert code == 3
    lines = out.splitlines()
    # The error is a note under the table, which keeps the specification's widths.
    assert lines[2] == "───────────┼──────────────┼──────────────────┼────────────────"
    assert lines[5] == f"{'4':^11}│{'-':^14}│{'-':^18}│{'failed [1]':^16}".rstrip()
    assert lines[6] == "[1] batch 4 failed: out of memory: CUDA out of memory"
    assert "warning: pyinfer sweep: NOT stable: batch size(s) [2] did not settle;" in err


def test_sweep_interrupted_keeps_the_finished_batch_sizes(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupt_after(monkeypatch, 10, on_run=2)
    path = tmp_path / "c.json"
    code, out, err = run_cli(
        ["sweep", models["mlp"], "--batch-sizes", "1,2,4", *QUICK, "--json", path], capsys
    )
    assert code == 130
    report = SweepReport.load(path)
    assert report.interrupted
    curve = report.batch_curve
    assert [p.batch_size for p in curve.points] == [1, 2]
    first, second = curve.points
    assert (first.ok, first.interrupted) == (True, False)
    # The batch in progress keeps the calls it timed: a point, marked interrupted, not stable.
    assert (second.ok, second.interrupted, second.stable) == (True, True, False)
    assert second.samples is not None
    assert second.samples >= 10
    assert second.latency_mean_ms is not None
    assert second.latency_mean_ms > 0
    assert curve.best_batch_size in (1, 2)
    lines = out.splitlines()
    assert lines[2] == "───────────┼──────────────┼──────────────────┼────────────────"
    assert lines[4].endswith(" [1]")
    assert f"[1] interrupted: figures from {second.samples} calls timed before, not stable" in out
    assert "failed" not in out
    assert err.endswith(f"interrupted: results so far written to {path}\n")


def test_sweep_interrupted_before_enough_calls_is_a_failed_point(
    models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupt_after(monkeypatch, 0, on_run=2)
    path = tmp_path / "c.json"
    code, out, _ = run_cli(
        ["sweep", models["mlp"], "--batch-sizes", "1,2,4", *QUICK, "--json", path], capsys
    )
    assert code == 130
    second = SweepReport.load(path).batch_curve.points[1]
    assert (second.ok, second.interrupted, second.samples) == (False, True, 0)
    assert "[1] batch 2 failed: interrupted after 0 samples" in out


# ---- compare and env --------------------------------------------------------------------------


def test_a_saved_sweep_of_another_major_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": "0.3", "points": []}))
    with pytest.raises(InvalidArgumentError, match=r"sweep report schema 0\.3 is older than"):
        SweepReport.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(
        InvalidArgumentError, match="a sweep report must be a JSON object, not list"
    ):
        SweepReport.load(path)


def test_compare_names_a_sweep_report_given_for_a_profile_report(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, sweep = tmp_path / "a.json", tmp_path / "s.json"
    assert run_cli(["profile", models["mlp"], *EXACT, "--json", a], capsys)[0] in (0, 3)
    argv = ["sweep", models["mlp"], "--batch-sizes", "1", *EXACT, "--json", sweep]
    assert run_cli(argv, capsys)[0] in (0, 3)
    code, out, err = run_cli(["compare", a, sweep], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"pyinfer compare: error: {sweep} is a sweep report (pyinfer sweep --json); compare "
        "takes profile reports (pyinfer profile --json)\n"
    )


def test_a_sweep_of_a_fixed_batch_model_is_refused_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module

    torch = require_module("torch")
    from pyinfer.export import export_onnx

    path = tmp_path / "fixed.onnx"
    export_onnx(torch.nn.Linear(8, 2), path, torch.randn(1, 8), dynamic_batch=False, dynamo=False)
    code, out, err = run_cli(["sweep", path, "--batch-sizes", "1,2"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "pyinfer sweep: error: model 'fixed' has a fixed batch size (input: (1, 8) float32); a "
        "batch sweep needs a dynamic batch dimension\n"
    )


def test_compare_prints_the_table_and_each_change(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, md = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.md"
    for path in (a, b):
        assert run_cli(["profile", models["mlp"], *EXACT, "--json", path], capsys)[0] in (0, 3)
    code, out, _ = run_cli(["compare", a, b, "--markdown", md], capsys)
    assert code == 0
    ra, rb = ProfileReport.load(a), ProfileReport.load(b)
    from pyinfer.report import compare, comparison_table

    expected = f"{comparison_table([ra, rb])}\n\n{a} -> {b}\n{compare(ra, rb).to_text()}\n"
    assert out == expected
    text = md.read_text()
    assert text.startswith("## Comparison\n\n```\nModel Format")
    assert f"### {a} -> {b}" in text


def test_compare_names_a_missing_or_damaged_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert run_cli(["compare", missing], capsys)[2] == (
        f"pyinfer compare: error: report {missing} does not exist\n"
    )
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"schema_version": "1.0", "model": 3}')
    code, _, err = run_cli(["compare", damaged], capsys)
    assert code == 1
    assert err.startswith(f"pyinfer compare: error: not a readable profile report: {damaged}: ")


def test_env_as_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    from pyinfer.report.environment import Environment

    code, out, _ = run_cli(["env", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert list(data) == [f.name for f in Environment.__dataclass_fields__.values()]
    assert data["versions"]["pyinfer"] == pyinfer.__version__
    code, out, _ = run_cli(["env"], capsys)
    lines = out.splitlines()
    width = lines[0].index(data["hostname"])
    assert lines[0] == "hostname:".ljust(width) + data["hostname"]
    assert "versions.pyinfer:".ljust(width) + pyinfer.__version__ in lines
    assert all(line[width - 1] == " " for line in lines)


# ---- errors -----------------------------------------------------------------------------------


def test_an_unexpected_exception_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: Any) -> int:
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(cli_env, "cmd_env", broken)
    assert cli.main(["env"]) == 1
    assert capsys.readouterr().err == (
        "pyinfer env: internal error: RuntimeError: something unforeseen "
        "(re-run with --verbose for the traceback)\n"
    )
    assert cli.main(["env", "--verbose"]) == 1  # --verbose after the command works too
    assert (
        capsys.readouterr().err
        == "pyinfer env: internal error: RuntimeError: something unforeseen\n"
    )
    assert any(r.exc_info for r in caplog.records)


def test_an_error_with_a_framework_traceback_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyinfer.errors import ModelLoadError

    message = (
        "model 'm' failed on a batch of 3: RuntimeError: The following operation failed in the "
        "TorchScript interpreter.\nTraceback of TorchScript (most recent call last):\n"
        "        %r = aten::conv2d(%a, %w)\n             ~~~~ <--- HERE\n\n"
        "RuntimeError: expected padding to be a single integer value\n"
    )

    def broken(_: Any) -> int:
        raise ModelLoadError(message)

    monkeypatch.setattr(cli_env, "cmd_env", broken)
    assert cli.main(["env"]) == 1
    assert capsys.readouterr().err == (
        "pyinfer env: error: model 'm' failed on a batch of 3: RuntimeError: The following "
        "operation failed in the TorchScript interpreter. ... RuntimeError: expected padding to "
        "be a single integer value\n"
    )


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("info", "run", "profile", "sweep", "compare", "env", "demo"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: pyinfer {command}")
        assert re.search(rf"\nExamples:\n  pyinfer {command}\b", out)


# ---- real processes ---------------------------------------------------------------------------


def pyinfer_process(*argv: object) -> subprocess.Popen[str]:
    """``python -m pyinfer ARGV`` in a process of its own (the same pyinfer as this one)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pyinfer", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child of a background job starts with SIGINT ignored, and Python then installs no
        # KeyboardInterrupt handler: restore the default so the tests' Ctrl-C reaches it.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - it only resets one signal
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_help_imports_no_framework() -> None:
    code = (
        "import sys\nfrom pyinfer import cli\ntry:\n    cli.main(['profile', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'tensorflow', 'onnxruntime', 'keras', 'numpy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"


def test_exit_statuses_of_the_real_process(models: dict[str, Path], tmp_path: Path) -> None:
    cases = [
        (["info", tmp_path / "none.onnx"], 1),
        (["info", models["mlp"], "--option", "bogus=1"], 2),
        (["profile", models["mlp"], "--iterations", "0"], 2),
        (["info", models["mlp"]], 0),
    ]
    for argv, expected in cases:
        process = pyinfer_process(*argv)
        _, err = process.communicate(timeout=120)
        assert process.returncode == expected, (argv, err)
        if expected == 1:
            assert (
                err
                == f"pyinfer info: error: model path '{tmp_path / 'none.onnx'}' does not exist\n"
            )


def test_a_real_ctrl_c_writes_a_valid_report_and_exits_130(
    models: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "interrupted.json"
    # --iterations with a huge count: it would never stop on its own.
    process = pyinfer_process(
        "--verbose",
        "profile",
        models["mlp"],
        "--repeat",
        "1",
        "--warmup",
        "2",
        "--iterations",
        "100000000",
        "--no-memory",
        "--json",
        path,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:  # the first call is logged once the model has loaded and run
        if "first inference of 'mlp'" in line or time.monotonic() > deadline:
            break
    time.sleep(1.5)  # warm-up, then samples
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = ProfileReport.load(path)
    assert not report.stable
    assert report.stability_reason == f"interrupted after {report.latency.stats.count} samples"
    assert report.latency.stats.count >= 5
    assert out.startswith("Profiling Results:\n")
    assert f"interrupted: results so far written to {path}" in err


def test_a_pickled_module_needs_trust_code_as_the_loader_message_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module

    torch = require_module("torch")
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(4, 2), path)
    got, out, err = run_cli(["info", path], capsys)
    assert got == cli.EXIT_FAILED
    assert out == ""
    assert "trust_code=True (CLI: --trust-code)" in err
    got, out, err = run_cli(["info", path, "--trust-code"], capsys)
    assert got == cli.EXIT_OK, err
    assert "Format:      pytorch" in out.splitlines()
    assert "trust_code" in out


def test_info_counts_an_onnx_models_external_data(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    proto = onnx.load(str(models["mlp"]))
    path = tmp_path / "split.onnx"
    onnx.save_model(
        proto, str(path), save_as_external_data=True, location="split.bin", size_threshold=0
    )
    data = tmp_path / "split.bin"
    got, out, _ = run_cli(["info", path, "--json"], capsys)
    assert got == cli.EXIT_OK
    described = json.loads(out)
    assert described["file_bytes"] == path.stat().st_size
    assert described["external_data_files"] == [str(data)]
    assert described["external_data_bytes"] == data.stat().st_size == (8 * 16 + 16 + 16 * 3 + 3) * 4
    got, out, _ = run_cli(["info", path], capsys)
    assert "of external data in split.bin)" in out.splitlines()[1]


def test_a_state_dict_without_architecture_names_the_cli_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_module

    torch = require_module("torch")
    path = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    got, out, err = run_cli(["info", path], capsys)
    assert got == cli.EXIT_FAILED
    assert out == ""
    assert err.startswith(f"pyinfer info: error: {path} holds only weights (a state_dict)")
    assert err.rstrip().endswith("(CLI: --option architecture=torchvision.models:resnet50)")
    assert err.count("\n") == 1
    got, out, err = run_cli(
        [
            "info",
            path,
            "--option",
            "architecture=torch.nn:Linear",
            "--option",
            'architecture_kwargs={"in_features": 4, "out_features": 2}',
            "--option",
            "input_shapes=[null, 4]",
        ],
        capsys,
    )
    assert got == cli.EXIT_OK, err
    assert "Parameters:  10 (40 B)" in out.splitlines()
