"""Keras call modes side by side: ``model.predict`` vs a direct call vs a ``tf.function``.

Run: python benchmarks/bench_tf_defaults.py [--rounds N] [--calls N] [--batch N]
Builds ``keras.applications.ResNet50(weights=None)`` (random weights, nothing downloaded), runs
batch 1 through the three call modes pyinfer could use for a Keras model, interleaved round by
round so machine noise hits all three alike, and prints the median ms per call of each mode,
its ratio to the direct call, and the largest difference of its outputs from the direct call's.
The mode with the best median (that is numerically identical) is the loader's ``call_mode``
default.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pyinfer.backends.frameworks import import_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="calls per mode per round")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    tf = import_tensorflow()
    import keras

    model = keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(0).standard_normal((args.batch, 224, 224, 3)).astype(np.float32)
    xt = tf.constant(x)
    graph_call = tf.function(lambda t: model(t, training=False), reduce_retracing=True)

    modes: dict[str, Callable[[], Any]] = {
        "predict": lambda: model.predict(x, verbose=0),
        "direct": lambda: model(xt, training=False).numpy(),
        "tf.function": lambda: graph_call(xt).numpy(),
    }
    reference = np.asarray(modes["direct"]())
    max_diff = {}
    for name, call in modes.items():  # warm-up: tracing, graph building, first allocations
        for _ in range(3):
            out = np.asarray(call())
        max_diff[name] = float(np.max(np.abs(out - reference)))

    per_round: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, call in modes.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            per_round[name].append((time.perf_counter() - start) / args.calls)

    direct = statistics.median(per_round["direct"])
    print(f"ResNet50(weights=None), batch {args.batch}, {args.rounds} rounds x {args.calls} calls")
    print(f"{'mode':<13}{'median ms':>10}{'min ms':>9}{'vs direct':>11}{'max |diff|':>12}")
    for name, values in per_round.items():
        median = statistics.median(values)
        print(
            f"{name:<13}{median * 1e3:>10.1f}{min(values) * 1e3:>9.1f}"
            f"{median / direct:>10.2f}x{max_diff[name]:>12.2e}"
        )


if __name__ == "__main__":
    main()
