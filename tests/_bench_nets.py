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
