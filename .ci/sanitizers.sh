#!/usr/bin/env bash
# CI: build the standalone C++ library and its tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (a separate Debug build) and run ctest. Any
# sanitizer report aborts the test that triggered it, which fails ctest.
#
# Usage: .ci/sanitizers.sh WORKDIR
#   WORKDIR  scratch directory for the build (created if missing)
# Eigen comes from a system Eigen >= 3.4 or from the cmeel-eigen wheel of the
# active Python (passed to CMake as Python_EXECUTABLE).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 WORKDIR" >&2
  exit 2
fi
work="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$work/build-sanitizers"
mkdir -p "$work"

# -O1 keeps Eigen's assertions (Debug: no NDEBUG) but makes the tests ~10x faster than -O0.
sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -O1"

configure=(-S "$root/cpp" -B "$build" -DCMAKE_BUILD_TYPE=Debug
  "-DCMAKE_CXX_FLAGS=$sanitize"
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
  "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined"
  -DBUILD_TESTING=ON -DLMM_BUILD_TESTS=ON -DLMM_INSTALL=OFF --no-warn-unused-cli)
if command -v ninja >/dev/null 2>&1; then
  configure+=(-G Ninja)
fi
if python="$(command -v python || command -v python3)"; then
  configure+=("-DPython_EXECUTABLE=$python")
fi

cmake "${configure[@]}"
cmake --build "$build" --parallel

# halt_on_error/abort_on_error: the first report kills the test process;
# detect_leaks: LeakSanitizer at exit; UBSan prints a stack and stops.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

ntests="$(ctest --test-dir "$build" -N | sed -n 's/^Total Tests: //p')"
if [[ "${ntests:-0}" -eq 0 ]]; then
  echo "sanitizers: ctest found no tests in $build" >&2
  exit 1
fi
ctest --test-dir "$build" --output-on-failure
echo "sanitizers: $ntests C++ test(s) passed under AddressSanitizer + UndefinedBehaviorSanitizer"
