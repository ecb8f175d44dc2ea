#!/usr/bin/env bash
# CI for the documentation: install the docs extra's packages into the active Python
# environment and build the pages (docs/, Sphinx with MyST Markdown) with every warning
# an error, unresolved references included. The API reference is read from the
# docstrings, so lmm must be importable: installed, or PYTHONPATH=python with the
# compiled extension in python/lmm/. The examples in the pages are run by
# tests/test_docs.py, not here.
#
# Usage: bash .ci/docs.sh [OUTDIR]    (default: a temporary directory, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."

# The docs extra of pyproject.toml, installed without lmm itself (which is already
# importable, and would be rebuilt from source by pip install ".[docs]").
python -c "import tomllib" 2>/dev/null || python -m pip install tomli  # Python < 3.11
mapfile -t requirements < <(python - <<'PY'
try:
    import tomllib
except ImportError:
    import tomli as tomllib

with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PY
)
python -m pip install "${requirements[@]}"

if ! python -c "import lmm" 2>/dev/null; then
  echo "lmm is not importable: install it (pip install .) or set PYTHONPATH=python with the" \
       "compiled extension copied into python/lmm/" >&2
  exit 1
fi

if [[ $# -ge 1 ]]; then
  out="$1"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
# -E: read every page again (no saved environment); -W --keep-going: report every
# warning, then fail; -n (set in conf.py): references that resolve nowhere warn.
python -m sphinx -E -W --keep-going -q -b html docs "$out"
echo "documentation built in $out"
