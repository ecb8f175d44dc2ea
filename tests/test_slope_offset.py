"""Random-slope columns with large offsets: the same model, the same answers.

``Reaction ~ Days + (Days | Subject)`` with Days + c is the model of Days (z_c = z A with
A = [[1, c], [0, 1]]), so every output must be that of the unshifted fit: the criterion,
β̂ of Days, σ̂, the slope's SD, the df, predictions and conditional modes of the slope
exactly, and θ as lme4's θ of the shifted columns, chol(A⁻¹ Σ A⁻ᵀ). The core fits in its
working coordinates (each term's columns centred and scaled, ``lmm::TermTransform``);
before it, c = 1e5 stopped at a criterion 43 units higher, flagged converged.
"""

import warnings

import numpy as np
import pytest

import lmm
from lmm.inference.numdiff import jacobian_richardson

FORMULA = "Reaction ~ Days + (Days | Subject)"
OFFSETS = (1e2, 1e4, 1e5, 1e6, 1e8)
# Named tolerances (relative unless said): the criterion at the optimum, which is flat
# there; estimates at the optimum (θ, SDs, σ, β, predictions and modes), as accurate as
# the optimizer's stopping rule; the df (numerical second derivatives).
OBJECTIVE_REL = 1e-8
ESTIMATE_REL = 1e-6
DF_REL = 1e-5
GRADIENT_REL = 1e-6


def _shifted(c: float):
    d = lmm.datasets.load("sleepstudy")
    d["Days"] = d["Days"] + c
    return d


@pytest.fixture(scope="module")
def base():
    return lmm.lmer(FORMULA, _shifted(0.0))


@pytest.fixture(scope="module", params=OFFSETS, ids=lambda c: f"c={c:g}")
def pair(request, base):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no rank, scale or convergence warning for an exact reparameterization
        res = lmm.lmer(FORMULA, _shifted(request.param))
    return request.param, base, res


def _shifted_theta(lam: np.ndarray, c: float) -> np.ndarray:
    """lme4's θ of the columns [1, Days + c] for the covariance λλ' of [1, Days]: chol(A⁻¹ Σ A⁻ᵀ),
    in closed form (the last entry from the determinant, which A preserves, without cancellation)."""
    S = lam @ lam.T
    l11 = np.sqrt(S[0, 0] - 2 * c * S[0, 1] + c * c * S[1, 1])
    return np.array([l11, (S[0, 1] - c * S[1, 1]) / l11, abs(np.linalg.det(lam)) / l11])


def test_criterion_and_verdict(pair):
    c, r0, r = pair
    assert r.objective == pytest.approx(r0.objective, rel=OBJECTIVE_REL)
    assert r.converged
    assert not r.singular


def test_theta_is_the_exact_transform_of_the_unshifted_theta(pair):
    c, r0, r = pair
    want = _shifted_theta(r0.solution.lambdas[0], c)
    np.testing.assert_allclose(r.theta, want, rtol=ESTIMATE_REL)
    # The criterion at that θ (given, not fitted) is the unshifted optimum's.
    assert r.model.objective(want) == pytest.approx(r0.objective, rel=OBJECTIVE_REL)


def test_estimates(pair):
    c, r0, r = pair
    assert r.fixef["Days"] == pytest.approx(r0.fixef["Days"], rel=ESTIMATE_REL)
    assert r.se["Days"] == pytest.approx(r0.se["Days"], rel=ESTIMATE_REL)
    assert r.sigma == pytest.approx(r0.sigma, rel=ESTIMATE_REL)
    slope = (r.varcorr.var1 == "Days") & r.varcorr.var2.isna()
    assert float(r.varcorr.sdcor[slope].iloc[0]) == pytest.approx(float(r0.varcorr.sdcor[slope].iloc[0]),
                                                                   rel=ESTIMATE_REL)


def test_predictions_and_conditional_modes(pair):
    c, r0, r = pair
    scale = float(np.max(np.abs(r0.fitted())))
    np.testing.assert_allclose(r.fitted(), r0.fitted(), rtol=0, atol=ESTIMATE_REL * scale)
    b0, b = r0.ranef["Subject"]["Days"], r.ranef["Subject"]["Days"]
    np.testing.assert_allclose(b, b0, rtol=0, atol=ESTIMATE_REL * float(np.max(np.abs(b0))))
    # The conditional variance of the slope's mode is the same model's.
    np.testing.assert_allclose(r.ranef_condvar()["Subject"][:, 1, 1], r0.ranef_condvar()["Subject"][:, 1, 1],
                               rtol=ESTIMATE_REL)


def test_degrees_of_freedom(pair):
    c, r0, r = pair
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        df0 = float(r0.coef_table(ddf=ddf)["df"]["Days"])
        assert float(r.coef_table(ddf=ddf)["df"]["Days"]) == pytest.approx(df0, rel=DF_REL), ddf


@pytest.mark.parametrize("c", [0.0, 1e2, 1e4])
def test_gradient_at_user_theta_against_central_differences(c):
    """The core's gradient in the user's θ (through the Jacobian of θ ↦ θ̃) at a θ off the optimum.
    Beyond c ≈ 1e4 differences in the user's θ measure rounding: θ cannot hold the model finer."""
    m = lmm.LinearMixedModel(FORMULA, _shifted(c))
    theta = _shifted_theta(np.array([[1.1, 0.0], [0.05, 0.3]]), c)
    # Central differences extrapolated (Richardson): the criterion is strongly curved in the
    # user's θ when c is large, beyond what one central difference resolves.
    fd = jacobian_richardson(lambda t: np.array([m.objective(t)]), theta)[0]
    np.testing.assert_allclose(m.gradient(theta), fd, rtol=GRADIENT_REL)


def test_the_optimizer_moves_the_working_coordinates():
    """The core centres the slope against the intercept (z̃ = z T: [1, (Days − mean) · scale]) and
    scales it to unit SD by a power of two: θ̃ maps back to θ exactly."""
    m = lmm.LinearMixedModel(FORMULA, _shifted(1e5))
    t = m.working_transforms()[0]
    assert t[0, 1] / t[1, 1] == pytest.approx(-(1e5 + 4.5))
    assert t[1, 1] == 0.25 and t[0, 0] == 1.0 and t[1, 0] == 0.0
    theta = _shifted_theta(np.array([[0.97, 0.0], [0.015, 0.23]]), 1e5)
    np.testing.assert_allclose(m.theta_from_working(m.working_from_theta(theta)), theta, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["L-BFGS-B", "Nelder-Mead"])
def test_scipy_optimizers_work_in_the_same_coordinates(optimizer, base):
    res = lmm.lmer(FORMULA, _shifted(1e5), optimizer=optimizer)
    assert res.objective == pytest.approx(base.objective, rel=1e-7)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + cs(Days | Subject)", "Reaction ~ Days + diag(Days | Subject)"])
def test_structured_term_with_a_large_offset_warns(formula):
    """Centring would not keep a structured covariance: the core leaves the columns and says so."""
    with pytest.warns(UserWarning, match=r"'Days' \(mean 100004.*centre those columns"):
        lmm.LinearMixedModel(formula, _shifted(1e5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lmm.LinearMixedModel(formula, _shifted(0.0))


def test_structured_term_is_scaled_exactly():
    """A pure change of units keeps a structure (the core scales the column by a power of two):
    the criterion at the mapped par and the fit are those of the column in its own units."""
    d = _shifted(0.0)
    d["Days1000"] = d["Days"] * 1000
    m = lmm.LinearMixedModel("Reaction ~ Days + diag(0 + Days | Subject)", d)
    m1000 = lmm.LinearMixedModel("Reaction ~ Days + diag(0 + Days1000 | Subject)", d)
    assert m1000.objective([0.2 / 1000]) == pytest.approx(m.objective([0.2]), rel=1e-12)
    r, r1000 = m.fit(), m1000.fit()
    assert r1000.objective == pytest.approx(r.objective, rel=OBJECTIVE_REL)
    assert r1000.par[0] * 1000 == pytest.approx(r.par[0], rel=ESTIMATE_REL)
