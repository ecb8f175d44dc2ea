"""Prior weights and offsets: the criterion against a dense likelihood with
V = σ²(Z S Z' + W⁻¹), equivalences that must hold exactly (constant weights rescale θ and
σ; an offset is a known part of the response), predictions and simulations with offsets,
invariance to shifts and scales of y, and bad input. The comparisons with lme4's numbers
are in test_lme4_weights_offsets.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

DENSE_REL = 1e-10      # criterion against the dense likelihood at a fixed θ
EXACT_REL = 1e-9       # two formulations of one model, both at their optima
ESTIMATE_REL = 1e-5    # θ, β, σ of two fits of one model


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    d = lmm.datasets.load("sleepstudy")
    return d.assign(w=1 + (d.Days % 3) / 2, o=np.log(d.Days + 1))


def dense_criterion(model: lmm.LinearMixedModel, theta, reml: bool) -> float:
    """Profiled criterion of V/σ² = Z S Z' + W⁻¹, densely, S from the core's λ."""
    d, (t,) = model.design, model.terms
    lam = lmm.covariance.lambdas_from_theta(np.asarray(theta, float), model.terms)[0]
    S = lam @ lam.T
    n = model.nobs
    w = np.ones(n) if d.weights is None else d.weights
    V = np.diag(1 / w) + (t.codes[:, None] == t.codes[None, :]) * (t.z @ S @ t.z.T)
    L = np.linalg.cholesky(V)
    Xw, yw = np.linalg.solve(L, d.X), np.linalg.solve(L, d.y_fit)
    beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
    rss = float(np.sum((yw - Xw @ beta) ** 2))
    dof = n - d.X.shape[1] if reml else n
    f = 2 * np.sum(np.log(np.diag(L))) + dof * (1 + np.log(2 * np.pi * rss / dof))
    return float(f + (np.linalg.slogdet(Xw.T @ Xw)[1] if reml else 0.0))


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("formula, kw", [
    ("Reaction ~ Days + (Days | Subject)", {"weights": "w"}),
    ("Reaction ~ Days + offset(o) + (Days | Subject)", {}),
    ("Reaction ~ Days + (Days | Subject)", {"weights": "w", "offset": "o"}),
    ("Reaction ~ Days + cs(Days | Subject)", {"weights": "w"}),
], ids=["weights", "offset", "both", "weighted_cs"])
def test_criterion_equals_dense_likelihood(sleep, formula, kw, reml):
    m = lmm.LinearMixedModel(formula, sleep, **kw)
    for theta in ([1.0, 0.0, 1.0], [0.8, 0.3, 0.2]):
        assert m.objective(theta, reml) == pytest.approx(dense_criterion(m, theta, reml), rel=DENSE_REL)


def test_constant_weights_rescale_theta_and_sigma(sleep):
    """Weights c: the residual variance σ_w²/c is the unweighted σ², so σ_w = √c σ and
    θ_w = θ/√c (the random effects' covariance σ²θθ' is unchanged); β unchanged."""
    a = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    b = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights=np.full(len(sleep), 4.0))
    np.testing.assert_allclose(b.theta, a.theta / 2.0, rtol=ESTIMATE_REL)
    assert b.sigma == pytest.approx(2.0 * a.sigma, rel=ESTIMATE_REL)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=ESTIMATE_REL)
    np.testing.assert_allclose(b.se, a.se, rtol=ESTIMATE_REL)


def test_offset_is_a_known_part_of_the_response(sleep):
    a = lmm.lmer("Reaction ~ Days + offset(o) + (Days | Subject)", sleep)
    b = lmm.lmer("I(Reaction - o) ~ Days + (Days | Subject)", sleep)
    c = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, offset="o")
    d = lmm.lmer("Reaction ~ Days + offset(o / 2) + offset(o / 2) + (Days | Subject)", sleep)
    for other in (b, c, d):
        assert a.objective == pytest.approx(other.objective, rel=EXACT_REL)
        np.testing.assert_allclose(a.fixef.to_numpy(), other.fixef.to_numpy(), rtol=ESTIMATE_REL)
        np.testing.assert_allclose(a.theta, other.theta, rtol=ESTIMATE_REL)
    np.testing.assert_allclose(a.fitted(), b.fitted() + sleep.o, rtol=1e-9)
    np.testing.assert_allclose(a.residuals(), b.residuals(), atol=1e-6)
    np.testing.assert_allclose(a.predict(), a.fitted(), rtol=1e-12)


def test_predict_and_simulate_with_offsets(sleep):
    a = lmm.lmer("Reaction ~ Days + offset(log(Days + 1)) + (Days | Subject)", sleep)
    b = lmm.lmer("I(Reaction - log(Days + 1)) ~ Days + (Days | Subject)", sleep)
    new = pd.DataFrame({"Days": [0.0, 4.5, 9.0], "Subject": ["308", "309", "new"]})
    off = np.log(new.Days + 1).to_numpy()
    for re_form in (None, "~0"):
        np.testing.assert_allclose(a.predict(new, re_form=re_form, allow_new_levels=True),
                                   b.predict(new, re_form=re_form, allow_new_levels=True) + off, rtol=1e-7)
    np.testing.assert_allclose(a.simulate(3, seed=7),
                               b.simulate(3, seed=7) + np.log(sleep.Days + 1).to_numpy()[:, None], rtol=1e-7)
    c = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, offset="o")
    with pytest.raises(ValueError, match="offset"):
        c.predict(new, allow_new_levels=True)
    np.testing.assert_allclose(c.predict(new, offset=off, allow_new_levels=True),
                               a.predict(new, allow_new_levels=True), rtol=1e-7)


def test_weighted_simulation_and_pearson_residuals(sleep):
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights="w")
    r = res.residuals()
    np.testing.assert_allclose(res.residuals(type="pearson"), r * np.sqrt(sleep.w) / res.sigma)
    sims = res.simulate(400, seed=3, use_u=True) - res.fitted(array=True)[:, None]
    # residual variance σ²/w: the rows with weight 2 vary half as much as those with weight 1
    v1, v2 = sims[sleep.w == 1].var(), sims[sleep.w == 2].var()
    assert v1 / v2 == pytest.approx(2.0, rel=0.1)


def test_weighted_fit_invariant_to_shift_and_scale(sleep):
    a = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights="w", offset="o")
    moved = sleep.assign(Reaction=1e3 * sleep.Reaction + 1e7, o=1e3 * sleep.o)
    b = lmm.lmer("Reaction ~ Days + (Days | Subject)", moved, weights="w", offset="o")
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5)
    assert b.sigma == pytest.approx(1e3 * a.sigma, rel=1e-6)
    np.testing.assert_allclose(b.se.to_numpy(), 1e3 * a.se.to_numpy(), rtol=1e-5)
    assert b.coef_table()["df"].to_numpy() == pytest.approx(a.coef_table()["df"].to_numpy(), rel=1e-5)


def test_bad_weights_and_offsets(sleep):
    f = "Reaction ~ Days + (Days | Subject)"
    with pytest.raises(ValueError, match="positive"):
        lmm.LinearMixedModel(f, sleep.assign(w=sleep.w.where(sleep.Days != 3, 0.0)), weights="w")
    with pytest.raises(TypeError, match="numeric"):
        lmm.LinearMixedModel(f, sleep.assign(w="a"), weights="w")
    with pytest.raises(ValueError, match="one value per row"):
        lmm.LinearMixedModel(f, sleep, weights=np.ones(3))
    with pytest.raises(ValueError, match="not in the data"):
        lmm.LinearMixedModel(f, sleep, offset="nope")
    with pytest.warns(UserWarning, match="dropped"):
        m = lmm.LinearMixedModel(f, sleep.assign(w=sleep.w.where(sleep.Days != 3)), weights="w")
    assert m.nobs == 162 and len(m.design.weights) == 162
    with pytest.raises(lmm.FormulaError):
        lmm.LinearMixedModel("Reaction ~ Days - offset(o) + (Days | Subject)", sleep)


def test_unimplemented_with_weights_says_so(sleep):
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights="w")
    with pytest.raises(NotImplementedError, match="weighted"):
        res.summary(ddf="Kenward-Roger")
