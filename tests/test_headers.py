"""The installed C++ headers and CMake package work for another project, as promised."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import pyinfer
from pyinfer.errors import PyinferError

HERE = Path(__file__).resolve().parent
CONSUMER = HERE / "cpp" / "consumer"
CPP_TESTS = sorted((HERE / "cpp").glob("test_*.cpp"))
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")

needs_compiler = pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH")


def installed_include() -> Path:
    try:
        return Path(pyinfer.get_include())
    except PyinferError as error:
        pytest.skip(f"in-place build without installed headers: {error}")


def compile_and_run(source: Path, out_dir: Path, *extra: str) -> str:
    exe = out_dir / source.stem
    command = [
        str(CXX), "-std=c++17", "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
        f"-I{installed_include()}", str(source), "-o", str(exe), "-pthread", "-ldl", *extra,
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@needs_compiler
def test_a_program_builds_against_the_installed_headers(tmp_path: Path) -> None:
    output = compile_and_run(CONSUMER / "consumer.cpp", tmp_path)
    assert output.splitlines()[0] == f"pyinfer {pyinfer.__version__}"


@needs_compiler
@pytest.mark.parametrize("source", CPP_TESTS, ids=[p.stem for p in CPP_TESTS])
def test_cpp_unit_tests_pass(source: Path, tmp_path: Path) -> None:
    compile_and_run(source, tmp_path)


@needs_compiler
def test_every_header_compiles_on_its_own(tmp_path: Path) -> None:
    include = installed_include()
    sources = []
    for header in sorted((include / "pyinfer").glob("*.hpp")):
        source = tmp_path / f"{header.stem}.cpp"
        source.write_text(f"#include <pyinfer/{header.name}>\n#include <pyinfer/{header.name}>\n")
        sources.append(str(source))
    command = [
        str(CXX), "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
        f"-I{include}", *sources,
    ]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@needs_compiler
@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake on PATH")
def test_find_package_gives_the_headers_target(tmp_path: Path) -> None:
    installed_include()
    build = tmp_path / "build"
    configure = [
        "cmake", "-S", str(CONSUMER), "-B", str(build), f"-DCMAKE_CXX_COMPILER={CXX}",
        f"-Dpyinfer_DIR={pyinfer.get_cmake_dir()}",
    ]  # fmt: skip
    for command in (configure, ["cmake", "--build", str(build)]):
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run([str(build / "consumer")], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"pyinfer {pyinfer.__version__}")


INCLUDE = re.compile(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]", re.MULTILINE)


def test_headers_include_nothing_from_python_or_cuda() -> None:
    include = installed_include()
    headers = sorted((include / "pyinfer").glob("*.hpp"))
    assert len(headers) >= 10
    for header in headers:
        for included in INCLUDE.findall(header.read_text()):
            assert not included.startswith(("Python", "pybind11", "numpy", "cuda")), (
                header.name,
                included,
            )
            if included.startswith("pyinfer/"):
                assert (include / included).is_file(), (header.name, included)


def test_get_include_and_cmake_dir_explain_a_missing_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pyinfer, "_PACKAGE_DIR", tmp_path)
    with pytest.raises(PyinferError, match="C\\+\\+ headers are not installed"):
        pyinfer.get_include()
    with pytest.raises(PyinferError, match="CMake package is not installed"):
        pyinfer.get_cmake_dir()


def test_cmake_dir_holds_a_versioned_package() -> None:
    installed_include()
    cmake_dir = Path(pyinfer.get_cmake_dir())
    assert (cmake_dir / "pyinferConfig.cmake").is_file()
    version_file = (cmake_dir / "pyinferConfigVersion.cmake").read_text()
    assert f'PACKAGE_VERSION "{pyinfer.__version__}"' in version_file
