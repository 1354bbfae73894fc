"""The suite's models, built with seeded random weights (nothing is downloaded) and loaded.

ResNet50 in each of its formats (exported through :mod:`pyinfer.export`, or reused from the work
folder), BERT-base and MobileNetV2 as torch modules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pyinfer
from pyinfer.errors import FrameworkNotInstalledError
from pyinfer.report.environment import collect_environment
from pyinfer.suite.artifacts import Artifacts
from pyinfer.suite.settings import SuiteConfig


class Models:
    """The suite's models, built once with seeded random weights."""

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

    def torch_resnet(self) -> Any:
        """ResNet50 as a torch module (torchvision), in eval mode."""

        def build() -> Any:
            import torch

            resnet50 = _require("torchvision.models", "torch", "ResNet50").resnet50

            torch.manual_seed(self.config.seed)
            return resnet50(weights=None).eval()

        return self.once("torch-resnet50", build)

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
            f"{what} needs {package} ({exc}); pip install 'pyinfer[{extra}]'"
        ) from exc


def _torch_loader(**options: Any) -> Any:
    from pyinfer.loading import PyTorchModelLoader

    return PyTorchModelLoader(**options)


def resnet_model(models: Models, fmt: str, device: str) -> Any:
    """ResNet50 in ``fmt`` on ``device``: built, exported (or reused) and loaded."""
    from pyinfer import export

    size = models.config.image_size
    name = "ResNet50"
    if fmt == "pytorch":
        module = copy.deepcopy(models.torch_resnet())
        shapes = {"x": (None, 3, size, size)}
        return _torch_loader(input_shapes=shapes).from_module(module, device=device, name=name)
    if fmt == "torchscript":
        path = models.artifacts.get(
            "resnet50.torchscript.pt",
            models.key("resnet50-torchscript"),
            lambda p: export.export_torchscript(models.torch_resnet(), p, models.resnet_example()),
        )
        shapes = {"x": (None, 3, size, size)}
        return pyinfer.load_model(path, device=device, name=name, input_shapes=shapes)
    if fmt == "onnx":
        path = models.artifacts.get(
            "resnet50.onnx",
            models.key("resnet50-onnx"),
            lambda p: export.export_onnx(models.torch_resnet(), p, models.resnet_example()),
        )
        return pyinfer.load_model(path, device=device, name=name)
    if fmt == "tensorflow":
        path = models.artifacts.get(
            "resnet50.keras",
            models.key("resnet50-keras"),
            lambda p: export.export_keras(models.keras_resnet(), p, format="keras"),
        )
        return pyinfer.load_model(path, device=device, name=name)
    if device != "cpu":
        raise Skip("TFLite runs on the CPU only")
    path = models.artifacts.get(
        "resnet50.tflite",
        models.key("resnet50-tflite"),
        lambda p: export.export_keras(models.keras_resnet(), p, format="tflite"),
    )
    return pyinfer.load_model(path, device=device, name=name)


class Skip(Exception):  # noqa: N818 - a signal, not an error
    """An entry that cannot run here (a format without that device)."""


def bert_model(models: Models, device: str) -> Any:
    """BERT-base with random weights (``models.config.bert_config``), loaded on ``device``."""

    def build() -> Any:
        import torch

        transformers = _require("transformers", "text", "BERT-base")
        BertConfig, BertModel = transformers.BertConfig, transformers.BertModel  # noqa: N806

        torch.manual_seed(models.config.seed)
        bert: Any = BertModel(BertConfig(**dict(models.config.bert_config)))
        return bert.eval()

    module = copy.deepcopy(models.once("torch-bert", build))
    loader = _torch_loader(
        input_shapes={"input_ids": (None, "sequence")}, input_dtypes={"input_ids": "int64"}
    )
    return loader.from_module(module, device=device, name="BERT-Base")


def mobilenet_model(models: Models, device: str) -> Any:
    """MobileNetV2 (torch, random weights) on ``device``: built once per run, a copy loaded."""

    def build() -> Any:
        import torch

        mobilenet_v2 = _require("torchvision.models", "torch", "MobileNetV2").mobilenet_v2

        torch.manual_seed(models.config.seed)
        return mobilenet_v2(weights=None).eval()

    module = copy.deepcopy(models.once("torch-mobilenetv2", build))
    loader = _torch_loader(input_shapes={"x": (None, 3, "height", "width")})
    return loader.from_module(module, device=device, name="MobileNetV2")
