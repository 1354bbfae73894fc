"""Small torch modules for ``test_bench`` (importable, so a whole pickled module reloads).

Imported only by tests that have torch.
"""

from __future__ import annotations

import torch


class TwoInputs(torch.nn.Module):  # type: ignore[misc]
    """Two inputs, ``a`` (8 features) and ``b`` (3), and two named outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.left = torch.nn.Linear(8, 4)
        self.right = torch.nn.Linear(3, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        left = self.left(a)
        return {"score": left + self.right(b), "label": torch.argmax(left, dim=1)}


class TinyConv(torch.nn.Module):  # type: ignore[misc]
    """A stand-in for the suite's image models: any input size, ten scores, milliseconds a call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.head(pooled)


def tiny_resnet(seed: int) -> torch.nn.Module:
    """Stands in for ``suite.models.torch_resnet50``: a seeded TinyConv in eval mode."""
    torch.manual_seed(seed)
    return TinyConv().eval()


def tiny_mobilenet(seed: int, device: str) -> object:
    """Stands in for ``suite.models.mobilenet_v2`` (a worker imports it by name)."""
    from pyinfer.loading import PyTorchModelLoader

    loader = PyTorchModelLoader(input_shapes={"x": (None, 3, "height", "width")})
    return loader.from_module(tiny_resnet(seed), device=device, name="MobileNetV2")
