"""The exact gradient of the objective against central finite differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

GRADIENT_REL = 1e-5
STEP = 1e-6


def two_vector_terms_data(seed: int = 1) -> pd.DataFrame:
    """Crossed subjects and items with correlated random intercepts and slopes on both."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 25, 600)
    item = rng.integers(0, 15, 600)
    x = rng.standard_normal(600)
    bs = rng.multivariate_normal([0, 0], [[1.0, 0.4], [0.4, 0.5]], 25)
    bi = rng.multivariate_normal([0, 0], [[0.8, -0.3], [-0.3, 0.6]], 15)
    y = 1 + 0.5 * x + bs[subj, 0] + bs[subj, 1] * x + bi[item, 0] + bi[item, 1] * x + rng.standard_normal(600)
    return pd.DataFrame({"y": y, "x": x, "subj": [f"s{i}" for i in subj], "item": [f"i{i}" for i in item]})


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", lambda: lmm.datasets.load("sleepstudy")),
    "sleepstudy_diag": ("Reaction ~ Days + (Days || Subject)", lambda: lmm.datasets.load("sleepstudy")),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: lmm.datasets.load("penicillin")),
    "pastes": ("strength ~ 1 + (1 | batch/cask)", lambda: lmm.datasets.load("pastes")),
    "machines_vector": ("score ~ Machine + (0 + Machine | Worker)", lambda: lmm.datasets.load("machines")),
    "two_vector_terms": ("y ~ x + (1 + x | subj) + (1 + x | item)", two_vector_terms_data),
}


def central_difference(objective, theta):
    g = np.empty_like(theta)
    for i in range(theta.size):
        h = STEP * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        g[i] = (objective(up) - objective(down)) / (2 * h)
    return g


def random_thetas(model, rng, near_boundary: bool):
    lower = model.theta_lower
    theta = rng.uniform(-0.9, 1.6, model.ntheta)
    diag = lower == 0
    theta[diag] = np.abs(theta[diag]) + 0.05
    if near_boundary:
        theta[np.flatnonzero(diag)[0]] = 1e-4
    return theta


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradient_matches_central_differences(case, reml):
    formula, data = CASES[case]
    model = lmm.LinearMixedModel(formula, data(), REML=reml)
    rng = np.random.default_rng(7)
    for near_boundary in (False, True):
        theta = random_thetas(model, rng, near_boundary)
        got = model.gradient(theta)
        want = central_difference(model.objective, theta)
        np.testing.assert_allclose(got, want, rtol=GRADIENT_REL, atol=GRADIENT_REL * np.max(np.abs(want)))


@pytest.mark.parametrize("case", ["penicillin", "sleepstudy_diag", "two_vector_terms"])
def test_gradient_with_a_term_at_zero(case):
    """A term whose λ is 0 (where line searches probe the bounds): the objective is even in
    it, so its gradient is 0, and the other entries match central differences (taken on
    the core, which accepts the negative side of the boundary)."""
    formula, data = CASES[case]
    model = lmm.LinearMixedModel(formula, data())
    theta = random_thetas(model, np.random.default_rng(11), near_boundary=False)
    names = model.theta_names
    # every θ entry of the last term (its whole λ) set to 0
    last = [i for i, n in enumerate(names) if n.split(".")[0] == names[-1].split(".")[0]]
    theta[last] = 0.0

    want = central_difference(lambda th: model._core.evaluate(th, True), theta)
    got = model.gradient(theta)
    np.testing.assert_allclose(got, want, rtol=GRADIENT_REL, atol=GRADIENT_REL * np.max(np.abs(want)))
    np.testing.assert_array_equal(got[last], 0.0)


def test_gradient_vanishes_at_interior_optimum():
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    assert np.max(np.abs(res.optinfo.gradient)) < 1e-3
