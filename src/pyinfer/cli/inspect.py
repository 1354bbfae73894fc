"""``pyinfer info``: load a model and describe it."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfer.cli.common import EXIT_OK, value_text
from pyinfer.cli.model_args import load_from_args
from pyinfer.cli.parser import add_command, add_model_options

if TYPE_CHECKING:
    from pyinfer.backends.base import TensorSpec

__all__ = ["add_parser", "cmd_info"]


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _size_text(nbytes: float) -> str:
    """``512 B``, ``3.4 kB``, ``97.5 MB``, ``1.2 GB`` (powers of 1024)."""
    for unit, scale in (("GB", 1024.0**3), ("MB", 1024.0**2), ("kB", 1024.0)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _external_text(files: list[Path]) -> str:
    if not files:
        return ""
    total = _size_text(sum(p.stat().st_size for p in files))
    names = ", ".join(p.name for p in files[:3]) + (", ..." if len(files) > 3 else "")
    return f" + {total} of external data in {names}"


def cmd_info(args: argparse.Namespace) -> int:
    """Loads a model and prints what it is: format, inputs, outputs, parameters, options."""
    model = load_from_args(args)
    described = model.describe()
    path = Path(args.model)
    described["file"] = str(path)
    described["file_bytes"] = _size_of(path)
    external: list[Path] = []
    if model.format.value == "onnx":
        from pyinfer.backends.onnx import external_data_files

        external = external_data_files(path)
        described["external_data_files"] = [str(p) for p in external]
        described["external_data_bytes"] = sum(p.stat().st_size for p in external)
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
        return EXIT_OK
    import_s = model.import_time_s
    load = f"{model.load_time_s:.3f} s" if math.isfinite(model.load_time_s) else "n/a"
    if math.isfinite(import_s) and import_s > 0:
        load += f" (framework import {import_s:.2f} s apart)"
    lines = [
        f"Model:       {model.name}",
        f"File:        {path} ({_size_text(described['file_bytes'])}{_external_text(external)})",
        f"Format:      {model.format.value}",
        f"Framework:   {model.framework}",
        f"Device:      {model.device}",
        "Inputs:",
        *(f"  {spec}{_batch_note(spec)}" for spec in model.inputs),
        "Outputs:",
        *([f"  {spec}" for spec in model.outputs] or ["  (known once it runs)"]),
        f"Parameters:  {model.parameter_count:,} ({_size_text(model.parameter_bytes)})"
        + ("  (no stored weights: made at run time, or none)" if not model.parameter_bytes else ""),
        f"Load time:   {load}",
        "Options:",
    ]
    options = described["options"]
    width = max((len(k) for k in options), default=0)
    lines += [f"  {k:<{width}}  {value_text(v)}" for k, v in options.items()] or ["  (none)"]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _batch_note(spec: TensorSpec) -> str:
    """Where an input's batch is, when not on its first axis."""
    if spec.shape is None or spec.batch_axis == 0:
        return ""
    if spec.batch_axis is None:
        return "  (no batch axis: a batch shares it)"
    return f"  (batch on axis {spec.batch_axis})"


def add_parser(commands: Any) -> None:
    """Adds ``info`` to the ``pyinfer`` subcommands."""
    info = add_command(
        commands,
        "info",
        "load a model and describe it",
        "Loads a model of any supported format and prints its format, framework, device, inputs "
        "and outputs (dynamic dimensions by name), parameters, load time, the options applied, "
        "and the file with its size.",
        [
            "pyinfer info resnet50.onnx",
            "pyinfer info model.pt --option num_threads=2 --json",
            "pyinfer info vad.pt --input-shape x:bx512 --input-shape state:2xbx128 "
            "--input-shape sr:",
        ],
        handler=cmd_info,
    )
    info.add_argument("model", help="the model file (or SavedModel folder)")
    add_model_options(info)
    info.add_argument(
        "--input-shape",
        dest="input_shape",
        metavar="SPEC",
        action="append",
        default=[],
        help="for a model that declares no input shape (TorchScript): an input's whole shape "
        "(x:bx512, state:2xbx128, sr: for a 0-d input), loaded as its input_shapes; repeatable",
    )
    info.add_argument("--json", action="store_true", help="print the description as JSON")
