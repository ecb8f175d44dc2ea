"""The dense block of crossed terms: SciPy's LAPACK and Eigen's kernels give the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import _core

# Both backends compute the same factorization in a different order of operations.
OBJECTIVE_REL = 1e-11
GRADIENT_REL = 1e-8


def crossed_data(seed: int = 3) -> pd.DataFrame:
    """Students nested in schools, crossed with 160 raters: a dense block above the LAPACK cut-off."""
    rng = np.random.default_rng(seed)
    n = 4000
    school = rng.integers(0, 40, n)
    student = school * 10 + rng.integers(0, 10, n)
    rater = rng.integers(0, 160, n)
    x = rng.standard_normal(n)
    y = (2 + 0.5 * x + rng.standard_normal(40)[school] + 0.7 * rng.standard_normal(400)[student]
         + 0.4 * rng.standard_normal(160)[rater] + 0.3 * rng.standard_normal(160)[rater] * x + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "school": school, "student": student, "rater": rater})


@pytest.fixture
def restore_backend():
    before = _core.dense_backend()
    yield
    _core.set_dense_backend(before)


def test_lapack_is_the_default():
    assert _core.dense_backend() == "lapack"


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("formula", ["y ~ x + (1 | school/student) + (1 + x | rater)",
                                     "y ~ x + (1 | student) + (x || rater)"])
def test_backends_agree(formula, reml, restore_backend):
    model = lmm.LinearMixedModel(formula, crossed_data(), REML=reml)
    assert model._core.tail_size > 100
    theta = np.linspace(0.3, 1.1, model.ntheta)
    values = {}
    for backend in ("eigen", "lapack"):
        _core.set_dense_backend(backend)
        values[backend] = model.objective_and_gradient(theta)
    (f_e, g_e), (f_l, g_l) = values["eigen"], values["lapack"]
    assert f_l == pytest.approx(f_e, rel=OBJECTIVE_REL)
    np.testing.assert_allclose(g_l, g_e, rtol=GRADIENT_REL, atol=GRADIENT_REL * np.abs(g_e).max())


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="lapack"):
        _core.set_dense_backend("mkl")


def test_lapack_gradient_matches_central_differences():
    model = lmm.LinearMixedModel("y ~ x + (1 | school/student) + (1 + x | rater)", crossed_data())
    theta = np.linspace(0.3, 1.1, model.ntheta)
    grad = model.gradient(theta)
    fd = np.empty_like(theta)
    for i in range(theta.size):
        h = 1e-6 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        fd[i] = (model.objective(up) - model.objective(down)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())
