"""Hugging Face model folders, safetensors state_dicts and real tokenizers.

A tiny BERT (built from a ``BertConfig`` with random weights, saved with ``save_pretrained``)
and a tiny WordPiece tokenizer (built with the ``tokenizers`` library, saved as
``tokenizer.json`` and with transformers' ``PreTrainedTokenizerFast.save_pretrained``): nothing
is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from tests._tiny_bert import fast_tokenizer, save_tiny_bert, wordpiece_tokenizer  # noqa: E402

import pyinfer  # noqa: E402
from pyinfer import export  # noqa: E402
from pyinfer.backends.huggingface import TextEncoder  # noqa: E402
from pyinfer.errors import (  # noqa: E402
    ArchitectureError,
    UnknownFormatError,
    UntrustedModelError,
)
from pyinfer.formats import ModelFormat  # noqa: E402

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jump",
    "over",
    "lazy",
    "dog",
    "a",
    "cat",
    "sat",
    "on",
    "mat",
    "and",
    "ran",
    "away",
    "from",
    "big",
    "red",
    "house",
    "in",
    "town",
]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "A cat sat", "Foxes ran away!"]
MAX_POSITIONS = 64


def _tokenizer() -> Any:
    return wordpiece_tokenizer(WORDS)


def _fast(tok: Any) -> Any:
    return fast_tokenizer(tok)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert", WORDS, MAX_POSITIONS)


@pytest.fixture(scope="module")
def bert(bert_dir: Path) -> Any:
    return pyinfer.load_model(bert_dir)


def _reference(folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def test_a_folder_with_config_and_safetensors_is_detected_as_pytorch(bert_dir: Path) -> None:
    assert sorted(p.name for p in bert_dir.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert pyinfer.detect_format(bert_dir) is ModelFormat.PYTORCH


def test_a_folder_without_weights_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnknownFormatError, match=r"nor a Hugging Face model folder"):
        pyinfer.detect_format(tmp_path)


def test_the_folder_loads_with_its_tokenizer_and_declares_token_inputs(bert: Any) -> None:
    assert bert.framework == "torch"
    assert bert.options["architecture"] == "BertModel"
    assert [(s.name, s.shape, str(s.dtype)) for s in bert.inputs] == [
        ("input_ids", ("batch", "sequence"), "int64"),
        ("attention_mask", ("batch", "sequence"), "int64"),
        ("token_type_ids", ("batch", "sequence"), "int64"),
    ]
    assert [(s.name, s.shape) for s in bert.outputs] == [
        ("last_hidden_state", ("batch", "sequence", 32)),
        ("pooler_output", ("batch", 32)),
    ]
    assert isinstance(bert.tokenizer, TextEncoder)
    assert bert.parameter_count == sum(
        p.numel() for p in transformers.AutoModel.from_pretrained(bert.path).parameters()
    )


def test_outputs_equal_transformers_own_on_tokenized_text(bert: Any, bert_dir: Path) -> None:
    inputs = bert.tokenizer.encode(TEXTS)
    assert inputs["attention_mask"].sum(axis=1).tolist() == [13, 5, 7]
    got = bert(inputs)
    expected = _reference(bert_dir, inputs)
    assert list(got) == ["last_hidden_state", "pooler_output"]
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5)


def test_example_inputs_are_the_tokenizers_encoding_of_real_words(bert: Any) -> None:
    fast = _fast(_tokenizer())
    example = bert.example_inputs(3, seed=1, dims={"sequence": 16})
    assert {k: v.shape for k, v in example.items()} == dict.fromkeys(
        ("input_ids", "attention_mask", "token_type_ids"), (3, 16)
    )
    ids = example["input_ids"]
    assert (ids[:, 0] == fast.cls_token_id).all()
    # Decoding and encoding again gives the same ids, mask and type ids: they are the
    # tokenizer's own encoding of real words.
    texts = [fast.decode(row, skip_special_tokens=True) for row in ids]
    again = fast(texts, padding="max_length", max_length=16, truncation=True, return_tensors="np")
    for name in example:
        np.testing.assert_array_equal(example[name], again[name])
    assert fast.unk_token_id not in ids
    assert not np.array_equal(example["input_ids"], bert.example_inputs(3, seed=2)["input_ids"])
    default = bert.example_inputs(1)
    assert default["input_ids"].shape == (1, MAX_POSITIONS)  # capped by the position embeddings


@pytest.mark.parametrize("kind", ["tokenizers", "transformers", "json-path", "folder-path"])
def test_text_encoder_gives_the_tokenizers_own_ids_and_masks(kind: str, bert_dir: Path) -> None:
    raw = _tokenizer()
    given: Any = {
        "tokenizers": raw,
        "transformers": _fast(raw),
        "json-path": bert_dir / "tokenizer.json",
        "folder-path": bert_dir,
    }[kind]
    got = TextEncoder(given).encode(TEXTS, pairs=["big red house", "in town", "a"])
    padded = tokenizers.Tokenizer.from_str(raw.to_str())
    padded.enable_padding(pad_id=0, pad_token="[PAD]")
    expected = padded.encode_batch(list(zip(TEXTS, ["big red house", "in town", "a"], strict=True)))
    np.testing.assert_array_equal(got["input_ids"], [e.ids for e in expected])
    np.testing.assert_array_equal(got["attention_mask"], [e.attention_mask for e in expected])
    np.testing.assert_array_equal(got["token_type_ids"], [e.type_ids for e in expected])
    assert got["token_type_ids"].max() == 1


def test_a_tokenizer_with_fixed_padding_keeps_its_length_and_mask() -> None:
    tok = _tokenizer()
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    got = TextEncoder(tok).encode(["a cat sat"])
    assert got["input_ids"].shape == (1, 128)
    assert int(got["attention_mask"].sum()) == 5  # [CLS] a cat sat [SEP], not 128


def test_text_encoder_refuses_what_is_no_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(pyinfer.InvalidArgumentError, match=r"not int"):
        TextEncoder(3)
    with pytest.raises(pyinfer.InvalidArgumentError, match=r"does not exist"):
        TextEncoder(tmp_path / "tokenizer.json")


def test_the_onnx_export_gives_the_same_outputs_and_tokenizer(
    bert: Any, bert_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "onnx"
    folder.mkdir()
    example = bert.example_inputs(2, dims={"sequence": 12})
    export.export_onnx(bert.module, folder / "model.onnx", example)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bert_dir / name, folder / name)
    assert pyinfer.detect_format(folder) is ModelFormat.ONNX
    onnx_model = pyinfer.load_model(folder)
    assert onnx_model.framework == "onnxruntime"
    assert [s.shape for s in onnx_model.inputs] == [("batch", "sequence")] * 3
    # Same tokenizer: the same example inputs at another batch and length.
    ours = bert.example_inputs(3, seed=5, dims={"sequence": 9})
    theirs = onnx_model.example_inputs(3, seed=5, dims={"sequence": 9})
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
    expected = _reference(bert_dir, ours)
    got = onnx_model(ours)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5)


def test_torchscript_and_torch_export_of_the_folder_keep_a_dynamic_sequence(
    bert: Any, bert_dir: Path, tmp_path: Path
) -> None:
    example = bert.example_inputs(1, dims={"sequence": 10})
    other = bert.example_inputs(3, seed=7, dims={"sequence": 6})
    expected = _reference(bert_dir, other)
    program = export.export_torch_program(bert.module, tmp_path / "m.pt2", example)
    got = pyinfer.load_model(program)(other)
    traced = export.export_torchscript(bert.module, tmp_path / "m.pt", tuple(example.values()))
    scripted = pyinfer.load_model(
        traced,
        input_shapes={s.name: ("batch", "sequence") for s in bert.inputs},
        input_dtypes={s.name: "int64" for s in bert.inputs},
    )
    script_out = scripted(other)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5)
        np.testing.assert_allclose(script_out[name], value, rtol=0, atol=1e-5)


def test_export_takes_a_dict_of_inputs_in_forward_order(bert: Any, tmp_path: Path) -> None:
    example = bert.example_inputs(1, dims={"sequence": 8})
    shuffled = {k: example[k] for k in reversed(list(example))}
    path = export.export_torch_program(bert.module, tmp_path / "d.pt2", shuffled)
    loaded = pyinfer.load_model(path)
    assert [s.name for s in loaded.inputs] == list(example)
    with pytest.raises(pyinfer.InvalidArgumentError, match=r"must be the first 1 arguments"):
        export.export_torch_program(bert.module, tmp_path / "e.pt2", {"token_type_ids": 1})


def test_code_in_the_folder_is_refused_without_trust_code(bert_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MyBertModel"]
    config["auto_map"] = {"AutoModel": "modeling_my.MyBertModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_my.py").write_text("raise SystemExit('code from the folder ran')\n")
    with pytest.raises(UntrustedModelError) as info:
        pyinfer.load_model(folder)
    message = str(info.value)
    assert "MyBertModel is code stored in the folder (modeling_my.py)" in message
    assert "trust_code=True (CLI: --trust-code)" in message


def test_an_architecture_transformers_lacks_is_named(bert_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "unknown"
    shutil.copytree(bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["NoSuchModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArchitectureError, match=r"names the architecture 'NoSuchModel'"):
        pyinfer.load_model(folder)


def test_a_task_head_comes_from_config_architectures(bert_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "classifier"
    config = transformers.BertConfig.from_pretrained(bert_dir)
    config.num_labels = 3
    torch.manual_seed(1)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bert_dir / name, folder / name)
    model = pyinfer.load_model(folder)
    assert model.options["architecture"] == "BertForSequenceClassification"
    assert [(s.name, s.shape) for s in model.outputs] == [("logits", ("batch", 3))]
    inputs = model.tokenizer.encode(TEXTS)
    reference = transformers.BertForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = reference(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits
    np.testing.assert_allclose(model(inputs)["logits"], logits.numpy(), rtol=0, atol=1e-5)


def test_a_bare_safetensors_file_is_a_state_dict(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    path = tmp_path / "weights.safetensors"
    save_file(net.state_dict(), str(path))
    assert pyinfer.detect_format(path) is ModelFormat.PYTORCH
    with pytest.raises(ArchitectureError, match=r"holds only weights \(a state_dict\)"):
        pyinfer.load_model(path)

    def build() -> Any:
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))

    model = pyinfer.load_model(path, architecture=build, input_shapes={"input": ("batch", 4)})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    (name,) = model.input_names()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model({name: x})["output"], expected, rtol=0, atol=1e-6)


def test_a_damaged_safetensors_file_is_a_corrupt_model(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)  # 8 of 16 bytes
    with pytest.raises(pyinfer.CorruptModelError, match=r"could not be read as a safetensors"):
        pyinfer.load_model(path, architecture=lambda: torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kind", ["tokenizers", "transformers", "json-path"])
def test_text_pipeline_keeps_the_tokenizers_own_ids_mask_and_type_ids(
    kind: str, bert_dir: Path
) -> None:
    raw = _tokenizer()
    given: Any = {
        "tokenizers": raw,
        "transformers": _fast(raw),
        "json-path": str(bert_dir / "tokenizer.json"),
    }[kind]
    pipeline = pyinfer.TextPipeline(given, max_length=16, token_type_ids=True)
    batch = pipeline.encode_batch(TEXTS)
    expected = _fast(raw)(
        TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np"
    )
    assert list(batch) == ["input_ids", "attention_mask", "token_type_ids"]
    for name, value in batch.items():
        np.testing.assert_array_equal(value, expected[name])
    one = pipeline(TEXTS[1])
    for name, value in one.items():
        np.testing.assert_array_equal(value, expected[name][1])


def test_text_pipeline_keeps_a_tokenizers_fixed_padding_and_mask() -> None:
    tok = _tokenizer()
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    pipeline = pyinfer.TextPipeline(tok, max_length=256)
    item = pipeline("a cat sat")
    assert item["input_ids"].shape == (128,)
    assert item["attention_mask"].tolist() == [1] * 5 + [0] * 123  # the tokenizer's, not 128


def test_text_pipeline_truncates_to_max_length_with_the_tokenizer(bert_dir: Path) -> None:
    pipeline = pyinfer.TextPipeline(bert_dir, max_length=6, padding="longest")
    batch = pipeline.encode_batch(TEXTS)
    assert batch["input_ids"].shape == (3, 6)
    assert batch["input_ids"][0, -1] == 3  # [SEP] kept at the end by the tokenizer
    strict = pyinfer.TextPipeline(bert_dir, max_length=6, padding="longest", truncation=False)
    with pytest.raises(pyinfer.InvalidInputError, match=r"text of 13 tokens is longer than"):
        strict.encode_batch(TEXTS)


def test_the_engine_runs_texts_through_the_folders_tokenizer(bert: Any, bert_dir: Path) -> None:
    pipeline = pyinfer.TextPipeline.for_model(bert, max_length=16)
    engine = pyinfer.InferenceEngine(bert, pipeline, batch_size=2)
    got = engine.predict_batch(TEXTS)
    inputs = _fast(_tokenizer())(
        TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np"
    )
    expected = _reference(bert_dir, {k: np.asarray(v) for k, v in inputs.items()})
    np.testing.assert_allclose(got["pooler_output"], expected["pooler_output"], atol=1e-5)


def test_text_pipeline_for_a_model_without_tokenizer_asks_for_one(bert: Any) -> None:
    class Bare:
        name = "bare"
        inputs = bert.inputs

    with pytest.raises(pyinfer.InvalidArgumentError, match=r"loaded without a tokenizer"):
        pyinfer.TextPipeline.for_model(Bare())  # type: ignore[arg-type]


def test_a_folder_with_pytorch_model_bin_loads_the_same(
    bert: Any, bert_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bert_dir / name, folder / name)
    reference = transformers.AutoModel.from_pretrained(bert_dir)
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    assert pyinfer.detect_format(folder) is ModelFormat.PYTORCH
    model = pyinfer.load_model(folder)
    assert model.options["load_report"]["missing_keys"] == []
    inputs = model.tokenizer.encode(TEXTS)
    got, expected = model(inputs), bert(inputs)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


def test_weights_that_do_not_fit_are_named_unless_strict_is_off(
    bert_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(bert_dir, folder)
    weights = load_file(str(folder / "model.safetensors"))
    dropped = sorted(k for k in weights if k.endswith("pooler.dense.bias"))
    assert len(dropped) == 1
    save_file(
        {k: v for k, v in weights.items() if k not in dropped}, str(folder / "model.safetensors")
    )
    with pytest.raises(ArchitectureError, match=r"1 missing key\(s\) \(pooler\.dense\.bias\)"):
        pyinfer.load_model(folder)
    model = pyinfer.load_model(folder, strict=False)
    assert model.options["load_report"]["missing_keys"] == ["pooler.dense.bias"]


# ---- the commands on a folder, without inputs or sizes given ------------------------------------


def _cli(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from pyinfer import cli

    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_folders_sequence_is_its_default_and_sizes_the_text_pipeline(bert: Any) -> None:
    from pyinfer.preprocess import TextPipeline

    # 128 tokens, or fewer where the position embeddings end (64 here).
    assert bert.default_dims == {"sequence": MAX_POSITIONS}
    assert bert.options["sequence_length"] == MAX_POSITIONS
    pipeline = TextPipeline.for_model(bert)
    assert pipeline.max_length == MAX_POSITIONS
    long_text = " ".join(WORDS * 20)  # far more tokens than the model takes: truncated
    assert pipeline.encode_batch([long_text])["input_ids"].shape == (1, MAX_POSITIONS)


def test_run_encodes_each_line_of_a_text_file_with_the_folders_tokenizer(
    bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{TEXTS[0]}\n\n{TEXTS[1]}\n", encoding="utf-8")
    out = tmp_path / "out.json"
    code, _, err = _cli(["run", bert_dir, texts, "--output", out], capsys)
    assert code == 0, err
    assert "2 of 2 input(s) ran, 0 failed" in err
    items = json.loads(out.read_text())["items"]
    assert [item["source"] for item in items] == [f"{texts}:1", f"{texts}:3"]
    fast = transformers.AutoTokenizer.from_pretrained(bert_dir)
    encoded = fast(
        [TEXTS[0], TEXTS[1]], padding="max_length", max_length=MAX_POSITIONS, return_tensors="np"
    )
    want = _reference(bert_dir, {k: v.astype(np.int64) for k, v in encoded.items()})
    for i, item in enumerate(items):
        got = np.asarray(item["outputs"]["pooler_output"], dtype=np.float32)
        np.testing.assert_allclose(got, want["pooler_output"][i], rtol=1e-4, atol=1e-5)


def test_run_on_text_refuses_a_model_without_a_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = torch.nn.Linear(4, 2).eval()
    model_path = tmp_path / "net.onnx"
    export.export_onnx(net, model_path, torch.zeros(1, 4))
    texts = tmp_path / "t.txt"
    texts.write_text("hello\n", encoding="utf-8")
    code, _, err = _cli(["run", model_path, texts], capsys)
    assert code == 2
    assert f"{texts} is text, but model 'net' has no tokenizer" in err


def test_profile_and_formats_work_on_a_folder_without_sizes_or_inputs(
    bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = ["--repeat", "1", "--iterations", "5", "--warmup", "1", "--no-memory"]
    code, stdout, err = _cli(["profile", bert_dir, *fast], capsys)
    assert code == 0, err
    assert f"input_ids (1, {MAX_POSITIONS})" in stdout
    # Every format measured on the folder's own token ids: an export carries no tokenizer.
    argv = ["formats", bert_dir, "--quick", "--batch-size", "2", "--work-dir", tmp_path]
    code, stdout, err = _cli(argv, capsys)
    assert code == 0, stdout + err
    assert "all outputs match" in stdout
    rows = [line for line in stdout.splitlines() if "│" in line and "ok (" in line]
    assert len(rows) == 3  # TorchScript, torch.export and ONNX against the original
