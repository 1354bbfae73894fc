"""The CUDA code paths against a fake driver (tests/fake_libcuda.c), on any Linux machine.

The fake libcuda.so.1 is built with the system C compiler and found through LD_LIBRARY_PATH by
a fresh interpreter, which checks what a real GPU cannot show: one synchronisation per
elapsed_ms(), the caller's current context left alone, every event and allocation freed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyinfer

HERE = Path(__file__).resolve().parent

CHECKS = r"""
import ctypes, gc, time
import numpy as np
import pyinfer
from pyinfer import (BufferInUseError, CudaEventTimer, InvalidArgumentError, OutOfMemoryError,
                     PinnedBuffer, PinnedRing)

fake = ctypes.CDLL("libcuda.so.1")
fake.fake_other_context.restype = ctypes.c_void_p

def current():
    ctx = ctypes.c_void_p()
    assert fake.cuCtxGetCurrent(ctypes.byref(ctx)) == 0
    return ctx.value

assert pyinfer.cuda_available(), pyinfer.cuda_unavailable_reason()
assert pyinfer.cuda_unavailable_reason() == ""
assert pyinfer.cuda_driver_version() == 12080
assert pyinfer.cuda_device_count() == 1
assert pyinfer.cuda_device_name(0) == "Fake GPU 0"
assert pyinfer.cuda_device_total_memory(0) == 80 << 30
assert pyinfer.cuda_mem_get_info(0) == (60 << 30, 80 << 30)
try:
    pyinfer.cuda_device_name(1)
    raise AssertionError("no error")
except InvalidArgumentError:
    pass

# The caller's current context stays current whatever pyinfer does.
other = fake.fake_other_context()
fake.cuCtxSetCurrent(ctypes.c_void_p(other))

timer = CudaEventTimer(0, 0, 4)
assert timer.capacity == 4 and fake.fake_live_events() == 8
for _ in range(10):
    timer.start()
    time.sleep(0.002)
    timer.stop()
assert timer.pending == 10 and timer.capacity == 16
syncs = fake.fake_sync_count()
ms = timer.elapsed_ms()
assert fake.fake_sync_count() - syncs == 1, "elapsed_ms must wait exactly once"
assert ms.dtype == np.float64 and ms.shape == (10,) and np.all(ms >= 1.5), ms
assert timer.pending == 0 and current() == other

gpu, host = timer.time_calls(lambda: time.sleep(0.001), 30, warmup=2)
assert gpu.shape == (30,) and host.count == 30 and np.all(gpu >= 0.9)
assert current() == other

side = CudaEventTimer(0x1000)  # a stream of another context: events are created there
side.start(); side.stop()
assert side.elapsed_ms().shape == (1,)
del timer, side
gc.collect()
assert fake.fake_live_events() == 0

buf = PinnedBuffer(1 << 20)
assert buf.pinned and fake.fake_live_allocs() == 1
array = np.frombuffer(buf, np.float32)
array[:] = 3
try:
    buf.close()
    raise AssertionError("no error")
except BufferInUseError:
    pass
del array
buf.close()
assert fake.fake_live_allocs() == 0
try:
    PinnedBuffer(1 << 41)
    raise AssertionError("no error")
except OutOfMemoryError as e:
    assert "cuMemHostAlloc" in str(e) and "CUDA_ERROR_OUT_OF_MEMORY" in str(e)

ring = PinnedRing(1000, 2)
assert ring.pinned and fake.fake_live_allocs() == 1
syncs = fake.fake_sync_count()
for k in range(6):
    i = ring.acquire()
    ring.slot(i).numpy()[:] = k
    ring.release(i, 0)
assert fake.fake_sync_count() - syncs == 4  # every acquire after the first round waits
ring.release(0, 0x1000)  # another context: the slot's event is recreated there
slot = ring.slot(0)
ring.close()
assert slot.closed and fake.fake_live_allocs() == 0 and fake.fake_live_events() == 0
ring = PinnedRing(10, 3)
ring.release(1)
del ring
gc.collect()
assert fake.fake_live_allocs() == 0 and fake.fake_live_events() == 0
assert current() == other
print("fake driver checks passed")
"""


def test_cuda_paths_with_fake_driver(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler to build the fake driver")
    library = tmp_path / "libcuda.so.1"
    subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-soname,libcuda.so.1",
            "-o",
            str(library),
            str(HERE / "fake_libcuda.c"),
        ],
        check=True,
        timeout=120,
    )
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(tmp_path), env.get("LD_LIBRARY_PATH", "")])
    package_parent = str(Path(pyinfer.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(
        [sys.executable, "-c", CHECKS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fake driver checks passed" in done.stdout
