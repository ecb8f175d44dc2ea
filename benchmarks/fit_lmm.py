"""Fit one model with lmm and print a JSON line (used by bench_fit.py).

    python benchmarks/fit_lmm.py DATA.csv FORMULA [--ml] [--intervals]

A small crossed model with string ids and sleepstudy are fitted first (as fit_lme4.R
fits sleepstudy first): the process's one-time costs (pages of the libraries, OpenBLAS's
buffers, pyarrow's string kernels) are then not counted as the fit's time or memory.

The line reports the time of the whole ``lmm.lmer`` call from the frame (design and fit),
made right after reading the CSV as a user makes it, and of printing its summary
(``print(res)``: lmerTest's Satterthwaite df included), θ, the criterion and the memory
the fit adds, measured by a second call from a clean baseline:
``fit_mib`` is the peak resident set during ``lmm.lmer`` minus the resident set just
before it (data loaded, freed memory returned to the system), beside its budget
``budget_mib`` = 2 × the numeric columns the formula uses (``data_mib``) + the
blocked factor L (``factor_mib``: the dense tail and the sparse blocks).
With ``--intervals`` a second line follows: the time of the profile intervals
(``res.confint()``, lme4's ``confint(fit)``) and their bounds.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import re
import time

import numpy as np
import pandas as pd

import lmm


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), MiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def warm_up() -> None:
    """Fit a small crossed model with string ids (its dense block of order 800 goes to
    LAPACK), as read from a CSV, and sleepstudy's random slopes (fit_lme4.R's warm-up)."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 1000, 8000), rng.integers(0, 800, 8000)
    y = rng.standard_normal(1000)[a] + rng.standard_normal(800)[b] + rng.standard_normal(8000)
    frame = pd.read_csv(io.StringIO(pd.DataFrame({"y": y, "a": a, "b": b}).assign(
        a=lambda f: "a" + f["a"].astype(str), b=lambda f: "b" + f["b"].astype(str)).to_csv(index=False)))
    lmm.lmer("y ~ 1 + (1 | a) + (1 | b)", frame)
    lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("formula")
    parser.add_argument("--ml", action="store_true")
    parser.add_argument("--intervals", action="store_true", help="then time the profile intervals")
    args = parser.parse_args()
    data = pd.read_csv(args.data)
    warm_up()
    # The call as a user makes it, right after reading the data.
    t0 = time.perf_counter()
    res = lmm.lmer(args.formula, data, REML=not args.ml)
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    print(res)
    summary = time.perf_counter() - t0
    # The memory of the same call, measured by a second one from a clean baseline.
    del res
    try:  # hand freed buffers back, so that the baseline is the data itself
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as fh:  # restart the peak (VmHWM) from here
        fh.write("5")
    before = status_mib("VmRSS")
    res = lmm.lmer(args.formula, data, REML=not args.ml)
    fit_mib = status_mib("VmHWM") - before
    model = res.model
    used = [c for c in data.columns
            if re.search(rf"\b{re.escape(str(c))}\b", model.formula) and pd.api.types.is_numeric_dtype(data[c])]
    data_mib = data[used].memory_usage(index=False).sum() / 2**20
    factor_mib = model._core.factor_bytes / 2**20
    print(json.dumps({"time": elapsed, "summary": summary, "theta": res.theta.tolist(), "objective": res.objective,
                      "nfev": res.optinfo.nfev, "converged": res.converged, "fit_mib": fit_mib,
                      "data_mib": data_mib, "factor_mib": factor_mib, "budget_mib": 2 * data_mib + factor_mib}),
          flush=True)
    if args.intervals:
        t0 = time.perf_counter()
        ci = res.confint()
        elapsed = time.perf_counter() - t0
        print(json.dumps({"intervals": elapsed, "bounds": ci.to_numpy().ravel().tolist()}))


if __name__ == "__main__":
    main()
