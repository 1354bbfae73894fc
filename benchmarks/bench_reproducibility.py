"""Numbers that hold from run to run: false alarms, detection, calibration and wall time.

Run: python benchmarks/bench_reproducibility.py [EXPERIMENT ...] [--pairs N] [--runs N]
         [--rounds N] [--work-dir DIR] [--json FILE] [--before SRC]

EXPERIMENT is any of ``aa``, ``ab``, ``calibration``, ``walltime`` (default: all four). Every
measurement is a real ``pyinfer`` command in a fresh process, with default settings unless
said, as a user runs it:

* ``aa`` (false alarms): N pairs (default 20) of ``pyinfer profile mnv2.onnx --no-memory``
  twice, then ``pyinfer compare A B --fail-if-slower 5%``; a pair whose gate fails (exit
  status 4) is a false alarm. The target: at most 1 in 20.
* ``ab`` (detection): N pairs of MobileNetV2 at 224 px against the same network at 256 px
  (31% more pixels: about 30% slower), the same gate; a pair the gate fails is a detection.
  The target: at least 18 in 20. ``ab14`` does the same against width multiplier 1.4 (about
  1.8x slower here: an easy case).
* ``aa-measure``, ``ab-measure``: the same comparisons measured by one command, ``pyinfer
  compare --measure A B --fail-if-slower 5%``, whose runs alternate (A B A B ...) so a change
  of the machine's speed between runs hits both models alike. Same targets as ``aa``/``ab``.
* ``calibration``: N consecutive default profiles (default 10); run i's reported 95% interval
  of the median should hold run i+1's median at least 8 times in 10 (9 checks: 8 of 9).
* ``walltime``: ``pyinfer profile resnet50.onnx`` with the default repetitions and with
  ``--repeat 1`` (one process, the behaviour before repetitions), alternating, R rounds
  (default 3); the ratio of the medians of their wall times. The target: at most 1.5x.
  ``--before SRC`` adds the default profile of a checkout from before repetitions (the code as
  it was, not only its one-process mode) to each round.

The models are torchvision's with random weights (weights=None), exported to ONNX once into
the work folder (default: a temporary one) and reused. The machine is shared and noisy: that is
the condition the experiments are about, so nothing here waits for quiet.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERIMENTS = ("aa", "ab", "ab14", "aa-measure", "ab-measure", "calibration", "walltime")
EXIT_REGRESSION = 4


def build_models(folder: Path) -> dict[str, Path]:
    """MobileNetV2 (224 px, 256 px, width 1.4) and ResNet50 as ONNX files, made once."""
    paths = {
        "mnv2": folder / "mnv2.onnx",
        "mnv2_256": folder / "mnv2_256.onnx",
        "mnv2_14": folder / "mnv2_w14.onnx",
        "resnet50": folder / "resnet50.onnx",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    from pyinfer.backends.frameworks import ensure_triton_safe, import_torch

    ensure_triton_safe()
    torch = import_torch()
    import torchvision

    from pyinfer.export import export_onnx

    torch.manual_seed(0)
    nets = {
        "mnv2": torchvision.models.mobilenet_v2(weights=None),
        "mnv2_14": torchvision.models.mobilenet_v2(weights=None, width_mult=1.4),
        "resnet50": torchvision.models.resnet50(weights=None),
    }
    nets["mnv2_256"] = nets["mnv2"]
    for key, net in nets.items():
        if not paths[key].exists():
            size = 256 if key == "mnv2_256" else 224
            export_onnx(net.eval(), paths[key], torch.randn(1, 3, size, size))
    return paths


def pyinfer(*argv: object, source: Path | None = None) -> tuple[int, float, str]:
    """Runs ``python -m pyinfer ARGV``; its exit status, wall time and stderr.

    ``source``: import pyinfer from this ``src`` folder (another checkout) instead.
    """
    env = None if source is None else dict(os.environ, PYTHONPATH=str(source))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pyinfer", *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3, EXIT_REGRESSION):
        raise RuntimeError(f"pyinfer {' '.join(map(str, argv))} failed: {done.stderr[-2000:]}")
    return done.returncode, wall, done.stderr


def profile(model: Path, out: Path, *extra: object) -> dict[str, Any]:
    """A default profile of ``model`` written to ``out``; the report as JSON."""
    pyinfer("profile", model, "--no-memory", "--json", out, *extra)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def gate(a: Path, b: Path) -> bool:
    """Whether ``compare A B --fail-if-slower 5%`` fails (B slower beyond 5%, confidently)."""
    code, _, _ = pyinfer("compare", a, b, "--fail-if-slower", "5%")
    return code == EXIT_REGRESSION


def pairs(first: Path, second: Path, count: int, folder: Path, label: str) -> dict[str, Any]:
    """``count`` pairs of profiles and the gate's verdict on each."""
    failed, ratios = 0, []
    for i in range(count):
        a = profile(first, folder / f"{label}_{i}_a.json")
        b = profile(second, folder / f"{label}_{i}_b.json")
        slower = gate(folder / f"{label}_{i}_a.json", folder / f"{label}_{i}_b.json")
        failed += slower
        ratio = b["latency"]["stats"]["median_ms"] / a["latency"]["stats"]["median_ms"]
        ratios.append(ratio)
        verdict = "FAILS" if slower else "passes"
        print(f"  {label} pair {i + 1:2d}: median ratio {ratio:.3f}, gate {verdict}")
    return {"pairs": count, "gate_failed": failed, "median_ratios": ratios}


def measured_pairs(
    first: Path, second: Path, count: int, folder: Path, label: str
) -> dict[str, Any]:
    """``count`` runs of ``compare --measure first second --fail-if-slower 5%``."""
    failed, ratios = 0, []
    for i in range(count):
        out = folder / f"{label}_{i}.json"
        code, _, _ = pyinfer(
            "compare", "--measure", first, second, "--fail-if-slower", "5%", "--json", out
        )
        slower = code == EXIT_REGRESSION
        failed += slower
        ratio = float(json.loads(out.read_text())["comparisons"][0]["ratio"])
        ratios.append(ratio)
        verdict = "FAILS" if slower else "passes"
        print(f"  {label} {i + 1:2d}: ratio {ratio:.3f}, gate {verdict}")
    return {"pairs": count, "gate_failed": failed, "median_ratios": ratios}


def calibration(model: Path, count: int, folder: Path) -> dict[str, Any]:
    """``count`` consecutive profiles; how often one's interval holds the next one's median."""
    reports = [profile(model, folder / f"cal_{i}.json") for i in range(count)]
    hits = []
    for now, after in itertools.pairwise(reports):
        reps = now["repetitions"]
        low, high = reps["interval_low_ms"], reps["interval_high_ms"]
        median = after["latency"]["stats"]["median_ms"]
        hits.append(low <= median <= high)
        where = "in" if hits[-1] else "OUT"
        print(f"  interval {low:.3f}-{high:.3f} ms, next median {median:.3f} ms: {where}")
    return {
        "runs": count,
        "checks": len(hits),
        "held": sum(hits),
        "medians_ms": [r["latency"]["stats"]["median_ms"] for r in reports],
    }


def walltime(model: Path, rounds: int, folder: Path, today: Path | None = None) -> dict[str, Any]:
    """Wall time of a default profile against ``--repeat 1`` (and ``today``'s), alternating.

    ``today`` is the ``src`` folder of a checkout from before repetitions (with its core
    built), whose default profile is the one-process behaviour the target is measured against.
    """
    runs: dict[str, list[float]] = {"default": [], "repeat1": []}
    variants: list[tuple[str, tuple[object, ...], Path | None]] = [
        ("default", (), None),
        ("repeat1", ("--repeat", "1"), None),
    ]
    if today is not None:
        runs["today"] = []
        variants.append(("today", (), today))
    names = {"default": "default", "repeat1": "--repeat 1", "today": "before"}
    for r in range(rounds):
        for label, extra, source in variants:
            out = folder / f"wall_{r}.json"
            _, wall, _ = pyinfer("profile", model, "--json", out, *extra, source=source)
            runs[label].append(wall)
            print(f"  round {r + 1}: {names[label]:<10} {wall:6.1f} s")
    medians = {k: statistics.median(v) for k, v in runs.items()}
    result: dict[str, Any] = {"rounds": rounds, **{f"{k}_s": v for k, v in runs.items()}}
    result["ratio"] = medians["default"] / medians["repeat1"]
    if today is not None:
        result["ratio_to_before"] = medians["default"] / medians["today"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*", choices=(*EXPERIMENTS, []), default=[])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--before",
        type=Path,
        help="walltime: also time the default profile of this src folder, a checkout from "
        "before repetitions with its core built (git worktree add ../before <commit>)",
    )
    args = parser.parse_args()
    chosen = args.experiments or list(EXPERIMENTS)
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.work_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        models = build_models(folder)
        results: dict[str, Any] = {}
        if "aa" in chosen:
            print(f"A/A: MobileNetV2 twice, compare --fail-if-slower 5%, {args.pairs} pairs")
            results["aa"] = pairs(models["mnv2"], models["mnv2"], args.pairs, folder, "aa")
        if "ab" in chosen:
            print(f"A/B: MobileNetV2 at 224 then 256 px, the same gate, {args.pairs} pairs")
            results["ab"] = pairs(models["mnv2"], models["mnv2_256"], args.pairs, folder, "ab")
        if "ab14" in chosen:
            print(f"A/B: MobileNetV2 then width 1.4, the same gate, {args.pairs} pairs")
            results["ab14"] = pairs(models["mnv2"], models["mnv2_14"], args.pairs, folder, "ab14")
        for key, other in (("aa-measure", "mnv2"), ("ab-measure", "mnv2_256")):
            if key in chosen:
                print(f"{key}: compare --measure MobileNetV2 {other}, {args.pairs} times")
                results[key] = measured_pairs(
                    models["mnv2"], models[other], args.pairs, folder, key
                )
        if "calibration" in chosen:
            print(f"Calibration: {args.runs} consecutive default profiles of MobileNetV2")
            results["calibration"] = calibration(models["mnv2"], args.runs, folder)
        if "walltime" in chosen:
            print(f"Wall time: ResNet50 default profile against --repeat 1, {args.rounds} rounds")
            results["walltime"] = walltime(models["resnet50"], args.rounds, folder, args.before)
    print()
    for key in ("aa", "aa-measure"):
        if key in results:
            r = results[key]
            print(
                f"false alarms ({key}): {r['gate_failed']} of {r['pairs']} A/A pairs (target: at "
                "most 1 in 20)"
            )
    for key in ("ab", "ab14", "ab-measure"):
        if key in results:
            r = results[key]
            ratio = statistics.median(r["median_ratios"])
            print(
                f"detection ({key}): {r['gate_failed']} of {r['pairs']} A/B pairs (target: at "
                f"least 18 in 20); median slowdown {ratio:.2f}x"
            )
    if "calibration" in results:
        r = results["calibration"]
        print(
            f"calibration: {r['held']} of {r['checks']} next medians inside the interval "
            "(target 8 in 10)"
        )
    if "walltime" in results:
        r = results["walltime"]
        print(
            f"wall time: default {statistics.median(r['default_s']):.1f} s, --repeat 1 "
            f"{statistics.median(r['repeat1_s']):.1f} s: {r['ratio']:.2f}x (target at most 1.5x)"
        )
        if "ratio_to_before" in r:
            print(
                f"wall time against before repetitions: {statistics.median(r['today_s']):.1f} s, "
                f"default {r['ratio_to_before']:.2f}x of it"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
