"""The optimizers over θ on the same models, same run: SciPy's L-BFGS-B against the core's (lmm::fit).

    python benchmarks/bench_optimizer.py                       # every model, REML and ML
    python benchmarks/bench_optimizer.py --models sleepstudy maximal --ml

For each model and criterion: evaluations of the objective (nfev; both optimizers
evaluate the gradient with each objective evaluation), the criterion at the optimum
(its difference from the best of the optimizers, relative), the convergence verdict and
the time of the optimization (median of --repeat runs). sim_long and maximal need
``python benchmarks/simulate.py`` first (benchmarks/data/); they are skipped otherwise.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
import warnings

HERE = pathlib.Path(__file__).parent
THREADS = "1"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import lmm  # noqa: E402

MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", lambda: lmm.datasets.load("sleepstudy")),
    "sleepstudy_diag": ("Reaction ~ Days + (Days || Subject)", lambda: lmm.datasets.load("sleepstudy")),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: lmm.datasets.load("penicillin")),
    "pastes": ("strength ~ 1 + (1 | batch/cask)", lambda: lmm.datasets.load("pastes")),
    "machines": ("score ~ Machine + (0 + Machine | Worker)", lambda: lmm.datasets.load("machines")),
    "dyestuff": ("Yield ~ 1 + (1 | Batch)", lambda: lmm.datasets.load("dyestuff")),
    "dyestuff2": ("Yield ~ 1 + (1 | Batch)", lambda: lmm.datasets.load("dyestuff2")),
    "insteval": ("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", lambda: lmm.datasets.load("insteval")),
    "sim_long": ("y ~ 1 + t + (1 + t | subj)", lambda: pd.read_csv(HERE / "data" / "sim_long.csv")),
    "maximal": ("y ~ 1 + a*b*c + (1 + a*b*c | subj) + (1 + a*b*c | item)",
                lambda: pd.read_csv(HERE / "data" / "maximal.csv")),
}


def run(model, optimizer: str, reml: bool, repeat: int):
    times, res = [], None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            res = model.fit(reml=reml, optimizer=optimizer)
            times.append(time.perf_counter() - t0)
    return res, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--optimizers", nargs="*", default=["L-BFGS-B", "core"])
    crit = parser.add_mutually_exclusive_group()
    crit.add_argument("--ml", action="store_true", help="ML only")
    crit.add_argument("--reml", action="store_true", help="REML only")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fit; the median time is shown")
    args = parser.parse_args()
    criteria = [True] if args.reml else [False] if args.ml else [True, False]
    print(f"threads {THREADS}; time: median of {args.repeat} fits (whole LinearMixedModel.fit)")
    print(f"{'model':16s} {'crit':4s} {'optimizer':9s} {'nfev':>5s} {'criterion':>20s} {'rel. diff':>9s} "
          f"{'conv':4s} {'time':>9s}  ratio")
    for name in args.models:
        formula, load = MODELS[name]
        try:
            data = load()
        except FileNotFoundError:
            print(f"{name:16s} skipped: run benchmarks/simulate.py first")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = lmm.LinearMixedModel(formula, data)
        repeat = 1 if model.ntheta > 20 or len(data) > 50000 else args.repeat
        for reml in criteria:
            rows = [(opt, *run(model, opt, reml, repeat)) for opt in args.optimizers]
            best = min(r.objective for _, r, _ in rows)
            base = rows[0][2]
            for opt, r, t in rows:
                rel = (r.objective - best) / abs(best)
                print(f"{name:16s} {'REML' if reml else 'ML':4s} {opt:9s} {r.optinfo.nfev:5d} {r.objective:20.12f} "
                      f"{rel:9.1e} {'yes' if r.converged else 'NO':4s} {t * 1e3:7.1f}ms  {t / base:5.2f}")


if __name__ == "__main__":
    main()
