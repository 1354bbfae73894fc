"""Dataset inference on Ray Data: the same outputs as the local engine, in input order.

One local Ray cluster of 2 CPUs for the module (``ray.init`` takes seconds). The models are
built here with random weights: torchvision's ResNet18 and MobileNetV2 exported to ONNX at
64x64 (the architectures, at a resolution that keeps 2,000 images quick on 2 cores), and a
tiny BERT folder (``save_pretrained``). Every run goes through :func:`_within`, so a pool
that waits for resources forever fails the test instead of blocking CI.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from tests._tiny_bert import save_tiny_bert
from tests.conftest import require_module

import pyinfer
from pyinfer import cli
from pyinfer.cluster import DatasetRunReport, read_outputs, run_dataset
from pyinfer.cluster.actor import ActorSettings, DatasetPredictor
from pyinfer.engine import DatasetResult, InferenceEngine
from pyinfer.errors import (
    FrameworkNotInstalledError,
    InvalidArgumentError,
    ModelNotFoundError,
)
from pyinfer.preprocess import ImagePipeline, TextPipeline

T = TypeVar("T")
#: Seconds any one run may take before the test fails (a hang, not a slow machine).
RUN_TIMEOUT_S = 300
IMAGES = 2000
TEXTS = 1000
DAMAGED = 1234  # the index of the truncated image
SIZE = 64
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "a", "cat", "sat", "on")


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, failing the test if it takes longer than ``seconds`` (a hang)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"the run did not finish in {seconds} s: a pool waiting for resources?")
    finally:
        pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = require_module("ray")
    # The workers import pyinfer from the same tree as this process.
    root = str(Path(pyinfer.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _export(net: Any, path: Path) -> Path:
    torch = require_module("torch")
    with warnings.catch_warnings():
        # torch 2.14 deprecates the TorchScript-based exporter (dynamo=False), which this
        # wants (no onnxscript, one file), and its internals call deprecated helpers.
        warnings.simplefilter("ignore", DeprecationWarning)
        _legacy_export(torch, net, path)
    return path


def _legacy_export(torch: Any, net: Any, path: Path) -> None:
    torch.onnx.export(
        net.eval(),
        (torch.randn(1, 3, SIZE, SIZE),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = require_module("torch")
    torchvision = require_module("torchvision")
    require_module("onnxruntime")
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {
        "resnet18": _export(torchvision.models.resnet18(weights=None), folder / "resnet18.onnx"),
        "mobilenet_v2": _export(
            torchvision.models.mobilenet_v2(weights=None), folder / "mobilenet_v2.onnx"
        ),
    }


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 JPEG files: scikit-image's photos, cut and repeated; one of them truncated."""
    from PIL import Image

    data = require_module("skimage.data")
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    folder = tmp_path_factory.mktemp("images")
    small = [
        np.asarray(Image.fromarray(p).resize((SIZE + 16, SIZE + 8))) for p in photos for _ in (0,)
    ]
    for i in range(IMAGES):
        photo = small[i % len(small)]
        shifted = np.roll(photo, i % 13, axis=1)  # no two neighbours alike
        Image.fromarray(shifted).save(folder / f"{i:05d}.jpg", quality=90)
    damaged = folder / f"{DAMAGED:05d}.jpg"
    damaged.write_bytes(damaged.read_bytes()[:200])
    return folder


def _local(model_path: Path, items: list[Any], kind: str, batch_size: int) -> DatasetResult:
    model = pyinfer.load_model(model_path)
    pipeline = ImagePipeline.for_model(model) if kind == "image" else TextPipeline.for_model(model)
    engine = InferenceEngine(
        model, pipeline, batch_size=batch_size, progress=False, cast_inputs="same_kind"
    )
    return engine.run_dataset(items)


def _assert_same(ray_result: DatasetResult, local: DatasetResult) -> None:
    assert len(ray_result) == len(local)
    assert [f.index for f in ray_result.failures] == [f.index for f in local.failures]
    assert [f.reason for f in ray_result.failures] == [f.reason for f in local.failures]
    for index, (got, want) in enumerate(zip(ray_result.outputs, local.outputs, strict=True)):
        assert (got is None) == (want is None), index
        if got is not None and want is not None:
            assert got.keys() == want.keys()
            for name in want:
                assert np.array_equal(got[name], want[name]), (index, name)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_images_give_the_local_engines_outputs_in_order_with_the_damaged_one_reported(
    ray_cluster: Any, onnx_models: dict[str, Path], image_folder: Path, name: str
) -> None:
    model_path = onnx_models[name]
    result = _within(
        RUN_TIMEOUT_S, lambda: run_dataset(model_path, image_folder, batch_size=16, actors=2)
    )
    files = sorted(image_folder.glob("*.jpg"))
    local = _local(model_path, files, "image", 16)
    ours = result.in_order()
    assert ours.sources == [str(p) for p in files]
    _assert_same(ours, local)
    (failure,) = result.report.failures
    assert failure.index == DAMAGED
    assert failure.source == str(files[DAMAGED])
    assert failure.reason.startswith(f"InvalidInputError: cannot decode image {files[DAMAGED]}")
    report = result.report
    assert (report.items, report.succeeded, report.actors) == (IMAGES, IMAGES - 1, 2)
    assert report.cpus_per_actor == 0.9  # 90% of 2 CPUs shared: room for Ray Data's tasks
    assert sum(a.items for a in report.per_actor) == IMAGES
    assert len(report.per_actor) == 2  # both actors took batches
    assert report.items_per_s == pytest.approx(report.succeeded / report.elapsed_s)
    assert sum(a.items_per_s for a in report.per_actor) == pytest.approx(IMAGES / report.elapsed_s)
    assert DatasetRunReport.from_json(report.to_json()) == report


def test_a_ray_dataset_with_ids_runs_and_comes_back_in_order(
    ray_cluster: Any, onnx_models: dict[str, Path], image_folder: Path
) -> None:
    files = sorted(image_folder.glob("*.jpg"))[:40]
    rows = [{"id": i, "path": str(p)} for i, p in enumerate(files)]
    dataset = ray_cluster.data.from_items(rows[::-1])  # the order is the ids', not the rows'
    model = onnx_models["mobilenet_v2"]
    result = _within(RUN_TIMEOUT_S, lambda: run_dataset(model, dataset, batch_size=8, actors=2))
    ours = result.in_order()
    assert ours.sources == [f"item {i}" for i in range(40)]
    local = _local(model, files, "image", 8)
    for got, want in zip(ours.outputs, local.outputs, strict=True):
        assert got is not None
        assert want is not None
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-6)
    without_ids = ray_cluster.data.from_items([{"path": str(p)} for p in files])
    with pytest.raises(InvalidArgumentError, match=r"^the Ray Dataset has no 'id' column \(its "):
        _within(RUN_TIMEOUT_S, lambda: run_dataset(model, without_ids))


def test_arrays_run_without_preprocessing_as_the_engine_runs_an_array(
    ray_cluster: Any, onnx_models: dict[str, Path], tmp_path: Path
) -> None:
    batch = np.random.default_rng(3).standard_normal((40, 3, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "batch.npy", batch)
    model = onnx_models["mobilenet_v2"]
    result = _within(
        RUN_TIMEOUT_S, lambda: run_dataset(model, tmp_path / "batch.npy", batch_size=8, actors=2)
    )
    ours = result.in_order()
    assert ours.sources == [f"{tmp_path / 'batch.npy'}[{i}]" for i in range(40)]
    local = InferenceEngine(pyinfer.load_model(model), batch_size=8, progress=False)
    _assert_same(ours, local.run_dataset(batch))


def test_the_actor_answers_one_row_per_input_with_its_id_in_this_process(
    onnx_models: dict[str, Path], image_folder: Path
) -> None:
    model = onnx_models["mobilenet_v2"]
    predictor = DatasetPredictor(ActorSettings(str(model), kind="image", batch_size=2))
    files = sorted(image_folder.glob("*.jpg"))[DAMAGED - 2 : DAMAGED + 2]
    row = np.empty(1, dtype=object)
    row[0] = np.array([str(f) for f in files], dtype=object)
    answer = predictor({"start": np.array([100]), "sources": row, "payload": row})
    assert answer["id"].tolist() == [100, 101, 102, 103]
    assert [e[:36] for e in answer["error"]] == ["", "", "InvalidInputError: cannot decode ima", ""]
    assert np.isnan(answer["out:logits"][2]).all()  # a failed row: NaN, its reason beside it
    local = _local(model, files, "image", 2)
    for i in (0, 1, 3):
        assert np.array_equal(answer["out:logits"][i], local.outputs[i]["logits"])
    items = {"id": np.array([7, 3]), "path": np.array([str(files[0]), str(files[1])])}
    answer = predictor(items)
    assert answer["id"].tolist() == [7, 3]
    assert answer["source"].tolist() == ["item 7", "item 3"]
    assert np.array_equal(answer["out:logits"][1], local.outputs[1]["logits"])


def _bert_folder(folder: Path) -> Path:
    for name in ("torch", "transformers", "tokenizers"):
        require_module(name)
    return save_tiny_bert(folder, WORDS)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bert_folder(tmp_path_factory.mktemp("hf") / "tiny-bert")


def _texts() -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 20)))) for _ in range(TEXTS)]


def test_texts_from_a_parquet_column_give_the_local_engines_outputs_in_order(
    ray_cluster: Any, bert_folder: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = _texts()
    table = pa.table({"label": list(range(TEXTS)), "review": texts})
    pq.write_table(table, tmp_path / "reviews.parquet", row_group_size=300)
    result = _within(
        RUN_TIMEOUT_S,
        lambda: run_dataset(
            bert_folder,
            tmp_path / "reviews.parquet",
            text_column="review",
            batch_size=8,
            actors=2,
            output=tmp_path / "out",
            output_format="npz",
        ),
    )
    assert result.dataset is None  # written to shards, read back in order
    ours = read_outputs(tmp_path / "out")
    assert ours.sources == [f"{tmp_path / 'reviews.parquet'}[{i}]" for i in range(TEXTS)]
    _assert_same(ours, _local(bert_folder, texts, "text", 8))
    report = DatasetRunReport.load(tmp_path / "out" / "report.json")
    assert report == result.report
    assert (report.items, report.succeeded, report.failures) == (TEXTS, TEXTS, ())
    assert [Path(s).name for s in report.shards] == sorted(
        p.name for p in tmp_path.glob("out/*.npz")
    )


def test_cli_run_ray_prints_what_a_local_run_prints(
    ray_cluster: Any,
    onnx_models: dict[str, Path],
    image_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    subset = tmp_path / "few"
    subset.mkdir()
    for i in (0, 1, 2, DAMAGED, 5):
        shutil.copy(image_folder / f"{i:05d}.jpg", subset)
    model = str(onnx_models["mobilenet_v2"])
    argv = ["run", model, str(subset), "--top-k", "3", "--batch-size", "2", "--no-progress"]
    assert cli.main(argv) == 1  # an item failed
    local_out, local_err = capsys.readouterr()
    code = _within(RUN_TIMEOUT_S, lambda: cli.main([*argv, "--ray", "--actors", "2"]))
    assert code == 1
    ray_out, ray_err = capsys.readouterr()
    assert ray_out == local_out
    assert len(ray_out.splitlines()) == 4
    failed = f"failed: {subset / f'{DAMAGED:05d}.jpg'}: InvalidInputError: cannot decode image"
    assert failed in local_err
    assert failed in ray_err
    assert "4 of 5 input(s) ran, 1 failed\n" in ray_err
    assert "on 2 actor(s) of 0.9 CPU, 0 GPU (local)" in ray_err
    out = tmp_path / "shards"
    code = _within(RUN_TIMEOUT_S, lambda: cli.main([*argv, "--ray", "--output", str(out)]))
    assert code == 1
    assert capsys.readouterr().out == ""
    written = read_outputs(out)
    assert [f.index for f in written.failures] == [4]  # 00000, 00001, 00002, 00005, 01234
    report = json.loads((out / "report.json").read_text())
    assert (report["kind"], report["items"], report["succeeded"]) == ("dataset run", 5, 4)


def test_bad_inputs_are_named(
    ray_cluster: Any, onnx_models: dict[str, Path], tmp_path: Path
) -> None:
    model = onnx_models["mobilenet_v2"]
    with pytest.raises(InvalidArgumentError, match=rf"^input {tmp_path / 'none'} does not exist$"):
        run_dataset(model, tmp_path / "none")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        run_dataset(tmp_path / "none.onnx", tmp_path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"title": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(
        InvalidArgumentError,
        match=rf"^Parquet file {tmp_path / 't.parquet'} has no column 'text' \(its columns: "
        r"title\); name the text column with text_column=$",
    ):
        run_dataset(model, tmp_path / "t.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(
        InvalidArgumentError, match=rf"^cannot read Parquet file {tmp_path / 'bad.parquet'}: "
    ):
        run_dataset(model, tmp_path / "bad.parquet")
    with pytest.raises(
        InvalidArgumentError,
        match=r"^3 actors of 0\.9 CPU and 0 GPU ask for 2\.7 CPUs and 0 GPUs; the cluster "
        r"\(local\) has 2 and 0: ask for fewer actors or fewer resources each$",
    ):
        run_dataset(
            model, tmp_path / "t.parquet", text_column="title", actors=3, cpus_per_actor=0.9
        )


def test_an_error_an_actor_raises_is_raised_as_the_same_pyinfer_error(
    ray_cluster: Any, image_folder: Path, tmp_path: Path
) -> None:
    torch = require_module("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, as above
        torch.onnx.export(
            torch.nn.Linear(4, 3).eval(),
            (torch.randn(1, 4),),
            str(tmp_path / "lin.onnx"),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        )
    with pytest.raises(
        InvalidArgumentError,
        match=r"^the inputs are images, but model 'lin' takes no images: input 'x' \(b, 4\) is "
        r"not an image batch \(rank 4\); give it \.npy or \.npz arrays$",
    ):
        _within(RUN_TIMEOUT_S, lambda: run_dataset(tmp_path / "lin.onnx", image_folder, actors=1))


def test_a_cluster_that_cannot_be_reached_is_a_cluster_error_naming_it(
    onnx_models: dict[str, Path], image_folder: Path
) -> None:
    require_module("ray")
    script = (
        "import sys\nfrom pyinfer.cluster import run_dataset\nfrom pyinfer.errors import "
        "ClusterError\ntry:\n    run_dataset(sys.argv[1], sys.argv[2], address='127.0.0.1:1')\n"
        "except ClusterError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(pyinfer.__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(onnx_models["mobilenet_v2"]), str(image_folder)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        check=True,
    )
    assert done.stdout == (
        "pyinfer.cluster.run_dataset: could not start or reach the Ray cluster at 127.0.0.1:1: "
        "nothing answers at 127.0.0.1:1 (Connection refused); start it there with `ray start "
        "--head`, or give the address it printed\n"
    ), done.stderr
    command = [sys.executable, "-m", "pyinfer", "run", str(onnx_models["mobilenet_v2"])]
    done = subprocess.run(
        [*command, str(image_folder), "--ray", "ray://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert (
        "pyinfer.cluster.run_dataset: could not start or reach the Ray cluster at "
        "ray://127.0.0.1:1: nothing answers at 127.0.0.1:1 (Connection refused)"
    ) in done.stderr


def test_without_ray_the_message_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, onnx_models: dict[str, Path], image_folder: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(
        FrameworkNotInstalledError,
        match=r"^pyinfer.cluster.run_dataset needs Ray \(.*\); pip install "
        r"'pyinfer-toolkit\[ray\]'$",
    ):
        run_dataset(onnx_models["mobilenet_v2"], image_folder)


def test_import_pyinfer_and_a_local_run_import_no_ray(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    script = (
        "import sys\nimport pyinfer, pyinfer.cluster\nfrom pyinfer import cli\n"
        "try:\n    cli.main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'ray', 'pyarrow'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(pyinfer.__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "[]"
