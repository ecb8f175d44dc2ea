"""Fits with ``ns()``/``bs()`` terms (fixed and random parts) and ``interaction(a, b)``
grouping factors against lme4 1.1.31 (tests/reference/splines_reference.json, written by
make_splines_reference.R): the criterion at lme4's θ, the optimum, θ, β with R's names,
SEs, σ, VarCorr, conditional modes with lme4's level labels, and predictions on new data
(the fitting data's knots, Days beyond their range)."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "splines_reference.json").read_text())
ALL_FITS = {f["id"]: f for f in REF["fits"]}
# Missing responses: R learns the knots from every row with Days, lmm from the rows kept
# (test_knots_ignore_rows_dropped_for_other_columns).
NA_RESPONSE = "sleepstudy_na_response_ns3"
FITS = {fid: f for fid, f in ALL_FITS.items() if fid != NA_RESPONSE}

OBJECTIVE_FIXED_THETA = 1e-8   # the criterion at lme4's θ values: the same function
OBJECTIVE_OPTIMUM = 1e-6
THETA, THETA_ABS = 1e-4, 1e-5
BETA = 1e-4
SE = 1e-4
SIGMA = 1e-4
VARCORR = 1e-4
RANEF = 1e-3                   # relative to the largest |mode| of the column
PREDICT = 1e-6                 # predictions on new data, relative


def _frame(record: dict) -> pd.DataFrame:
    return pd.DataFrame({k: v for k, v in record.items() if k != "rows"})


def _data(fit: dict) -> pd.DataFrame:
    if fit["dataset"] == "simulated":
        return _frame(REF["simulated"])
    d = lmm.datasets.load("sleepstudy")
    if fit["dataset"] == "sleepstudy_na":
        days = d["Days"].to_numpy(dtype=np.float64, copy=True)
        days[np.array(REF["na_rows"]) - 1] = np.nan
        d = d.assign(Days=days)
    if fit["dataset"] == "sleepstudy_na_response":
        y = d["Reaction"].to_numpy(dtype=np.float64, copy=True)
        y[np.array(REF["na_response_rows"]) - 1] = np.nan
        d = d.assign(Reaction=y)
    return d


def _new_data(fit: dict) -> pd.DataFrame:
    return _frame(REF["new_simulated"] if fit["dataset"] == "simulated" else REF["new_sleepstudy"])


_FITTED: dict[str, tuple] = {}


def _fitted(fid: str):
    """(model, result) of a reference fit, fitted once per session (lme4's warning about
    the rows with missing Days is expected)."""
    if fid not in _FITTED:
        fit = ALL_FITS[fid]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*rows dropped because of missing values")
            model = lmm.LinearMixedModel(fit["formula"], _data(fit), REML=fit["REML"])
        _FITTED[fid] = (model, model.fit())
    return _FITTED[fid]


@pytest.mark.parametrize("fid", list(FITS))
def test_objective_at_lme4_theta(fid):
    fit = FITS[fid]
    model, _ = _fitted(fid)
    assert model.theta_names == list(fit["theta"])
    for point in fit["devfun"]:
        assert model.objective(point["theta"]) == pytest.approx(point["value"], rel=OBJECTIVE_FIXED_THETA)


@pytest.mark.parametrize("fid", list(FITS))
def test_optimum_matches_lme4(fid):
    fit = FITS[fid]
    model, res = _fitted(fid)
    assert res.objective <= fit["objective"] + OBJECTIVE_OPTIMUM * abs(fit["objective"])
    assert res.objective == pytest.approx(fit["objective"], rel=OBJECTIVE_OPTIMUM)
    np.testing.assert_allclose(res.theta, list(fit["theta"].values()), rtol=THETA, atol=THETA_ABS)
    assert list(res.fixef.index) == list(fit["beta"]) == fit["X_columns"]
    np.testing.assert_allclose(res.fixef.to_numpy(), list(fit["beta"].values()), rtol=BETA)
    np.testing.assert_allclose(res.se.to_numpy(), list(fit["se"].values()), rtol=SE)
    assert res.sigma == pytest.approx(fit["sigma"], rel=SIGMA)
    assert res.loglik == pytest.approx(fit["logLik"], rel=OBJECTIVE_OPTIMUM)
    assert res.nobs == fit["nobs"]
    assert res.ngroups == fit["ngrps"]
    assert {t.name: t.cnames for t in model.terms} == fit["Z_columns"]
    np.testing.assert_allclose(res.fitted(array=True)[:10], fit["fitted_first"], rtol=PREDICT)  # na.omit


@pytest.mark.parametrize("fid", list(FITS))
def test_varcorr_and_conditional_modes_match_lme4(fid):
    fit = FITS[fid]
    _, res = _fitted(fid)
    ours = res.varcorr
    assert [(r.grp, r.var1 if isinstance(r.var1, str) else None) for r in ours.itertuples()] == \
        [(w["grp"], w["var1"]) for w in fit["varcorr"]]
    np.testing.assert_allclose(ours["vcov"].to_numpy(), [w["vcov"] for w in fit["varcorr"]], rtol=VARCORR,
                               atol=1e-6)
    assert set(res.ranef) == set(fit["ranef"])
    for group, want in fit["ranef"].items():
        got = res.ranef[group]
        assert list(got.index) == want["levels"]
        assert list(got.columns) == list(want["columns"])
        for col, values in want["columns"].items():
            scale = max(np.max(np.abs(values)), 1e-8)
            np.testing.assert_allclose(got[col].to_numpy(), values, rtol=0, atol=RANEF * scale)


@pytest.mark.parametrize("fid", list(FITS))
def test_predictions_on_new_data_match_lme4(fid):
    fit = FITS[fid]
    _, res = _fitted(fid)
    new = _new_data(fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = res.predict(new)
        fixed = res.predict(new, re_form="~0")
    np.testing.assert_allclose(full, fit["predict"], rtol=PREDICT)
    np.testing.assert_allclose(fixed, fit["predict_fixed"], rtol=PREDICT)
    # bs() warns about Days beyond the boundary knots as R's bs() does (lme4's predict
    # silences the warnings of its model frame); ns() extrapolates silently.
    warning = "some 'x' values beyond boundary knots may cause ill-conditioned bases"
    expect = {warning} if "bs(" in fit["formula"] else set()
    assert {str(w.message) for w in caught} == expect


def test_new_combination_of_an_interaction_predicts_at_the_population_level():
    # lme4 1.1.31 refuses a new level of interaction(a, b) even with allow.new.levels = TRUE
    _, res = _fitted("simulated_interaction")
    new = pd.DataFrame({"x": [0.5, 0.5], "a": ["a3", "a1"], "b": ["b2", "b1"]})   # a3.b2 is not in the data
    with pytest.raises(ValueError, match=r"new level\(s\) \['a3.b2'\]"):
        res.predict(new)
    got = res.predict(new, allow_new_levels=True)
    fixed = res.predict(new, re_form="~0")
    assert got[0] == pytest.approx(fixed[0], rel=1e-14)
    assert got[1] == pytest.approx(fixed[1] + res.ranef["interaction(a, b)"].loc["a1.b1", "(Intercept)"], rel=1e-14)


def test_knots_ignore_rows_dropped_for_other_columns():
    # R's model frame evaluates ns() on every row, then na.omit drops the incomplete ones.
    fit = ALL_FITS[NA_RESPONSE]
    assert "knots = c(`33.33333%` = 3, `66.66667%` = 6)" in fit["predvars"]
    _, res = _fitted(NA_RESPONSE)
    assert res.objective == pytest.approx(fit["objective"], rel=OBJECTIVE_OPTIMUM)
