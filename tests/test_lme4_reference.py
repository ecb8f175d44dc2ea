"""Objective, estimates and conditional modes against lme4 (tests/reference/lme4_reference.json)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

from conftest import fitted, load_reference

# Tolerances per quantity (relative unless named absolute).
OBJECTIVE_FIXED_THETA = 1e-8   # objective at lme4's θ values: the same function
OBJECTIVE_OPTIMUM = 1e-6       # ours may be lower than lme4's, not higher by more
THETA = 1e-4
THETA_ABS = 1e-5               # θ entries at or near 0 (singular fits, tiny correlations)
BETA = 1e-4
SIGMA = 1e-4
SE = 1e-4
VARCORR = 1e-4
RANEF = 1e-3                   # relative to the largest |mode| of the column

FITS = load_reference()["fits"]


def _params(fits):
    return [pytest.param(f, id=f["id"], marks=[pytest.mark.slow] if f["slow"] else []) for f in fits]


def _model(ref):
    return lmm.LinearMixedModel(ref["formula"], lmm.datasets.load(ref["dataset"]), REML=ref["REML"])


@pytest.mark.parametrize("ref", _params(FITS))
def test_objective_at_fixed_theta(ref):
    model = fitted(ref)[0] if ref["slow"] else _model(ref)
    assert model.theta_names == list(ref["theta"])
    for point in ref["devfun"]:
        got = model.objective(point["theta"])
        assert got == pytest.approx(point["value"], rel=OBJECTIVE_FIXED_THETA), point["theta"]


@pytest.mark.parametrize("ref", _params(FITS))
def test_optimum_matches_lme4(ref):
    _, res = fitted(ref)
    assert res.objective <= ref["objective"] + OBJECTIVE_OPTIMUM * abs(ref["objective"])
    assert res.objective == pytest.approx(ref["objective"], rel=OBJECTIVE_OPTIMUM)
    np.testing.assert_allclose(res.theta, list(ref["theta"].values()), rtol=THETA, atol=THETA_ABS)
    assert list(res.fixef.index) == list(ref["beta"])
    np.testing.assert_allclose(res.fixef.to_numpy(), list(ref["beta"].values()), rtol=BETA)
    np.testing.assert_allclose(res.se.to_numpy(), list(ref["se"].values()), rtol=SE)
    assert res.sigma == pytest.approx(ref["sigma"], rel=SIGMA)
    assert res.loglik == pytest.approx(ref["logLik"], rel=OBJECTIVE_OPTIMUM)
    assert res.aic == pytest.approx(ref["AIC"], rel=OBJECTIVE_OPTIMUM)
    assert res.bic == pytest.approx(ref["BIC"], rel=OBJECTIVE_OPTIMUM)
    assert res.nobs == ref["nobs"]
    assert res.ngroups == ref["ngrps"]
    assert res.singular == ref["singular"]
    assert res.converged


@pytest.mark.parametrize("ref", _params(FITS))
def test_varcorr_matches_lme4(ref):
    _, res = fitted(ref)
    ours = res.varcorr
    assert len(ours) == len(ref["varcorr"])
    for want, (_, got) in zip(ref["varcorr"], ours.iterrows()):
        names = tuple(None if pd.isna(v) else v for v in (got["grp"], got["var1"], got["var2"]))
        assert names == (want["grp"], want["var1"], want["var2"])
        scale = abs(want["vcov"]) if want["var2"] is None else 1.0
        assert got["vcov"] == pytest.approx(want["vcov"], rel=VARCORR, abs=1e-6 * max(scale, 1.0))
        if want["sdcor"] is not None:
            assert got["sdcor"] == pytest.approx(want["sdcor"], rel=VARCORR, abs=1e-5)


@pytest.mark.parametrize("ref", _params(FITS))
def test_conditional_modes_match_lme4(ref):
    _, res = fitted(ref)
    assert set(res.ranef) == set(ref["ranef"])
    for group, want in ref["ranef"].items():
        got = res.ranef[group]
        levels = want["levels"]
        assert list(got.columns) == list(want["columns"])
        if not want["truncated"]:
            assert sorted(got.index) == sorted(levels)
        for column, values in want["columns"].items():
            values = np.asarray(values, dtype=float)
            scale = max(np.max(np.abs(values)), 1e-8)
            np.testing.assert_allclose(got.loc[levels, column].to_numpy(), values, rtol=0, atol=RANEF * scale)
