#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and torch installed (no network needed): builds and
# installs pyinfer, runs the GPU tests (`pytest -m gpu`), loads models on CUDA with every framework
# there (scripts/gpu_loaders_check.py), runs the inference engine on CUDA (pinned, overlapped
# dataset pipeline with and without overlap, real OOM back-off: scripts/gpu_engine_check.py),
# then prints the timing/bandwidth table of benchmarks/gpu_timing.py. Writes a copy of the log to "$OUT/gpu_check.log" when OUT is set.
# Exits non-zero on any failure. Usage: scripts/gpu_check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}

if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
fi

echo "== machine"
nvidia-smi -L || echo "(nvidia-smi not available)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$python" - <<'PY'
import sys
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"device 0: {torch.cuda.get_device_name(0)}")
PY

echo "== build and install"
export PIP_BREAK_SYSTEM_PACKAGES=1  # a system interpreter (PEP 668) would refuse otherwise
if ! timeout 300 "$python" -m pip install --no-build-isolation --no-deps --no-index . >pip.log 2>&1; then
  tail -n 15 pip.log
  # e.g. a checkout without README.md (pyproject names it): build in place instead.
  echo "pip install failed; falling back to the in-place build (scripts/dev_build.sh)"
  PYTHON="$python" timeout 300 scripts/dev_build.sh "$root/build/gpu-check"
  export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
else
  tail -n 3 pip.log
fi
rm -f pip.log
(cd / && "$python" -c "import pyinfer, sys; print('installed', pyinfer.__version__, 'at', pyinfer.__file__, '| cuda_available:', pyinfer.cuda_available(), pyinfer.cuda_unavailable_reason())")

echo "== GPU tests"
pytest_args=(-m gpu -p no:cacheprovider -q tests/)
if "$python" -c "import pytest_cov" 2>/dev/null; then
  pytest_args+=(--no-cov)
else  # the configured addopts name pytest-cov options: replace them
  pytest_args+=(-o "addopts=-ra --strict-markers --import-mode=importlib")
fi
timeout 300 "$python" -m pytest "${pytest_args[@]}"

echo "== models loaded on CUDA with each framework, checked against the CPU"
timeout 300 "$python" scripts/gpu_loaders_check.py

echo "== inference engine on CUDA: pinned, overlapped dataset pipeline; out-of-memory back-off"
timeout 400 "$python" scripts/gpu_engine_check.py

echo "== timing and bandwidth"
timeout 180 "$python" benchmarks/gpu_timing.py

echo "== whole test suite on this machine (Python $("$python" -c 'import sys; print(sys.version.split()[0])'))"
all_args=("${pytest_args[@]}")
all_args=("${all_args[@]/#gpu/}")  # drop the marker filter: -m "" selects everything
timeout 300 "$python" -m pytest "${all_args[@]}" -x

echo "== timed-loop overhead, with torch.utils.benchmark.Timer"
timeout 120 "$python" benchmarks/bench_time_calls.py --rounds 5
echo "== gpu_check passed"
