"""Where a model runs: :class:`Device` and :func:`parse_device`."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfer.errors import InvalidArgumentError

__all__ = ["Device", "parse_device"]


@dataclass(frozen=True)
class Device:
    """Where a model runs: ``cpu`` or ``cuda`` with a device index.

    Attributes:
        type: ``"cpu"`` or ``"cuda"``.
        index: The CUDA device ordinal (0 for the CPU).
    """

    type: str
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        """Whether this is a CUDA device."""
        return self.type == "cuda"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else "cpu"


def parse_device(device: str | Device | None) -> Device:
    """Parses a device name as users write it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"gpu"``, ``"gpu:1"``, a :class:`Device`,
            or ``None`` for the CPU. Case and surrounding spaces are ignored.

    Returns:
        The device.

    Raises:
        InvalidArgumentError: If the name is none of these.
    """
    if device is None:
        return Device("cpu")
    if isinstance(device, Device):
        return device
    text = str(device).strip().lower()
    kind, _, index_text = text.partition(":")
    if kind == "cpu" and not index_text:
        return Device("cpu")
    if kind in {"cuda", "gpu"}:
        if not index_text:
            return Device("cuda", 0)
        if index_text.isdigit():
            return Device("cuda", int(index_text))
    raise InvalidArgumentError(
        f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N' (N the GPU's index)"
    )
