"""count_macs: exact counts of tiny models by hand, and the published figures of two CNNs."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pyinfer import load_model
from pyinfer.analysis import Arithmetic, classify, count_macs
from pyinfer.errors import CorruptModelError, InvalidArgumentError
from pyinfer.export import export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _keras_resnet import resnet50_v15

#: torchvision's documented figures (GMACs at 224 px, batch 1): ResNet50 4.089, MobileNetV2 0.301.
RESNET50_MACS = 4_089_184_256
MOBILENET_V2_MACS = 300_774_272


class _Tiny:
    """Builds the tiny torch model of the hand counts, lazily (torch is imported by fixtures)."""

    @staticmethod
    def make(torch: Any) -> Any:
        class Tiny(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)  # 8x8 out: 8*64 * 3*9 MACs
                self.fc = torch.nn.Linear(8 * 64, 16)  # 512 * 16 MACs per item

            def forward(self, x: Any) -> Any:
                y = torch.relu(self.conv(x)).flatten(1)
                z = self.fc(y)  # (B, 16)
                return z.unsqueeze(2) @ z.unsqueeze(1)  # (B, 16, 16): 16*16*1 MACs, attention

        return Tiny().eval()


# Per item: conv 8*8*8 * 27 = 13824, fc 512 * 16 = 8192, outer product 16*16*1 = 256.
TINY = {"Conv": 13_824, "MatMul/Gemm": 8_192, "Attention": 256}


def _save_traced(torch: Any, net: Any, example: Any, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still loaded
        torch.jit.save(torch.jit.trace(net, example), str(path))


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("tiny")
    net = _Tiny.make(torch)
    example = torch.randn(2, 3, 8, 8)
    _save_traced(torch, net, example, folder / "tiny.pt")
    export_onnx(net, folder / "tiny.onnx", example, input_names=["x"], dynamo=False)
    return {"torchscript": folder / "tiny.pt", "onnx": folder / "tiny.onnx"}


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiny_model_counts_by_hand(tiny_files: dict[str, Path], kind: str, batch: int) -> None:
    shapes = {"input_shapes": (None, 3, 8, 8)} if kind == "torchscript" else {}
    counted = count_macs(load_model(tiny_files[kind], **shapes), batch_size=batch)
    assert counted.macs_by_class == {k: v * batch for k, v in TINY.items()}
    assert counted.macs == sum(TINY.values()) * batch
    assert counted.flops == 2 * counted.macs
    assert counted.batch_size == batch
    # weights: conv 8*3*9 + 8, fc 512*16 + 16, fp32
    assert counted.parameter_bytes == 4 * (8 * 27 + 8 + 512 * 16 + 16)
    # ReLU's output (8*64 per item) is one elementwise element op each
    assert counted.element_ops_by_class["Elementwise"] == 8 * 64 * batch


def _onnx_model(onnx: ModuleType, nodes: list[Any], inputs: list[Any], inits: list[Any]) -> Any:
    helper = onnx.helper
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(onnx: ModuleType, name: str, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return onnx.numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_onnx_grouped_conv_transposed_conv_and_gemm(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    onnx = onnx_module
    helper = onnx.helper
    nodes = [
        # grouped conv: 4 -> 6 channels, groups 2, 3x3, stride 1 pad 1 on 5x5: 6*25 * 2*9 MACs
        helper.make_node("Conv", ["x", "w1"], ["a"], group=2, pads=[1, 1, 1, 1]),
        # transposed conv 6 -> 2, 2x2 stride 2: each input element feeds 2*4 outputs: 6*25 * 8
        helper.make_node("ConvTranspose", ["a", "w2"], ["b"], strides=[2, 2]),
        helper.make_node("Flatten", ["b"], ["c"]),
        # gemm (1, 200) x (200, 7) with transB: 200 * 7
        helper.make_node("Gemm", ["c", "w3"], ["y"], transB=1),
    ]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 4, 5, 5])
    inits = [
        _weight(onnx, "w1", (6, 2, 3, 3)),
        _weight(onnx, "w2", (6, 2, 2, 2)),
        _weight(onnx, "w3", (7, 200)),
    ]
    path = tmp_path / "g.onnx"
    onnx.save(_onnx_model(onnx, nodes, [x], inits), str(path))
    counted = count_macs(path, batch_size=2)
    assert counted.macs_by_class == {
        "Conv": 2 * 6 * 25 * 18,
        "ConvTranspose": 2 * 6 * 25 * 8,
        "MatMul/Gemm": 2 * 200 * 7,
    }
    assert counted.parameter_bytes == 4 * (108 + 48 + 1400)
    names = [op.op_type for op in counted.operators]
    assert names == ["Conv", "ConvTranspose", "Flatten", "Gemm"]


def test_onnx_matmul_of_two_activations_is_attention(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    onnx = onnx_module
    helper = onnx.helper
    nodes = [
        helper.make_node("Transpose", ["q"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),  # (B, 10, 4) x (B, 4, 10): 100 * 4
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "w"], ["y"]),  # (B, 10, 10) x (10, 3): 30 * 10
    ]
    q = helper.make_tensor_value_info("q", onnx.TensorProto.FLOAT, ["batch", 10, 4])
    path = tmp_path / "att.onnx"
    onnx.save(_onnx_model(onnx, nodes, [q], [_weight(onnx, "w", (10, 3))]), str(path))
    counted = count_macs(path, batch_size=1)
    assert counted.macs_by_class == {"Attention": 400, "MatMul/Gemm": 300}
    assert counted.element_ops_by_class == {"Elementwise": 100}
    # the transpose writes 40 floats, q 40, s/p 100 each, y 30
    assert counted.activation_bytes == 4 * (40 + 40 + 100 + 100 + 30)


def test_bad_batch_size_is_refused(tiny_files: dict[str, Path]) -> None:
    with pytest.raises(InvalidArgumentError, match=r"batch_size must be a positive integer, not 0"):
        count_macs(tiny_files["onnx"], batch_size=0)


def test_an_onnx_graph_whose_shapes_contradict_is_a_corrupt_model(
    onnx_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    from pyinfer.analysis.count_onnx import count_onnx_graph

    onnx = onnx_module
    helper = onnx.helper
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]  # (1, 4) x (5, 3): K differs
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    path = tmp_path / "bad.onnx"
    onnx.save(_onnx_model(onnx, nodes, [x], [_weight(onnx, "w", (5, 3))]), str(path))
    with pytest.raises(CorruptModelError, match=rf"cannot count the operations of {path}: onnx"):
        count_onnx_graph(path, {"x": (1, 4)}, model="bad", batch_size=1)


@pytest.mark.parametrize(
    ("op_type", "expected"),
    [
        ("Conv", "Conv"),
        ("aten::convolution", "Conv"),
        ("DepthwiseConv2dNative", "Conv"),
        ("CONV_2D", "Conv"),
        ("ConvTranspose", "ConvTranspose"),
        ("aten::addmm", "MatMul/Gemm"),
        ("FusedMatMul", "MatMul/Gemm"),
        ("FULLY_CONNECTED", "MatMul/Gemm"),
        ("MultiHeadAttention", "Attention"),
        ("MaxPool", "Pooling"),
        ("aten::adaptive_avg_pool2d", "Pooling"),
        ("Reshape", "Data movement"),
        ("aten::cat", "Data movement"),
        ("Relu", "Elementwise"),
        ("BatchNormalization", "Elementwise"),
        ("", "Other"),
    ],
)
def test_operator_names_are_normalised(op_type: str, expected: str) -> None:
    assert classify(op_type) == expected


# -- the published figures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet50_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """torchvision's ResNet50 (random weights) as a state dict, TorchScript and ONNX, once."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("resnet50")
    net = torchvision.models.resnet50(weights=None).eval()
    example = torch.randn(1, 3, 224, 224)
    torch.save(net.state_dict(), folder / "resnet50.pth")
    _save_traced(torch, net, example, folder / "resnet50.pt")
    export_onnx(net, folder / "resnet50.onnx", example, input_names=["x"], dynamo=False)
    return {
        "eager": folder / "resnet50.pth",
        "torchscript": folder / "resnet50.pt",
        "onnx": folder / "resnet50.onnx",
    }


def _count_resnet50(kind: str, path: Path) -> Arithmetic:
    if kind == "onnx":
        return count_macs(path)
    options = {"architecture": "torchvision.models:resnet50"} if kind == "eager" else {}
    return count_macs(load_model(path, input_shapes=(None, 3, 224, 224), **options))


@pytest.mark.parametrize("kind", ["eager", "torchscript", "onnx"])
def test_resnet50_counts_torchvisions_figure(resnet50_files: dict[str, Path], kind: str) -> None:
    counted = _count_resnet50(kind, resnet50_files[kind])
    assert counted.macs == RESNET50_MACS
    assert counted.macs_by_class == {"Conv": 4_087_136_256, "MatMul/Gemm": 2_048_000}
    if kind == "onnx":  # batch norms folded into the convolutions by the exporter
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(resnet50_files[kind])).graph
        weights = sum(numpy_helper.to_array(t).nbytes for t in graph.initializer)
        assert counted.parameter_bytes == weights
    else:  # 25,557,032 weights, the batch norms' running mean and variance, their int64 counters
        assert counted.parameter_bytes == 4 * (25_557_032 + 53_120) + 8 * 53


def test_resnet50_counts_scale_with_the_batch(resnet50_files: dict[str, Path]) -> None:
    assert count_macs(resnet50_files["onnx"], batch_size=4).macs == 4 * RESNET50_MACS


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_keras_and_tflite_count_the_same_networks(
    keras_module: ModuleType, tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    keras = keras_module
    resnet = resnet50_v15(keras)
    resnet.save(tmp_path / "resnet50.keras")
    assert count_macs(tmp_path / "resnet50.keras").macs == RESNET50_MACS

    mobilenet = keras.applications.MobileNetV2(weights=None)
    mobilenet.save(tmp_path / "mnv2.keras")
    counted = count_macs(tmp_path / "mnv2.keras")
    assert counted.macs == MOBILENET_V2_MACS
    converter = tensorflow_module.lite.TFLiteConverter.from_keras_model(mobilenet)
    (tmp_path / "mnv2.tflite").write_bytes(converter.convert())
    lite = count_macs(tmp_path / "mnv2.tflite", batch_size=2)  # XNNPACK's tensors too
    assert lite.macs == 2 * MOBILENET_V2_MACS
    assert counted.macs_by_class == {"Conv": 299_494_272, "MatMul/Gemm": 1_280_000}
    assert lite.macs_by_class == {k: 2 * v for k, v in counted.macs_by_class.items()}


def test_a_bert_counts_alike_in_torch_and_onnx(
    torch_module: ModuleType, onnxruntime_module: ModuleType, tmp_path: Path
) -> None:
    """A 2-layer BERT (hidden 64, 4 heads, FFN 128) at 16 tokens, counted by hand."""
    transformers = pytest.importorskip("transformers")
    from pyinfer.analysis.count_torch import count_torch_module

    torch = torch_module
    config = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    bert = transformers.BertModel(config).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    ids = torch.randint(0, 100, (1, 16))
    mask = torch.ones(1, 16, dtype=torch.int64)
    h, ffn, tokens = 64, 128, 16
    # per layer: Q, K, V, output projections and the two FFN products; pooler h x h
    projections = 2 * (4 * h * h * tokens + 2 * h * ffn * tokens) + h * h
    attention = 2 * (2 * tokens * tokens * h)  # Q K^T and P V, per layer
    expected = {"MatMul/Gemm": projections, "Attention": attention}
    torch_count = count_torch_module(
        Wrapped().eval(),
        {"ids": ids, "mask": mask},
        keyword_inputs=frozenset(),
        model="bert",
        batch_size=1,
        parameter_bytes=0,
    )
    assert torch_count.macs_by_class == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings about transformers' Python checks
        export_onnx(Wrapped().eval(), tmp_path / "bert.onnx", (ids, mask), dynamo=False)
    onnx_count = count_macs(tmp_path / "bert.onnx")
    assert onnx_count.macs_by_class == {"MatMul/Gemm": projections - h * h, "Attention": attention}


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_a_saved_model_is_counted_from_its_frozen_graph(
    tensorflow_module: ModuleType, tmp_path: Path
) -> None:
    tf = tensorflow_module

    class Net(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(tf.ones((3, 3, 2, 4)))  # 3x3 conv, 2 -> 4 channels
            self.dense = tf.Variable(tf.ones((4 * 6 * 6, 5)))

        @tf.function(input_signature=[tf.TensorSpec((None, 6, 6, 2), tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            y = tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME"))
            z = tf.matmul(tf.reshape(y, (-1, 4 * 6 * 6)), self.dense)
            return {"y": tf.matmul(z, z, transpose_a=True)}  # (5, 5): activations only

    net = Net()
    tf.saved_model.save(net, str(tmp_path / "sm"), signatures=net.__call__)
    counted = count_macs(tmp_path / "sm", batch_size=2)
    assert counted.macs_by_class == {
        "Conv": 2 * 6 * 6 * 4 * 9 * 2,
        "MatMul/Gemm": 2 * 144 * 5,
        "Attention": 5 * 5 * 2,  # z^T z: K is the batch
    }
    assert counted.framework == "tensorflow"
    # (activations read, weights read, outputs written), in bytes, of the frozen constants
    by_class = {op.op_class: op for op in counted.operators if op.macs}
    read_written = {
        k: (op.input_bytes, op.weight_bytes, op.output_bytes) for k, op in by_class.items()
    }
    assert read_written == {
        "Conv": (4 * 2 * 72, 4 * 72, 4 * 2 * 144),
        "MatMul/Gemm": (4 * 2 * 144, 4 * 144 * 5, 4 * 2 * 5),
        "Attention": (4 * 2 * 10, 0, 4 * 25),
    }


# ---- each operator's bytes: weights and activations read, outputs written ---------------------

#: A conv (3 -> 4 channels, 3x3, pad 1, bias) on 8x8, flattened, times a (256, 5) weight, batch 1.
#: Conv: reads x 3*64 floats and its weights 4*27 + 4, writes 4*64; 4*64 * 27 MACs.
#: MatMul: reads 256 activations and 256*5 weights, writes 5; 256 * 5 MACs.
CONV_BYTES = {"input": 4 * 3 * 64, "weight": 4 * (4 * 27 + 4), "output": 4 * 4 * 64}
MATMUL_BYTES = {"input": 4 * 256, "weight": 4 * 256 * 5, "output": 4 * 5}
CONV_MACS, MATMUL_MACS = 4 * 64 * 27, 256 * 5


@pytest.fixture(scope="module")
def conv_fc_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 5, bias=False)
    ).eval()
    folder = tmp_path_factory.mktemp("conv_fc")
    example = torch.randn(1, 3, 8, 8)
    _save_traced(torch, net, example, folder / "conv_fc.pt")
    export_onnx(net, folder / "conv_fc.onnx", example, input_names=["x"], dynamo=False)
    return {"torchscript": folder / "conv_fc.pt", "onnx": folder / "conv_fc.onnx"}


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_each_operator_counts_the_weights_it_reads(
    conv_fc_files: dict[str, Path], kind: str
) -> None:
    shapes = {"input_shapes": (None, 3, 8, 8)} if kind == "torchscript" else {}
    counted = count_macs(load_model(conv_fc_files[kind], **shapes), batch_size=1)
    by_class = {op.op_class: op for op in counted.operators if op.macs}
    assert set(by_class) == {"Conv", "MatMul/Gemm"}
    for op_class, expected in (("Conv", CONV_BYTES), ("MatMul/Gemm", MATMUL_BYTES)):
        op = by_class[op_class]
        assert (op.input_bytes, op.weight_bytes, op.output_bytes) == (
            expected["input"],
            expected["weight"],
            expected["output"],
        ), op
        assert op.bytes_moved == sum(expected.values())
    assert counted.intensity_by_class() == {
        "Conv": 2 * CONV_MACS / sum(CONV_BYTES.values()),  # 13824 FLOP / 2240 B = 6.17
        "MatMul/Gemm": 2 * MATMUL_MACS / sum(MATMUL_BYTES.values()),  # 2560 / 6164 = 0.42
    }
