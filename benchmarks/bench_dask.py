"""Out-of-core and distributed fits (issue 19): a crossed data set written to parquet and
fitted without holding its rows, by pyarrow batches in one process and by Dask on a
``distributed.LocalCluster`` of 1 and 2 worker processes; time and peak memory per mode,
time per 10⁶ rows, scaling with the workers, and the data's own size in memory.

    python benchmarks/bench_dask.py                           # 10⁷ rows, 10⁵ users × 10⁴ items
    python benchmarks/bench_dask.py --rows 1000000 --dir /tmp/dask-bench --format markdown

Data: ``y ~ x + (1 | user) + (1 | item)`` with string ids (``u000123``, ``i0042``) as read
from a CSV file, users' and items' counts skewed (Zipf-like activity), written to --dir as
a parquet dataset of files of --file-rows rows (kept between runs: --rows and the seed
name the folder). Each mode runs in a fresh process; its peak memory is the largest sum
of resident sets over the process and its descendants (the cluster's worker processes
included), sampled every 50 ms; "at start" is that sum once Python, lmm and pyarrow are
imported (and the cluster started), before any row is read: "peak − start" is what the
data and the fit took.

- ``pyarrow``: ``lmm.LinearMixedModel(formula, path)``, batches of --file-rows rows read
  one at a time in this process;
- ``dask-1``, ``dask-2``: ``lmm.LinearMixedModel(formula, dd.read_parquet(path))`` with a
  client on a LocalCluster of 1 or 2 worker processes (one thread each): the partitions
  are read and reduced on the workers;
- ``memory``: ``pd.read_parquet`` then the in-memory model (the rows held: the comparison).

"setup" is the model (levels, statistics, crossproducts summed); "fit" (with --fit, once,
in the pyarrow mode) the optimization, which depends on the numbers of levels only.
lmm only: lme4 holds the rows (and here the 10⁴ × 10⁴ dense block of its factor) in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FORMULA = "y ~ x + (1 | user) + (1 | item)"


def write_data(path: str, rows: int, users: int, items: int, file_rows: int, seed: int) -> None:
    """The parquet dataset, file by file (never all rows in memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    # Zipf-like activity: the k-th user (item) has weight 1/(k + 10)^0.9 (0.7).
    pu = 1.0 / (np.arange(users) + 10.0) ** 0.9
    pi = 1.0 / (np.arange(items) + 10.0) ** 0.7
    pu, pi = pu / pu.sum(), pi / pi.sum()
    bu = 0.8 * rng.standard_normal(users)
    bi = 0.5 * rng.standard_normal(items)
    user_names = pa.array([f"u{k:06d}" for k in range(users)])
    item_names = pa.array([f"i{k:05d}" for k in range(items)])
    os.makedirs(path, exist_ok=True)
    for f, start in enumerate(range(0, rows, file_rows)):
        m = min(file_rows, rows - start)
        u = rng.choice(users, size=m, p=pu)
        i = rng.choice(items, size=m, p=pi)
        x = rng.standard_normal(m)
        y = 3.0 + 0.5 * x + bu[u] + bi[i] + rng.standard_normal(m)
        def ids(codes, names):
            return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), names).cast(pa.string())

        table = pa.table({"y": y, "x": x, "user": ids(u, user_names), "item": ids(i, item_names)})
        pq.write_table(table, os.path.join(path, f"part-{f:04d}.parquet"))
    with open(os.path.join(path, "_done"), "w") as fh:
        fh.write("ok\n")


# One mode in a fresh process: prints a JSON line of its times and the fit's numbers.
def resident_mib() -> float:
    """This process's and its descendants' resident sets, summed."""
    import psutil

    p = psutil.Process()
    return sum(q.memory_info().rss for q in [p] + p.children(recursive=True)) / 2**20


def child(mode: str, path: str, fit: bool, method: str) -> None:
    import pyarrow.parquet  # noqa: F401  (what every mode reads with, in the start's memory)

    import lmm

    out: dict = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "memory":
        import pandas as pd

        out["start_mib"] = resident_mib()
        data = pd.read_parquet(path, columns=["y", "x", "user", "item"])
        out["read_s"] = time.perf_counter() - t0
        out["data_mib"] = float(data.memory_usage(deep=True).sum()) / 2**20
        t1 = time.perf_counter()
        model = lmm.LinearMixedModel(FORMULA, data, method=method)
        out["setup_s"] = time.perf_counter() - t1
    elif mode == "pyarrow":
        out["start_mib"] = resident_mib()
        model = lmm.LinearMixedModel(FORMULA, path, method=method)
        out["setup_s"] = time.perf_counter() - t0
    else:
        import dask.dataframe as dd
        import distributed

        workers = int(mode.split("-")[1])
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            out["cluster_s"] = time.perf_counter() - t0
            out["start_mib"] = resident_mib()
            t1 = time.perf_counter()
            model = lmm.LinearMixedModel(FORMULA, dd.read_parquet(path), method=method)
            out["setup_s"] = time.perf_counter() - t1
    out["nobs"] = model.nobs
    out["levels"] = [t.nlevels for t in model.terms]
    out["method"] = model.method
    if fit:
        t1 = time.perf_counter()
        res = model.fit()
        out["fit_s"] = time.perf_counter() - t1
        out["objective"] = res.objective
        out["theta"] = [float(v) for v in res.theta]
        out["evaluations"] = int(res.optinfo.nfev)
    print(json.dumps(out))


def run_mode(mode: str, path: str, fit: bool, method: str) -> dict:
    """The mode in a fresh process, with its peak memory (the process tree's resident sets summed)."""
    import psutil

    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode, "--dir", path,
                             "--method", method] + (["--fit"] if fit else []),
                            stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    peak = [0]

    def sample() -> None:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                total = sum(q.memory_info().rss for q in [p] + p.children(recursive=True))
            except psutil.Error:
                continue
            peak[0] = max(peak[0], total)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"mode {mode} failed (exit {proc.returncode})")
    out = json.loads(stdout.strip().splitlines()[-1])
    out["peak_mib"] = peak[0] / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--file-rows", type=int, default=500_000, help="rows per parquet file (and partition)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--dir", default=os.path.join("benchmarks", "data", "dask"), help="where the data are kept")
    parser.add_argument("--modes", nargs="+", default=["pyarrow", "dask-1", "dask-2", "memory"])
    parser.add_argument("--fit", action="store_true", help="also fit (once, in the first mode)")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--method", choices=["auto", "exact", "matrix-free"], default="auto",
                        help="lmm's method (matrix-free: no dense block of the items' levels)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.fit, args.method)
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    path = os.path.join(args.dir, f"crossed-{args.rows}-{args.users}x{args.items}-{args.seed}")
    if not os.path.exists(os.path.join(path, "_done")):
        t0 = time.perf_counter()
        write_data(path, args.rows, args.users, args.items, args.file_rows, args.seed)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    disk = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20
    results = [run_mode(mode, path, args.fit and k == 0, args.method) for k, mode in enumerate(args.modes)]

    per = 1e6 / args.rows
    base = {r["mode"]: r["setup_s"] for r in results}
    header = ["mode", "setup s", "s per 10⁶ rows", "speed-up vs 1 worker", "peak MiB", "at start MiB",
              "peak − start MiB"]
    rows = []
    for r in results:
        ratio = f"{base['dask-1'] / r['setup_s']:.2f}" if r["mode"].startswith("dask") and "dask-1" in base else ""
        rows.append([r["mode"], f"{r['setup_s']:.1f}", f"{r['setup_s'] * per:.2f}", ratio, f"{r['peak_mib']:.0f}",
                     f"{r['start_mib']:.0f}", f"{r['peak_mib'] - r['start_mib']:.0f}"])
    print(f"{FORMULA}: {results[0]['nobs']:,} rows, levels {results[0]['levels']}, parquet {disk:.0f} MiB on disk, "
          f"1 thread per process, {os.cpu_count()} cores, method {results[0]['method']}")
    data_mib = [r["data_mib"] for r in results if "data_mib" in r]
    if data_mib:
        print(f"the rows in memory (pandas, the columns used): {data_mib[0]:.0f} MiB")
    from bench_fit import print_table

    print_table(header, rows, args.format)
    fitted = [r for r in results if "fit_s" in r]
    if fitted:
        r = fitted[0]
        print(f"fit ({r['mode']}): {r['fit_s']:.1f} s, criterion {r['objective']:.4f}, θ {r['theta']}")


if __name__ == "__main__":
    main()
