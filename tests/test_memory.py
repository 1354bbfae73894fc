from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pyinfer

MB = 1024 * 1024


def statm_rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_matches_the_kernel() -> None:
    ours = pyinfer.rss_bytes()
    theirs = statm_rss_bytes()
    assert ours > 10 * MB  # an interpreter with numpy loaded
    assert abs(ours - theirs) < 8 * MB


#: Run in a fresh process: a long test run's process holds memory its allocator kept from
#: earlier tests, and a new block may reuse those pages without the RSS growing at all.
PEAK_PROBE = """
import json, sys, time
import numpy as np
import pyinfer
from pyinfer import _core

MB = 1024 * 1024
sampling = sys.argv[1] == "sampling"
_core._force_peak_rss_sampling(sampling)
method = pyinfer.reset_peak_rss()
baseline = pyinfer.rss_bytes()
block = np.empty(int(sys.argv[2]) * MB, dtype=np.uint8)
block[::4096] = 1  # fault in every page
grown = pyinfer.rss_bytes() - baseline
if sampling:
    time.sleep(0.2)  # the sampler reads every 0.5 ms; margin for a loaded machine
del block
peak = pyinfer.peak_rss_bytes() - baseline
pyinfer.reset_peak_rss()
after_reset = pyinfer.peak_rss_bytes() - pyinfer.rss_bytes()
print(json.dumps({"method": method, "queried": pyinfer.peak_rss_method(), "grown": grown,
                  "peak": peak, "after_reset": after_reset}))
"""


def peak_probe(method: str, megabytes: int) -> dict[str, Any]:
    """What the peak-RSS functions saw of a block of ``megabytes`` freed in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, method, str(megabytes)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_peak_rss_sees_a_freed_allocation() -> None:
    seen = peak_probe("default", 200)
    assert seen["method"] in {"clear_refs", "sampling"}
    assert seen["queried"] == seen["method"]
    assert seen["grown"] >= 190 * MB  # a fresh process: the block's pages are new
    assert seen["peak"] >= 190 * MB
    # A new region forgets the old peak: it is again the process's RSS.
    assert seen["after_reset"] < 100 * MB


def test_clear_refs_is_detected_on_linux() -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("this kernel has no /proc/self/clear_refs")
    assert pyinfer.reset_peak_rss() == "clear_refs"


def test_sampling_fallback_tracks_the_peak() -> None:
    seen = peak_probe("sampling", 150)
    assert seen["method"] == seen["queried"] == "sampling"
    assert seen["grown"] >= 140 * MB
    assert seen["peak"] >= 140 * MB
    assert seen["after_reset"] < 100 * MB
