"""CUDA support: driver loading, CudaEventTimer, PinnedBuffer and PinnedRing.

Tests without the ``gpu`` marker run everywhere: on a machine without CUDA they check the typed
errors and the pageable fallback; with CUDA the same buffer tests run on pinned memory. Tests
marked ``gpu`` need an NVIDIA GPU and torch with CUDA and skip cleanly otherwise
(``pytest -m gpu`` selects them).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pyinfer
from pyinfer import (
    BufferInUseError,
    CudaEventTimer,
    CudaUnavailableError,
    InvalidArgumentError,
    PinnedBuffer,
    PinnedRing,
    cuda_available,
    cuda_device_count,
    cuda_device_name,
    cuda_device_total_memory,
    cuda_driver_version,
    cuda_mem_get_info,
    cuda_unavailable_reason,
)

HAVE_CUDA = cuda_available()
no_cuda = pytest.mark.skipif(HAVE_CUDA, reason="CUDA is available on this machine")
requires_cuda = pytest.mark.skipif(
    not HAVE_CUDA, reason=f"CUDA is unavailable: {cuda_unavailable_reason()}"
)


def run_python(code: str) -> str:
    """Runs `code` in a fresh interpreter that imports this pyinfer; returns its stdout."""
    package_parent = str(Path(pyinfer.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---- import stays light -----------------------------------------------------------------------


def test_import_does_not_load_libcuda_or_numpy() -> None:
    out = run_python(
        "import sys, pyinfer\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('libcuda' in maps, 'numpy' in sys.modules)\n"
    )
    assert out.split() == ["False", "False"]


# ---- without CUDA -----------------------------------------------------------------------------


@no_cuda
def test_cuda_unavailable_is_reported_without_crashing() -> None:
    assert cuda_available() is False
    assert cuda_device_count() == 0
    reason = cuda_unavailable_reason()
    assert reason
    assert "libcuda" in reason or "cuInit" in reason or "device" in reason


@no_cuda
@pytest.mark.parametrize(
    "make",
    [
        CudaEventTimer,
        lambda: CudaEventTimer(stream=0, device=0, capacity=4),
        lambda: PinnedBuffer(4096),
        lambda: PinnedRing(4096, 2),
        lambda: cuda_device_name(0),
        lambda: cuda_device_total_memory(0),
        lambda: cuda_mem_get_info(0),
    ],
    ids=["timer", "timer-args", "buffer", "ring", "name", "total", "mem-info"],
)
def test_cuda_objects_raise_typed_error(make: Any) -> None:
    with pytest.raises(CudaUnavailableError) as info:
        make()
    assert isinstance(info.value, RuntimeError)
    assert cuda_unavailable_reason() in str(info.value)


@no_cuda
def test_pinned_memory_error_suggests_fallback() -> None:
    with pytest.raises(CudaUnavailableError, match="allow_pageable=True"):
        PinnedBuffer(16)


@no_cuda
def test_driver_version_without_cuda() -> None:
    if cuda_unavailable_reason().startswith("libcuda.so.1 not found"):
        with pytest.raises(CudaUnavailableError, match="libcuda"):
            cuda_driver_version()
    else:  # a driver without a usable device still reports its version
        assert cuda_driver_version() > 0


# ---- argument checks (before CUDA is needed) --------------------------------------------------


@pytest.mark.parametrize("stream", [-1, 2**64, "0", 1.5, None])
def test_timer_rejects_bad_stream(stream: object) -> None:
    with pytest.raises(InvalidArgumentError, match="stream"):
        CudaEventTimer(stream=stream)  # type: ignore[arg-type]


def test_timer_rejects_zero_capacity() -> None:
    with pytest.raises(InvalidArgumentError, match="capacity"):
        CudaEventTimer(capacity=0)


@pytest.mark.parametrize("nbytes", [0, -1])
def test_buffer_rejects_bad_size(nbytes: int) -> None:
    with pytest.raises(InvalidArgumentError, match="nbytes"):
        PinnedBuffer(nbytes, allow_pageable=True)
    with pytest.raises(InvalidArgumentError, match="nbytes"):
        PinnedBuffer(nbytes)


def test_ring_rejects_bad_sizes() -> None:
    with pytest.raises(InvalidArgumentError, match="slot_nbytes"):
        PinnedRing(0, 2, allow_pageable=True)
    with pytest.raises(InvalidArgumentError, match="slots"):
        PinnedRing(64, 0, allow_pageable=True)


# ---- PinnedBuffer (pageable fallback without CUDA, pinned with it) ----------------------------


def test_buffer_properties() -> None:
    buf = PinnedBuffer(10_000, allow_pageable=True)
    assert buf.nbytes == 10_000
    assert buf.pinned is HAVE_CUDA
    assert buf.device == 0
    assert buf.closed is False
    assert buf.address % 4096 == 0
    assert "PinnedBuffer(nbytes=10000" in repr(buf)


def test_buffer_is_zero_copy_through_numpy() -> None:
    buf = PinnedBuffer(4 * 256, allow_pageable=True)
    floats = np.frombuffer(buf, dtype=np.float32)
    assert floats.shape == (256,)
    assert floats.flags.writeable
    floats[:] = np.arange(256, dtype=np.float32)
    view = memoryview(buf)
    assert view.format == "B"
    assert view.ndim == 1
    assert view.shape == (1024,)
    assert view.strides == (1,)
    assert view.readonly is False
    assert np.array_equal(np.frombuffer(view.tobytes(), dtype=np.float32), np.arange(256))
    view[0:4] = np.float32(42.0).tobytes()
    assert floats[0] == 42.0
    assert np.shares_memory(floats, np.asarray(view))
    assert floats.ctypes.data == buf.address
    view.release()


def test_buffer_numpy_helper() -> None:
    buf = PinnedBuffer(4 * 64 + 3, allow_pageable=True)
    whole = buf.numpy()
    assert whole.dtype == np.uint8
    assert whole.shape == (259,)
    grid = buf.numpy(np.float32, (8, 8))
    assert grid.shape == (8, 8)
    assert grid.flags.writeable
    grid[:] = 1.5
    assert np.shares_memory(grid, whole)
    assert np.all(np.frombuffer(bytes(memoryview(buf)[:256]), dtype=np.float32) == 1.5)
    assert buf.numpy("int16", 3).shape == (3,)
    with pytest.raises(ValueError, match="buffer"):
        buf.numpy(np.float32)  # 259 bytes is not a multiple of 4
    with pytest.raises(ValueError, match="buffer"):
        buf.numpy(np.float32, (100,))  # larger than the buffer


def test_close_refuses_while_views_are_alive() -> None:
    buf = PinnedBuffer(4096, allow_pageable=True)
    array = np.frombuffer(buf, dtype=np.uint8)
    view = memoryview(buf)
    with pytest.raises(BufferInUseError, match="view") as info:
        buf.close()
    assert isinstance(info.value, BufferError)
    assert buf.closed is False
    array[0] = 7  # still usable
    del array
    with pytest.raises(BufferInUseError):
        buf.close()
    view.release()
    buf.close()
    assert buf.closed is True
    buf.close()  # twice is fine


def test_closed_buffer_raises_on_use() -> None:
    buf = PinnedBuffer(64, allow_pageable=True)
    buf.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        memoryview(buf)
    with pytest.raises(InvalidArgumentError, match="closed"):
        np.frombuffer(buf, dtype=np.uint8)
    with pytest.raises(InvalidArgumentError, match="closed"):
        _ = buf.address
    with pytest.raises(InvalidArgumentError, match="closed"):
        buf.numpy()
    assert buf.nbytes == 64
    assert "closed=True" in repr(buf)


def test_buffer_context_manager() -> None:
    with PinnedBuffer(128, allow_pageable=True) as buf:
        buf.numpy()[:] = 1
    assert buf.closed


def test_buffer_survives_until_the_last_view() -> None:
    buf = PinnedBuffer(1 << 16, allow_pageable=True)
    array = buf.numpy(np.int32)
    array[:] = 5
    del buf
    gc.collect()
    assert int(array.sum()) == 5 * (1 << 14)  # the view keeps the memory alive


# ---- PinnedRing -------------------------------------------------------------------------------


def test_ring_slots_share_one_allocation() -> None:
    ring = PinnedRing(1000, 3, allow_pageable=True)
    assert len(ring) == ring.slots == 3
    assert ring.slot_nbytes == 1000
    assert ring.slot_stride == 4096
    assert ring.pinned is HAVE_CUDA
    slots = [ring.slot(i) for i in range(3)]
    assert ring.slot(1) is slots[1]
    for i, slot in enumerate(slots):
        assert slot.nbytes == 1000
        assert slot.address % 256 == 0
        assert slot.address == slots[0].address + i * ring.slot_stride
        slot.numpy()[:] = i
    for i, slot in enumerate(slots):
        assert np.all(slot.numpy() == i)


def test_ring_acquire_is_round_robin() -> None:
    ring = PinnedRing(64, 2, allow_pageable=True)
    order = []
    for _ in range(5):
        index = ring.acquire()
        order.append(index)
        ring.slot(index).numpy()[:] = index
        if not ring.pinned:
            ring.release(index, 0)  # no-op without CUDA
    assert order == [0, 1, 0, 1, 0]


def test_ring_bad_index() -> None:
    ring = PinnedRing(64, 2, allow_pageable=True)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        ring.slot(2)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        ring.release(5)
    with pytest.raises(InvalidArgumentError):
        ring.slot(-1)


def test_ring_close() -> None:
    ring = PinnedRing(64, 2, allow_pageable=True)
    slot = ring.slot(1)
    view = slot.numpy()
    with pytest.raises(BufferInUseError, match="slot 1"):
        ring.close()
    assert not ring.closed
    assert not slot.closed
    del view
    ring.close()
    assert ring.closed
    assert slot.closed
    ring.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        ring.slot(0)
    with pytest.raises(InvalidArgumentError, match="closed"):
        ring.acquire()
    with pytest.raises(InvalidArgumentError, match="closed"):
        slot.numpy()


def test_ring_slot_outlives_ring() -> None:
    ring = PinnedRing(64, 2, allow_pageable=True)
    slot = ring.slot(0)
    slot.numpy()[:] = 9
    del ring
    gc.collect()
    assert np.all(slot.numpy() == 9)
    slot.close()


# ---- with a GPU (pytest -m gpu) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_cuda() -> Any:
    if not HAVE_CUDA:
        pytest.skip(f"CUDA is unavailable: {cuda_unavailable_reason()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("torch has no CUDA")
        torch.cuda.init()
    return torch


@pytest.fixture(scope="module")
def cycles_per_ms(torch_cuda: Any) -> float:
    """GPU clock cycles per millisecond of torch.cuda._sleep, measured with torch's events."""
    torch = torch_cuda
    torch.cuda._sleep(1000)  # loads the kernel
    torch.cuda.synchronize()
    cycles = 20_000_000
    rates = []
    for _ in range(3):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        rates.append(cycles / start.elapsed_time(end))
    return float(np.median(rates))


@pytest.mark.gpu
def test_lazy_driver_loading_on_gpu_machine() -> None:
    if not HAVE_CUDA:
        pytest.skip("CUDA is unavailable")
    out = run_python(
        "import pyinfer\n"
        "before = 'libcuda' in open('/proc/self/maps').read()\n"
        "ok = pyinfer.cuda_available()\n"
        "after = 'libcuda' in open('/proc/self/maps').read()\n"
        "print(before, ok, after)\n"
    )
    assert out.split() == ["False", "True", "True"]


@pytest.mark.gpu
def test_driver_queries_match_torch(torch_cuda: Any) -> None:
    torch = torch_cuda
    assert cuda_available() is True
    assert cuda_unavailable_reason() == ""
    assert cuda_driver_version() >= 11000
    assert cuda_device_count() == torch.cuda.device_count() >= 1
    name = cuda_device_name(0)
    assert name
    assert torch.cuda.get_device_name(0) in name or name in torch.cuda.get_device_name(0)
    props = torch.cuda.get_device_properties(0)
    assert cuda_device_total_memory(0) == props.total_memory
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        cuda_device_name(cuda_device_count())


@pytest.mark.gpu
def test_mem_get_info_matches_torch(torch_cuda: Any) -> None:
    torch = torch_cuda
    torch.cuda.empty_cache()
    free, total = cuda_mem_get_info(0)
    _, torch_total = torch.cuda.mem_get_info(0)
    assert total == torch_total
    assert 0 < free <= total
    assert abs(total - torch.cuda.get_device_properties(0).total_memory) <= 0.01 * total
    # Device-wide: an allocation by torch shows up as used memory.
    block = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    free_after, _ = cuda_mem_get_info(0)
    assert free - free_after >= (1 << 30) * 0.9
    del block
    torch.cuda.empty_cache()


@pytest.mark.gpu
def test_event_timer_agrees_with_torch_events(torch_cuda: Any, cycles_per_ms: float) -> None:
    torch = torch_cuda
    stream = torch.cuda.current_stream()
    timer = CudaEventTimer(stream.cuda_stream)
    assert timer.stream == stream.cuda_stream
    cycles = int(5 * cycles_per_ms)
    pairs = []
    for _ in range(10):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        timer.start()
        torch.cuda._sleep(cycles)
        timer.stop()
        end.record(stream)
        pairs.append((start, end))
    assert timer.pending == 10
    ours = timer.elapsed_ms()
    assert timer.pending == 0
    torch.cuda.synchronize()
    theirs = np.array([start.elapsed_time(end) for start, end in pairs])
    assert ours.shape == (10,)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, rtol=0.03, atol=0.05)
    assert 2.5 < float(np.median(ours)) < 10.0  # the workload is about 5 ms


@pytest.mark.gpu
def test_hundred_pairs_need_one_wait(torch_cuda: Any, cycles_per_ms: float) -> None:
    torch = torch_cuda
    stream = torch.cuda.current_stream()
    timer = CudaEventTimer(stream.cuda_stream, capacity=8)  # the pool grows to 128 pairs
    short = int(0.2 * cycles_per_ms)
    torch.cuda._sleep(short)
    torch.cuda.synchronize()
    torch.cuda._sleep(int(300 * cycles_per_ms))  # the GPU stays busy while we record
    began = time.perf_counter()
    for _ in range(100):
        timer.start()
        torch.cuda._sleep(short)
        timer.stop()
    host_ms = (time.perf_counter() - began) * 1e3
    assert not stream.query(), "the GPU finished early: recording must have waited"
    assert host_ms < 150, f"recording 100 pairs took {host_ms:.1f} ms of host time"
    assert timer.pending == 100
    assert timer.capacity >= 100
    ms = timer.elapsed_ms()
    assert stream.query()
    assert ms.shape == (100,)
    assert np.all(ms > 0)
    assert 0.05 < float(np.median(ms)) < 1.0  # each about 0.2 ms
    assert timer.elapsed_ms().shape == (0,)


@pytest.mark.gpu
def test_timer_misuse(torch_cuda: Any) -> None:
    timer = CudaEventTimer(torch_cuda.cuda.current_stream().cuda_stream)
    with pytest.raises(InvalidArgumentError, match="without a matching start"):
        timer.stop()
    timer.start()
    with pytest.raises(InvalidArgumentError, match="twice"):
        timer.start()
    with pytest.raises(InvalidArgumentError, match="no stop"):
        timer.elapsed_ms()
    assert timer.started
    timer.reset()
    assert not timer.started
    assert timer.pending == 0
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        CudaEventTimer(0, device=cuda_device_count())


@pytest.mark.gpu
def test_time_calls(torch_cuda: Any, cycles_per_ms: float) -> None:
    torch = torch_cuda
    timer = CudaEventTimer(torch.cuda.current_stream().cuda_stream)
    cycles = int(1 * cycles_per_ms)
    gpu_ms, host = timer.time_calls(lambda: torch.cuda._sleep(cycles), 20, warmup=2)
    assert gpu_ms.shape == (20,)
    assert host.count == 20
    assert np.all(gpu_ms > 0.5)
    assert np.all(gpu_ms < 5.0)
    # Launching is asynchronous: the host spends far less than the GPU on each call.
    assert float(np.median(host.samples())) / 1e6 < float(np.median(gpu_ms))
    assert timer.pending == 0

    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError) as info:
        timer.time_calls(fail, 5)
    assert info.value.partial_recorder.count == 0  # type: ignore[attr-defined]
    assert timer.pending == 0
    with pytest.raises(InvalidArgumentError, match="iterations"):
        timer.time_calls(lambda: None, 0)


@pytest.mark.gpu
def test_timer_on_a_side_stream(torch_cuda: Any, cycles_per_ms: float) -> None:
    torch = torch_cuda
    side = torch.cuda.Stream()
    assert side.cuda_stream != 0
    timer = CudaEventTimer(side.cuda_stream)
    by_object = CudaEventTimer(side)  # a torch.cuda.Stream is accepted too
    assert by_object.stream == side.cuda_stream
    cycles = int(2 * cycles_per_ms)
    with torch.cuda.stream(side):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(side)
        timer.start()
        torch.cuda._sleep(cycles)
        timer.stop()
        end.record(side)
    ours = timer.elapsed_ms()
    end.synchronize()
    np.testing.assert_allclose(ours, [start.elapsed_time(end)], rtol=0.03, atol=0.05)


@pytest.mark.gpu
def test_pinned_buffer_is_page_locked(torch_cuda: Any) -> None:
    torch = torch_cuda
    n = 1 << 20
    buf = PinnedBuffer(4 * n)
    assert buf.pinned
    assert PinnedBuffer(64, allow_pageable=True).pinned  # the fallback is not used with CUDA
    host = torch.from_numpy(np.frombuffer(buf, dtype=np.float32))
    assert host.is_pinned()
    expected = torch.arange(n, dtype=torch.float32)
    host.copy_(expected)
    device = torch.empty(n, dtype=torch.float32, device="cuda")
    device.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(device.cpu(), expected)
    with pytest.raises(BufferInUseError):
        buf.close()
    del host
    gc.collect()
    buf.close()
    assert buf.closed


@pytest.mark.gpu
def test_ring_double_buffered_upload(torch_cuda: Any, cycles_per_ms: float) -> None:
    torch = torch_cuda
    n = 1 << 18
    batches = 8
    ring = PinnedRing(4 * n, slots=2)
    assert ring.pinned
    side = torch.cuda.Stream()
    out = torch.empty((batches, n), dtype=torch.float32, device="cuda")
    torch.cuda.synchronize()
    delay = int(2 * cycles_per_ms)
    for k in range(batches):
        index = ring.acquire()  # waits until this slot's previous copy has finished
        array = ring.slot(index).numpy(np.float32)
        array[:] = k
        source = torch.from_numpy(array)
        with torch.cuda.stream(side):
            # Each copy starts late: without acquire()'s wait, the host would overwrite the
            # slot before the GPU read it.
            torch.cuda._sleep(delay)
            out[k].copy_(source, non_blocking=True)
        ring.release(index, side.cuda_stream)
        del source, array
    side.synchronize()
    expected = torch.arange(batches, dtype=torch.float32, device="cuda")[:, None].expand(batches, n)
    assert torch.equal(out, expected)
    gc.collect()
    ring.close()
    assert ring.closed
