"""Scaling table: setup (design + one pass to form the crossproducts) and time per
objective evaluation (and per evaluation with the exact gradient) as n grows with
the numbers of levels fixed. Per-evaluation time must not grow with n.

    python benchmarks/bench_scaling.py                       # n = 1e4, 1e5, 1e6
    python benchmarks/bench_scaling.py --sizes 10000 10000000 --format markdown

Models: sim_long ``y ~ 1 + t + (1 + t | subj)`` with 2,000 subjects and
sim_crossed ``y ~ 1 + (1 | user) + (1 | item)`` with 600 users × 400 items (levels
fixed so that only n changes). lmm only; threads pinned with --threads (default 1).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time


def timed(fn, repeat: int) -> float:
    """Median wall time of fn() over repeat calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="evaluations timed per size (median)")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)


    import lmm

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_fit
    import simulate

    models = {
        "sim_long": ("y ~ 1 + t + (1 + t | subj)", lambda n: simulate.sim_long(nsubj=2000, ntimes=max(n // 2000, 2))),
        "sim_crossed": ("y ~ 1 + (1 | user) + (1 | item)", lambda n: simulate.sim_crossed(n=n, nusers=600, nitems=400)),
    }
    rows = []
    for name, (formula, make) in models.items():
        for n in args.sizes:
            data = make(n)
            t0 = time.perf_counter()
            model = lmm.LinearMixedModel(formula, data)
            setup = time.perf_counter() - t0
            theta = model.theta_start * 0.5
            per_eval = timed(functools.partial(model.objective, theta), args.repeat)
            per_grad = timed(functools.partial(model.objective_and_gradient, theta), args.repeat)
            rows.append([name, f"{len(data):,}", f"{setup:.3f}", f"{per_eval * 1e3:.2f}", f"{per_grad * 1e3:.2f}"])
            print(f"  {name} n={len(data)} done", file=sys.stderr, flush=True)
            del data, model

    cols = ["model", "n", "setup (s)", "eval (ms)", "eval + gradient (ms)"]
    print(f"# threads pinned to {args.threads}; median of {args.repeat} evaluations")
    bench_fit.print_table(cols, rows, args.format)

if __name__ == "__main__":
    main()
