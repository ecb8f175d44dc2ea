"""The matrix-free method (lmm.matrix_free) against lme4 and against the exact method.

lme4's values: tests/reference/matrix_free_reference.json (InstEval with two crossed
terms, made by make_matrix_free_reference.R) and lme4_reference.json (penicillin, pastes,
emails). With at most 64 levels in the smaller factor the method's traces and
log-determinant are exact; above, they are estimates whose Monte Carlo SEs the fit reports.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import _core as core

from conftest import load_reference

# Tolerances per quantity (relative unless named absolute).
THETA_EXACT = 1e-5         # exact traces: the same optimum as lme4's, to its optimizer's precision
BETA_EXACT = 1e-6
OBJECTIVE_EXACT = 1e-9
THETA = 1e-3               # estimated traces (the method's accuracy goal)
BETA = 1e-4
SE = 1e-3
SIGMA = 1e-4
RANEF = 1e-2               # relative to the largest |mode| of the column
MC_SES = 5.0               # an estimate against its reported Monte Carlo SE

MF_REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "matrix_free_reference.json").read_text())
CROSSED_IDS = ["penicillin_REML", "penicillin_ML", "pastes_sample_REML", "pastes_sample_ML", "emails_REML",
               "emails_ML"]
CROSSED = [f for f in load_reference()["fits"] if f["id"] in CROSSED_IDS]
INSTEVAL = "y ~ 1 + service + (1 | s) + (1 | d)"


def _fit(ref, **kwargs):
    return lmm.lmer(ref["formula"], lmm.datasets.load(ref["dataset"]), REML=ref["REML"], method="matrix-free",
                    **kwargs)


def _check_estimates(res, ref, theta, beta, se, sigma):
    np.testing.assert_allclose(res.theta, list(ref["theta"].values()), rtol=theta)
    assert list(res.fixef.index) == list(ref["beta"])
    np.testing.assert_allclose(res.fixef.to_numpy(), list(ref["beta"].values()), rtol=beta, atol=beta * 1e-2)
    np.testing.assert_allclose(res.se.to_numpy(), list(ref["se"].values()), rtol=se)
    assert res.sigma == pytest.approx(ref["sigma"], rel=sigma)
    assert res.nobs == ref["nobs"]
    assert res.ngroups == ref["ngrps"]


@pytest.mark.parametrize("ref", CROSSED, ids=[f["id"] for f in CROSSED])
def test_crossed_lme4_models(ref):
    res = _fit(ref)
    assert res.converged
    exact = res.fit_info["exact_traces"]
    assert exact == (min(ref["ngrps"].values()) <= 64)
    if exact:
        _check_estimates(res, ref, THETA_EXACT, BETA_EXACT, THETA_EXACT, THETA_EXACT)
        assert res.objective == pytest.approx(ref["objective"], rel=OBJECTIVE_EXACT)
        assert res.objective_se == 0 and np.all(res.theta_se == 0)
    else:  # emails: 120 receivers
        _check_estimates(res, ref, THETA, BETA, SE, SIGMA)
        assert abs(res.objective - ref["objective"]) <= MC_SES * res.objective_se
        assert np.all(np.abs(res.theta - list(ref["theta"].values())) <= MC_SES * res.theta_se + 1e-7)


@pytest.mark.parametrize("ref", MF_REFERENCE["fits"], ids=[f["id"] for f in MF_REFERENCE["fits"]])
def test_insteval_against_lme4(ref):
    res = _fit(ref)
    assert res.converged and not res.fit_info["exact_traces"]
    _check_estimates(res, ref, THETA, BETA, SE, SIGMA)
    # θ's error is within its reported Monte Carlo SEs, which are small
    err = np.abs(res.theta - list(ref["theta"].values()))
    assert np.all(err <= MC_SES * res.theta_se)
    assert np.all(res.theta_se < 1e-3 * res.theta)
    assert abs(res.objective - ref["objective"]) <= MC_SES * res.objective_se
    assert res.objective_se < 2.0
    for grp, rec in ref["ranef"].items():
        got = res.ranef[grp]
        for col, values in rec["columns"].items():
            want = np.asarray(values)
            np.testing.assert_allclose(got.loc[rec["levels"], col].to_numpy(), want,
                                       atol=RANEF * np.max(np.abs(got[col].to_numpy())))


def test_score_is_the_exact_gradient_on_average():
    """The estimated gradient at θ against the exact method's (itself tested against differences)."""
    ref = MF_REFERENCE["fits"][0]
    data = lmm.datasets.load("insteval")
    exact = lmm.LinearMixedModel(INSTEVAL, data)
    A = lmm.LinearMixedModel(INSTEVAL, data, method="matrix-free")._shifted.A
    for point in ref["devfun"][1:]:
        theta = np.asarray(point["theta"])
        grad, se, _, _ = core.matrix_free_score(A, theta, 64)
        want = exact.gradient(theta)
        assert np.all(np.abs(grad - want) <= MC_SES * se), (grad, want, se)
        assert np.all(se < 1e-3 * np.abs(want))


def test_exact_traces_give_the_exact_gradient():
    data = lmm.datasets.load("penicillin")
    f = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    exact = lmm.LinearMixedModel(f, data)
    A = lmm.LinearMixedModel(f, data, method="matrix-free")._shifted.A
    for theta in ([0.5, 2.0], [1.5, 3.5], [0.05, 0.4]):
        for reml in (True, False):
            grad, se, _, _ = core.matrix_free_score(A, np.asarray(theta), 4, reml=reml)
            np.testing.assert_allclose(grad, exact.gradient(theta, reml=reml), rtol=1e-7, atol=1e-8)
            assert np.all(se == 0)


def _simulated(seed=3, users=3000, items=400, n=30000):
    """Crossed data with skewed counts per level (heavy-tailed, as ratings)."""
    rng = np.random.default_rng(seed)
    pu = rng.pareto(1.5, users) + 1
    pi = rng.pareto(1.2, items) + 1
    u = rng.choice(users, n, p=pu / pu.sum())
    i = rng.choice(items, n, p=pi / pi.sum())
    x = rng.normal(size=n)
    y = 3 + 0.2 * x + rng.normal(0, 0.5, users)[u] + rng.normal(0, 0.7, items)[i] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "user": [f"u{k}" for k in u], "item": [f"i{k}" for k in i]})


SIM = "y ~ 1 + x + (1 | user) + (1 | item)"


@pytest.fixture(scope="module")
def simulated():
    d = _simulated()
    return d, lmm.lmer(SIM, d)


def test_matches_the_exact_fit(simulated):
    d, exact = simulated
    res = lmm.lmer(SIM, d, method="matrix-free")
    assert not res.fit_info["exact_traces"]
    np.testing.assert_allclose(res.theta, exact.theta, rtol=THETA)
    assert np.all(np.abs(res.theta - exact.theta) <= MC_SES * res.theta_se)
    np.testing.assert_allclose(res.fixef, exact.fixef, rtol=BETA)
    np.testing.assert_allclose(res.se, exact.se, rtol=SE)
    assert res.sigma == pytest.approx(exact.sigma, rel=SIGMA)
    assert abs(res.objective - exact.objective) <= MC_SES * res.objective_se
    np.testing.assert_allclose(res.fitted(array=True), exact.fitted(array=True), rtol=1e-3)
    new = d.iloc[:5]
    np.testing.assert_allclose(res.predict(new), exact.predict(new), rtol=1e-3)


def test_reproducible_from_the_seed(simulated):
    d, _ = simulated
    model = lmm.LinearMixedModel(SIM, d, method="matrix-free")
    a, b, c = model.fit(), model.fit(seed=0), model.fit(seed=7)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.objective == b.objective
    assert not np.array_equal(a.theta, c.theta)
    assert np.all(np.abs(a.theta - c.theta) <= MC_SES * np.hypot(a.theta_se, c.theta_se))
    more = model.fit(probes=32)
    assert np.all(more.theta_se < a.theta_se)


def test_chunks_equal_memory(simulated):
    d, _ = simulated
    whole = lmm.lmer(SIM, d, method="matrix-free")
    parts = lmm.LinearMixedModel.from_chunks(SIM, [d[:9000], d[9000:21000], d[21000:]], method="matrix-free")
    assert parts.method == "matrix-free"
    res = parts.fit()
    np.testing.assert_allclose(res.theta, whole.theta, rtol=1e-8)
    np.testing.assert_allclose(res.fixef, whole.fixef, rtol=1e-8)
    assert res.objective == pytest.approx(whole.objective, rel=1e-9)


def test_invariant_under_shifts_and_scales(simulated):
    d, _ = simulated
    base = lmm.lmer(SIM, d, method="matrix-free")
    moved = d.assign(y=1e4 + 50 * d["y"], x=-3 + 0.01 * d["x"])
    res = lmm.lmer(SIM, moved, method="matrix-free")
    np.testing.assert_allclose(res.theta, base.theta, rtol=1e-6)
    assert res.sigma == pytest.approx(50 * base.sigma, rel=1e-7)
    assert res.fixef["x"] == pytest.approx(50 / 0.01 * base.fixef["x"], rel=1e-7)
    assert res.se["x"] == pytest.approx(50 / 0.01 * base.se["x"], rel=1e-6)
    np.testing.assert_allclose(res.fitted(array=True), 1e4 + 50 * base.fitted(array=True), rtol=1e-9)
    np.testing.assert_allclose(res.ranef["item"].to_numpy(), 50 * base.ranef["item"].to_numpy(), rtol=1e-5,
                               atol=1e-6 * 50 * np.abs(base.ranef["item"].to_numpy()).max())


def test_weights_match_the_exact_fit(simulated):
    d, _ = simulated
    w = 1 + np.random.default_rng(1).random(len(d))
    exact = lmm.lmer(SIM, d, weights=w)
    res = lmm.lmer(SIM, d, weights=w, method="matrix-free")
    np.testing.assert_allclose(res.theta, exact.theta, rtol=THETA)
    np.testing.assert_allclose(res.fixef, exact.fixef, rtol=BETA)
    assert abs(res.objective - exact.objective) <= MC_SES * res.objective_se


def test_auto_chooses_it_past_the_dense_limit(simulated):
    d, _ = simulated
    model = lmm.LinearMixedModel(SIM, d, max_dense_bytes=1e5)
    assert model.method == "matrix-free"
    assert isinstance(model.fit(), lmm.matrix_free.MatrixFreeResult)
    assert lmm.LinearMixedModel(SIM, d).method == "exact"
    with pytest.raises(ValueError, match="dense block"):
        lmm.LinearMixedModel(SIM, d, max_dense_bytes=1e5, method="exact")
    # a model the method does not fit, past the limit: both reasons
    with pytest.raises(ValueError, match="dense block.*one column each"):
        lmm.LinearMixedModel("y ~ x + (1 | user) + (x | item)", d, max_dense_bytes=1e5)


def test_refused_models_and_options():
    sleep = lmm.datasets.load("sleepstudy")
    with pytest.raises(NotImplementedError, match="one column each"):
        lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject) + (1 | Days)", sleep, method="matrix-free")
    with pytest.raises(NotImplementedError, match="two crossed"):
        lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", sleep, method="matrix-free")
    pen = lmm.datasets.load("penicillin")
    f = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    with pytest.raises(NotImplementedError, match="known sigma"):
        lmm.LinearMixedModel(f, pen, method="matrix-free", sigma=1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        lmm.LinearMixedModel(f, pen, method="sparse")
    with pytest.raises(TypeError, match="matrix-free method"):
        lmm.lmer(f, pen, seed=1)
    model = lmm.LinearMixedModel(f, pen, method="matrix-free")
    with pytest.raises(ValueError, match="optimizer"):
        model.fit(optimizer="Nelder-Mead")
    with pytest.raises(ValueError, match="probes"):
        model.fit(probes=1)
    with pytest.raises(ValueError, match="start"):
        model.fit(start=[1.0, -1.0])


def test_result_services_and_refusals():
    ref = MF_REFERENCE["fits"][0]
    res = _fit(ref)
    text = str(res)
    assert "matrix-free fit (seed 0, 8 probes)" in text and "t value" in text and "df" not in text.split("Fixed")[1]
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.theta, res.theta)
    assert back.fitted(array=True)[:5].tolist() == res.fitted(array=True)[:5].tolist()
    ci = res.confint("wald")
    assert ci.loc["service1"].between(-0.12, -0.06).all()
    for call in (res.satterthwaite, res.kenward_roger, res.ranef_condvar, res.profile, res.bootstrap,
                 lambda: res.confint("profile"), lambda: res.model.objective([1.0, 1.0]),
                 lambda: res.model.core):
        with pytest.raises(NotImplementedError):
            call()
    ml = res.refit_ml()
    other = next(f for f in MF_REFERENCE["fits"] if not f["REML"])
    np.testing.assert_allclose(ml.theta, list(other["theta"].values()), rtol=THETA)


def test_boundary_is_a_clear_error():
    """Without item effects the items' variance tends to 0, where the exact method is needed."""
    rng = np.random.default_rng(5)
    n = 20000
    u, i = rng.integers(0, 2000, n), rng.integers(0, 300, n)
    d = pd.DataFrame({"y": rng.normal(0, 0.5, 2000)[u] + rng.normal(size=n), "user": u, "item": i})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = lmm.lmer("y ~ 1 + (1 | user) + (1 | item)", d)
    try:
        res = lmm.lmer("y ~ 1 + (1 | user) + (1 | item)", d, method="matrix-free")
    except RuntimeError as err:
        assert "tends to 0" in str(err) or "stopped" in str(err)
        assert exact.theta[1] < 0.05
    else:  # an interior optimum close to 0: then it is the exact one
        np.testing.assert_allclose(res.theta, exact.theta, rtol=1e-2, atol=1e-3)
