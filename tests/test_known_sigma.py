"""A known residual SD (sigma=): random-effects meta-analyses against metafor, the
criterion against a dense likelihood, its exact gradient, and what a known σ changes
(npar, identifiability, Satterthwaite's parameters)."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "sigma_reference.json").read_text())

# Named tolerances: metafor's optimizer stops at its own tolerance (τ² to ~1e-6);
# β, SEs and the log-likelihood at the optimum follow it closely; the criterion at a
# fixed θ and the dense likelihood agree to rounding; gradients to central differences.
TAU2 = 1e-4
BETA = 1e-5
SE = 1e-5
LOGLIK = 1e-8
DENSE = 1e-10
GRADIENT = 1e-6


def _data(name: str) -> pd.DataFrame:
    d = REFERENCE["data"][name]
    return pd.DataFrame({k: v for k, v in d.items() if k != "rows"})


def _fit(fid: str):
    f = REFERENCE["fits"][fid]
    data = _data(f["data"])
    return f, data, lmm.lmer(f["formula"], data, REML=f["REML"], weights=1 / data["vi"], sigma=1.0)


@pytest.mark.parametrize("fid", list(REFERENCE["fits"]))
def test_meta_analysis_matches_metafor(fid):
    f, data, res = _fit(fid)
    # metafor's σ² are in the order of its random formula: district, then school within district.
    groups = {"bcg": ["study"], "konstantopoulos": ["district", "school:district"]}[f["data"]]
    vc = res.varcorr.set_index("grp")["vcov"]
    np.testing.assert_allclose([vc[g] for g in groups], f["sigma2"], rtol=TAU2)
    np.testing.assert_allclose(res.fixef.to_numpy(), list(f["beta"].values()), rtol=BETA)
    np.testing.assert_allclose(res.se.to_numpy(), list(f["se"].values()), rtol=SE)
    assert res.sigma == 1.0
    # metafor's REML log-likelihood adds ½ log|X'X| (its REMLf = TRUE); the ML ones are equal.
    X = res.model.design.X
    extra = 0.5 * np.linalg.slogdet(np.asarray(X).T @ np.asarray(X))[1] if f["REML"] else 0.0
    assert res.loglik == pytest.approx(f["logLik"] - extra, rel=LOGLIK)
    assert res.nobs == f["nobs"]
    assert res.npar == X.shape[1] + res.model.ntheta  # σ is not a parameter
    assert res.aic == pytest.approx(-2 * res.loglik + 2 * res.npar)


def _dense_criterion(y, X, Z, lam, w, sigma, reml):
    """−2 log L (ML, at β̂) or the REML criterion from V = σ²(Z Λ Λ' Z' + W⁻¹)."""
    V = sigma**2 * (Z @ lam @ lam.T @ Z.T + np.diag(1 / w))
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    n, p = X.shape
    out = np.linalg.slogdet(V)[1] + r @ Vi @ r + n * math.log(2 * math.pi)
    if reml:
        out += np.linalg.slogdet(X.T @ Vi @ X)[1] - p * math.log(2 * math.pi)
    return out


@pytest.mark.parametrize("reml", [True, False])
def test_criterion_at_fixed_theta_equals_the_dense_likelihood(reml):
    rng = np.random.default_rng(5)
    n, groups = 90, 12
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    data = pd.DataFrame({"y": 1 + 0.5 * x + rng.normal(size=groups)[g] + rng.normal(size=n), "x": x,
                         "g": g, "w": rng.uniform(0.5, 2.0, n)})
    model = lmm.LinearMixedModel("y ~ x + (1 + x | g)", data, REML=reml, weights="w", sigma=0.7)
    theta = np.array([0.8, -0.3, 0.5])
    t = model.terms[0]
    Z = np.zeros((n, t.nlevels * 2))
    for i in range(n):
        Z[i, 2 * t.codes[i]: 2 * t.codes[i] + 2] = t.z[i]
    lam = np.kron(np.eye(t.nlevels), np.array([[0.8, 0.0], [-0.3, 0.5]]))
    X = np.column_stack([np.ones(n), x])
    want = _dense_criterion(data["y"].to_numpy(), X, Z, lam, data["w"].to_numpy(), 0.7, reml)
    assert model.objective(theta) == pytest.approx(want, rel=DENSE)
    # the exact gradient against central differences
    h = 1e-6
    fd = [(model.objective(theta + h * e) - model.objective(theta - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(model.gradient(theta), fd, rtol=GRADIENT, atol=GRADIENT)
    res = model.fit()
    assert res.sigma == 0.7 and res.converged
    assert res.objective <= model.objective(theta)


def test_known_sigma_summary_and_satterthwaite():
    _, data, res = _fit("bcg_ablat")
    text = str(res)
    assert "(fixed)" in text.splitlines()[[i for i, s in enumerate(text.splitlines()) if "Residual" in s][0]]
    tab = res.coef_table()
    assert np.all(np.isfinite(tab["df"])) and np.all(tab["df"] > 0)
    # σ is not among Satterthwaite's parameters: its row and column of Cov(varpar) are 0
    s = res.satterthwaite()
    assert np.all(s.vcov_varpar[-1] == 0) and np.all(s.vcov_varpar[:, -1] == 0)
    # a shift of the response leaves the model (and its df) the same
    moved = lmm.lmer("yi ~ ablat + (1 | study)", data.assign(yi=data["yi"] + 100.0), weights=1 / data["vi"],
                     sigma=1.0)
    np.testing.assert_allclose(moved.coef_table()["df"], tab["df"], rtol=1e-6)
    assert moved.fixef["ablat"] == pytest.approx(res.fixef["ablat"], rel=1e-8)


def test_known_sigma_arguments():
    data = lmm.datasets.load("sleepstudy")
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="sigma must be a positive number"):
            lmm.lmer("Reaction ~ Days + (1 | Subject)", data, sigma=bad)
    res = lmm.lmer("Reaction ~ Days + (1 | Subject)", data, sigma=25.0)
    with pytest.raises(NotImplementedError, match="known residual SD"):
        res.coef_table("Kenward-Roger")
    with pytest.raises(NotImplementedError, match="known residual SD"):
        res.profile()
    # one effect per observation is identifiable when σ is known
    one_each = data.assign(obs=np.arange(len(data)))
    fit = lmm.lmer("Reaction ~ Days + (1 | Subject) + (1 | obs)", one_each, sigma=20.0)
    assert fit.converged and fit.npar == 2 + 2
