"""Prior weights and offsets against lme4 (tests/reference/structured_reference.json,
section weights_offsets, written by make_structured_reference.R with lme4 2.x and checked
against Debian's lme4 1.1.31): the criterion at fixed θ, the optimum, θ, β, SEs, σ and
predictions on the training data and on new data (a new level included)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "structured_reference.json").read_text())
DATA = REF["weights_offsets_data"]
CASES = {c["id"]: c for c in REF["weights_offsets"]}

FIXED_REL = 1e-8       # the criterion at fixed θ
OPTIMUM_REL = 1e-7     # the criterion at the optimum
ESTIMATE_REL = 1e-4    # θ, β, SEs, σ, predictions


def _fit_inputs(case: dict):
    data = lmm.datasets.load(case["dataset"])
    if case["dataset"] == "sleepstudy":
        data = data.assign(o=np.asarray(DATA["sleepstudy_o"], dtype=float))
    kw = {}
    if case["weights"]:
        kw["weights"] = np.asarray(DATA[f"{case['dataset']}_w"], dtype=float)
    if case["offset_argument"]:
        kw["offset"] = case["offset_argument"]
    return data, kw


@pytest.mark.parametrize("cid", list(CASES))
def test_against_lme4(cid):
    case = CASES[cid]
    data, kw = _fit_inputs(case)
    m = lmm.LinearMixedModel(case["formula"], data, REML=case["REML"], **kw)
    for point in case["devfun"]:
        assert m.objective(np.asarray(point["theta"], dtype=float)) == pytest.approx(point["value"], rel=FIXED_REL)
    res = m.fit()
    assert res.objective <= case["objective"] * (1 + OPTIMUM_REL)
    assert res.objective == pytest.approx(case["objective"], rel=OPTIMUM_REL)
    np.testing.assert_allclose(res.theta, list(case["theta"].values()), rtol=ESTIMATE_REL, atol=ESTIMATE_REL)
    np.testing.assert_allclose(res.fixef.to_numpy(), list(case["beta"].values()), rtol=ESTIMATE_REL)
    np.testing.assert_allclose(res.se.to_numpy(), list(case["se"].values()), rtol=ESTIMATE_REL)
    assert res.sigma == pytest.approx(case["sigma"], rel=ESTIMATE_REL)
    assert res.loglik == pytest.approx(case["logLik"], rel=OPTIMUM_REL)
    pred = case["predict"]
    np.testing.assert_allclose(res.predict(), pred["training"], rtol=ESTIMATE_REL)
    np.testing.assert_allclose(res.predict(re_form="~0"), pred["training_fixed"], rtol=ESTIMATE_REL)
    if "newdata_full" in pred:
        new = pd.DataFrame({k: v for k, v in DATA["predict_newdata"].items() if k != "rows"})
        # lme4 evaluates the formula's offset() terms on new data but ignores an offset argument there.
        extra = {"offset": np.zeros(len(new))} if case["offset_argument"] else {}
        np.testing.assert_allclose(res.predict(new, re_form="~0", **extra), pred["newdata_fixed"], rtol=ESTIMATE_REL)
        np.testing.assert_allclose(res.predict(new, allow_new_levels=True, **extra), pred["newdata_full"],
                                   rtol=ESTIMATE_REL)
