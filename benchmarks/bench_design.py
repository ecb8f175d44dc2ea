"""Design benchmark: grouping columns with many levels coded, and the whole ``lmm.lmer``
call on sim_long with string subject ids beside lme4's.

Coding (lmm only, in this process): a grouping column with ``--levels`` levels (default
10⁶) in ``--rows`` rows (default 3 × levels), shuffled, of each kind — integer ids in a
compact range, sparse integer ids, whole numbers stored as doubles with missing values
(ids read from a file with gaps), strings (pandas' default string dtype, pyarrow-backed
when pyarrow is installed, as ``read_csv`` makes them; ``"user_123"``-like ids with a
common prefix, and mixed-case ids), strings as Python objects, and a pandas Categorical.
For each, the best of ``--repeats`` wall times of

- *coding*: ``lmm.formula.grouping_codes``, the codes and levels in lme4's order;
- *design*: ``lmm.design.build_design`` of ``y ~ 1 + (1 | g)`` (missing values, coding,
  QR, checks);
- *labels*: the level labels made on first use (for output only).

Whole call: sim_long (200,000 rows, 20,000 subjects, ``y ~ 1 + t + (1 + t | subj)``)
written to CSV with subject ids ``"s00017"``-like, which pandas and R both read as
strings; ``lmm.lmer`` on the frame read from it (``fit_lmm.py``) and lme4's ``lmer``
(``fit_lme4.R``), each in its own process, ``--repeats`` times in turn in the same run;
the table gives the median, the best, lme4's median over lmm's and each system's REML
criterion at its optimum. Threads are pinned (``--threads``) for both.

    python benchmarks/bench_design.py                      # both parts
    python benchmarks/bench_design.py --part coding --levels 100000
    python benchmarks/bench_design.py --part call --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
KINDS = ["int", "int_sparse", "double_na", "str_prefix", "str_mixed_case", "object", "category"]
FORMULA = "y ~ 1 + t + (1 + t | subj)"


def column(kind: str, ids, rng):
    """The grouping column of a kind, one value per row, from integer ids."""
    import numpy as np
    import pandas as pd

    if kind == "int":
        return ids
    if kind == "int_sparse":
        return ids * 7919 + 10**9
    if kind == "double_na":
        values = ids.astype(np.float64)
        values[rng.random(ids.size) < 0.01] = np.nan
        return values
    text = ids.astype(str)
    if kind == "str_prefix":
        return pd.Series(np.char.add("user_", text), dtype=str)
    if kind == "str_mixed_case":
        return pd.Series(np.char.add(np.where(ids % 3 == 0, "Ab", "aB"), text), dtype=str)
    if kind == "object":
        return pd.Series(np.char.add("user_", text).astype(object), dtype=object)
    if kind == "category":
        return pd.Categorical(np.char.add("s", text))
    raise ValueError(kind)


def coding_rows(levels: int, rows: int, repeats: int, kinds: list[str]) -> list[dict]:
    """Seconds to code, to build the design and to make the labels, per kind of column."""
    import numpy as np
    import pandas as pd

    from lmm.design import build_design
    from lmm.formula import grouping_codes, parse_formula

    rng = np.random.default_rng(0)
    ids = rng.permutation(np.concatenate([np.arange(levels), rng.integers(0, levels, rows - levels)]))
    parsed = parse_formula("y ~ 1 + (1 | g)")
    term = parsed.random[0]
    out = []
    for kind in kinds:
        g = column(kind, ids, rng)
        data = pd.DataFrame({"y": rng.standard_normal(rows), "g": g})
        times: dict[str, list[float]] = {"coding": [], "labels": [], "design": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            codes, group_levels = grouping_codes(term, data)
            t1 = time.perf_counter()
            group_levels.labels()
            t2 = time.perf_counter()
            with warnings.catch_warnings():  # (rows with a missing id are dropped with a warning)
                warnings.simplefilter("ignore")
                build_design(parsed, data)
            t3 = time.perf_counter()
            for key, seconds in (("coding", t1 - t0), ("labels", t2 - t1), ("design", t3 - t2)):
                times[key].append(seconds)
        best = {key: min(ts) for key, ts in times.items()}
        out.append({"kind": kind, "dtype": str(data["g"].dtype), "rows": rows, "levels": len(group_levels),
                    "coding_s": best["coding"], "design_s": best["design"], "labels_s": best["labels"]})
        print(f"  coding {kind}: {best['coding']:.3f} s", file=sys.stderr, flush=True)
    return out


def string_id_data(directory: pathlib.Path) -> pathlib.Path:
    """sim_long as CSV with string subject ids (written once)."""
    path = directory / "sim_long_string_ids.csv"
    if not path.exists():
        import simulate

        directory.mkdir(parents=True, exist_ok=True)
        data = simulate.sim_long()
        data["subj"] = [f"s{i:05d}" for i in data["subj"]]
        data.to_csv(path, index=False)
    return path


def call_rows(directory: pathlib.Path, repeats: int, env: dict, timeout: float) -> list[dict]:
    """The whole lmm.lmer call and lme4's lmer on sim_long with string ids, in turn."""
    import bench_fit

    data = string_id_data(directory)
    times: dict[str, list[float]] = {"lmm": [], "lme4": []}
    status, objective = {}, {}
    for _ in range(repeats):
        for system in times:
            cmd = bench_fit.command(system, "sim_long", data, reml=True)
            if isinstance(cmd, str):
                status[system] = cmd
                continue
            result = bench_fit.run(cmd, env, timeout, memory_gib=16.0)
            status[system] = result["status"]
            if "time" in result:
                times[system].append(result["time"])
                objective[system] = result.get("objective")
            print(f"  sim_long / {system}: {result.get('time', result['status'])}", file=sys.stderr, flush=True)
    rows = []
    base = statistics.median(times["lmm"]) if times["lmm"] else None
    for system, ts in times.items():
        median = statistics.median(ts) if ts else None
        rows.append({"system": system, "status": status.get(system), "runs": len(ts), "median_s": median,
                     "best_s": min(ts) if ts else None, "objective": objective.get(system),
                     "ratio": median / base if median is not None and base else None})
    return rows


def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["coding", "call", "both"], default="both")
    parser.add_argument("--levels", type=int, default=10**6, help="levels of the grouping columns coded")
    parser.add_argument("--rows", type=int, default=None, help="rows of the grouping columns (default 3 × levels)")
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads for every system (BLAS, OpenMP)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per fit")
    parser.add_argument("--data", type=pathlib.Path, default=HERE / "data", help="where simulated data are written")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    args = parser.parse_args()

    threads = str(args.threads)
    pinned = {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(pinned)  # (before NumPy is imported: this process codes the columns)
    from bench_fit import print_table
    print(f"# threads pinned to {args.threads}; {platform.platform()}, {os.cpu_count()} cpus")
    if args.part in ("coding", "both"):
        rows = args.rows or 3 * args.levels
        result = coding_rows(args.levels, rows, args.repeats, args.kinds)
        print(f"\n## grouping columns coded: {rows:,} rows, best of {args.repeats}")
        print_table(["kind", "dtype", "levels", "coding (s)", "design (s)", "labels (s)"],
                    [[r["kind"], r["dtype"], f"{r['levels']:,}", fmt(r["coding_s"], ".3f"), fmt(r["design_s"], ".3f"),
                      fmt(r["labels_s"], ".3f")] for r in result], args.format)
    if args.part in ("call", "both"):
        env = dict(os.environ, R_DATATABLE_NUM_THREADS=threads)
        result = call_rows(args.data, args.repeats, env, args.timeout)
        print(f"\n## sim_long, string subject ids, whole call from CSV ({FORMULA}, REML), {args.repeats} runs each")
        print_table(["system", "status", "runs", "median (s)", "best (s)", "median / lmm's", "REML criterion"],
                    [[r["system"], str(r["status"]), str(r["runs"]), fmt(r["median_s"], ".3f"), fmt(r["best_s"], ".3f"),
                      fmt(r["ratio"], ".1f"), fmt(r["objective"], ".6f")] for r in result], args.format)


if __name__ == "__main__":
    main()
