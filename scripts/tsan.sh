#!/usr/bin/env bash
# The C++ concurrency tests of the headers under ThreadSanitizer (docs/hardening.md).
#
# Builds each test program below with -fsanitize=thread -O1 -g and runs it with
# TSAN_OPTIONS=halt_on_error=1: any data race, lock-order inversion or other report fails the
# run (exit status non-zero), as does a failed CHECK. Usage:
#   scripts/tsan.sh [build-dir]            (default build/tsan)
#   CXX=clang++ scripts/tsan.sh            another compiler (g++ or clang++ with libtsan)
#   PYINFER_TSAN_INCLUDE=DIR scripts/tsan.sh   test the headers in DIR instead of src/cpp/include
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build/tsan"}
cxx=${CXX:-c++}
include=${PYINFER_TSAN_INCLUDE:-"$root/src/cpp/include"}
tests=(tests/cpp/test_concurrency.cpp tests/cpp/test_arrivals.cpp)
start=$(date +%s)
mkdir -p "$build"

# The runtime must work on this kernel before a clean run means anything: a program with a
# deliberate race must be reported. Kernels with more than 28 bits of mmap randomisation
# (vm.mmap_rnd_bits) break older TSan runtimes ("unexpected memory mapping"); the tests then
# run with address randomisation off for the test process only (setarch -R).
cat > "$build/race.cpp" <<'CPP'
#include <thread>
int shared_value = 0;
int main() {
  std::thread t([] { shared_value = 1; });
  shared_value = 2;
  t.join();
  return 0;
}
CPP
"$cxx" -std=c++17 -fsanitize=thread -O1 -g "$build/race.cpp" -o "$build/race" -pthread
runner=()
probe=$(TSAN_OPTIONS=halt_on_error=1 "$build/race" 2>&1 || true)
if grep -q "unexpected memory mapping\|FATAL: ThreadSanitizer" <<<"$probe"; then
  runner=(setarch "$(uname -m)" -R)
  probe=$(TSAN_OPTIONS=halt_on_error=1 "${runner[@]}" "$build/race" 2>&1 || true)
  echo "-- TSan needs address randomisation off here: running the tests under setarch -R"
fi
if ! grep -q "WARNING: ThreadSanitizer: data race" <<<"$probe"; then
  echo "tsan.sh: the ThreadSanitizer runtime of $cxx does not report a deliberate race:" >&2
  echo "$probe" >&2
  exit 1
fi
echo "-- the TSan runtime of $cxx reports a deliberate data race"

status=0
for source in "${tests[@]}"; do
  name=$(basename "$source" .cpp)
  echo "== $name (ThreadSanitizer) =="
  "$cxx" -std=c++17 -fsanitize=thread -O1 -g -fno-omit-frame-pointer \
    -Wall -Wextra -Wpedantic -Werror -I"$include" "$root/$source" -o "$build/$name" -pthread -ldl
  # exitcode=66 (TSan's default), second_deadlock_stack: the full picture of a lock inversion.
  if ! TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
    "${runner[@]}" "$build/$name"; then
    echo "tsan.sh: $name failed under ThreadSanitizer" >&2
    status=1
    break
  fi
done
if [[ $status -eq 0 ]]; then
  echo "ThreadSanitizer: no report in $(( $(date +%s) - start )) s"
fi
exit $status
