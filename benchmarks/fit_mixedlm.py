"""Fit one model with the Rust-cored ``mixedlm`` package and print a JSON line (used by bench_fit.py).

    python benchmarks/fit_mixedlm.py DATA.csv FORMULA [--ml]

As fit_lmm.py: sleepstudy is fitted first (the process's one-time costs are not the
fit's), then the whole ``mixedlm.lmer`` call from the frame read from the CSV is timed,
then printing its summary; θ in lme4's order and the criterion are reported.
"""

from __future__ import annotations

import argparse
import json
import time

import mixedlm
import pandas as pd

import lmm  # (its bundled sleepstudy only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("formula")
    parser.add_argument("--ml", action="store_true")
    args = parser.parse_args()
    data = pd.read_csv(args.data)
    mixedlm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    t0 = time.perf_counter()
    res = mixedlm.lmer(args.formula, data, REML=not args.ml)
    elapsed = time.perf_counter() - t0
    # The fit's line first: a summary that fails or runs out of time keeps it.
    print(json.dumps({"time": elapsed, "theta": [float(v) for v in res.theta],
                      "objective": float(res.REMLcrit() if not args.ml else res.deviance()),
                      "converged": bool(res.converged)}), flush=True)
    t0 = time.perf_counter()
    print(res.summary())
    print(json.dumps({"summary": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
