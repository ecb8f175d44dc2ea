"""Predictions, simulation and residuals of a fit against lme4."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

from inference_cases import PREDICT, cases, fit, table

# --------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("ref", cases("predictions"))
def test_predictions_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"])
    newdata = table(ref["newdata"]).reset_index(drop=True)
    np.testing.assert_allclose(res.fitted()[:10], ref["fitted"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, re_form="~0"), ref["population"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, re_form="NA"), ref["population"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, allow_new_levels=True), ref["new_levels"], rtol=PREDICT)
    known = newdata.iloc[ref["known_rows"]]
    np.testing.assert_allclose(res.predict(known), ref["known"], rtol=PREDICT)
    if "re_form_intercept" in ref:
        np.testing.assert_allclose(res.predict(known, re_form="~(1 | Subject)"), ref["re_form_intercept"],
                                   rtol=PREDICT)
    if len(known) < len(newdata):
        with pytest.raises(ValueError, match="allow_new_levels"):
            res.predict(newdata)


def test_predict_on_training_rows_and_errors():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    np.testing.assert_allclose(res.predict(), res.fitted())
    X = res.model.design.X
    np.testing.assert_allclose(res.predict(re_form="~0"), X @ res.fixef.to_numpy())
    with pytest.raises(ValueError, match="not in the model"):
        res.predict(re_form="~(1 | Subject)")
    new = pd.DataFrame({"Days": [1.0], "Subject": ["308"]})
    with pytest.raises(lmm.FormulaError, match="unknown column"):
        res.predict(pd.DataFrame({"days": [1.0], "Subject": ["308"]}))
    # strings or categoricals: levels are matched by label
    assert res.predict(new)[0] == pytest.approx(res.predict(new.astype({"Subject": "category"}))[0])


def test_predict_rejects_unseen_factor_level():
    res = fit("score ~ Machine + (1 | Worker)", "machines")
    with pytest.raises(lmm.FormulaError, match="not in the data the model was fitted to"):
        res.predict(pd.DataFrame({"Machine": ["D"], "Worker": ["1"]}))


# --------------------------------------------------------------------------- simulate, residuals, tables


def test_simulate_reproduces_moments():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    d = res.model.design
    nsim = 4000
    y = res.simulate(nsim, seed=11)
    assert y.shape == (res.nobs, nsim)
    np.testing.assert_array_equal(y, res.simulate(nsim, seed=11))
    mean = d.X @ res.fixef.to_numpy()
    t = res.model.terms[0]
    lam = res.solution.lambdas[0]
    cov_b = res.sigma**2 * lam @ lam.T
    var = res.sigma**2 + np.einsum("ij,jk,ik->i", t.z, cov_b, t.z)
    sd_mean = np.sqrt(var / nsim)
    assert np.max(np.abs(y.mean(axis=1) - mean) / sd_mean) < 4.5
    rel_var = y.var(axis=1, ddof=1) / var
    assert abs(rel_var.mean() - 1) < 0.02
    # two rows of one subject covary through the random effects
    i, j = 0, 9
    cov_ij = t.z[i] @ cov_b @ t.z[j]
    assert np.cov(y[i], y[j])[0, 1] == pytest.approx(cov_ij, rel=0.1)
    yu = res.simulate(nsim, seed=3, use_u=True)
    assert np.max(np.abs(yu.mean(axis=1) - res.fitted())) < 5 * res.sigma / np.sqrt(nsim)
    assert yu.var(axis=1, ddof=1).mean() == pytest.approx(res.sigma**2, rel=0.02)


def test_residual_types():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    r = res.residuals()
    np.testing.assert_allclose(r, res.model.design.y - res.fitted())
    np.testing.assert_allclose(res.residuals(type="pearson"), r / res.sigma)
    np.testing.assert_allclose(res.residuals(scaled=True), r / res.sigma)
    with pytest.raises(ValueError, match="type"):
        res.residuals(type="deviance")


def test_per_row_outputs_align_with_the_data_after_rows_are_dropped():
    # lme4's na.exclude: 177 of 180 rows used, outputs on all 180 rows with NaN where dropped,
    # so that they can be put back into the data.
    data = lmm.datasets.load("sleepstudy").set_index(pd.Index([f"r{i}" for i in range(180)]))
    data.loc[["r3", "r50", "r111"], "Reaction"] = np.nan
    with pytest.warns(UserWarning, match="3 of 180 rows dropped"):
        res = lmm.lmer("Reaction ~ Days + (Days | Subject)", data)
    for values in (res.fitted(), res.residuals(), res.residuals(type="pearson"), res.predict()):
        assert isinstance(values, pd.Series) and values.index.equals(data.index)
        assert list(values.index[values.isna()]) == ["r3", "r50", "r111"]
    data["fit"] = res.fitted()
    np.testing.assert_allclose(data["fit"].dropna().to_numpy(), res.fitted(array=True))
    np.testing.assert_allclose((data["Reaction"] - data["fit"]).dropna().to_numpy(), res.residuals(array=True))
    new = data.iloc[[0, 3, 7]]
    assert res.predict(new).index.equals(new.index)
    np.testing.assert_allclose(res.predict(new).to_numpy(), res.predict(new, array=True))
