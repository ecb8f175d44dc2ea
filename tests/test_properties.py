"""Invariants of the model, checked with hypothesis on small random designs.

Designs are drawn from a seed and a handful of structural choices (nested or crossed,
scalar or vector terms, ``|`` or ``||``), so hypothesis explores structure and values
together and each failure reproduces from its printed example. Everything is small
(n ≤ 72), so the brute-force check can form the dense n × n marginal covariance.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmm

# Objective at the same θ: the same function, evaluated in another order.
OBJ_RTOL = 1e-9
# Two optimizations of the same function (θ, β, σ, b at the optimum).
FIT_RTOL, FIT_ATOL = 1e-4, 2e-5

SETTINGS = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
FIT_SETTINGS = settings(SETTINGS, max_examples=20)

# name: random-effects terms (formula order); nested (1 | g/h) is written out as lme4 expands it
STRUCTURES = {
    "scalar": ["(1 | g)"],
    "vector": ["(x | g)"],
    "diagonal": ["(x || g)"],
    "nested": ["(1 | g)", "(1 | h:g)"],
    "crossed": ["(1 | g)", "(1 | h)"],
    "crossed_vector": ["(x | g)", "(1 | h)"],
    "two_on_one_factor": ["(1 | g)", "(0 + x | g)"],
}

# Hypothesis's failure report imports a module that emits this DeprecationWarning; under
# filterwarnings = error it would hide the report behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


@st.composite
def designs(draw, structures=tuple(STRUCTURES)):
    """(formula, data, fixed, terms) of a small random model that lme4 would accept."""
    structure = draw(st.sampled_from(structures))
    seed = draw(st.integers(0, 2**32 - 1))
    ng = draw(st.integers(3, 7))
    nh = draw(st.integers(2, 4))
    per = draw(st.integers(5, 9))
    with_z = draw(st.booleans())
    rng = np.random.default_rng(seed)
    n = ng * per
    g = rng.permutation(np.arange(n) % ng)
    h = rng.permutation(np.arange(n) % nh)
    x = rng.standard_normal(n)
    z = rng.uniform(-2, 2, n)
    bg = rng.standard_normal((ng, 2)) * rng.uniform(0.1, 2, 2)
    bh = rng.standard_normal(nh) * rng.uniform(0.1, 2)
    y = (rng.normal(0, 3) + rng.normal() * x + bg[g, 0] + bg[g, 1] * x + bh[h]
         + rng.uniform(0.2, 2) * rng.standard_normal(n))
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h]})
    fixed = ["x", "z"] if with_z else ["x"]
    terms = STRUCTURES[structure]
    return Design(f"y ~ {' + '.join(fixed + terms)}", data, fixed, terms)


class Design(tuple):
    """(formula, data) with the fixed part and random terms kept for rewriting the formula."""

    def __new__(cls, formula, data, fixed, terms):
        obj = super().__new__(cls, (formula, data))
        obj.fixed, obj.terms = fixed, terms
        return obj

    def __repr__(self) -> str:
        return f"Design({self[0]!r}, <{len(self[1])} rows>)"


def random_theta(model, rng) -> np.ndarray:
    """A θ within the bounds: diagonal entries in [0, 2] (sometimes exactly 0), others in [-1, 1]."""
    lower = model.theta_lower
    theta = np.where(lower == 0, rng.uniform(0, 2, model.ntheta), rng.uniform(-1, 1, model.ntheta))
    theta[(lower == 0) & (rng.random(model.ntheta) < 0.15)] = 0.0
    return theta


def build(formula, data, REML=True) -> lmm.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lmm.LinearMixedModel(formula, data, REML=REML)


# --- brute force ------------------------------------------------------------------------------


def dense_Z_Lambda(model, theta):
    """Dense Z (n × q) and Λ (q × q) in the core's layout: terms in model order, levels, columns."""
    n = model.nobs
    blocks_Z, blocks_L = [], []
    k = 0
    for t in model.terms:
        p = t.p
        lam = np.zeros((p, p))
        if t.structure == "diag":
            lam[np.diag_indices(p)] = theta[k:k + p]
            k += p
        else:
            for col in range(p):
                for row in range(col, p):
                    lam[row, col] = theta[k]
                    k += 1
        Zt = np.zeros((n, t.nlevels * p))
        for j in range(p):
            Zt[np.arange(n), t.codes * p + j] = t.z[:, j]
        blocks_Z.append(Zt)
        blocks_L.append(np.kron(np.eye(t.nlevels), lam))
    q = sum(b.shape[1] for b in blocks_Z)
    Lam = np.zeros((q, q))
    o = 0
    for b in blocks_L:
        Lam[o:o + b.shape[0], o:o + b.shape[0]] = b
        o += b.shape[0]
    return np.hstack(blocks_Z), Lam


def brute_force_objective(model, theta, reml: bool) -> float:
    """−2 log-likelihood (ML) or REML criterion with σ² and β profiled out, from V = ZΛΛ'Z' + I."""
    y, X = model.design.y, model.design.X
    n, p = X.shape
    Z, Lam = dense_Z_Lambda(model, theta)
    ZL = Z @ Lam
    V = ZL @ ZL.T + np.eye(n)
    _, logdet_V = np.linalg.slogdet(V)
    Vi_X = np.linalg.solve(V, X)
    Vi_y = np.linalg.solve(V, y)
    XtViX = X.T @ Vi_X
    beta = np.linalg.solve(XtViX, X.T @ Vi_y) if p else np.zeros(0)
    r = y - X @ beta
    r2 = float(r @ np.linalg.solve(V, r))
    if not reml:
        return logdet_V + n * (1 + math.log(2 * math.pi * r2 / n))
    _, logdet_X = np.linalg.slogdet(XtViX)
    return logdet_V + logdet_X + (n - p) * (1 + math.log(2 * math.pi * r2 / (n - p)))


@SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1), reml=st.booleans())
def test_objective_equals_brute_force_likelihood(design, seed, reml):
    formula, data = design
    model = build(formula, data, REML=reml)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        theta = random_theta(model, rng)
        assert model.objective(theta) == pytest.approx(brute_force_objective(model, theta, reml), rel=OBJ_RTOL)


# --- invariances at fixed θ ----------------------------------------------------------------------


def aligned(model_a, theta_a, model_b) -> np.ndarray:
    """θ of model_a re-expressed in model_b's order, matching parameters by name."""
    pos = {name: i for i, name in enumerate(model_a.theta_names)}
    return np.array([theta_a[pos[name]] for name in model_b.theta_names])


@SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1))
def test_objective_invariant_to_row_order_and_index(design, seed):
    formula, data = design
    rng = np.random.default_rng(seed)
    shuffled = data.iloc[rng.permutation(len(data))].set_axis(rng.permutation(len(data)) + 1000)
    a, b = build(formula, data), build(formula, shuffled)
    for _ in range(2):
        theta = random_theta(a, rng)
        assert b.objective(theta) == pytest.approx(a.objective(theta), rel=OBJ_RTOL)


@SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1))
def test_objective_invariant_to_relabelling_levels(design, seed):
    formula, data = design
    rng = np.random.default_rng(seed)
    relabelled = data.copy()
    for col in ("g", "h"):
        old = sorted(data[col].unique())
        new = rng.permutation([f"L{rng.integers(10**6)}_{i}" for i in range(len(old))])
        relabelled[col] = data[col].map(dict(zip(old, new)))
    relabelled["g"] = relabelled["g"].astype("category")  # and a different column type
    a, b = build(formula, data), build(formula, relabelled)
    assert b.theta_names == a.theta_names
    for _ in range(2):
        theta = random_theta(a, rng)
        assert b.objective(theta) == pytest.approx(a.objective(theta), rel=OBJ_RTOL)


@SETTINGS
@given(design=designs(structures=("crossed", "crossed_vector", "nested", "two_on_one_factor")),
       seed=st.integers(0, 2**32 - 1))
def test_objective_invariant_to_order_of_random_terms(design, seed):
    _formula, data = design
    f1 = f"y ~ {' + '.join(design.fixed + design.terms)}"
    f2 = f"y ~ {' + '.join(design.fixed + design.terms[::-1])}"
    a, b = build(f1, data), build(f2, data)
    assert sorted(a.theta_names) == sorted(b.theta_names)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        theta = random_theta(a, rng)
        assert b.objective(aligned(a, theta, b)) == pytest.approx(a.objective(theta), rel=OBJ_RTOL)


def test_term_order_follows_lme4_ties_rule():
    """Terms sort by decreasing levels; once lme4 reorders, ties go in reverse formula order."""
    rng = np.random.default_rng(0)
    n = 60
    data = pd.DataFrame({"y": rng.standard_normal(n), "a": np.arange(n) % 3, "b": np.arange(n) % 5,
                         "c": (np.arange(n) // 2) % 5})
    # nl = (3, 5, 5): reordered, rev(order(nl)) = (c, b, a)
    assert [t.name for t in build("y ~ (1 | a) + (1 | b) + (1 | c)", data).terms] == ["c", "b", "a"]
    # nl = (5, 5, 3): already non-increasing, formula order kept
    assert [t.name for t in build("y ~ (1 | b) + (1 | c) + (1 | a)", data).terms] == ["b", "c", "a"]


@SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1), log10c=st.floats(-8, 8), reml=st.booleans())
def test_scaling_y_shifts_the_objective_by_a_known_amount(design, seed, log10c, reml):
    formula, data = design
    c = 10.0**log10c
    a = build(formula, data, REML=reml)
    b = build(formula, data.assign(y=data["y"] * c), REML=reml)
    dof = a.nobs - (a.nfixed if reml else 0)
    rng = np.random.default_rng(seed)
    theta = random_theta(a, rng)
    assert b.objective(theta) - 2 * dof * math.log(c) == pytest.approx(a.objective(theta), rel=OBJ_RTOL,
                                                                       abs=1e-9 * dof)


@SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1), shift=st.floats(-100, 100), reml=st.booleans())
def test_adding_a_constant_to_y_leaves_the_objective(design, seed, shift, reml):
    formula, data = design
    shift *= data["y"].std()
    a = build(formula, data, REML=reml)
    b = build(formula, data.assign(y=data["y"] + shift), REML=reml)
    rng = np.random.default_rng(seed)
    theta = random_theta(a, rng)
    assert b.objective(theta) == pytest.approx(a.objective(theta), rel=1e-8)


# --- invariances of the fit --------------------------------------------------------------------------


def fit(formula, data, REML=True):
    return build(formula, data, REML=REML).fit()


def assert_same_fit(res, ref, intercept_shift=0.0, y_scale=1.0):
    """res is ref's fit of y·y_scale + intercept_shift (the objective is checked by the caller when scaled)."""
    if y_scale == 1.0:
        assert res.objective == pytest.approx(ref.objective, rel=1e-7, abs=1e-7)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=FIT_RTOL, atol=FIT_ATOL)
    expect = ref.fixef.to_numpy() * y_scale
    if intercept_shift:
        expect = expect.copy()
        expect[list(ref.fixef.index).index("(Intercept)")] += intercept_shift
    scale = np.maximum(np.abs(expect), ref.se.to_numpy() * y_scale)  # a β near 0: compare to its SE
    np.testing.assert_array_less(np.abs(res.fixef.to_numpy() - expect), FIT_RTOL * scale + 1e-12)
    assert res.sigma == pytest.approx(ref.sigma * y_scale, rel=FIT_RTOL)
    for grp, frame in ref.ranef.items():
        other = res.ranef[grp].loc[frame.index]
        tol = FIT_RTOL * y_scale * max(ref.sigma, float(np.max(np.abs(frame.to_numpy()))))
        np.testing.assert_allclose(other.to_numpy(), frame.to_numpy() * y_scale, atol=tol)


@FIT_SETTINGS
@given(design=designs(), seed=st.integers(0, 2**32 - 1))
def test_fit_invariant_to_row_order(design, seed):
    formula, data = design
    rng = np.random.default_rng(seed)
    assert_same_fit(fit(formula, data.iloc[rng.permutation(len(data))]), fit(formula, data))


@FIT_SETTINGS
@given(design=designs(), log10c=st.sampled_from([-8.0, -3.0, 3.0, 8.0]), reml=st.booleans())
def test_fit_scales_with_y(design, log10c, reml):
    formula, data = design
    c = 10.0**log10c
    ref = fit(formula, data, REML=reml)
    res = fit(formula, data.assign(y=data["y"] * c), REML=reml)
    dof = ref.nobs - (len(ref.fixef) if reml else 0)
    assert res.objective - 2 * dof * math.log(c) == pytest.approx(ref.objective, rel=1e-7, abs=1e-7)
    assert_same_fit(res, ref, y_scale=c)


@FIT_SETTINGS
@given(design=designs(), shift=st.floats(-100, 100))
def test_fit_shift_of_y_moves_only_the_intercept(design, shift):
    formula, data = design
    shift *= data["y"].std()
    ref = fit(formula, data)
    res = fit(formula, data.assign(y=data["y"] + shift))
    assert_same_fit(res, ref, intercept_shift=shift)
