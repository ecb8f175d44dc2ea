#!/usr/bin/env bash
# CI for the standalone C++ library: configure, build and test cpp/, install it
# into a temporary prefix, build the example program cpp/examples/fit_csv
# against the installed package (find_package(lmm)) and check that its fit of
# the bundled sleepstudy data gives lme4's REML criterion.
#
# Usage: bash .ci/cpp.sh WORK_DIR
# Needs an active Python environment: Eigen comes from the cmeel-eigen wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

work="${1:?usage: bash .ci/cpp.sh WORK_DIR}"
mkdir -p "$work"
build="$work/cpp-build"
prefix="$work/cpp-prefix"
example="$work/cpp-example-build"

python -m pip install cmeel-eigen cmake ninja

cmake -S cpp -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v python)"
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure
cmake --install "$build" --prefix "$prefix"
if grep -rn -e "$work" -e "${VIRTUAL_ENV:-$work}" "$prefix/lib/cmake/lmm"; then
  echo "the installed CMake package records a path of this build" >&2
  exit 1
fi

# The consumer sees only the installed prefix; lmmConfig.cmake finds Eigen
# again (here the cmeel-eigen wheel of the Python on PATH), recording no
# path of this build.
cmake -S cpp/examples/fit_csv -B "$example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$example"
out="$("$example/fit_csv" python/lmm/datasets/data/sleepstudy.csv \
  --response Reaction --fixed Days --random Subject:Days)"
printf '%s\n' "$out"

# lme4: REMLcrit 1743.6282719585 for Reaction ~ Days + (Days | Subject).
criterion="$(printf '%s\n' "$out" | sed -n 's/^REML criterion at convergence: //p')"
if ! awk -v c="$criterion" 'BEGIN { d = c - 1743.62827; exit !(c != "" && d < 5e-6 && d > -5e-6) }'; then
  echo "fit_csv: REML criterion '$criterion' differs from lme4's 1743.62827" >&2
  exit 1
fi
echo "fit_csv reproduces lme4's sleepstudy REML criterion ($criterion)"

# A structured term: with two columns cs(Days | Subject) is the unstructured model again.
out="$("$example/fit_csv" python/lmm/datasets/data/sleepstudy.csv \
  --response Reaction --fixed Days --structure cs Subject:Days)"
criterion="$(printf '%s\n' "$out" | sed -n 's/^REML criterion at convergence: //p')"
if ! awk -v c="$criterion" 'BEGIN { d = c - 1743.62827; exit !(c != "" && d < 5e-6 && d > -5e-6) }'; then
  printf '%s\n' "$out"
  echo "fit_csv --structure cs: REML criterion '$criterion' differs from lme4 2.x's 1743.62827" >&2
  exit 1
fi
echo "fit_csv --structure cs reproduces lme4 2.x's sleepstudy cs REML criterion ($criterion)"
