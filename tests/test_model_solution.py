"""The model's evaluation interface: Solution at any θ, refit_ml on the same model, the core factory."""

from __future__ import annotations

import numpy as np
import pytest

import lmm
from lmm.model import build_core, shift_for

FORMULA = "Reaction ~ Days + (Days | Subject)"
SAME = 1e-12          # one evaluation against another of the same θ
#: y + 1e10 is stored to its spacing of 1.9e-6: β̂ can be no closer (observed 7e-7).
BETA_ABS_1E10 = 1e-5


@pytest.fixture(scope="module")
def fitted():
    model = lmm.LinearMixedModel(FORMULA, lmm.datasets.load("sleepstudy"))
    return model, model.fit()


def test_solution_at_the_optimum_is_the_result(fitted):
    model, res = fitted
    sol = model.solution(res.theta)
    np.testing.assert_allclose(sol.beta, res.fixef.to_numpy(), rtol=SAME)
    np.testing.assert_allclose(sol.vcov, res.vcov.to_numpy(), rtol=SAME)
    assert sol.sigma == pytest.approx(res.sigma, rel=SAME)
    assert sol.objective == pytest.approx(res.objective, rel=SAME)
    assert [b.shape for b in sol.b] == [(18, 2)]
    np.testing.assert_allclose(sol.b_vector, model._core.b(sol.u), rtol=SAME)
    with pytest.raises(ValueError):
        sol.beta[0] = 0.0           # read-only: a result's solution cannot be changed in place


def test_solution_maps_beta_through_the_design(fitted):
    model, res = fitted
    c = model._core
    c.set_theta(res.theta)
    _, beta_core = c.solve()
    d = model.design
    S = np.eye(len(beta_core))
    S[0, :] -= d.x_center                          # X_c = X S, y_c = y - X_c y_coef
    np.testing.assert_allclose(model.solution(res.theta).beta, S @ (beta_core + d.y_coef), rtol=SAME)


def test_refit_ml_fits_the_same_model_without_changing_it(fitted):
    model, res = fitted
    ml = res.refit_ml()
    assert ml.model is model and model.REML and res.REML and not ml.REML
    assert ml.objective == pytest.approx(model.objective(ml.theta, reml=False), rel=SAME)
    assert res.objective == pytest.approx(model.objective(res.theta), rel=SAME)


def test_build_core_applies_the_shift_of_its_own_x_and_y(fitted):
    model, res = fitted
    d = model.design
    x_center, y_coef = shift_for(d.X, d.y)
    np.testing.assert_allclose(x_center, d.x_center, rtol=SAME)
    np.testing.assert_allclose(y_coef, d.y_coef, rtol=1e-10)
    core = build_core(d.terms, d.X, d.y + 1e10, reml=True)
    assert core.objective(res.theta) == pytest.approx(res.objective, rel=1e-10)
    sol = core.solution(res.theta)
    np.testing.assert_allclose(sol.beta - [1e10, 0.0], res.fixef.to_numpy(), rtol=0, atol=BETA_ABS_1E10)
    core.set_response(d.y - 1e10)       # a new offset: set_response removes it again
    assert core.objective(res.theta) == pytest.approx(res.objective, rel=1e-10)
