"""Fit one model with lmm and print a JSON line (used by bench_fit.py).

    python benchmarks/fit_lmm.py DATA.csv FORMULA [--ml]

Besides the fit's time, θ and criterion, the line reports the memory the fit adds:
``fit_mib`` is the peak resident set during ``lmm.lmer`` minus the resident set just
before it (data loaded, freed memory returned to the system), beside its budget
``budget_mib`` = 2 × the numeric columns the formula uses (``data_mib``) + the
blocked factor L (``factor_mib``: the dense tail and the sparse blocks).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import time

import pandas as pd

import lmm


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), MiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("formula")
    parser.add_argument("--ml", action="store_true")
    args = parser.parse_args()
    data = pd.read_csv(args.data)
    try:  # hand the CSV reader's freed buffers back, so that the baseline is the data itself
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as fh:  # restart the peak (VmHWM) from here
        fh.write("5")
    before = status_mib("VmRSS")
    t0 = time.perf_counter()
    res = lmm.lmer(args.formula, data, REML=not args.ml)
    elapsed = time.perf_counter() - t0
    fit_mib = status_mib("VmHWM") - before
    model = res.model
    used = [c for c in data.columns
            if re.search(rf"\b{re.escape(str(c))}\b", model.formula) and pd.api.types.is_numeric_dtype(data[c])]
    data_mib = data[used].memory_usage(index=False).sum() / 2**20
    factor_mib = model._core.factor_bytes / 2**20
    print(json.dumps({"time": elapsed, "theta": res.theta.tolist(), "objective": res.objective,
                      "nfev": res.optinfo.nfev, "converged": res.converged, "fit_mib": fit_mib,
                      "data_mib": data_mib, "factor_mib": factor_mib, "budget_mib": 2 * data_mib + factor_mib}))


if __name__ == "__main__":
    main()
