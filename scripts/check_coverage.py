"""The per-module coverage gate: src/pyinfer at least 85% in total and every module at least 70%.

Reads the JSON report of coverage.py (``python -m coverage json -o coverage.json`` after the
README's test command; ``.ci/run`` does this) and prints each module of the package with its
coverage (statements and branches, as coverage.py counts them), lowest first, marking those
below the threshold. Exits 1 if any module is below ``--module-min`` or the package's total
below ``--total-min``, 2 if the report is unreadable or holds no module of the package.
Usage: python scripts/check_coverage.py coverage.json [--module-min 70] [--total-min 85]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

PACKAGE = "pyinfer"
MODULE_MIN = 70.0
TOTAL_MIN = 85.0


@dataclass(frozen=True)
class ModuleCoverage:
    name: str
    covered: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.covered / self.total


def module_name(path: str) -> str | None:
    """`pyinfer.backends._torch` for `.../site-packages/pyinfer/backends/_torch.py`, else None."""
    parts = PurePath(path.replace("\\", "/")).parts
    if PACKAGE not in parts[:-1] or not parts[-1].endswith(".py"):
        return None
    start = len(parts) - 1 - parts[::-1].index(PACKAGE)
    dotted = [*parts[start:-1], parts[-1].removesuffix(".py")]
    if dotted[-1] == "__init__":
        dotted.pop()
    return ".".join(dotted)


def modules(report: dict[str, Any]) -> list[ModuleCoverage]:
    """Each module of the package in a coverage.py JSON report, lowest coverage first."""
    found: dict[str, ModuleCoverage] = {}
    for path, data in report["files"].items():
        name = module_name(path)
        if name is None:
            continue
        summary = data["summary"]
        covered = int(summary["covered_lines"]) + int(summary.get("covered_branches", 0))
        total = int(summary["num_statements"]) + int(summary.get("num_branches", 0))
        if name in found:
            raise ValueError(f"module {name} appears twice in the report ({path})")
        found[name] = ModuleCoverage(name, covered, total)
    return sorted(found.values(), key=lambda m: (m.percent, m.name))


def check(report: dict[str, Any], module_min: float, total_min: float) -> tuple[list[str], bool]:
    """The lines to print and whether the gate passes."""
    found = modules(report)
    if not found:
        raise ValueError(f"no module of {PACKAGE} in the report")
    total = ModuleCoverage(PACKAGE, sum(m.covered for m in found), sum(m.total for m in found))
    lines = []
    ok = True
    for m in found:
        low = m.percent < module_min
        ok = ok and not low
        mark = f"  BELOW {module_min:g}%" if low else ""
        lines.append(f"{m.percent:6.2f}%  {m.covered:5d}/{m.total:<5d} {m.name}{mark}")
    low_total = total.percent < total_min
    ok = ok and not low_total
    mark = f"  BELOW {total_min:g}%" if low_total else ""
    lines.append(f"{total.percent:6.2f}%  {total.covered:5d}/{total.total:<5d} total{mark}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="coverage.py JSON report (python -m coverage json)")
    parser.add_argument("--module-min", type=float, default=MODULE_MIN)
    parser.add_argument("--total-min", type=float, default=TOTAL_MIN)
    args = parser.parse_args(argv)
    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        lines, ok = check(report, args.module_min, args.total_min)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"check_coverage: {args.report}: {error!r}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if not ok:
        print(
            f"coverage gate failed: every module of {PACKAGE} needs {args.module_min:g}%, "
            f"the total {args.total_min:g}%",
            file=sys.stderr,
        )
        return 1
    print(
        f"coverage gate passed: every module >= {args.module_min:g}%, total >= {args.total_min:g}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
