"""A small fit as a user waits for it: sleepstudy from its CSV (string ids), lmm.lmer against
the fastest Python peer (lme-python's lmer) and statsmodels' MixedLM when installed, medians
of warm calls in one process, same run; and the whole call with the printed summary.

    pip install lme-python==0.2.7 polars statsmodels   # the peers (optional)
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_small.py [--calls 40]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import time

import pandas as pd

import lmm

CSV = pathlib.Path(lmm.__file__).parent / "datasets" / "data" / "sleepstudy.csv"
FORMULA = "Reaction ~ Days + (Days | Subject)"


def median_ms(fn, calls: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()
    frame = pd.read_csv(CSV, dtype={"Subject": str})
    rows: list[tuple[str, float, float]] = []
    fit = median_ms(lambda: lmm.lmer(FORMULA, frame), args.calls)
    whole = median_ms(lambda: str(lmm.lmer(FORMULA, pd.read_csv(CSV, dtype={"Subject": str}))), args.calls)
    rows.append(("lmm", fit, whole))
    if importlib.util.find_spec("lme_python") and importlib.util.find_spec("polars"):
        import lme_python
        import polars as pl

        pframe = pl.read_csv(CSV, schema_overrides={"Subject": pl.Utf8})
        fit = median_ms(lambda: lme_python.lmer(FORMULA, pframe), args.calls)
        whole = median_ms(lambda: str(lme_python.lmer(FORMULA, pl.read_csv(CSV, schema_overrides={"Subject": pl.Utf8})
                                                      ).summary()), args.calls)
        rows.append(("lme-python 0.2.7", fit, whole))
    if importlib.util.find_spec("statsmodels"):
        import statsmodels.formula.api as smf

        def sm(data):
            return smf.mixedlm("Reaction ~ Days", data, groups=data["Subject"], re_formula="~Days").fit(reml=True)

        fit = median_ms(lambda: sm(frame), max(5, args.calls // 4))
        whole = median_ms(lambda: str(sm(pd.read_csv(CSV, dtype={"Subject": str})).summary()), max(5, args.calls // 4))
        rows.append(("statsmodels MixedLM", fit, whole))
    print(f"sleepstudy {FORMULA}; medians of {args.calls} warm calls, one process; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'system':22} {'fit ms':>8} {'lmm/x':>6} {'CSV+fit+print ms':>17} {'lmm/x':>6}")
    for name, fit, whole in rows:
        print(f"{name:22} {fit:8.2f} {rows[0][1] / fit:6.2f} {whole:17.2f} {rows[0][2] / whole:6.2f}")
    print("lmm's printed summary includes lmerTest's Satterthwaite df (a numerical Hessian); the peers' do not.")


if __name__ == "__main__":
    main()
