"""Structured covariance terms (lme4 2.x's us/diag/cs/ar1, glmmTMB's toep): formula syntax,
the parameterization against its definition, the criterion against a dense likelihood,
exact gradients against central differences (interior, near and on the bounds of ρ), and
fits that lme4 2.x cannot make (ρ on its bound). The comparisons with lme4 2.x's numbers
are in test_structures_lme4.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import _core
from lmm.formula import FormulaError, parse_formula

# Named tolerances: the criterion against the dense likelihood (rounding of a 400 × 400
# Cholesky); central differences with step 1e-6 against the exact gradient.
DENSE_REL = 1e-10
GRADIENT_REL = 1e-5
GRADIENT_ABS = 1e-5
STEP = 1e-6


def longitudinal(seed: int = 3, nsubj: int = 40, ntime: int = 4, reps: int = 1) -> pd.DataFrame:
    """Subjects measured reps times at each of ntime occasions with AR(1)-correlated
    subject-by-time effects. With one measurement per occasion σ² and a structure whose
    SDs absorb it (cs with hom = TRUE: s²(1 − ρ) + σ² is what the data determine) are not
    separately identified; fits use reps = 2."""
    rng = np.random.default_rng(seed)
    t = np.arange(ntime)
    R = 0.6 ** np.abs(np.subtract.outer(t, t))
    b = rng.multivariate_normal(np.zeros(ntime), 4.0 * R, nsubj)
    rows = [(f"s{i:02d}", k, 10 + 0.5 * k + b[i, k] + rng.standard_normal())
            for i in range(nsubj) for k in t for _ in range(reps)]
    return pd.DataFrame(rows, columns=["subject", "time", "y"])


STRUCTURED = {
    "cs": "y ~ time + cs(0 + factor(time) | subject)",
    "cs_hom": "y ~ time + cs(0 + factor(time) | subject, hom = TRUE)",
    "ar1": "y ~ time + ar1(0 + factor(time) | subject)",
    "ar1_het": "y ~ time + ar1(0 + factor(time) | subject, hom = FALSE)",
    "toep": "y ~ time + toep(0 + factor(time) | subject)",
    "toep_hom": "y ~ time + toep(0 + factor(time) | subject, hom = TRUE)",
    "diag_hom": "y ~ time + diag(0 + factor(time) | subject, hom = TRUE)",
    "diag": "y ~ time + diag(0 + factor(time) | subject)",
    "us": "y ~ time + us(0 + factor(time) | subject)",
}


@pytest.mark.parametrize("structure", list(STRUCTURED))
def test_formula_gives_the_structure(structure):
    (term,) = parse_formula(STRUCTURED[structure]).random
    assert term.structure == structure
    assert term.name == "subject" and term.expr == "0 + factor(time)"


def test_plain_bar_is_unstructured():
    assert parse_formula("y ~ x + (x | g)").random[0].structure == "us"
    assert [t.structure for t in parse_formula("y ~ (x || g)").random] == ["us", "us"]


@pytest.mark.parametrize("text, where", [
    ("y ~ cs(x | g, hom = 2)", "2"),
    ("y ~ cs(x | g, rho = TRUE)", "TRUE"),
    ("y ~ us(x | g, hom = TRUE)", "TRUE"),
    ("y ~ cs(x || g)", "||"),
    ("y ~ x - cs(x | g)", "cs(x | g)"),
])
def test_malformed_structure_says_where(text, where):
    with pytest.raises(FormulaError) as err:
        parse_formula(text)
    message = str(err.value)
    text_line, caret_line = message.splitlines()[-2:]
    start = caret_line.index("^") - text_line.index(text)
    assert text[start:start + len(where)] == where, message


def definition_covariance(structure: str, par: np.ndarray, p: int) -> np.ndarray:
    """D R D from the structure's definition (lme4 2.x's vignette; Toeplitz by Durbin–Levinson)."""
    hom = structure in ("cs_hom", "ar1", "toep_hom", "diag_hom")
    nsd = 1 if hom else p
    sd = np.full(p, par[0]) if hom else np.asarray(par[:p])
    rho = par[nsd:]
    lag = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    if structure.startswith("cs"):
        R = np.where(lag == 0, 1.0, rho[0])
    elif structure.startswith("ar1"):
        R = rho[0] ** lag
    elif structure.startswith("toep"):
        r, a = [1.0], np.zeros(0)
        for phi in rho:
            a = np.append(a - phi * a[::-1], phi)
            r.append(float(a @ np.asarray(r)[::-1]))
        R = np.asarray(r)[lag]
    else:
        R = np.eye(p)
    return np.outer(sd, sd) * R


INTERIOR = {
    "cs": [1.1, 0.8, 1.3, 0.9, 0.4], "cs_hom": [0.9, -0.2], "ar1": [1.2, 0.5],
    "ar1_het": [1.0, 0.7, 0.9, 1.4, -0.3], "toep": [1.0, 0.9, 1.1, 0.8, 0.5, -0.3, 0.2],
    "toep_hom": [1.0, 0.6, 0.2, -0.1], "diag_hom": [0.7],
}


@pytest.mark.parametrize("structure", list(INTERIOR))
def test_lambda_is_the_cholesky_factor_of_the_definition(structure):
    par = np.asarray(INTERIOR[structure])
    lam = _core.theta_to_lambda(4, structure, par)
    assert np.allclose(np.triu(lam, 1), 0.0)
    np.testing.assert_allclose(lam @ lam.T, definition_covariance(structure, par, 4), rtol=0, atol=1e-12)


def dense_criterion(model: lmm.LinearMixedModel, par: np.ndarray, reml: bool) -> float:
    """−2 log L (or the REML criterion) with σ profiled out, from V/σ² = Z S Z' + I built densely."""
    (t,) = model.terms
    S = definition_covariance(t.structure, par, t.p) if t.structure not in ("us", "diag") else \
        _core.theta_to_lambda(t.p, t.structure, par) @ _core.theta_to_lambda(t.p, t.structure, par).T
    X, y, n = model.design.X, model.design.y, model.nobs
    same = t.codes[:, None] == t.codes[None, :]
    V = np.eye(n) + same * (t.z @ S @ t.z.T)
    L = np.linalg.cholesky(V)
    Xw, yw = np.linalg.solve(L, X), np.linalg.solve(L, y)
    beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
    rss = float(np.sum((yw - Xw @ beta) ** 2))
    dof = n - X.shape[1] if reml else n
    f = 2 * np.sum(np.log(np.diag(L))) + dof * (1 + np.log(2 * np.pi * rss / dof))
    if reml:
        f += np.linalg.slogdet(Xw.T @ Xw)[1]
    return float(f)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("structure", list(INTERIOR))
def test_criterion_equals_dense_likelihood(structure, reml):
    model = lmm.LinearMixedModel(STRUCTURED[structure], longitudinal())
    par = np.asarray(INTERIOR[structure])
    dense = dense_criterion(model, par, reml)
    assert model.objective(par=par, reml=reml) == pytest.approx(dense, rel=DENSE_REL)


def central_difference(model, par, reml, upper):
    g = np.empty_like(par)
    for i in range(par.size):
        h = STEP * max(1.0, abs(par[i]))
        up, down = par.copy(), par.copy()
        if par[i] + h > upper[i]:  # one-sided next to an upper bound
            up[i], down[i] = par[i], par[i] - 2 * h
        else:
            up[i] += h
            down[i] -= h
        g[i] = (model.objective(up, reml) - model.objective(down, reml)) / (up[i] - down[i])
    return g


GRADIENT_POINTS = [(s, w) for s in INTERIOR for w in ("interior", "near_lower", "near_upper")
                   if w == "interior" or s != "diag_hom"]  # (diag_hom has no correlation parameter)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("structure, where", GRADIENT_POINTS)
def test_gradient_matches_central_differences(structure, where, reml):
    model = lmm.LinearMixedModel(STRUCTURED[structure], longitudinal())
    par = np.asarray(INTERIOR[structure], dtype=float)
    lower, upper = model.theta_lower, model.theta_upper
    corr = np.flatnonzero(lower < 0)
    if where != "interior":
        width = upper[corr] - lower[corr]
        par[corr] = lower[corr] + 1e-3 * width if where == "near_lower" else upper[corr] - 1e-3 * width
    value, grad = model.objective_and_gradient(par=par, reml=reml)
    fd = central_difference(model, par, reml, upper)
    np.testing.assert_allclose(grad, fd, rtol=GRADIENT_REL, atol=GRADIENT_ABS)


@pytest.mark.parametrize("structure", ["cs", "cs_hom", "ar1", "toep"])
def test_criterion_finite_and_continuous_on_the_bounds(structure):
    """lme4 2.x returns NaN for cs with 3+ columns once ρ reaches 1; here the criterion is
    defined on the whole closed interval and is the limit from inside."""
    model = lmm.LinearMixedModel(STRUCTURED[structure], longitudinal())
    par = np.asarray(INTERIOR[structure], dtype=float)
    lower, upper = model.theta_lower, model.theta_upper
    for i in np.flatnonzero(lower < 0):
        for bound, inward in ((upper[i], -1.0), (lower[i], 1.0)):
            at, near = par.copy(), par.copy()
            at[i] = bound
            near[i] = bound + inward * 1e-8 * (upper[i] - lower[i])
            f_at, f_near = model.objective(at), model.objective(near)
            assert np.isfinite(f_at)
            assert f_at == pytest.approx(f_near, rel=1e-8)
        outside = par.copy()
        outside[i] = upper[i] + 0.5
        with pytest.raises(ValueError, match="bounds"):
            model.objective(outside)


def test_cs_at_rho_one_fits_where_the_data_say_so():
    """Identical subject effects at every occasion: ρ's optimum is its bound 1. The fit ends
    there, converged, with a criterion below every interior point tried."""
    rng = np.random.default_rng(5)
    b = rng.normal(0, 2, 50)
    rows = [(f"s{i}", k, 1 + 0.3 * k + b[i] + rng.normal(0, 1)) for i in range(50) for k in range(4)]
    data = pd.DataFrame(rows, columns=["subject", "time", "y"])
    res = lmm.lmer("y ~ time + cs(0 + factor(time) | subject, hom = TRUE)", data)
    rho = res.par[-1]
    assert res.converged
    assert rho > 0.99
    for r in (0.9, 0.99, 0.999):
        assert res.objective <= res.model.objective(np.array([res.par[0], r])) + 1e-9


@pytest.mark.parametrize("structure", ["cs", "ar1", "toep", "ar1_het"])
def test_structured_fit_is_invariant_to_shifts_and_scales_of_y(structure):
    data = longitudinal(reps=2)
    a = lmm.lmer(STRUCTURED[structure], data)
    shifted = data.assign(y=1e3 * data.y + 1e6)
    b = lmm.lmer(STRUCTURED[structure], shifted)
    np.testing.assert_allclose(b.par, a.par, rtol=1e-5, atol=1e-6)
    assert b.sigma == pytest.approx(1e3 * a.sigma, rel=1e-6)
    np.testing.assert_allclose(b.se.to_numpy(), 1e3 * a.se.to_numpy(), rtol=1e-5)


def test_two_column_structures_agree_where_they_coincide():
    """With two columns cs, toep and us are one model (any 2 × 2 covariance), and cs(hom)
    and ar1 are another: their criteria agree at the optimum."""
    data = lmm.datasets.load("sleepstudy")
    fit = {s: lmm.lmer(f"Reaction ~ Days + {s}(Days | Subject)", data).objective for s in ("us", "cs", "toep", "ar1")}
    hom = lmm.lmer("Reaction ~ Days + cs(Days | Subject, hom = TRUE)", data).objective
    assert fit["cs"] == pytest.approx(fit["us"], rel=1e-9)
    assert fit["toep"] == pytest.approx(fit["us"], rel=1e-9)
    assert hom == pytest.approx(fit["ar1"], rel=1e-9)


def test_par_and_theta_names():
    res = lmm.lmer("Reaction ~ Days + cs(Days | Subject)", lmm.datasets.load("sleepstudy"))
    assert res.par_names == ["Subject.(Intercept)", "Subject.Days", "Subject.rho"]
    assert res.theta_names == ["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"]
    lam = _core.theta_to_lambda(2, "cs", res.par)
    np.testing.assert_allclose(res.theta, [lam[0, 0], lam[1, 0], lam[1, 1]])


@pytest.mark.parametrize("method", ["kenward_roger", "profile"])
def test_unimplemented_inference_says_so(method):
    res = lmm.lmer("Reaction ~ Days + cs(Days | Subject)", lmm.datasets.load("sleepstudy"))
    with pytest.raises(NotImplementedError, match="structured"):
        if method == "kenward_roger":
            res.summary(ddf="Kenward-Roger")
        else:
            res.profile()


def test_satterthwaite_df_do_not_depend_on_the_parameterization():
    """cs and toep with two columns are the unstructured model in other coordinates (ρ
    mapped inside its interval for the numerical derivatives): the same df as us."""
    data = lmm.datasets.load("sleepstudy")
    us = lmm.lmer("Reaction ~ Days + (Days | Subject)", data).coef_table()["df"].to_numpy()
    for s in ("cs", "toep"):
        df = lmm.lmer(f"Reaction ~ Days + {s}(Days | Subject)", data).coef_table()["df"].to_numpy()
        np.testing.assert_allclose(df, us, rtol=1e-6)


def test_summary_prints_structures_as_lme4_2():
    res = lmm.lmer("distance ~ age + ar1(0 + factor(age) | Subject)", lmm.datasets.load("orthodont"))
    block = str(res).split("Random effects:")[1].split("Number of obs")[0].splitlines()
    assert block[2].split()[:2] == ["Subject", "factor(age)8"] and block[2].endswith(f"{res.par[1]:.2f} (ar1)")
    assert block[3].split()[0] == "Residual"          # one row: the columns share the SD
    res = lmm.lmer("Reaction ~ Days + cs(Days | Subject)", lmm.datasets.load("sleepstudy"))
    assert "0.07 (cs)" in str(res)


@pytest.mark.parametrize("lhs", ["0 + Machine", "Machine"])
def test_double_bar_diag_special(lhs):
    """double_bar="diag" (lme4's diag_special): (f || g) is diag(f | g), every column of a
    factor-valued slope independent; the default keeps lme4's split."""
    d = lmm.datasets.load("machines")
    a = lmm.lmer(f"score ~ Machine + ({lhs} || Worker)", d, double_bar="diag")
    b = lmm.lmer(f"score ~ Machine + diag({lhs} | Worker)", d)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert [t.structure for t in a.model.terms] == ["diag"]
    split = lmm.lmer(f"score ~ Machine + ({lhs} || Worker)", d)
    assert "us" in [t.structure for t in split.model.terms]
    with pytest.raises(ValueError, match="double_bar"):
        lmm.LinearMixedModel("score ~ Machine + (1 | Worker)", d, double_bar="nope")
