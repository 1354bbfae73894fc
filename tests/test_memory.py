from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import pyinfer
from pyinfer import _core

MB = 1024 * 1024


def statm_rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_matches_the_kernel() -> None:
    ours = pyinfer.rss_bytes()
    theirs = statm_rss_bytes()
    assert ours > 10 * MB  # an interpreter with numpy loaded
    assert abs(ours - theirs) < 8 * MB


def touch(nbytes: int) -> np.ndarray:
    block = np.empty(nbytes, dtype=np.uint8)
    block[::4096] = 1  # fault in every page
    return block


def test_peak_rss_sees_a_freed_allocation() -> None:
    method = pyinfer.reset_peak_rss()
    assert method in {"clear_refs", "sampling"}
    assert pyinfer.peak_rss_method() == method
    baseline = pyinfer.rss_bytes()
    block = touch(200 * MB)
    if method == "sampling":
        time.sleep(0.2)
    del block
    peak = pyinfer.peak_rss_bytes()
    assert peak - baseline >= 190 * MB
    # A new region forgets the old peak.
    pyinfer.reset_peak_rss()
    assert pyinfer.peak_rss_bytes() - baseline < 100 * MB


def test_clear_refs_is_detected_on_linux() -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("this kernel has no /proc/self/clear_refs")
    assert pyinfer.reset_peak_rss() == "clear_refs"


def test_sampling_fallback_tracks_the_peak() -> None:
    _core._force_peak_rss_sampling(True)
    try:
        assert pyinfer.reset_peak_rss() == "sampling"
        baseline = pyinfer.rss_bytes()
        block = touch(150 * MB)
        time.sleep(0.2)  # the sampler reads every 0.5 ms; margin for a loaded machine
        del block
        assert pyinfer.peak_rss_bytes() - baseline >= 140 * MB
        pyinfer.reset_peak_rss()
        # The reset forgets the freed block: the peak is again the process's RSS now. (Against
        # the RSS now, not the baseline: in a long test run another thread may hold memory.)
        assert pyinfer.peak_rss_bytes() - pyinfer.rss_bytes() < 100 * MB
    finally:
        _core._force_peak_rss_sampling(False)
        pyinfer.reset_peak_rss()
