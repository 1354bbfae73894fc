"""The suite's models, built with seeded random weights (nothing is downloaded).

Models made in code (ResNet50 in PyTorch eager, BERT-base, MobileNetV2) are built where they are
measured, in the worker process, by the module-level functions :func:`resnet50_eager`,
:func:`bert_base` and :func:`mobilenet_v2` (a worker imports them by name; the same seed gives
the same weights). ResNet50's other formats are exported by the parent through
:mod:`pyinfer.export` (or reused from the work folder) and loaded by the worker from the file
(:func:`resnet_source`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyinfer
from pyinfer.backends.base import LoadRequest, Model
from pyinfer.errors import FrameworkNotInstalledError
from pyinfer.report.environment import collect_environment
from pyinfer.suite.artifacts import Artifacts
from pyinfer.suite.settings import SuiteConfig

__all__ = [
    "Models",
    "Skip",
    "bert_base",
    "mobilenet_v2",
    "resnet50_eager",
    "resnet_source",
    "torch_resnet50",
]

#: Where a worker gets an entry's model: loaded from a file, or built by a picklable function.
ModelSource = LoadRequest | Callable[[], Model]


class Skip(Exception):  # noqa: N818 - a signal, not an error
    """An entry that cannot run here (a format without that device)."""


def _require(module: str, extra: str, what: str) -> Any:
    """Imports ``module`` for ``what``, or raises FrameworkNotInstalledError naming the extra."""
    import importlib

    from pyinfer.backends.frameworks import ensure_triton_safe

    try:
        ensure_triton_safe()
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", maxsplit=1)[0]
        raise FrameworkNotInstalledError(
            f"{what} needs {package} ({exc}); pip install 'pyinfer-toolkit[{extra}]'"
        ) from exc


def _torch_loader(**options: Any) -> Any:
    from pyinfer.loading import PyTorchModelLoader

    return PyTorchModelLoader(**options)


def torch_resnet50(seed: int) -> Any:
    """ResNet50 as a torch module (torchvision, random weights from ``seed``), in eval mode."""
    import torch

    resnet50 = _require("torchvision.models", "torch", "ResNet50").resnet50
    torch.manual_seed(seed)
    return resnet50(weights=None).eval()


def resnet50_eager(seed: int, image_size: int, device: str) -> Model:
    """ResNet50 in PyTorch eager on ``device``, as pyinfer runs a torch module (for a worker)."""
    shapes = {"x": (None, 3, image_size, image_size)}
    loader = _torch_loader(input_shapes=shapes)
    return loader.from_module(torch_resnet50(seed), device=device, name="ResNet50")  # type: ignore[no-any-return]


def bert_base(seed: int, bert_config: Mapping[str, Any], device: str) -> Model:
    """BERT-base with random weights from ``seed`` (``bert_config`` overrides ``BertConfig``).

    Its inputs are ``input_ids``, ``attention_mask`` and ``token_type_ids``, made by a WordPiece
    tokenizer of the model's vocabulary size (:func:`~pyinfer.suite.wordpiece.bert_tokenizer`,
    30,522 entries in BERT's layout) from texts of its words: real token ids and the
    tokenizer's attention mask at each sequence length, not random ids.
    """
    import torch

    from pyinfer.backends.base import parse_device
    from pyinfer.backends.torch.hf import from_transformers
    from pyinfer.suite.wordpiece import BERT_VOCAB_SIZE, bert_tokenizer

    transformers = _require("transformers", "text", "BERT-base")
    BertConfig, BertModel = transformers.BertConfig, transformers.BertModel  # noqa: N806
    config = BertConfig(**{"vocab_size": BERT_VOCAB_SIZE, **dict(bert_config)})
    torch.manual_seed(seed)
    bert: Any = BertModel(config).eval()
    tokenizer = bert_tokenizer(int(config.vocab_size))
    return from_transformers(bert, parse_device(device), name="BERT-Base", tokenizer=tokenizer)


def mobilenet_v2(seed: int, device: str) -> Model:
    """MobileNetV2 (torchvision, random weights from ``seed``) on ``device``, any input size."""
    import torch

    build = _require("torchvision.models", "torch", "MobileNetV2").mobilenet_v2
    torch.manual_seed(seed)
    module = build(weights=None).eval()
    loader = _torch_loader(input_shapes={"x": (None, 3, "height", "width")})
    return loader.from_module(module, device=device, name="MobileNetV2")  # type: ignore[no-any-return]


class Models:
    """What the parent makes for the suite: the models it exports, built once, and the files."""

    def __init__(self, config: SuiteConfig, artifacts: Artifacts) -> None:
        self.config = config
        self.artifacts = artifacts
        self._cache: dict[str, Any] = {}
        versions = collect_environment().versions
        self._versions = ",".join(f"{k}={v}" for k, v in sorted(versions.items()))

    def once(self, name: str, build: Callable[[], Any]) -> Any:
        """The model ``name``, built by ``build`` at its first use."""
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def forget(self) -> None:
        """Drops the models built for exporting (the workers load the files)."""
        self._cache.clear()

    def torch_resnet(self) -> Any:
        """ResNet50 as a torch module (torchvision), in eval mode."""
        return self.once("torch-resnet50", lambda: torch_resnet50(self.config.seed))

    def keras_resnet(self) -> Any:
        """ResNet50 as a Keras model of the configured image size."""

        def build() -> Any:
            from pyinfer.backends.frameworks import import_tensorflow

            import_tensorflow()
            import keras

            keras.utils.set_random_seed(self.config.seed)
            size = self.config.image_size
            return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))

        return self.once("keras-resnet50", build)

    def key(self, what: str) -> str:
        """The work folder's key of an export: what, image size, seed and versions."""
        c = self.config
        return f"{what}|image={c.image_size}|seed={c.seed}|{self._versions}"

    def resnet_example(self) -> Any:
        """A seeded example input of ResNet50, batch 1, for tracing and export."""
        import torch

        size = self.config.image_size
        return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _request(path: Path, device: str, **options: Any) -> LoadRequest:
    """How a worker loads an exported file."""
    return LoadRequest(
        path=str(path.absolute()),
        format=pyinfer.detect_format(path).value,
        device=device,
        name="ResNet50",
        options=options,
    )


def resnet_source(models: Models, fmt: str, device: str) -> ModelSource:
    """Where a worker gets ResNet50 in ``fmt`` on ``device``: a build, or an exported file.

    Exports (or reuses) the file in the parent; the worker loads it.

    Raises:
        Skip: For TFLite off the CPU.
        FrameworkNotInstalledError: If the framework that makes the file is missing.
    """
    from pyinfer import export

    config = models.config
    size = config.image_size
    if fmt == "pytorch":
        return functools.partial(resnet50_eager, config.seed, size, device)
    if fmt == "torchscript":
        path = models.artifacts.get(
            "resnet50.torchscript.pt",
            models.key("resnet50-torchscript"),
            lambda p: export.export_torchscript(models.torch_resnet(), p, models.resnet_example()),
        )
        return _request(path, device, input_shapes={"x": (None, 3, size, size)})
    if fmt == "onnx":
        path = models.artifacts.get(
            "resnet50.onnx",
            models.key("resnet50-onnx"),
            lambda p: export.export_onnx(models.torch_resnet(), p, models.resnet_example()),
        )
        return _request(path, device)
    if fmt == "tensorflow":
        path = models.artifacts.get(
            "resnet50.keras",
            models.key("resnet50-keras"),
            lambda p: export.export_keras(models.keras_resnet(), p, format="keras"),
        )
        return _request(path, device)
    if device != "cpu":
        raise Skip("TFLite runs on the CPU only")
    path = models.artifacts.get(
        "resnet50.tflite",
        models.key("resnet50-tflite"),
        lambda p: export.export_keras(models.keras_resnet(), p, format="tflite"),
    )
    return _request(path, device)
