"""GPU timing sanity table: CUDA events (pyinfer) vs host clock vs torch events, and H2D bandwidth.

Usage: ``python3 benchmarks/gpu_timing.py``. Needs an NVIDIA GPU and torch with CUDA; exits with
status 2 and "no CUDA device: ..." without them.

Part 1 times a known-length GPU workload (``torch.cuda._sleep`` calibrated to about 1 ms and
5 ms) three ways: pyinfer's CudaEventTimer (event pairs, one synchronisation at the end), the
host clock (pyinfer ``now_ns`` around the launch plus ``torch.cuda.synchronize()``), and
``torch.cuda.Event`` pairs. The event columns should agree within microseconds; the host column
adds launch and synchronisation overhead.

Part 2 compares host-to-device copy bandwidth from pyinfer's PinnedBuffer (page-locked) and
from ordinary pageable memory for 64 MiB and 256 MiB copies: median of several copies, each
synchronised, timed with CUDA events.
"""

from __future__ import annotations

import statistics
import sys
import warnings
from typing import Any

REPEATS = 20
COPY_REPEATS = 10


def fail_without_cuda() -> Any:
    import pyinfer

    if not pyinfer.cuda_available():
        print(f"no CUDA device: {pyinfer.cuda_unavailable_reason()}", file=sys.stderr)
        sys.exit(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
    except ImportError:
        print("no CUDA device usable through torch: torch is not installed", file=sys.stderr)
        sys.exit(2)
    if not torch.cuda.is_available():
        print("no CUDA device: torch.cuda.is_available() is False", file=sys.stderr)
        sys.exit(2)
    return torch


def calibrate(torch: Any) -> float:
    """Cycles of torch.cuda._sleep per millisecond, measured with torch events."""
    torch.cuda._sleep(1000)
    torch.cuda.synchronize()
    cycles = 20_000_000
    rates = []
    for _ in range(5):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        rates.append(cycles / start.elapsed_time(end))
    return statistics.median(rates)


def time_sleep(torch: Any, cycles: int) -> tuple[float, float, float]:
    """Median ms of one sleep: (pyinfer CUDA events, host clock, torch events)."""
    import pyinfer

    stream = torch.cuda.current_stream()
    timer = pyinfer.CudaEventTimer(stream.cuda_stream)
    for _ in range(REPEATS):
        timer.start()
        torch.cuda._sleep(cycles)
        timer.stop()
    events_ms = statistics.median(timer.elapsed_ms().tolist())

    host_ms = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        began = pyinfer.now_ns()
        torch.cuda._sleep(cycles)
        torch.cuda.synchronize()
        host_ms.append((pyinfer.now_ns() - began) / 1e6)

    pairs = []
    for _ in range(REPEATS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        torch.cuda._sleep(cycles)
        end.record(stream)
        pairs.append((start, end))
    torch.cuda.synchronize()
    torch_ms = statistics.median(start.elapsed_time(end) for start, end in pairs)
    return events_ms, statistics.median(host_ms), torch_ms


def copy_gbps(torch: Any, source: Any, destination: Any) -> float:
    """Median GB/s of host-to-device copies of `source`, each synchronised."""
    import pyinfer

    stream = torch.cuda.current_stream()
    timer = pyinfer.CudaEventTimer(stream.cuda_stream)
    destination.copy_(source, non_blocking=True)  # warm-up
    torch.cuda.synchronize()
    for _ in range(COPY_REPEATS):
        timer.start()
        destination.copy_(source, non_blocking=True)
        timer.stop()
        torch.cuda.synchronize()
    ms = statistics.median(timer.elapsed_ms().tolist())
    return source.numel() * source.element_size() / 1e9 / (ms / 1e3)


def main() -> int:
    torch = fail_without_cuda()
    import numpy as np

    import pyinfer

    print(
        f"GPU: {pyinfer.cuda_device_name(0)}, driver CUDA {pyinfer.cuda_driver_version()}, "
        f"torch {torch.__version__} (CUDA {torch.version.cuda})"
    )
    rate = calibrate(torch)
    print(f"torch.cuda._sleep: {rate / 1e3:.0f} kcycles per ms")
    print()
    print(f"{'workload':<12} {'pyinfer events':>15} {'host+sync':>12} {'torch events':>13}")
    for target_ms in (1.0, 5.0):
        events_ms, host_ms, torch_ms = time_sleep(torch, int(target_ms * rate))
        print(
            f"sleep {target_ms:g} ms{'':<3} {events_ms:>12.3f} ms {host_ms:>9.3f} ms "
            f"{torch_ms:>10.3f} ms"
        )
    print()
    print(f"{'H2D copy':<12} {'pinned GB/s':>12} {'pageable GB/s':>14}")
    for mib in (64, 256):
        nbytes = mib << 20
        device = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        buffer = pyinfer.PinnedBuffer(nbytes)
        pinned = torch.from_numpy(buffer.numpy(np.uint8))
        pinned.fill_(1)
        pageable = torch.ones(nbytes, dtype=torch.uint8)
        pinned_gbps = copy_gbps(torch, pinned, device)
        pageable_gbps = copy_gbps(torch, pageable, device)
        print(f"{mib:>4} MiB{'':<4} {pinned_gbps:>12.1f} {pageable_gbps:>14.1f}")
        del pinned, pageable, device
        buffer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
