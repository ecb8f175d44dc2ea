"""Fit one model with lmm and print a JSON line (used by bench_fit.py).

    python benchmarks/fit_lmm.py DATA.csv FORMULA [--ml]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

import lmm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data")
    parser.add_argument("formula")
    parser.add_argument("--ml", action="store_true")
    args = parser.parse_args()
    data = pd.read_csv(args.data)
    t0 = time.perf_counter()
    res = lmm.lmer(args.formula, data, REML=not args.ml)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"time": elapsed, "theta": res.theta.tolist(), "objective": res.objective,
                      "nfev": res.optinfo.nfev, "converged": res.converged}))


if __name__ == "__main__":
    main()
