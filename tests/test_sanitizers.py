"""The sanitizer setup of scripts/sanitize.sh catches real bugs, with the flags CMake uses.

A deliberately broken program is compiled with the compile and link options of CMakeLists.txt's
``PYINFER_SANITIZE`` block and run with the runtime options the script uses (it prints them with
``--print-options``): the heap overflow, the signed overflow and the leak must each be reported
and fail the program, while the same program without the bug exits 0. A broken library loaded
into this interpreter with the runtimes preloaded, the way the script runs the Python tests,
must be caught too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "sanitize.sh"
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")

BROKEN = r"""
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" int write_at(int size, int index) {
  int* block = new int[static_cast<unsigned>(size)];
  block[index] = 7;  // heap-buffer-overflow when index >= size
  const int value = 2 * block[index];
  delete[] block;
  return value;
}

extern "C" int add(int a, int b) { return a + b; }  // signed overflow is undefined

extern "C" int element(int index) {  // beyond size(), within capacity(): ASan cannot see it
  std::vector<int> v(4, 5);
  v.reserve(64);
  return v[static_cast<unsigned>(index)];
}

extern "C" unsigned long long to_integer(double v) {  // undefined at 2^64 or more
  return static_cast<unsigned long long>(v);
}

#ifndef BROKEN_LIBRARY
int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const int a = std::atoi(argv[2]);
  const int b = std::atoi(argv[3]);
  if (std::strcmp(argv[1], "write") == 0) return write_at(a, b) == 14 ? 0 : 3;
  if (std::strcmp(argv[1], "add") == 0) return add(a, b) > 0 ? 0 : 3;
  if (std::strcmp(argv[1], "element") == 0) return element(a) == 5 ? 0 : 3;
  if (std::strcmp(argv[1], "cast") == 0) return to_integer(std::atof(argv[2])) > 0 ? 0 : 3;
  if (std::strcmp(argv[1], "leak") == 0) {
    int* lost = new int[static_cast<unsigned>(a)];
    lost[0] = b;
    std::printf("%p\n", static_cast<void*>(lost));
    return 0;
  }
  return 2;
}
#endif
"""


def line_of(fragment: str) -> int:
    return next(n for n, line in enumerate(BROKEN.splitlines(), 1) if fragment in line)


def runtime(name: str) -> Path | None:
    if CXX is None:
        return None
    found = subprocess.run(
        [CXX, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return Path(found) if Path(found).is_absolute() and Path(found).exists() else None


LIBASAN = runtime("libasan.so")
LIBUBSAN = runtime("libubsan.so")

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
    pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH"),
    pytest.mark.skipif(
        LIBASAN is None or LIBUBSAN is None,
        reason="the C++ compiler has no ASan/UBSan runtime (libasan.so, libubsan.so)",
    ),
    pytest.mark.skipif(shutil.which("bash") is None, reason="no bash"),
]


def cmake_sanitize_options() -> tuple[list[str], list[str]]:
    """The compile (with definitions) and link options of CMakeLists.txt's PYINFER_SANITIZE."""
    text = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"if\(PYINFER_SANITIZE\)(.*?)endif\(\)", text, re.S)
    assert block is not None, "CMakeLists.txt has no if(PYINFER_SANITIZE) block"

    def arguments(command: str) -> list[str]:
        found = re.findall(rf"^\s*{command}\(([^)]*)\)", block.group(1), re.M)
        return [word for text in found for word in text.split()]

    compile_options = arguments("add_compile_options")
    compile_options += [f"-D{name}" for name in arguments("add_compile_definitions")]
    return compile_options, arguments("add_link_options")


def script_options() -> dict[str, str]:
    printed = subprocess.run(
        ["bash", str(SCRIPT), "--print-options"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return dict(line.split("=", 1) for line in printed.splitlines())


@pytest.fixture(scope="module")
def options() -> dict[str, str]:
    return script_options()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compile_options, link_options = cmake_sanitize_options()
    out = tmp_path_factory.mktemp("sanitizers")
    source = out / "broken.cpp"
    source.write_text(BROKEN)
    exe = out / "broken"
    # -g -O0: the script's Debug build.
    # Compiled and linked in separate steps with CMake's separate options, as -g -O0 (Debug).
    for target, extra in ((exe, []), (out / "libbroken.so", ["-DBROKEN_LIBRARY", "-fPIC"])):
        obj = target.with_suffix(".o")
        compile_command = [str(CXX), "-std=c++17", "-g", *compile_options, *extra]
        link_command = [str(CXX), *link_options, *(["-shared"] if extra else [])]
        for command in (
            [*compile_command, "-c", str(source), "-o", str(obj)],
            [*link_command, str(obj), "-o", str(target)],
        ):
            subprocess.run(command, check=True, capture_output=True, timeout=120)
    return exe


def run(exe: Path, *args: str, asan: str, ubsan: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASAN_OPTIONS": asan, "UBSAN_OPTIONS": ubsan}
    return subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_script_builds_with_the_cmake_sanitize_options() -> None:
    compile_options, link_options = cmake_sanitize_options()
    # The script checks every translation unit for exactly this flag after building.
    assert "-fsanitize=address,undefined" in compile_options
    assert "-fno-sanitize-recover=all" in compile_options
    assert "-fsanitize=address,undefined" in link_options
    script = SCRIPT.read_text()
    assert "-DPYINFER_SANITIZE=ON" in script
    assert "-DPYINFER_BUILD_CPP_TESTS=ON" in script
    assert '"-fsanitize=address,undefined" not in u["command"]' in script


def test_the_script_halts_on_reports_and_keeps_leak_checks_for_cpp(
    options: dict[str, str],
) -> None:
    assert set(options) == {"ASAN_OPTIONS_CPP", "ASAN_OPTIONS_PYTHON", "UBSAN_OPTIONS"}
    cpp = options["ASAN_OPTIONS_CPP"].split(":")
    python = options["ASAN_OPTIONS_PYTHON"].split(":")
    assert "halt_on_error=1" in cpp
    assert "detect_leaks=1" in cpp
    assert "halt_on_error=1" in python
    assert "detect_leaks=0" in python
    assert set(options["UBSAN_OPTIONS"].split(":")) >= {"print_stacktrace=1", "halt_on_error=1"}


def test_the_script_runs_test_files_that_exist() -> None:
    listed = re.search(r"^tests=\(([^)]*)\)", SCRIPT.read_text(), re.M)
    assert listed is not None
    files = listed.group(1).split()
    assert "tests/test_summary.py" in files
    assert "tests/test_cuda_fake_driver.py" in files
    assert [name for name in files if not (ROOT / name).is_file()] == []


def test_a_correct_program_passes(broken: Path, options: dict[str, str]) -> None:
    asan, ubsan = options["ASAN_OPTIONS_CPP"], options["UBSAN_OPTIONS"]
    for args in (
        ("write", "4", "3"),
        ("add", "2147483646", "1"),
        ("cast", "1e19", "0"),
        ("element", "3", "0"),
    ):
        done = run(broken, *args, asan=asan, ubsan=ubsan)
        assert (done.returncode, done.stderr) == (0, ""), args


def test_heap_buffer_overflow_is_reported(broken: Path, options: dict[str, str]) -> None:
    done = run(
        broken, "write", "4", "4", asan=options["ASAN_OPTIONS_CPP"], ubsan=options["UBSAN_OPTIONS"]
    )
    assert done.returncode != 0
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stderr
    assert re.search(
        rf"#0 0x[0-9a-f]+ in write_at .*broken\.cpp:{line_of('block[index] = 7')}\b", done.stderr
    ), done.stderr


def test_signed_overflow_is_reported(broken: Path, options: dict[str, str]) -> None:
    done = run(
        broken,
        "add",
        "2147483646",
        "2",
        asan=options["ASAN_OPTIONS_CPP"],
        ubsan=options["UBSAN_OPTIONS"],
    )
    assert done.returncode != 0
    assert f"broken.cpp:{line_of('return a + b')}:" in done.stderr
    assert "runtime error: signed integer overflow: 2147483646 + 2" in done.stderr


def test_a_float_to_integer_overflow_is_reported(broken: Path, options: dict[str, str]) -> None:
    # Not part of GCC's -fsanitize=undefined: CMakeLists.txt adds -fsanitize=float-cast-overflow.
    done = run(
        broken,
        "cast",
        "1e20",
        "0",
        asan=options["ASAN_OPTIONS_CPP"],
        ubsan=options["UBSAN_OPTIONS"],
    )
    assert done.returncode != 0
    assert f"broken.cpp:{line_of('return static_cast<unsigned long long>(v)')}:" in done.stderr
    assert "1e+20 is outside the range of representable values" in done.stderr


def test_an_index_beyond_a_vector_is_reported(broken: Path, options: dict[str, str]) -> None:
    # Within the vector's memory, so only _GLIBCXX_ASSERTIONS (libstdc++) catches it.
    if (
        "libstdc++"
        not in subprocess.run(
            ["ldd", str(broken)], capture_output=True, text=True, check=False
        ).stdout
    ):
        pytest.skip("not libstdc++: _GLIBCXX_ASSERTIONS checks nothing")
    done = run(
        broken,
        "element",
        "4",
        "0",
        asan=options["ASAN_OPTIONS_CPP"],
        ubsan=options["UBSAN_OPTIONS"],
    )
    assert done.returncode != 0
    assert "Assertion '__n < this->size()' failed" in done.stderr


def test_a_leak_is_reported_in_the_cpp_tests_only(broken: Path, options: dict[str, str]) -> None:
    ubsan = options["UBSAN_OPTIONS"]
    done = run(broken, "leak", "8", "1", asan=options["ASAN_OPTIONS_CPP"], ubsan=ubsan)
    assert done.returncode != 0
    assert "ERROR: LeakSanitizer: detected memory leaks" in done.stderr
    assert "32 byte(s) in 1 object(s)" in done.stderr
    done = run(broken, "leak", "8", "1", asan=options["ASAN_OPTIONS_PYTHON"], ubsan=ubsan)
    assert (done.returncode, done.stderr) == (0, "")


CALL = """
import ctypes, sys
library = ctypes.CDLL(sys.argv[1])
print("result", library.write_at(int(sys.argv[2]), int(sys.argv[3])), flush=True)
"""


@pytest.mark.parametrize(("index", "reported"), [(3, False), (4, True)])
def test_a_sanitized_library_in_python_is_checked(
    broken: Path, options: dict[str, str], index: int, reported: bool
) -> None:
    env = {
        **os.environ,
        "LD_PRELOAD": f"{LIBASAN} {LIBUBSAN}",
        "ASAN_OPTIONS": options["ASAN_OPTIONS_PYTHON"],
        "UBSAN_OPTIONS": options["UBSAN_OPTIONS"],
    }
    library = broken.parent / "libbroken.so"
    done = subprocess.run(
        [sys.executable, "-c", CALL, str(library), "4", str(index)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if reported:
        assert done.returncode != 0
        assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stderr
        assert "result" not in done.stdout
    else:
        assert (done.returncode, done.stdout) == (0, "result 14\n"), done.stderr
