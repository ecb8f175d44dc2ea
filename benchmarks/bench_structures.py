"""Cost of a structured covariance term per evaluation of the criterion and its gradient.

Simulated longitudinal data (subjects × occasions, two measurements per occasion), one
random-effects term ``<structure>(0 + factor(time) | subject)``; for each structure the
median time of ``objective_and_gradient`` at the starting parameters, and of a whole fit,
against the unstructured term (``us``) of the same columns. lmm only: what is measured is
the parameterization's share of an evaluation (λ from par, the chain rule), which lme4
does not expose. Threads: OPENBLAS_NUM_THREADS as set (the script reports it).

    python benchmarks/bench_structures.py [--subjects 20000] [--times 4] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd

import lmm

STRUCTURES = ["us", "diag", "cs", "cs(hom)", "ar1", "ar1(het)", "toep"]


def simulate(nsubj: int, ntime: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(ntime)
    b = rng.multivariate_normal(np.zeros(ntime), 4.0 * 0.6 ** np.abs(np.subtract.outer(t, t)), nsubj)
    subj = np.repeat(np.arange(nsubj), 2 * ntime)
    time_ = np.tile(np.repeat(t, 2), nsubj)
    y = 10 + 0.5 * time_ + b[subj, time_] + rng.standard_normal(subj.size)
    return pd.DataFrame({"subject": [f"s{i}" for i in subj], "time": time_, "y": y})


def term(structure: str) -> str:
    name, _, variant = structure.partition("(")
    hom = {"hom)": ", hom = TRUE", "het)": ", hom = FALSE"}.get(variant, "")
    return f"{name}(0 + factor(time) | subject{hom})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=20000)
    ap.add_argument("--times", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    data = simulate(args.subjects, args.times)
    print(f"n = {len(data)}, {args.subjects} subjects × {args.times} occasions × 2; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'structure':10} {'ntheta':>6} {'eval+grad ms':>13} {'vs us':>6} {'fit s':>7} {'evals':>6} "
          f"{'criterion':>16}")
    base = None
    for s in STRUCTURES:
        m = lmm.LinearMixedModel(f"y ~ time + {term(s)}", data)
        start = m.theta_start
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            m.objective_and_gradient(start)
            times.append(time.perf_counter() - t0)
        per = 1e3 * statistics.median(times)
        base = per if base is None else base
        t0 = time.perf_counter()
        res = m.fit()
        fit_s = time.perf_counter() - t0
        print(f"{s:10} {m.ntheta:6d} {per:13.3f} {per / base:6.2f} {fit_s:7.3f} {res.optinfo.nfev:6d} "
              f"{res.objective:16.6f}")


if __name__ == "__main__":
    main()
