"""The sd/cor ↔ θ maps and numDeriv's Richardson derivatives."""

from __future__ import annotations

import numpy as np

from lmm import inference

from inference_cases import fit

# --------------------------------------------------------------------------- helpers


def test_sdcor_round_trip():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    terms = res.model.terms
    pars = inference.theta_to_sdcor(res.theta, res.sigma, terms)
    np.testing.assert_allclose(pars[:3], [res.varcorr.sdcor[0], res.varcorr.sdcor[2], res.varcorr.sdcor[1]])
    np.testing.assert_allclose(inference.sdcor_to_theta(pars, terms), res.theta, rtol=1e-12)
    assert inference.varpar_names(terms) == [".sig01", ".sig02", ".sig03", ".sigma"]


def test_numderiv_replicas_are_accurate():
    f = lambda x: np.sin(x[0]) * np.exp(x[1]) + x[0] ** 2 * x[1]  # noqa: E731
    x = np.array([0.7, -0.3])
    H = inference.hessian_richardson(f, x)
    want = np.array([[-np.sin(0.7) * np.exp(-0.3) + 2 * -0.3, np.cos(0.7) * np.exp(-0.3) + 2 * 0.7],
                     [np.cos(0.7) * np.exp(-0.3) + 2 * 0.7, np.sin(0.7) * np.exp(-0.3)]])
    np.testing.assert_allclose(H, want, rtol=1e-8)
    J = inference.jacobian_richardson(lambda v: np.array([v[0] * v[1], np.exp(v[0])]), x)
    np.testing.assert_allclose(J, [[-0.3, 0.7], [np.exp(0.7), 0.0]], atol=1e-10)
