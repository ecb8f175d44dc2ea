"""Conditional variances (lme4's condVar) from the core's factor, at any number of levels."""

import numpy as np
import pandas as pd

import lmm

# Relative tolerance of conditional covariances against a direct computation.
CONDVAR = 1e-9


def _longitudinal(ngroups: int, per_group: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ngroups), per_group)
    t = np.tile(np.arange(per_group, dtype=float), ngroups)
    a, s = rng.normal(0, 1.0, ngroups), rng.normal(0, 0.3, ngroups)
    y = 2.0 + 0.5 * t + a[g] + s[g] * t + rng.normal(0, 0.7, g.size)
    return pd.DataFrame({"y": y, "t": t, "g": [f"s{k:05d}" for k in g]})


def test_condvar_with_40000_random_effects():
    """20,000 groups × (intercept, slope): each level's block is σ² λ (λ'Z_j'Z_jλ + I)⁻¹ λ'."""
    df = _longitudinal(20_000, 4, seed=3)
    res = lmm.lmer("y ~ t + (t | g)", df)
    cv = res.ranef_condvar()["g"]
    assert cv.shape == (20_000, 2, 2)
    lam = np.zeros((2, 2))
    lam[[0, 1, 1], [0, 0, 1]] = res.theta
    levels = res.ranef["g"].index
    for j in (0, 1, 7_777, 19_999):
        rows = df["g"].to_numpy() == levels[j]
        Zj = np.column_stack([np.ones(rows.sum()), df["t"].to_numpy()[rows]])
        M = lam.T @ Zj.T @ Zj @ lam + np.eye(2)
        want = res.sigma**2 * lam @ np.linalg.inv(M) @ lam.T
        np.testing.assert_allclose(cv[j], want, rtol=CONDVAR, atol=CONDVAR * np.abs(want).max())


def test_condvar_crossed_against_dense():
    """Crossed factors (dense tail of L): blocks of σ² Λ (Λ'Z'ZΛ + I)⁻¹ Λ' formed densely."""
    rng = np.random.default_rng(5)
    n = 400
    i, j = rng.integers(0, 30, n), rng.integers(0, 12, n)
    x = rng.normal(size=n)
    y = (1 + x + rng.normal(size=30)[i] + (0.5 * rng.normal(size=30))[i] * x + rng.normal(size=12)[j]
         + rng.normal(size=n))
    df = pd.DataFrame({"y": y, "x": x, "i": i, "j": j})
    res = lmm.lmer("y ~ x + (x | i) + (1 | j)", df)
    cv = res.ranef_condvar()
    ti, tj = res.model.terms
    Zi = np.zeros((n, 60))
    Zi[np.arange(n), 2 * ti.codes] = 1.0
    Zi[np.arange(n), 2 * ti.codes + 1] = x
    Zj = np.zeros((n, 12))
    Zj[np.arange(n), tj.codes] = 1.0
    lam_i = np.zeros((2, 2))
    lam_i[[0, 1, 1], [0, 0, 1]] = res.theta[:3]
    Lam = np.zeros((72, 72))
    for k in range(30):
        Lam[2 * k:2 * k + 2, 2 * k:2 * k + 2] = lam_i
    Lam[60:, 60:] = res.theta[3] * np.eye(12)
    ZL = np.hstack([Zi, Zj]) @ Lam
    C = res.sigma**2 * Lam @ np.linalg.inv(ZL.T @ ZL + np.eye(72)) @ Lam.T
    want_i = np.stack([C[2 * k:2 * k + 2, 2 * k:2 * k + 2] for k in range(30)])
    want_j = np.stack([C[60 + k:61 + k, 60 + k:61 + k] for k in range(12)])
    np.testing.assert_allclose(cv["i"], want_i, rtol=CONDVAR, atol=CONDVAR * np.abs(want_i).max())
    np.testing.assert_allclose(cv["j"], want_j, rtol=CONDVAR, atol=CONDVAR * np.abs(want_j).max())
