#!/usr/bin/env bash
# CI: the portable wheel (LMM_NATIVE=OFF, as README's "pip wheel" line builds it for
# other machines): build it, install it alone into a fresh environment, check that
# its extension has no AVX instructions (x86-64 baseline code only) and that it fits
# the bundled example. Prints the build's time and peak memory.
#
# Usage: bash .ci/wheel.sh WORK_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

work="${1:?usage: bash .ci/wheel.sh WORK_DIR}"
mkdir -p "$work/wheel"
/usr/bin/time -f "portable wheel build: %e s, peak memory %M KiB" \
  python -m pip wheel . --no-deps -w "$work/wheel" -Ccmake.define.LMM_NATIVE=OFF -q

python -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/python" -m pip install -q "$work"/wheel/lmm-*.whl
ext="$("$work/wheel-venv/bin/python" -c 'import lmm._core as c; print(c.__file__)')"
# (Counted, not `grep -q`: objdump killed by the closed pipe would fail the pipeline and
# pass the check.)
if [[ "$(uname -m)" == "x86_64" ]] && [[ "$(objdump -d "$ext" | grep -cE '%[yz]mm[0-9]')" != 0 ]]; then
  echo "the portable wheel's extension uses AVX registers: it was built for this machine" >&2
  exit 1
fi
# (The output is read whole before it is searched: `grep -q` on a pipe exits at the match
# and the rest of the summary would meet a closed pipe.)
out="$(cd "$work" && "$work/wheel-venv/bin/python" -m lmm)"
grep -q "REML criterion at convergence: 1743.6283" <<<"$out"
echo "portable wheel: baseline x86-64 code, fits sleepstudy"
