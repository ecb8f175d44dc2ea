"""Fitting from row chunks (``LinearMixedModel.from_chunks``) against the model of all
rows in memory: setup time (design and crossproducts) per 10⁶ rows, the fit, and the
largest relative difference of θ, β, σ and the criterion between the two.

    python benchmarks/bench_chunks.py                          # sim_crossed, 10⁶ rows, chunks of 10⁵
    python benchmarks/bench_chunks.py --rows 4000000 --chunk 250000 --format markdown

Data: sim_crossed (``y ~ 1 + x + (1 | user) + (1 | item)``, 6,040 users × 3,706 items,
skewed counts; x is a standard normal covariate added here) held in memory and handed
over as a list of row slices, so that the times are the chunked pass itself, not reading
files. lmm only; threads pinned with --threads (default 1).

With ``--parquet DIR`` the data are also written to DIR as parquet (row groups of
--chunk rows), and two fresh processes each build the model from it: one reads the file
into memory (``pd.read_parquet``, then ``LinearMixedModel``), the other reads it batch by
batch (``from_chunks`` over ``lmm.chunks.parquet_chunks``); their times and peak resident
memory (``ru_maxrss``, the interpreter and libraries included) are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def timed(fn, repeat: int):
    """(median wall time, last result) of fn() over repeat calls."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="setups timed (median)")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--parquet", metavar="DIR", help="also build the model from parquet written to DIR")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    import lmm

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import simulate
    from bench_fit import print_table

    data = simulate.sim_crossed(n=args.rows)
    data["x"] = np.random.default_rng(1).standard_normal(len(data))
    data["y"] += 0.2 * data["x"]
    formula = "y ~ 1 + x + (1 | user) + (1 | item)"
    chunks = [data.iloc[i:i + args.chunk] for i in range(0, len(data), args.chunk)]

    t_mem, full = timed(lambda: lmm.LinearMixedModel(formula, data), args.repeat)
    t_chunks, model = timed(lambda: lmm.LinearMixedModel.from_chunks(formula, chunks), args.repeat)
    t0 = time.perf_counter()
    want = full.fit()
    fit_mem = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = model.fit()
    fit_chunks = time.perf_counter() - t0

    def rel(a, b) -> float:
        a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))

    diff = max(rel(got.theta, want.theta), rel(got.fixef, want.fixef), rel(got.sigma, want.sigma),
               rel(got.objective, want.objective))
    per = 1e6 / args.rows
    rows = [
        ["in memory", f"{t_mem:.2f}", f"{t_mem * per:.2f}", f"{fit_mem:.2f}", ""],
        [f"from_chunks ({len(chunks)} × {args.chunk:,})", f"{t_chunks:.2f}", f"{t_chunks * per:.2f}",
         f"{fit_chunks:.2f}", f"{diff:.1e}"],
        ["ratio (chunks / memory)", f"{t_chunks / t_mem:.2f}", "", f"{fit_chunks / fit_mem:.2f}", ""],
    ]
    header = ["setup", "setup s", "s per 10⁶ rows", "fit s", "max rel diff"]
    print(f"{formula}: {args.rows:,} rows, {args.threads} thread(s)")
    print_table(header, rows, args.format)
    if args.parquet:
        prows = parquet_rows(data, formula, args.parquet, args.chunk)
        del data, chunks, full, model
        print()
        for r in [["model from", "setup s", "peak RSS MiB"]] + prows:
            print(("| " + " | ".join(r) + " |") if args.format == "markdown" else "  ".join(c.ljust(28) for c in r))


# One model built in a fresh process: the time and the process's peak memory.
_CHILD = """
import resource, sys, time
import pandas as pd
import lmm
from lmm.chunks import parquet_chunks
path, mode, formula = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "memory":
    lmm.LinearMixedModel(formula, pd.read_parquet(path))
else:
    lmm.LinearMixedModel.from_chunks(formula, parquet_chunks(path, ["y", "x", "user", "item"]))
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def parquet_rows(data, formula: str, directory: str, chunk: int) -> list[list[str]]:
    import subprocess

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "sim_crossed.parquet")
    data.to_parquet(path, row_group_size=chunk)
    size = os.path.getsize(path) / 2**20
    out = []
    for mode in ("memory", "chunks"):
        res = subprocess.run([sys.executable, "-c", _CHILD, path, mode, formula], capture_output=True, text=True,
                             check=True, env=os.environ.copy())
        seconds, peak = (float(v) for v in res.stdout.split())
        out.append([f"parquet ({size:.0f} MiB), {mode}", f"{seconds:.2f}", f"{peak:.0f}"])
    return out


if __name__ == "__main__":
    main()
