"""Every preprocessor against thousands of odd inputs: a typed error or a result as promised.

Each campaign (``tests/_fuzz_preprocessors.py``, one per preprocessor and input helper) makes its
inputs from the index alone: damaged and bomb-sized image files of every format and mode,
paths that are missing or folders, PIL images of every mode, arrays of every rank, size, dtype
and memory layout, random unicode, odd vocabularies and tokenizers, and wrong constructor
arguments. Each runs in watched worker processes (``tests/_fuzz.py``): no input may crash the
interpreter, hang, leak memory or descriptors, or end in anything but a
:class:`pyinfer.errors.PyinferError` or a result with the shape, dtype and values the step
promises.

``PYINFER_FUZZ_INPUTS`` sets the inputs per campaign (default 10,000, what CI runs); a finding's
input is saved and printed for replay with ``python tests/_fuzz.py replay``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz
import _fuzz_preprocessors

pytest.importorskip("PIL.Image")

INPUTS = int(os.environ.get("PYINFER_FUZZ_INPUTS", "10000"))

pytestmark = pytest.mark.fuzz

#: Each campaign must end this share of its inputs in a valid result, so that it reaches past
#: the argument checks into the work itself (measured shares are 4-80%: docs/hardening.md).
LEAST_OK = 0.02


@pytest.mark.parametrize("name", sorted(_fuzz_preprocessors.CAMPAIGNS))
def test_odd_inputs_end_in_a_typed_error_or_a_valid_result(name: str, tmp_path: Path) -> None:
    config = _fuzz_preprocessors.configs()[name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = _fuzz.fuzz(name, config, INPUTS, save_dir=tmp_path / "findings")
    print(result.summary())
    problems = [str(f) for f in result.findings] + result.leaks
    assert not problems, f"{result.summary()}\n" + "\n\n".join(problems[:10])
    assert result.inputs == INPUTS, result.summary()
    assert result.counts.get("ok", 0) >= INPUTS * LEAST_OK, result.summary()


def test_inputs_are_deterministic_and_varied() -> None:
    configs = _fuzz_preprocessors.configs()
    for name in ("decode", "text_pipeline", "normalize"):
        first = [pickle.dumps(c) for c in _fuzz.iter_cases(name, configs[name], 40)]
        assert first == [pickle.dumps(c) for c in _fuzz.iter_cases(name, configs[name], 40)]
        assert len(set(first)) >= 30, name  # not one input over and over


def test_huge_declared_dimensions_keep_the_checksums_valid() -> None:
    png = dict(_fuzz_preprocessors.image_seeds())[".png"]
    sizes = set()
    for i in range(20):
        bomb = _fuzz_preprocessors.huge_dims(png, _fuzz.rng_for("t", i))
        assert len(bomb) == len(png)
        assert struct.unpack(">I", bomb[29:33])[0] == zlib.crc32(bomb[12:29])  # IHDR's CRC
        sizes.add(struct.unpack(">II", bomb[16:24]))
    assert (2**31 - 1, 2**31 - 1) in sizes or max(w * h for w, h in sizes) > 10**9
    assert len(sizes) > 10


def test_a_worker_that_writes_much_to_stderr_does_not_block(tmp_path: Path) -> None:
    # libtiff prints a warning per damaged file; 16 KiB per input fills a pipe in 4 inputs.
    result = _fuzz.fuzz("selftest", {"always": "noisy"}, 40, timeout_s=10, save_dir=tmp_path)
    assert result.counts == {"ok": 40}, result.summary()
