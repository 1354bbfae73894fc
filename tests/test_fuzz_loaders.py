"""Every loader against thousands of damaged and random files: a typed error or a valid model.

Each format's campaign (``tests/_fuzz_loaders.py``) mutates tiny seed models built here from code
(truncations, bit flips, overwritten runs, spliced chunks, valid headers with garbage bodies,
zip members damaged behind valid checksums, random bytes under the format's extension) and loads
each result with :func:`pyinfer.load_model` in watched worker processes (``tests/_fuzz.py``): no
input may crash the interpreter, hang, leak memory or descriptors, or end in anything but a
:class:`pyinfer.errors.PyinferError` or a model that runs.

``PYINFER_FUZZ_INPUTS`` sets the inputs per format (default 10,000, what CI runs); a finding's
input is saved and printed for replay with ``python tests/_fuzz.py replay``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz
import _fuzz_loaders
from conftest import require_module

INPUTS = int(os.environ.get("PYINFER_FUZZ_INPUTS", "10000"))

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    frameworks = set()
    for framework, module in (("torch", "torch"), ("onnx", "onnxruntime"), ("tf", "tensorflow")):
        try:
            require_module(module)
        except pytest.skip.Exception:
            continue
        frameworks.add(framework)
    with warnings.catch_warnings():
        # The seeds are written with the deprecated APIs users' files come from (torch.jit.trace,
        # Keras' HDF5 save), whose warnings are errors under pytest here; they are the
        # frameworks' own, not pyinfer's.
        warnings.simplefilter("ignore")
        return _fuzz_loaders.build_seeds(tmp_path_factory.mktemp("fuzz-seeds"), frameworks)


def check(result: _fuzz.FuzzResult, count: int) -> None:
    print(result.summary())
    problems = [str(f) for f in result.findings] + result.leaks
    assert not problems, f"{result.summary()}\n" + "\n\n".join(problems[:10])
    assert result.inputs == count, result.summary()


@pytest.mark.parametrize("name", sorted(_fuzz_loaders.FORMATS))
def test_damaged_models_end_in_a_typed_error_or_a_model_that_runs(
    name: str, seeds: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    fmt = _fuzz_loaders.FORMATS[name]
    if name not in seeds:
        require_module({"torch": "torch", "onnx": "onnxruntime", "tf": "tensorflow"}[fmt.framework])
    config = seeds[name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = _fuzz.fuzz(name, config, INPUTS, save_dir=tmp_path / "findings")
    check(result, INPUTS)
    # The campaign reached past format detection: some inputs failed deeper, in the loader.
    assert result.counts.get("UnknownFormatError", 0) < INPUTS * 0.5, result.summary()


# -- the fuzzer itself: it must see what it is there to see -------------------------------------


def test_the_fuzzer_counts_typed_errors_as_allowed_and_others_as_findings(tmp_path: Path) -> None:
    plan = {"3": "typed", "5": "untyped"}
    result = _fuzz.fuzz("selftest", {"plan": plan}, 12, save_dir=tmp_path)
    assert result.inputs == 12
    assert result.counts == {"ok": 10, "CorruptModelError": 1, "UNEXPECTED ValueError": 1}
    [finding] = result.findings
    assert (finding.kind, finding.index) == ("UNEXPECTED ValueError", 5)
    assert "input 5 slipped through" in finding.detail
    assert finding.saved is not None
    assert finding.saved.read_text() == "5"


def test_the_fuzzer_survives_a_crash_and_goes_on_after_it(tmp_path: Path) -> None:
    result = _fuzz.fuzz("selftest", {"plan": {"4": "segfault"}}, 10, save_dir=tmp_path)
    assert result.counts == {"ok": 9, "crash": 1}
    [finding] = result.findings
    assert (finding.kind, finding.index) == ("crash", 4)
    assert "SIGSEGV" in finding.detail


def test_the_fuzzer_stops_a_hang_and_goes_on_after_it(tmp_path: Path) -> None:
    result = _fuzz.fuzz("selftest", {"plan": {"2": "hang"}}, 6, timeout_s=3, save_dir=tmp_path)
    assert result.counts == {"ok": 5, "hang": 1}
    assert [(f.kind, f.index) for f in result.findings] == [("hang", 2)]


@pytest.mark.parametrize(
    ("leak", "message"), [("leak", "resident memory grew"), ("fd", "file descriptors")]
)
def test_the_fuzzer_sees_memory_and_descriptor_leaks(
    leak: str, message: str, tmp_path: Path
) -> None:
    result = _fuzz.fuzz(
        "selftest", {"always": leak}, 200, workers=1, leak_bytes=16 << 20, save_dir=tmp_path
    )
    assert result.counts == {"ok": 200}
    assert any(message in line for line in result.leaks), result.leaks


def test_mutations_are_deterministic_and_cover_every_kind() -> None:
    config = {"plan": {}}
    assert list(_fuzz.iter_cases("selftest", config, 3)) == [0, 1, 2]
    seed = bytes(range(256)) * 4
    for kind in _fuzz.MUTATIONS[:-1]:
        first = _fuzz.mutate_bytes(seed, _fuzz.rng_for("s", 7), kind)
        assert first == _fuzz.mutate_bytes(seed, _fuzz.rng_for("s", 7), kind)
    changed = {_fuzz.mutate_bytes(seed, _fuzz.rng_for("s", i), "bit_flips") for i in range(50)}
    assert len(changed) == 50
    assert seed not in changed
