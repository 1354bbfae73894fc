"""How figures read: milliseconds, megabytes and table cells, the same in every rendering."""

from __future__ import annotations

#: Bytes in a megabyte as the reports count it (MiB, labelled MB as in the standard layout).
MB = 1024.0 * 1024.0


def format_ms(value: float) -> str:
    """A duration in ms with 2 decimals, or 4 below 0.1 ms so small models keep their digits."""
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.4f}"


def format_short(value: float) -> str:
    """A table figure: 1 decimal (``42.5``), 0 from 1000, 3 significant digits below 1."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def format_mb(value: float) -> str:
    """Bytes as megabytes with 1 decimal (``"97.5"``)."""
    return f"{value / MB:.1f}"


def one_line(text: str | None) -> str:
    """``text`` on one line (an exception's message may hold several), for a table cell."""
    return " ".join(str(text).split())


def md_cell(text: str | None) -> str:
    """``text`` as one Markdown table cell: one line, ``|`` escaped."""
    return one_line(text).replace("|", "\\|")


def format_mb_or_na(value: int | None) -> str:
    """Bytes as ``"97.5 MB"``, or ``"n/a"`` when unknown."""
    return "n/a" if value is None else f"{format_mb(value)} MB"


def format_macs(macs: int) -> str:
    """``4.089 G MACs (8.18 GFLOP, FLOPs = 2 x MACs)``: G from 0.1 G, M from 0.1 M, k from 100."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= scale / 10:
            return (
                f"{macs / scale:.3f} {unit} MACs ({2 * macs / scale:.2f} {unit}FLOP, "
                "FLOPs = 2 x MACs)"
            )
    return f"{macs} MACs ({2 * macs} FLOP, FLOPs = 2 x MACs)"
