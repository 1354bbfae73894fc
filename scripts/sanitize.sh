#!/usr/bin/env bash
# The native core under AddressSanitizer + UndefinedBehaviorSanitizer (docs/hardening.md).
#
#   1. builds the C++ tests of the headers (tests/cpp) with -DPYINFER_SANITIZE=ON (the flags are
#      CMakeLists.txt's) and runs them with ctest under ASan, UBSan and LeakSanitizer, halting on
#      the first report;
#   2. builds the sanitized pyinfer._core and runs the Python tests of the core against it, in a
#      copy of src/pyinfer, with the ASan and UBSan runtimes preloaded into the interpreter
#      (LeakSanitizer off there: CPython keeps its objects alive until exit by design).
#
# Any sanitizer report fails the run (exit status non-zero). Usage:
#   PYTHON=.venv/bin/python scripts/sanitize.sh [build-dir]   (default build/sanitize)
#   scripts/sanitize.sh --print-options   the sanitizer runtime options, one VAR=VALUE a line
set -euo pipefail

# Shared by both halves; tests/test_sanitizers.py runs its deliberately broken program with these.
asan_common="halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
asan_common+=":check_initialization_order=1:strict_init_order=1"
ubsan="print_stacktrace=1:halt_on_error=1"
asan_cpp="$asan_common:detect_leaks=1"
# verify_asan_link_order=0: the interpreter is not linked with ASan, its runtime is preloaded.
# quarantine_size_mb=64 (256 by default): tests/test_memory.py frees 150-200 MB blocks and checks
# that the resident memory drops; a block larger than the quarantine is released at once.
asan_python="$asan_common:detect_leaks=0:verify_asan_link_order=0:quarantine_size_mb=64"

if [[ ${1:-} == --print-options ]]; then
  printf 'ASAN_OPTIONS_CPP=%s\nASAN_OPTIONS_PYTHON=%s\nUBSAN_OPTIONS=%s\n' \
    "$asan_cpp" "$asan_python" "$ubsan"
  exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build/sanitize"}
python=${PYTHON:-python3}
python=$(command -v "$python")
# cmake, ninja and pybind11 come with the `test` extra: prefer the ones beside the interpreter.
PATH="$(dirname "$python"):$PATH"
start=$(date +%s)

cxx=${CXX:-c++}
libasan=$("$cxx" -print-file-name=libasan.so)
libubsan=$("$cxx" -print-file-name=libubsan.so)
if [[ ! -e $libasan || ! -e $libubsan ]]; then
  echo "sanitize.sh: $cxx has no ASan/UBSan runtime (libasan.so, libubsan.so)" >&2
  exit 1
fi

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
echo "-- configure $build (ASan + UBSan, Debug)"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER="$(command -v "$cxx")" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DPYINFER_SANITIZE=ON -DPYINFER_BUILD_CPP_TESTS=ON -DPYINFER_BUILD_PYTHON=ON \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$python" >/dev/null
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)"

# Every translation unit really was built with the sanitizers.
"$python" - "$build/compile_commands.json" <<'EOF'
import json, sys
units = json.load(open(sys.argv[1]))
bare = [u["file"] for u in units if "-fsanitize=address,undefined" not in u["command"]]
assert units and not bare, f"built without the sanitizers: {bare}"
print(f"-- {len(units)} translation units built with -fsanitize=address,undefined")
EOF

echo "== C++ tests of the headers (ASan + UBSan + LeakSanitizer) =="
ASAN_OPTIONS=$asan_cpp UBSAN_OPTIONS=$ubsan \
  ctest --test-dir "$build" --output-on-failure --stop-on-failure

echo "== Python tests of the core against the sanitized _core (ASan + UBSan) =="
# A copy of the package with the sanitized extension, first on PYTHONPATH: whatever pyinfer is
# installed (CI installs the release build) is not the one tested.
package="$build/python/pyinfer"
rm -rf "$build/python"
mkdir -p "$build/python"
cp -R "$root/src/pyinfer" "$package"
rm -f "$package"/_core*.so
rm -rf "$package/__pycache__"
cp "$build"/_core*.so "$package/"
core=$(ls "$package"/_core*.so)
# ldd's output read whole first: `ldd | grep -q` under pipefail fails when grep exits at the
# first match while ldd is still writing (SIGPIPE), which once failed a CI run on a good module.
deps=$(ldd "$core")
if [[ $deps != *libasan* ]]; then
  echo "sanitize.sh: $core is not linked with libasan" >&2
  exit 1
fi

cd "$root"
tests=(tests/test_clock.py tests/test_histogram.py tests/test_recorder.py tests/test_summary.py
  tests/test_memory.py tests/test_time_calls.py tests/test_cuda.py tests/test_cuda_fake_driver.py)
# The interpreter asserts that it imported the sanitized module before running the tests.
# PYTHONMALLOC=malloc: Python objects and buffers come from malloc, where ASan watches them.
LD_PRELOAD="$libasan $libubsan${LD_PRELOAD:+ $LD_PRELOAD}" \
  ASAN_OPTIONS=$asan_python UBSAN_OPTIONS=$ubsan PYTHONMALLOC=malloc \
  PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" PYINFER_SANITIZED_CORE="$core" \
  "$python" - "${tests[@]}" <<'EOF'
import os, sys
import pyinfer._core
import pytest

expected = os.environ["PYINFER_SANITIZED_CORE"]
assert os.path.samefile(pyinfer._core.__file__, expected), (pyinfer._core.__file__, expected)
print(f"-- testing {pyinfer._core.__file__}")
# pyinfer's distribution declares a pytest plugin, so pytest marks the pyinfer package for
# assertion rewriting, and warns that it is already imported here (on purpose, just above).
rewrite = "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"
sys.exit(pytest.main(["-q", "--no-cov", "-p", "no:cacheprovider", "-W", rewrite, *sys.argv[1:]]))
EOF
echo "sanitizers: no report in $(( $(date +%s) - start )) s"
