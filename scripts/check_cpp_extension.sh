#!/usr/bin/env bash
# Builds examples/cpp_extension (a pybind11 module timing C++ work with pyinfer's C++ headers) the
# three ways an extension author would, and runs the example's tests against each build:
#   (a) CMake directly: find_package(pyinfer CONFIG REQUIRED), pyinfer::headers;
#   (b) a plain compiler command: -I"$(python -c 'import pyinfer; print(pyinfer.get_include())')";
#   (c) pip, with build isolation, against pyinfer's wheel built here: the build environment must
#       install pyinfer-toolkit from that wheel (`pyinfer` on PyPI is an unrelated project).
# pyinfer's wheel is built once (about 1-2 min on 2 cores; scikit-build-core reuses build/ when a
# previous `pip install .` left it) and installed into a folder of its own, as is the example:
# nothing in the current environment changes. Usage:
#   scripts/check_cpp_extension.sh [work-dir]       (default build/cpp_extension)
#   PYINFER_WHEEL_DIR=dist scripts/check_cpp_extension.sh   use the pyinfer-toolkit wheel in dist/
#   PYTHON=python3 CXX=clang++ scripts/check_cpp_extension.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-"$root/build/cpp_extension"}
python=${PYTHON:-python}
cxx=${CXX:-c++}
example="$root/examples/cpp_extension"
start=$(date +%s)
step() { echo "-- $1 ($(( $(date +%s) - start )) s)"; }

rm -rf "$work"
mkdir -p "$work"

if [[ -n ${PYINFER_WHEEL_DIR:-} ]]; then
  dist=$(cd "$PYINFER_WHEEL_DIR" && pwd)
else
  step "building pyinfer's wheel"
  dist="$work/dist"
  "$python" -m pip wheel --quiet --no-deps -w "$dist" "$root"
fi
wheels=("$dist"/pyinfer_toolkit-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
  echo "expected one pyinfer_toolkit-*.whl in $dist, found: ${wheels[*]}" >&2
  exit 1
fi
wheel=${wheels[0]}
"$python" -m pip install --quiet --no-deps --target "$work/pyinfer" "$wheel"
site="$work/pyinfer"
include=$(PYTHONPATH="$site" "$python" -c 'import pyinfer; print(pyinfer.get_include())')
cmake_dir=$(PYTHONPATH="$site" "$python" -c 'import pyinfer; print(pyinfer.get_cmake_dir())')
version=$(PYTHONPATH="$site" "$python" -c 'import pyinfer; print(pyinfer.__version__)')
case $include in "$site"/*) ;; *) echo "pyinfer came from $include, not $site" >&2; exit 1 ;; esac

# Runs the example's tests with the module built in $1, checking that it is the one imported.
run_tests() {
  local built=$1
  (cd "$example" && PYTHONPATH="$built" "$python" - "$built" <<'PY'
import pathlib, sys
import pyinfer_cpp_example
where = pathlib.Path(pyinfer_cpp_example.__file__).resolve()
assert where.parent == pathlib.Path(sys.argv[1]).resolve(), where
PY
  )
  (cd "$example" && PYTHONPATH="$built" "$python" -m pytest -q)
}

step "(a) CMake: find_package(pyinfer) from $cmake_dir"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
python_exe=$("$python" -c 'import sys; print(sys.executable)')
PYTHONPATH="$site" cmake -S "$example" -B "$work/cmake" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DPython_EXECUTABLE="$python_exe" > "$work/cmake.log"
grep -qF "pyinfer $version from $cmake_dir" "$work/cmake.log" \
  || { cat "$work/cmake.log"; echo "CMake did not find pyinfer $version in $cmake_dir" >&2; exit 1; }
cmake --build "$work/cmake" >> "$work/cmake.log"
run_tests "$work/cmake"

step "(b) plain $cxx -I$include"
mkdir -p "$work/gxx"
suffix=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
# Python's and pybind11's headers as system headers (as CMake does): -Wpedantic is for pyinfer's.
pybind11_includes=()
for flag in $("$python" -m pybind11 --includes); do pybind11_includes+=(-isystem "${flag#-I}"); done
"$cxx" -std=c++17 -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -Wpedantic -Werror \
  "${pybind11_includes[@]}" -I"$include" "$example/src/pyinfer_cpp_example.cpp" \
  -o "$work/gxx/pyinfer_cpp_example$suffix" -pthread -ldl
run_tests "$work/gxx"

step "(c) pip install --find-links $dist (build isolation on)"
"$python" -m pip install -v --find-links "$dist" --target "$work/isolated" "$example" \
  > "$work/pip.log" 2>&1 || { tail -n 60 "$work/pip.log"; exit 1; }
# The isolated build environment took pyinfer-toolkit from the wheel built above, not an index.
grep -qF "Processing $wheel" "$work/pip.log" || grep -qF "$(basename "$wheel")" "$work/pip.log" \
  || { echo "the build environment did not install $wheel" >&2; tail -n 60 "$work/pip.log"; exit 1; }
if grep -qiE "pyinfer-0\.0\.[0-9]|Downloading pyinfer-" "$work/pip.log"; then
  echo "the build environment installed PyPI's unrelated 'pyinfer'" >&2
  exit 1
fi
run_tests "$work/isolated"

step "all three builds pass"
