#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and torch installed (no network needed): builds and
# installs pyinfer, then runs the named sections (all of them by default, in this order):
#   tests     the GPU tests (`pytest -m gpu`)
#   loaders   models loaded on CUDA with every framework there (scripts/gpu_loaders_check.py)
#   profiler  ResNet50 on CUDA: eager, CUDA graphs, ONNX Runtime, events vs host
#             (scripts/gpu_profiler_check.py)
#   engine    the inference engine on CUDA: pinned, overlapped dataset pipeline with and without
#             overlap, real out-of-memory back-off (scripts/gpu_engine_check.py)
#   timing    the timing/bandwidth table of benchmarks/gpu_timing.py
#   suite     the whole test suite
#   loop      the timed loop's overhead against torch.utils.benchmark.Timer
#   bench     the benchmark suite on CUDA (`pyinfer bench --quick --device cuda`); its JSON
#             and Markdown tables go to "$OUT/bench_cuda.json" / ".md" (or the current folder)
# A device session is short: name only the sections an issue needs, e.g.
# `scripts/gpu_check.sh tests engine`. Writes a copy of the log to "$OUT/gpu_check.log" when OUT
# is set. Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}

sections=("$@")
[[ ${#sections[@]} -eq 0 ]] && sections=(tests loaders profiler engine timing suite loop bench)
for section in "${sections[@]}"; do
  case $section in
    tests | loaders | profiler | engine | timing | suite | loop | bench) ;;
    *) echo "unknown section '$section'; use: tests loaders profiler engine timing suite loop bench" >&2
       exit 2 ;;
  esac
done
wants() { [[ " ${sections[*]} " == *" $1 "* ]]; }

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

pytest_args=(-m gpu -p no:cacheprovider -q tests/)
if "$python" -c "import pytest_cov" 2>/dev/null; then
  pytest_args+=(--no-cov)
else  # the configured addopts name pytest-cov options: replace them
  pytest_args+=(-o "addopts=-ra --strict-markers --import-mode=importlib")
fi
if wants tests; then
  echo "== GPU tests"
  timeout 300 "$python" -m pytest "${pytest_args[@]}"
fi

if wants loaders; then
  echo "== models loaded on CUDA with each framework, checked against the CPU"
  timeout 300 "$python" scripts/gpu_loaders_check.py
fi

if wants profiler; then
  echo "== profiler: ResNet50 on CUDA (torch eager, CUDA graphs, ONNX Runtime), events vs host"
  timeout 480 "$python" scripts/gpu_profiler_check.py
fi

if wants engine; then
  echo "== inference engine on CUDA: pinned, overlapped dataset pipeline; out-of-memory back-off"
  timeout 400 "$python" scripts/gpu_engine_check.py
fi

if wants timing; then
  echo "== timing and bandwidth"
  timeout 180 "$python" benchmarks/gpu_timing.py
fi

if wants suite; then
  echo "== whole test suite on this machine (Python $("$python" -c 'import sys; print(sys.version.split()[0])'))"
  all_args=("${pytest_args[@]}")
  all_args=("${all_args[@]/#gpu/}")  # drop the marker filter: -m "" selects everything
  timeout 300 "$python" -m pytest "${all_args[@]}" -x
fi

if wants loop; then
  echo "== timed-loop overhead, with torch.utils.benchmark.Timer"
  timeout 120 "$python" benchmarks/bench_time_calls.py --rounds 5
fi
if wants bench; then
  echo "== benchmark suite on CUDA: pyinfer bench --quick --device cuda"
  bench_out=${OUT:-.}
  # Exit status 3 (a measurement did not become stable) still printed and saved every table.
  status=0
  timeout 500 "$python" -m pyinfer bench --quick --device cuda \
    --json "$bench_out/bench_cuda.json" --markdown "$bench_out/bench_cuda.md" || status=$?
  if [[ $status -ne 0 && $status -ne 3 ]]; then
    echo "pyinfer bench failed with status $status" >&2
    exit "$status"
  fi
fi
echo "== gpu_check passed"
