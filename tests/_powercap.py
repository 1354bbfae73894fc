"""A fake Linux powercap tree for the energy readers' tests."""

from __future__ import annotations

from pathlib import Path


def rapl_zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = 10**9) -> Path:
    """A RAPL zone folder ``root/name`` with its name, counter and wrap-around range."""
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{label}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone
