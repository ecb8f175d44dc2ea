#!/usr/bin/env bash
# CI lint: type-check python/lmm with mypy, then lint python/lmm, tests and benchmarks
# with ruff, both configured in pyproject.toml ([tool.mypy], [tool.ruff]). Installs the
# two tools into the active Python environment, which must already hold lmm's
# dependencies (mypy reads NumPy's stubs); lmm itself need not be built (mypy reads
# python/lmm/_core.pyi). Both steps run; the script fails if either reports an error.
#
# Usage: bash .ci/lint.sh
set -uo pipefail
cd "$(dirname "$0")/.."

# Pinned: a new release can add checks, which should arrive by a commit, not by CI.
python -m pip install "mypy==2.4.1" "ruff==0.17.6" || exit 1

status=0
echo "== mypy"
python -m mypy || status=1
echo "== ruff check"
python -m ruff check python/lmm tests benchmarks || status=1
exit "$status"
