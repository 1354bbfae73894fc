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


LIBRARY_SOURCE = ROOT / "src" / "cpp" / "lib" / "pyinfer.cpp"


def build_library(tmp_path: Path, compiler: str) -> Path:
    """Compiles src/cpp/lib/pyinfer.cpp (strict, -fPIC) into a static library, as CMake does."""
    obj = tmp_path / "pyinfer.o"
    flags = ["-std=c++17", "-O2", "-fPIC", *STRICT, "-c", "-o", str(obj)]
    result = compile_source(compiler, LIBRARY_SOURCE, *flags)
    assert result.returncode == 0, result.stderr
    archive = tmp_path / "libpyinfer_core.a"
    subprocess.run(["ar", "rcs", str(archive), str(obj)], check=True)
    return archive


@needs_compiler
@pytest.mark.parametrize("compiler", COMPILERS)
def test_separately_compiled_the_program_runs_as_header_only(tmp_path: Path, compiler: str) -> None:
    # PYINFER_SEPARATE_COMPILATION (the pyinfer::pyinfer CMake target): the program sees only
    # declarations of summarize() & co. and links them from the library; same output.
    archive = build_library(tmp_path, compiler)
    source = tmp_path / "uses_separate.cpp"
    source.write_text("".join(f"#include <pyinfer/{h}>\n" for h in USED_HEADERS) + USES.read_text())
    exe = tmp_path / "uses_separate"
    flags = ["-std=c++17", "-O2", *STRICT, "-DPYINFER_SEPARATE_COMPILATION", f"-I{INCLUDE}"]
    command = [compiler, *flags, str(source), str(archive), "-o", str(exe), "-pthread", "-ldl"]
    built = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    separate = subprocess.run([str(exe)], check=False, capture_output=True, text=True)
    assert separate.returncode == 0, separate.stderr
    header_only = subprocess.run(
        [str(build_uses(tmp_path, compiler))], check=False, capture_output=True, text=True
    )
    # The first line is the version, the second holds timings; the rest are exact figures.
    assert separate.stdout.splitlines()[0] == header_only.stdout.splitlines()[0]
    assert ", p50 486, min 0, estimate 500.5, rss yes, " in separate.stdout.splitlines()[1]
    bad = subprocess.run([str(exe), "bad-rank"], check=False, capture_output=True, text=True)
    assert bad.returncode == 3, bad.stderr
    assert bad.stderr.startswith("caught: percentile 101.000000 is outside [0, 100]")


@needs_compiler
def test_separately_compiled_the_definitions_are_in_the_library_only(tmp_path: Path) -> None:
    compiler = COMPILERS[0]
    archive = build_library(tmp_path, compiler)
    source = tmp_path / "calls.cpp"
    source.write_text(
        "#include <pyinfer/pyinfer.hpp>\n"
        "int main() { double v[3] = {1, 2, 3};\n"
        "  return static_cast<int>(pyinfer::summarize(v, 3, {50.0}).percentile(50.0)); }\n"
    )
    obj = tmp_path / "calls.o"
    flags = ["-std=c++17", "-O2", "-DPYINFER_SEPARATE_COMPILATION", "-c", "-o", str(obj)]
    assert compile_source(compiler, source, *flags).returncode == 0

    def defined(path: Path) -> set[str]:
        out = subprocess.run(["nm", "-C", str(path)], check=True, capture_output=True, text=True)
        return {line.split(" ", 2)[2] for line in out.stdout.splitlines() if " T " in line}

    summarize = (
        "pyinfer::summarize(double const*, unsigned long, std::vector<double, "
        "std::allocator<double> > const&, int, unsigned int)"
    )
    assert summarize in defined(archive)
    assert summarize not in defined(obj)
    undefined = subprocess.run(["nm", "-C", "-u", str(obj)], check=True, capture_output=True)
    assert summarize in undefined.stdout.decode()
    exe = tmp_path / "calls"
    link = [compiler, str(obj), str(archive), "-o", str(exe), "-pthread", "-ldl"]
    subprocess.run(link, check=True)
    assert subprocess.run([str(exe)], check=False).returncode == 2


@needs_compiler
@pytest.mark.parametrize("header", PUBLIC_HEADERS)
def test_each_header_is_clean_when_separately_compiled(tmp_path: Path, header: str) -> None:
    for compiler in COMPILERS:
        flags = ["-std=c++17", "-fsyntax-only", "-DPYINFER_SEPARATE_COMPILATION", *STRICT]
        result = compile_source(compiler, header_source(tmp_path, header), *flags)
        assert result.returncode == 0, result.stderr
