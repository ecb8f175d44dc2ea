"""Scaling table: setup (design + one pass to form the crossproducts) and time per
objective evaluation (and per evaluation with the exact gradient) as n and the numbers
of levels grow, with the flops of the dense block per evaluation and the rate reached
against the machine's dgemm rate measured in the same run.

    python benchmarks/bench_scaling.py                       # the default grids
    python benchmarks/bench_scaling.py --sizes 100000 1000000 --items 1000 10000 --format markdown

Models: sim_long ``y ~ 1 + t + (1 + t | subj)`` with 2,000 subjects (levels fixed: only
n changes; per-evaluation time must not grow with n), and sim_crossed-like data
``y ~ 1 + (1 | user) + (1 | item)`` with 6,040 users and ``--items`` items (the dense
block's order) at each of ``--sizes`` rows (skewed counts, as simulate.sim_crossed).
Evaluations run as a fit runs them (BLAS on one thread, the core's dense kernels on the
threads of the environment, or ``--threads N``), recorded in the header. The flops are
the dense block's: q³/3 for its factorization (an evaluation), 2q³/3 with its inverse
(with the gradient), q = its order. lmm only.
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


def rate(flops: float, seconds: float, q: int) -> str:
    """GF/s of the dense block's flops in an evaluation's time (blank for blocks under 100)."""
    return f"{flops / seconds / 1e9:.1f}" if q >= 100 else ""


def dgemm_rate(threads: int) -> float:
    """GF/s of a 2,000-order dgemm on `threads` threads (NumPy's BLAS), best of three."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    a, b = np.random.default_rng(0).random((2, 2000, 2000))
    with threadpool_limits(threads):
        a @ b
        best = min(timed(lambda: a @ b, 1) for _ in range(3))
    return 2 * 2000**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--items", nargs="+", type=int, default=[1_000, 3_000, 10_000],
                        help="levels of the crossed model's second factor (the dense block's order)")
    parser.add_argument("--threads", type=int, default=None, help="pin threads (default: the environment's)")
    parser.add_argument("--repeat", type=int, default=3, help="evaluations timed per case (median)")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    args = parser.parse_args()
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import lmm
    from lmm import _threads

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_fit
    import simulate

    threads = _threads.user_threads()
    gemm1, gemm = dgemm_rate(1), dgemm_rate(threads)
    cases = [("sim_long", "y ~ 1 + t + (1 + t | subj)", 2000,
              functools.partial(lambda n: simulate.sim_long(nsubj=2000, ntimes=max(n // 2000, 2)), n))
             for n in args.sizes]
    cases += [("sim_crossed", "y ~ 1 + (1 | user) + (1 | item)", q,
               functools.partial(lambda n, q: simulate.sim_crossed(n=n, nusers=6040, nitems=q), n, q))
              for q in args.items for n in args.sizes]
    rows = []
    for name, formula, levels, make in cases:
        data = make()
        t0 = time.perf_counter()
        model = lmm.LinearMixedModel(formula, data)
        setup = time.perf_counter() - t0
        theta = model.theta_start * 0.5
        q = model.core.tail_size
        with _threads.dense_blas(q):
            per_eval = timed(functools.partial(model.objective, theta), args.repeat)
            per_grad = timed(functools.partial(model.objective_and_gradient, theta), args.repeat)
        flops, flops_grad = q**3 / 3, 2 * q**3 / 3
        rows.append([name, f"{len(data):,}", f"{levels:,}", f"{q:,}", f"{setup:.2f}", f"{per_eval * 1e3:.1f}",
                     f"{per_grad * 1e3:.1f}", f"{flops_grad:.2e}", rate(flops, per_eval, q),
                     rate(flops_grad, per_grad, q)])
        print(f"  {name} n={len(data)} levels={levels} done", file=sys.stderr, flush=True)
        del data, model

    cols = ["model", "n", "levels", "dense order q", "setup (s)", "eval (ms)", "eval + gradient (ms)",
            "dense flops (with gradient)", "GF/s eval", "GF/s with gradient"]
    print(f"# dense kernels on {threads} thread(s); dgemm {gemm1:.1f} GF/s on 1 thread, {gemm:.1f} on {threads}; "
          f"median of {args.repeat} evaluations")
    bench_fit.print_table(cols, rows, args.format)


if __name__ == "__main__":
    main()
