"""The C++ headers straight from a source checkout: strict warnings, C++17, -fno-exceptions."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "src" / "cpp" / "include"
USES = Path(__file__).resolve().parent / "cpp" / "hygiene" / "uses.cpp"
PUBLIC_HEADERS = sorted(p.name for p in (INCLUDE / "pyinfer").glob("*.hpp"))
# g++ and clang++, and the newest versioned clang++ where no plain one is on PATH (Debian's
# clang-14 installs clang++-14): the summary's SIMD code compiles differently in each.
_CLANGS = sorted(
    (p.name for p in Path("/usr/bin").glob("clang++-*") if p.name[8:].isdigit()),
    key=lambda name: int(name[8:]),
)
COMPILERS = [c for c in ("g++", "clang++") if shutil.which(c)]
if "clang++" not in COMPILERS and _CLANGS:
    COMPILERS.append(_CLANGS[-1])
STRICT = [
    "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wsign-conversion", "-Wold-style-cast",
    "-Wshadow", "-Werror",
]  # fmt: skip

# Headers not yet clean, each with the reason; the test of each is expected to fail until fixed
# (strict xfail: once a header is fixed, remove it here). Every public header is clean now.
NOT_STRICT_CLEAN: dict[str, str] = {}
NOT_EXCEPTION_FREE: dict[str, str] = {}
# The headers uses.cpp includes: every public one that is clean in both respects.
USED_HEADERS = [
    h for h in PUBLIC_HEADERS if h not in NOT_STRICT_CLEAN and h not in NOT_EXCEPTION_FREE
]

needs_compiler = pytest.mark.skipif(not COMPILERS, reason="no g++ or clang++ on PATH")


def header_params(known: dict[str, str]) -> list[object]:
    return [
        pytest.param(h, marks=pytest.mark.xfail(reason=known[h], strict=True)) if h in known else h
        for h in PUBLIC_HEADERS
    ]


def compile_source(compiler: str, source: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [compiler, *flags, f"-I{INCLUDE}", str(source)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)


def header_source(tmp_path: Path, header: str) -> Path:
    source = tmp_path / "one.cpp"
    source.write_text(f"#include <pyinfer/{header}>\n#include <pyinfer/{header}>\n")
    return source


def build_uses(tmp_path: Path, compiler: str, *flags: str) -> Path:
    """Builds tests/cpp/hygiene/uses.cpp against the checkout's headers, -Werror included."""
    source = tmp_path / "uses.cpp"
    includes = "".join(f"#include <pyinfer/{h}>\n" for h in USED_HEADERS)
    source.write_text(includes + USES.read_text())
    exe = tmp_path / "uses"
    result = compile_source(
        compiler, source, "-std=c++17", "-O2", *STRICT, *flags, "-o", str(exe), "-pthread", "-ldl"
    )
    assert result.returncode == 0, result.stderr
    return exe


def pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match is not None
    return match.group(1)


def test_the_checkout_has_no_generated_header() -> None:
    # What makes the checkout tests below meaningful: the generated header exists only in builds.
    assert not (INCLUDE / "pyinfer" / "detail" / "version_generated.hpp").exists()
    assert (INCLUDE / "pyinfer" / "detail" / "version_generated.hpp.in").is_file()


def test_the_checkout_version_matches_pyproject() -> None:
    text = (INCLUDE / "pyinfer" / "version.hpp").read_text()
    fallback = dict(re.findall(r"#define PYINFER_VERSION_(\w+) (\S+)", text))
    major, minor, patch = pyproject_version().split(".")
    assert fallback == {
        "MAJOR": major,
        "MINOR": minor,
        "PATCH": patch,
        "STRING": f'"{pyproject_version()}"',
    }


@needs_compiler
@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_program_builds_and_runs_from_the_checkout(tmp_path: Path, compiler: str) -> None:
    # Strict warnings with -Werror, the include folder a plain -I (not a system include).
    run = subprocess.run(
        [str(build_uses(tmp_path, compiler))], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"pyinfer {pyproject_version()}"
    assert lines[1].startswith("done 1000, clock ")
    assert ", p50 486, min 0, estimate 500.5, rss yes, " in lines[1]


@needs_compiler
@pytest.mark.parametrize("compiler", COMPILERS)
def test_errors_are_exceptions_by_default(tmp_path: Path, compiler: str) -> None:
    exe = build_uses(tmp_path, compiler)
    run = subprocess.run([str(exe), "bad-rank"], check=False, capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    assert run.stderr.startswith("caught: percentile 101.000000 is outside [0, 100]")


@needs_compiler
@pytest.mark.parametrize("compiler", COMPILERS)
def test_without_exceptions_errors_print_and_abort(tmp_path: Path, compiler: str) -> None:
    exe = build_uses(tmp_path, compiler, "-fno-exceptions")
    ok = subprocess.run([str(exe)], check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([str(exe), "bad-rank"], check=False, capture_output=True, text=True)
    assert bad.returncode == -signal.SIGABRT
    assert bad.stderr == (
        "pyinfer: percentile 101.000000 is outside [0, 100]; ask for e.g. 50, 95, 99 or 99.9\n"
    )


@needs_compiler
@pytest.mark.parametrize("header", header_params(NOT_STRICT_CLEAN))
def test_each_header_is_clean_under_strict_warnings(tmp_path: Path, header: str) -> None:
    for compiler in COMPILERS:
        flags = ["-std=c++17", "-fsyntax-only", *STRICT]
        result = compile_source(compiler, header_source(tmp_path, header), *flags)
        assert result.returncode == 0, result.stderr


@needs_compiler
@pytest.mark.parametrize("header", header_params(NOT_EXCEPTION_FREE))
def test_each_header_compiles_without_exceptions(tmp_path: Path, header: str) -> None:
    for compiler in COMPILERS:
        flags = ["-std=c++17", "-fsyntax-only", "-fno-exceptions", "-Wall", "-Werror"]
        result = compile_source(compiler, header_source(tmp_path, header), *flags)
        assert result.returncode == 0, result.stderr


@needs_compiler
@pytest.mark.parametrize("header", PUBLIC_HEADERS)
def test_below_cpp17_the_first_error_says_so(tmp_path: Path, header: str) -> None:
    for compiler in COMPILERS:
        result = compile_source(compiler, header_source(tmp_path, header), "-std=c++14", "-c")
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if ": error:" in line]
        assert "pyinfer needs C++17 or later: compile with -std=c++17" in errors[0], errors[:3]
