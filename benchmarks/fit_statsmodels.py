"""Fit one model with statsmodels' MixedLM and print a JSON line (used by bench_fit.py).

    python benchmarks/fit_statsmodels.py DATA.csv SPEC_JSON [--ml]

SPEC_JSON: {"fixed": "y ~ t", "groups": "subj", "re_formula": "~t"} for one grouping
factor, or {"fixed": "y ~ 1", "vc": {"user": "0 + C(user)", ...}} for crossed factors
(one group holding all rows, variance components, as statsmodels' documentation shows).
θ is reported in lme4's parameterization (relative Cholesky factor, column-major lower triangle).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("spec")
    parser.add_argument("--ml", action="store_true")
    args = parser.parse_args()
    import statsmodels.formula.api as smf

    spec = json.loads(args.spec)
    data = pd.read_csv(args.data)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    if "vc" in spec:
        data["_one"] = 1
        model = smf.mixedlm(spec["fixed"], data, groups="_one", re_formula="0", vc_formula=spec["vc"])
    else:
        model = smf.mixedlm(spec["fixed"], data, groups=spec["groups"], re_formula=spec.get("re_formula"))
    fit = model.fit(reml=not args.ml)
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    print(fit.summary())
    summary = time.perf_counter() - t0
    if "vc" in spec:
        names = list(model.exog_vc.names)
        theta = [float(np.sqrt(fit.vcomp[names.index(k)] / fit.scale)) for k in spec["vc_order"]]
    else:
        L = np.linalg.cholesky(np.asarray(fit.cov_re) / fit.scale)
        theta = [float(L[i, j]) for j in range(L.shape[0]) for i in range(j, L.shape[0])]
    print(json.dumps({"time": elapsed, "summary": summary, "theta": theta, "objective": None, "nfev": None,
                      "converged": bool(fit.converged)}))


if __name__ == "__main__":
    main()
