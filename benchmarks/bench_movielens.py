"""MovieLens-scale crossed REML (issue 21): ``y ~ 1 + (1 | user) + (1 | item)`` on ml-25m-shaped data.

    python benchmarks/bench_movielens.py                        # 1/100, 1/10 and full size
    python benchmarks/bench_movielens.py --sizes 100 10 --format markdown

Data: ``benchmarks/simulate.py --movielens`` (generated when missing): 25,000,095 rows,
162,541 users × 59,047 items with ml-25m's heavy-tailed counts, string ids, parquet in row
groups of 10⁶; the 1/10 and 1/100 subsamples. Each fit runs in a fresh process from the
parquet path, as a user would: ``lmm.LinearMixedModel(formula, path)`` reads it batch by
batch (setup: levels, statistics, crossproducts), then ``fit()`` and ``str(res)`` (the
summary). Peak memory is the child process's maximum resident set.

- ``auto``: the default method at full size, which takes the matrix-free one (the exact
  method's dense block of 59,047² doubles exceeds ``max_dense_bytes``);
- ``matrix-free``: forced on the subsamples (``method="matrix-free"``);
- ``exact``: the blocked Cholesky, on the subsamples (--exact), the reference for θ and β;
- ``lme4``: ``benchmarks/fit_lme4.R`` on a CSV copy (--lme4 sizes, when Rscript exists).

A second seed at full size (--seeds) shows the Monte Carlo spread directly; --exact-full
evaluates the exact criterion and gradient at the full-size θ (the 59,047² dense block, about
14 GiB and 40 minutes) and the Newton step from there to the exact optimum. MixedModels.jl's
published fit of the real ml-25m (arXiv 2505.11674: 8,322 s on 48 cores, 128 GiB) is printed
for comparison, not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).parent
FORMULA = "y ~ 1 + (1 | user) + (1 | item)"
PUBLISHED = "MixedModels.jl, real ml-25m (arXiv 2505.11674): 8,322 s on 48 cores, 128 GiB"


def child(method: str, path: str, seed: int) -> None:
    """One fit in this process; prints a JSON line."""
    import numpy as np

    import lmm

    t0 = time.perf_counter()
    model = lmm.LinearMixedModel(FORMULA, path, method=method)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = model.fit(seed=seed) if model.method == "matrix-free" else model.fit()
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = str(res)
    summary = time.perf_counter() - t0
    out = {"method": model.method, "setup": setup, "fit": fit, "summary": summary, "nobs": res.nobs,
           "levels": list(res.ngroups.values()), "theta": res.theta.tolist(), "beta": res.fixef.tolist(),
           "sigma": res.sigma, "objective": res.objective, "summary_lines": len(text.splitlines())}
    if model.method == "matrix-free":
        out.update(theta_se=np.asarray(res.theta_se).tolist(), objective_se=res.objective_se, info=res.fit_info)
    print(json.dumps(out), flush=True)


def exact_at(path: str, theta: list[float]) -> None:
    """The exact criterion and gradient at θ (the dense block of the items' levels, ~14 GiB at
    full size), and the step to the exact optimum they imply, −H⁻¹∇ with H from differences of
    the matrix-free score (64 probes, common to both points); prints a JSON line."""
    import numpy as np

    import lmm
    from lmm import _core as core

    t0 = time.perf_counter()
    model = lmm.LinearMixedModel(FORMULA, path, method="exact", max_dense_bytes=float(2**36))
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    value, grad = model.objective_and_gradient(theta)
    seconds = time.perf_counter() - t0
    del model
    A = lmm.LinearMixedModel(FORMULA, path, method="matrix-free")._shifted.A
    th = np.asarray(theta)
    H = np.empty((2, 2))
    for j in range(2):
        h = 1e-4 * th[j]
        up, down = th.copy(), th.copy()
        up[j] += h
        down[j] -= h
        H[:, j] = (core.matrix_free_score(A, up, 64)[0] - core.matrix_free_score(A, down, 64)[0]) / (2 * h)
    step = -np.linalg.solve(0.5 * (H + H.T), grad)
    print(json.dumps({"method": "exact at θ", "setup": setup, "fit": seconds, "objective": float(value),
                      "gradient": np.asarray(grad).tolist(), "theta": theta, "step": step.tolist(),
                      "theta_err": float(np.max(np.abs(step / th)))}), flush=True)


def spawn(args: list[str], timeout: float) -> dict:
    """A child process's JSON line, with its wall time and peak resident set (GiB, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    timer.cancel()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rec: dict = {"wall": time.perf_counter() - t0, "peak_gib": usage.ru_maxrss / 2**20}
    found = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode or not found:
        rec["error"] = f"timeout after {timeout:.0f} s" if proc.returncode == -9 else f"exit status {proc.returncode}"
        return rec
    rec.update(json.loads(found[0]))
    return rec


def lme4_csv(path: pathlib.Path) -> pathlib.Path:
    """A CSV copy of the parquet data for R (kept beside it)."""
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    csv = path.with_suffix(".csv")
    if not csv.exists():
        pc.write_csv(pq.read_table(path), csv)
    return csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 10, 1], help="fractions 1/k (1: full size)")
    parser.add_argument("--exact", nargs="*", type=int, default=[100, 10], help="sizes also fitted exactly")
    parser.add_argument("--lme4", nargs="*", type=int, default=[100], help="sizes also fitted by lme4")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the matrix-free fit at full size")
    parser.add_argument("--exact-full", action="store_true",
                        help="also the exact criterion and gradient at the full-size θ (~40 min, ~15 GiB)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--dir", type=pathlib.Path, default=HERE / "data")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--exact-at", nargs=2, metavar=("PATH", "THETA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.exact_at:
        exact_at(args.exact_at[0], [float(v) for v in args.exact_at[1].split(",")])
        return

    sys.path.insert(0, str(HERE))
    import lmm
    from lmm._threads import user_threads

    from simulate import load_movielens

    threads = {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "(default)"),
               "cores": os.cpu_count(), "lmm threads (BLAS threads a fit uses)": user_threads()}
    print(f"# lmm {lmm.__version__}; threads: {threads}; formula {FORMULA}")
    rows = []
    for k in args.sizes:
        path = load_movielens(1.0 / k, args.dir)
        me = [sys.executable, os.path.abspath(__file__), "--child"]
        recs = {}
        seeds = range(args.seeds) if k == 1 else range(1)
        for seed in seeds:
            # full size: the default method (which takes the matrix-free one by itself)
            method = "auto" if k == 1 else "matrix-free"
            recs[f"{method} seed {seed}"] = spawn(me + [method, str(path), str(seed)], args.timeout)
        if k in args.exact:
            recs["exact"] = spawn(me + ["exact", str(path), "0"], args.timeout)
        if k in args.lme4 and shutil.which("Rscript"):
            csv = lme4_csv(path)
            cmd = ["Rscript", str(HERE / "fit_lme4.R"), str(csv), FORMULA, "TRUE", "FALSE", "user,item"]
            rec = spawn(cmd, args.timeout)
            if "time" in rec:
                rec.update(method="lme4", fit=rec["time"], setup=float("nan"))
            recs["lme4"] = rec
        first = recs.get("auto seed 0", {})
        if k == 1 and args.exact_full and "theta" in first:
            theta = ",".join(repr(v) for v in first["theta"])
            recs["exact at θ"] = spawn([sys.executable, os.path.abspath(__file__), "--exact-at", str(path), theta],
                                       args.timeout * 3)
        exact = recs.get("exact")
        for name, r in recs.items():
            row = {"size": "full" if k == 1 else f"1/{k}", "run": name, **r}
            if exact and "theta" in r and "theta" in exact and r is not exact:
                row["theta_err"] = max(abs(a / b - 1) for a, b in zip(r["theta"], exact["theta"]))
                if "beta" in r:
                    row["beta_err"] = max(abs(a / b - 1) for a, b in zip(r["beta"], exact["beta"]))
                row["ratio"] = exact["fit"] / r["fit"] if r.get("fit") else float("nan")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    cols = ["size", "run", "rows", "levels", "setup s", "fit s", "summary s", "peak GiB", "theta", "theta SE",
            "beta", "criterion (SE)", "theta err", "beta err", "evals", "CG its"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["size"], r["run"]] + [r["error"]] + [""] * (len(cols) - 3))
            continue
        info = r.get("info", {})
        se = f" ({r['objective_se']:.2g})" if "objective_se" in r else ""
        table.append([
            r["size"], r["run"], f"{r.get('nobs', '')}", "×".join(str(v) for v in r.get("levels", [])),
            f"{r.get('setup', float('nan')):.1f}", f"{r['fit']:.1f}", f"{r.get('summary', float('nan')):.2f}",
            f"{r['peak_gib']:.2f}", " ".join(f"{v:.7g}" for v in r["theta"]),
            " ".join(f"{v:.1g}" for v in r.get("theta_se", [])), " ".join(f"{v:.8g}" for v in r.get("beta", [])),
            f"{r['objective']:.2f}{se}", f"{r['theta_err']:.1e}" if "theta_err" in r else "",
            f"{r['beta_err']:.1e}" if "beta_err" in r else "", f"{info.get('evaluations', '')}",
            f"{info.get('cg_iterations', '')}"])
    if args.format == "markdown":
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        widths = [max(len(c), *(len(t[j]) for t in table)) for j, c in enumerate(cols)]
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for t in table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths)))
    for r in rows:
        if r["run"] == "exact at θ" and "gradient" in r:
            print(f"# exact at the full-size θ: criterion {r['objective']:.4f}, gradient {r['gradient']}, "
                  f"{r['fit']:.0f} s, peak {r['peak_gib']:.1f} GiB; its Newton step to the exact optimum "
                  f"{r['step']} (relative {r['theta_err']:.1e})")
    print(f"# {PUBLISHED}")


if __name__ == "__main__":
    main()
