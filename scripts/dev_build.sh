#!/usr/bin/env bash
# In-place development build: compiles pyinfer._core into src/pyinfer/ so that
# `PYTHONPATH=src python -m pytest` runs without installing. Usage: scripts/dev_build.sh [build-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build/dev"}
python=${PYTHON:-python3}
pybind11_dir=$("$python" -m pybind11 --cmakedir)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$pybind11_dir" -DPython_EXECUTABLE="$(command -v "$python")" \
  -DPYINFER_BUILD_CPP_TESTS=ON "${@:2}" >/dev/null
cmake --build "$build"
cp "$build"/_core*.so "$root/src/pyinfer/"
echo "built $(ls "$root"/src/pyinfer/_core*.so)"
