"""Inference after the fit: tests, degrees of freedom, intervals, bootstrap, model comparison.

What is computed, and how it matches R:

* **Satterthwaite** degrees of freedom for t and F tests of fixed-effect contrasts,
  as lmerTest (3.1). The variance parameters are lmerTest's "varpar" (θ and σ); their
  covariance is 2 H⁻¹ with H the Hessian of the deviance (REML criterion for REML fits)
  as a function of (θ, σ), not profiled; the Jacobian of Var(β̂) = σ²(R_X'R_X)⁻¹ with
  respect to (θ, σ) gives the gradient of a contrast's variance. Both derivatives are
  taken by central differences with Richardson extrapolation exactly as R's numDeriv
  (``hessian``: d = 0.1, 4 halvings; ``jacobian``: d = 1e-4, 4 halvings) on the exact
  deviance and Var(β̂) from the core, so the numbers agree with lmerTest's to the
  precision of the optimum, not just to the precision of a difference scheme.
* **Kenward–Roger** adjusted covariance of β̂ and degrees of freedom, as pbkrtest
  (0.5): covariance parameters are the entries of each term's covariance matrix and
  the residual variance (linear in Σ, as pbkrtest). Instead of pbkrtest's dense n × n
  matrices this works with Z'Σ⁻¹Z (q × q) and Σ⁻¹Z (n × q) through the Woodbury
  identity; the dense work is limited by ``KR_MAX_ELEMENTS``. REML fits only (as lmerTest).
* **Profile** likelihood intervals as lme4's ``profile``/``confint``: the ML deviance
  (REML fits are refitted by ML first, as lme4 does) profiled over the standard
  deviations and correlations of the random effects, σ and each fixed effect; zeta =
  sign(x − x̂)·sqrt(deviance − minimum). lme4 interpolates the zeta curve with a spline;
  here the interval ends are roots of the exact zeta function (Brent), so lme4's
  numbers differ from these by its interpolation error.
* **Parametric bootstrap** as lme4's ``bootMer``: new responses from the fitted model,
  refitted with the same structure (only y changes; the core's crossproducts for the
  random effects and X are reused), in parallel, with percentile intervals.
* **Likelihood-ratio tests** as lme4's ``anova(m0, m1, ...)``, refitting REML fits by ML.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import linalg as sla
from scipy import optimize as sopt
from scipy import sparse
from scipy import stats

from . import _core as core
from .optimize import optimize_theta

__all__ = [
    "anova",
    "anova_type3",
    "bootstrap",
    "BootstrapResult",
    "coef_table",
    "conditional_covariances",
    "confint",
    "contrast_test",
    "kenward_roger_setup",
    "KR_MAX_ELEMENTS",
    "profile",
    "Profile",
    "RefitMLWarning",
    "satterthwaite_setup",
    "sdcor_to_theta",
    "theta_to_sdcor",
    "type3_contrasts",
    "varpar_names",
]

#: Largest n·q + q² (doubles) Kenward–Roger works with densely (about 400 MB).
KR_MAX_ELEMENTS = 50_000_000
#: lmerTest's tolerance on the eigenvalues of the varpar Hessian.
HESSIAN_TOL = 1e-8


class RefitMLWarning(UserWarning):
    """REML fits were refitted by maximum likelihood (for likelihood-ratio tests or profiles)."""


# --------------------------------------------------------------------------- small helpers


def _blas_single_thread():
    """Limit BLAS to one thread while many tiny optimizations run (threadpoolctl, when installed).

    The optimizer's small BLAS calls wake OpenBLAS's thread pool at every iteration; on a
    busy machine the spinning threads make a bootstrap 20-30 times slower (measured on
    sleepstudy: 0.75 s vs 23 s for 500 refits on 2 CPUs under load).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")



class _CoreObjective:
    """The interface :func:`lmm.optimize.optimize_theta` needs, over a core model and a criterion."""

    def __init__(self, core_model, reml: bool, theta_scale: np.ndarray) -> None:
        self._core = self.core = core_model
        self.REML = bool(reml)
        self.theta_scale = np.asarray(theta_scale, dtype=np.float64)
        self.theta_lower = np.asarray(core_model.theta_lower)
        self.theta_upper = np.asarray(core_model.theta_upper)
        self.theta_start = np.asarray(core_model.theta_start)
        self.ntheta = int(core_model.ntheta)

    def _theta(self, theta) -> np.ndarray:
        return np.asarray(theta, dtype=np.float64).reshape(-1)

    def objective(self, theta, reml: bool | None = None) -> float:
        return float(self._core.evaluate(self._theta(theta), self.REML if reml is None else reml))

    def objective_and_gradient(self, theta, reml: bool | None = None) -> tuple[float, np.ndarray]:
        value, grad = self._core.evaluate_with_gradient(self._theta(theta), self.REML if reml is None else reml)
        return float(value), np.asarray(grad)


def _core_terms(model) -> list:
    """The term tuples the core was built from (design order)."""
    return [(t.codes, t.z, t.nlevels, t.diagonal) for t in model.design.terms]


def private_core(res):
    """A core model of ``res``'s design (X and y as in ``model.design``), cached on the result.

    Inference sets θ freely and reads β̂ and Var(β̂) on the scale of ``design.X``; a
    private core leaves the model's own core (which may work on a reparametrized X)
    untouched.
    """
    c = res._cache.get("core")
    if c is None:
        d = res.model.design
        c = core.Model(_core_terms(res.model), d.X, d.y)
        res._cache["core"] = c
    return c


def _lambda_from_theta(theta: np.ndarray, terms) -> list[np.ndarray]:
    """Per model term, λ (p × p lower triangular) from θ in lme4's order."""
    out, off = [], 0
    for t in terms:
        lam = np.zeros((t.p, t.p))
        for i, j in t.theta_positions():
            lam[i, j] = theta[off]
            off += 1
        out.append(lam)
    return out


def _theta_from_lambda(lams: Sequence[np.ndarray], terms) -> np.ndarray:
    out = []
    for t, lam in zip(terms, lams):
        if t.diagonal:
            out += list(np.diag(lam))
        else:
            for j in range(t.p):
                out += list(lam[j:, j])
    return np.asarray(out, dtype=np.float64)


def varpar_names(terms) -> list[str]:
    """lme4's names of the sd/cor parameters (``.sig01``, ...) followed by ``.sigma``."""
    k = sum(t.p if t.diagonal else t.p * (t.p + 1) // 2 for t in terms)
    return [f".sig{i + 1:02d}" for i in range(k)] + [".sigma"]


def theta_to_sdcor(theta: np.ndarray, sigma: float, terms) -> np.ndarray:
    """θ and σ → standard deviations and correlations (lme4's ``Cv_to_Sv``), then σ."""
    out = []
    for t, lam in zip(terms, _lambda_from_theta(np.asarray(theta, float), terms)):
        cov = sigma**2 * lam @ lam.T
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        if t.diagonal:
            out += list(sd)
            continue
        for j in range(t.p):
            for i in range(j, t.p):
                if i == j:
                    out.append(sd[i])
                else:
                    denom = sd[i] * sd[j]
                    out.append(cov[i, j] / denom if denom > 0 else float("nan"))
    out.append(sigma)
    return np.asarray(out, dtype=np.float64)


def sdcor_to_theta(pars: np.ndarray, terms) -> Optional[np.ndarray]:
    """Inverse of :func:`theta_to_sdcor` (lme4's ``Sv_to_Cv``); None when a correlation matrix is not PSD."""
    sigma = pars[-1]
    if not sigma > 0:
        return None
    lams, off = [], 0
    for t in terms:
        p = t.p
        if t.diagonal:
            lams.append(np.diag(pars[off:off + p]) / sigma)
            off += p
            continue
        sd = np.zeros(p)
        corr = np.eye(p)
        for j in range(p):
            for i in range(j, p):
                if i == j:
                    sd[i] = pars[off]
                else:
                    corr[i, j] = corr[j, i] = pars[off]
                off += 1
        chol = _psd_cholesky(corr)
        if chol is None:
            return None
        lams.append((sd[:, None] * chol) / sigma)
    return _theta_from_lambda(lams, terms)


def _psd_cholesky(c: np.ndarray) -> Optional[np.ndarray]:
    """Lower Cholesky factor of a correlation matrix that may be singular (|r| = 1)."""
    p = c.shape[0]
    L = np.zeros((p, p))
    for j in range(p):
        d = c[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10:
            return None
        L[j, j] = math.sqrt(max(d, 0.0))
        for i in range(j + 1, p):
            v = c[i, j] - L[i, :j] @ L[j, :j]
            if L[j, j] > 1e-12:
                L[i, j] = v / L[j, j]
            elif abs(v) > 1e-8:
                return None
    return L


def z_matrix(model) -> sparse.csc_matrix:
    """The random-effects model matrix Z (n × q, sparse) in the core's order and layout.

    Columns of term k start at the sum of ℓ·p of earlier terms; level j's p columns are
    consecutive (the layout of u and b from the core).
    """
    n = model.nobs
    rows, cols, vals = [], [], []
    off = 0
    for t in model.terms:
        p = t.p
        valid = t.codes >= 0
        r = np.flatnonzero(valid)
        for a in range(p):
            rows.append(r)
            cols.append(off + t.codes[valid].astype(np.int64) * p + a)
            vals.append(t.z[valid, a])
        off += t.nlevels * p
    if not rows:
        return sparse.csc_matrix((n, 0))
    return sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off))


def lambda_matrix(lams: Sequence[np.ndarray], terms) -> sparse.csc_matrix:
    """Λ = blockdiag(I_ℓk ⊗ λ_k) (q × q, sparse)."""
    blocks = [sparse.kron(sparse.identity(t.nlevels, format="csc"), sparse.csc_matrix(lam), format="csc")
              for t, lam in zip(terms, lams)]
    return sparse.block_diag(blocks, format="csc") if blocks else sparse.csc_matrix((0, 0))


# --------------------------------------------------------------------------- numDeriv


_ND_EPS = 1e-4
_ND_ZERO_TOL = math.sqrt(np.finfo(float).eps / 7e-7)


def _nd_step(x: np.ndarray, d: float) -> np.ndarray:
    return np.abs(d * x) + _ND_EPS * (np.abs(x) < _ND_ZERO_TOL)


def hessian_richardson(f: Callable[[np.ndarray], float], x: np.ndarray, r: int = 4) -> np.ndarray:
    """Hessian of a scalar function as R's ``numDeriv::hessian`` (genD, Richardson, d = 0.1)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    f0 = f(x)
    h0 = _nd_step(x, 0.1)
    hdiag = np.zeros(n)
    for i in range(n):
        h = h0.copy()
        approx = np.zeros(r)
        for k in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            approx[k] = (f(x + e) - 2 * f0 + f(x - e)) / h[i] ** 2
            h = h / 2
        hdiag[i] = _richardson(approx)
    H = np.diag(hdiag)
    for i in range(n):
        for j in range(i):
            h = h0.copy()
            approx = np.zeros(r)
            for k in range(r):
                e = np.zeros(n)
                e[i] = h[i]
                e[j] = h[j]
                approx[k] = (f(x + e) - 2 * f0 + f(x - e) - hdiag[i] * h[i] ** 2 - hdiag[j] * h[j] ** 2) / (
                    2 * h[i] * h[j])
                h = h / 2
            H[i, j] = H[j, i] = _richardson(approx)
    return H


def jacobian_richardson(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, r: int = 4) -> np.ndarray:
    """Jacobian (len(f) × len(x)) as R's ``numDeriv::jacobian`` (Richardson, d = 1e-4)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    f0 = np.asarray(f(x), dtype=np.float64).reshape(-1)
    a = np.zeros((f0.size, r, n))
    h = _nd_step(x, 1e-4)
    for k in range(r):
        for i in range(n):
            e = np.zeros(n)
            e[i] = h[i]
            a[:, k, i] = (np.asarray(f(x + e)).reshape(-1) - np.asarray(f(x - e)).reshape(-1)) / (2 * h[i])
        h = h / 2
    for m in range(1, r):
        a = (a[:, 1:, :] * 4**m - a[:, :-1, :]) / (4**m - 1)
    return a[:, 0, :]


def _richardson(approx: np.ndarray) -> float:
    approx = approx.copy()
    r = approx.size
    for m in range(1, r):
        for k in range(r - m):
            approx[k] = (approx[k + 1] * 4**m - approx[k]) / (4**m - 1)
    return float(approx[0])


# --------------------------------------------------------------------------- Satterthwaite


@dataclass
class Satterthwaite:
    """lmerTest's ingredients: Var(β̂), Cov(varpar) = 2H⁻¹, and ∂Var(β̂)/∂varpar.

    Attributes:
        vcov_beta: p × p covariance of β̂.
        vcov_varpar: covariance of (θ, σ) from the Hessian of the deviance.
        jacobian: list over (θ, σ) of p × p derivatives of Var(β̂).
        hessian: the Hessian itself.
        notes: messages about the Hessian (non-positive eigenvalues), as lmerTest's warnings.
    """

    vcov_beta: np.ndarray
    vcov_varpar: np.ndarray
    jacobian: list
    hessian: np.ndarray
    notes: list = field(default_factory=list)


def satterthwaite_setup(res) -> Satterthwaite:
    """Compute lmerTest's Satterthwaite ingredients for a fitted result (costs O(dim θ²) evaluations)."""
    model = res.model
    c = private_core(res)
    reml = res.REML
    n, p = model.nobs, model.nfixed
    log2pi = math.log(2 * math.pi)

    def deviance(varpar: np.ndarray) -> float:
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        c.set_theta(theta)
        dev = c.ldL2 + c.pwrss / sigma2 + n * (log2pi + math.log(sigma2))
        if reml:
            dev += c.ldRX2 - p * (log2pi + math.log(sigma2))
        return dev

    def covbeta(varpar: np.ndarray) -> np.ndarray:
        c.set_theta(varpar[:-1])
        unscaled = np.asarray(c.vcov_beta(reml)) / c.sigma(reml) ** 2
        return varpar[-1] ** 2 * unscaled

    x = np.concatenate([res.theta, [res.sigma]])
    H = hessian_richardson(deviance, x)
    J = jacobian_richardson(covbeta, x)
    evals, evecs = np.linalg.eigh(H)
    notes = []
    neg = evals < -HESSIAN_TOL
    zero = np.abs(evals) <= HESSIAN_TOL
    if neg.any():
        notes.append(f"the Hessian of the deviance has {int(neg.sum())} negative eigenvalue(s) "
                     f"{', '.join(f'{v:.1e}' for v in evals[neg])}: the fit may not have converged")
    if zero.any():
        notes.append(f"the Hessian of the deviance has {int(zero.sum())} eigenvalue(s) close to zero "
                     f"{', '.join(f'{v:.1e}' for v in evals[zero])}")
    pos = evals > HESSIAN_TOL
    hinv = (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    jac = [J[:, i].reshape(p, p) for i in range(x.size)]
    return Satterthwaite(vcov_beta=res.vcov.to_numpy(), vcov_varpar=2 * hinv, jacobian=jac, hessian=H, notes=notes)


def _contest1d_satterthwaite(s: Satterthwaite, L: np.ndarray) -> tuple[float, float]:
    """(variance of L'β̂, Satterthwaite df)."""
    var = float(L @ s.vcov_beta @ L)
    grad = np.array([float(L @ J @ L) for J in s.jacobian])
    denom = float(grad @ s.vcov_varpar @ grad)
    return var, 2 * var**2 / denom if denom > 0 else float("inf")


def _fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


# --------------------------------------------------------------------------- Kenward–Roger


@dataclass
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: Φ (unadjusted Var(β̂)), Φ_A (adjusted), P_i and W = 2·I_E⁻¹."""

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list
    W: np.ndarray


def kenward_roger_setup(res) -> KenwardRoger:
    """pbkrtest's adjusted covariance of β̂ (``vcovAdj``) for a REML fit.

    Works with q × q and n × q dense matrices (q = number of random effects), not
    pbkrtest's n × n ones; raises ValueError when n·q + q² exceeds ``KR_MAX_ELEMENTS``.
    """
    if not res.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True")
    model = res.model
    terms = model.terms
    n, p = model.nobs, model.nfixed
    Z = z_matrix(model)
    q = Z.shape[1]
    if n * q + q * q > KR_MAX_ELEMENTS:
        raise ValueError(f"Kenward-Roger needs dense {n} x {q} and {q} x {q} matrices here (n·q + q² = "
                         f"{n * q + q * q:.3g} > KR_MAX_ELEMENTS = {KR_MAX_ELEMENTS:.3g}); use "
                         "ddf='Satterthwaite' for models this size")
    X = model.design.X
    s2 = res.sigma**2
    Lam = lambda_matrix(res._lambdas, terms)
    B = (Z @ Lam).tocsc()                         # n × q
    A = (B.T @ B).toarray() + np.eye(q)           # Λ'Z'ZΛ + I
    cho = sla.cho_factor(A, lower=True)
    Ainv = sla.cho_solve(cho, np.eye(q))

    def apply_w(V: np.ndarray) -> np.ndarray:
        """Σ⁻¹ V = σ⁻²(V − B A⁻¹ B'V) (Woodbury)."""
        return (V - B @ sla.cho_solve(cho, B.T @ V)) / s2

    WX = apply_w(X)
    WZ = apply_w(Z.toarray())
    M = np.asarray(Z.T @ WZ)                      # Z'WZ
    N = np.asarray(Z.T @ WX)                      # Z'WX
    R = WZ.T @ WX                                 # Z'W²X
    S2 = WZ.T @ WZ                                # Z'W²Z
    XW2X = WX.T @ WX
    XW3X = WX.T @ apply_w(WX)
    trW2 = (n - 2 * (q - np.trace(Ainv)) + (q - 2 * np.trace(Ainv) + np.sum(Ainv * Ainv))) / s2**2
    phi = np.linalg.inv(X.T @ WX)

    # Covariance parameters: per term the entries (a, b), a >= b, of its covariance; then σ².
    pairs: list[tuple[np.ndarray, np.ndarray]] = []   # D_i = Σ e_r e_c' over (r, c) in the pair lists
    off = 0
    for t in terms:
        base = off + np.arange(t.nlevels) * t.p
        entries = [(a, a) for a in range(t.p)] if t.diagonal else [(a, b) for b in range(t.p) for a in range(b, t.p)]
        for a, b in entries:
            ia, ib = base + a, base + b
            if a == b:
                pairs.append((ia, ia))
            else:
                pairs.append((np.concatenate([ia, ib]), np.concatenate([ib, ia])))
        off += t.nlevels * t.p
    g = len(pairs) + 1

    def d_times(i: int, V: np.ndarray) -> np.ndarray:
        """D_i V for a q × k array V."""
        r, c = pairs[i]
        out = np.zeros_like(V)
        np.add.at(out, r, V[c])
        return out

    DN = [d_times(i, N) for i in range(g - 1)]
    P = [-(N.T @ DN[i]) for i in range(g - 1)] + [-XW2X]
    P = [(m + m.T) / 2 for m in P]

    def Q(i: int, j: int) -> np.ndarray:
        res_i, res_j = i == g - 1, j == g - 1
        if not res_i and not res_j:
            return DN[i].T @ M @ DN[j]
        if not res_i and res_j:
            return DN[i].T @ R
        if res_i and not res_j:
            return R.T @ DN[j]
        return XW3X

    def ktrace(i: int, j: int) -> float:
        res_i, res_j = i == g - 1, j == g - 1
        if not res_i and not res_j:
            ri, ci = pairs[i]
            rj, cj = pairs[j]
            return float(np.sum(M[np.ix_(ci, rj)] * M[np.ix_(cj, ri)].T))
        if res_i and res_j:
            return float(trW2)
        r, c = pairs[j] if res_i else pairs[i]
        return float(np.sum(S2[c, r]))

    IE2 = np.zeros((g, g))
    Qs = {}
    for i in range(g):
        phiP = phi @ P[i]
        for j in range(i, g):
            Qs[i, j] = Q(i, j)
            IE2[i, j] = IE2[j, i] = ktrace(i, j) - 2 * np.sum(phi * Qs[i, j]) + np.sum(phiP * (P[j] @ phi))
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2
    U = np.zeros((p, p))
    for i in range(g - 1):
        for j in range(i + 1, g):
            U += W[i, j] * (Qs[i, j] - P[i] @ phi @ P[j])
    U = U + U.T
    for i in range(g):
        U += W[i, i] * (Qs[i, i] - P[i] @ phi @ P[i])
    phi_adj = phi + 2 * phi @ U @ phi
    return KenwardRoger(phi=phi, phi_adj=phi_adj, P=P, W=W)


def _kr_adjust(kr: KenwardRoger, L: np.ndarray) -> dict:
    """pbkrtest's ``.KR_adjust`` (and ``Lb_ddf``) for the rows of L."""
    L = np.atleast_2d(L)
    phi = kr.phi
    Theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    TP = Theta @ phi
    g = len(kr.P)
    u = [TP @ kr.P[i] @ phi for i in range(g)]
    A1 = A2 = 0.0
    for i in range(g):
        for j in range(i, g):
            e = 1.0 if i == j else 2.0
            A1 += e * kr.W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * kr.W[i, j] * np.sum(u[i] * u[j].T)
    q = np.linalg.matrix_rank(L)
    B = (A1 + 6 * A2) / (2 * q)
    gg = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    c1 = gg / (3 * q + 2 * (1 - gg))
    c2 = (q - gg) / (3 * q + 2 * (1 - gg))
    c3 = (q + 2 - gg) / (3 * q + 2 * (1 - gg))
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = 1.0 if (abs(1 - A2 / q) < 1e-14 and abs(V1) < 1e-14) else (1 - A2 / q) / V1
    rho = ratio**2 * V0 / (V2 * q)
    df2 = 4 + (q + 2) / (q * rho - 1)
    scaling = 1.0 if abs(df2 - 2) < 1e-2 else df2 * (1 - A2 / q) / (df2 - 2)
    return {"q": int(q), "ddf": float(df2), "F.scaling": float(scaling)}


# --------------------------------------------------------------------------- contrasts


def _as_contrast(res, L) -> np.ndarray:
    names = list(res.fixef.index)
    if isinstance(L, pd.DataFrame):
        L = L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
    elif isinstance(L, pd.Series):
        L = L.reindex(names, fill_value=0.0).to_numpy(dtype=float)
    elif isinstance(L, dict):
        unknown = [k for k in L if k not in names]
        if unknown:
            raise ValueError(f"unknown fixed effects {unknown}; the fixed effects are {names}")
        L = np.array([float(L.get(k, 0.0)) for k in names])
    elif isinstance(L, str):
        if L not in names:
            raise ValueError(f"unknown fixed effect {L!r}; the fixed effects are {names}")
        L = np.eye(len(names))[names.index(L)]
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(names):
        raise ValueError(f"a contrast needs {len(names)} columns, one per fixed effect {names}; got {L.shape[1]}")
    return L


def _check_ddf(ddf):
    if ddf is None:
        return None
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    if key in ("satterthwaite", "satt"):
        return "Satterthwaite"
    if key in ("kenward-roger", "kr", "kenwardroger"):
        return "Kenward-Roger"
    if key in ("none", "wald", "lme4", "asymptotic"):
        return None
    raise ValueError(f"unknown ddf {ddf!r}; use 'Satterthwaite', 'Kenward-Roger' or None")


def coef_table(res, ddf="Satterthwaite") -> pd.DataFrame:
    """Fixed-effects table: Estimate, Std. Error, df, t value, Pr(>|t|) (lmerTest's summary).

    With ``ddf=None`` the df and p columns are left out (lme4's summary). Kenward–Roger
    uses the adjusted standard errors, as lmerTest does.
    """
    method = _check_ddf(ddf)
    names = list(res.fixef.index)
    beta = res.fixef.to_numpy()
    if method is None:
        se = res.se.to_numpy()
        return pd.DataFrame({"Estimate": beta, "Std. Error": se, "t value": beta / se}, index=names)
    rows = []
    for j in range(len(names)):
        L = np.eye(len(names))[j]
        var, df = _contrast_var_df(res, L, method)
        rows.append((var, df))
    se = np.sqrt([r[0] for r in rows])
    df = np.array([r[1] for r in rows])
    t = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)}, index=names)


def _contrast_var_df(res, L: np.ndarray, method: str) -> tuple[float, float]:
    if method == "Satterthwaite":
        return _contest1d_satterthwaite(res._satterthwaite(), L)
    kr = res._kenward_roger()
    return float(L @ kr.phi_adj @ L), _kr_adjust(kr, L[None, :])["ddf"]


def contrast_test(res, L, rhs=0.0, ddf="Satterthwaite", joint: bool = True) -> pd.DataFrame:
    """Test L β = rhs: one F test over the rows (``joint=True``, lmerTest's contestMD) or a t test per row.

    Returns:
        joint: one row with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F);
        otherwise one row per contrast with Estimate, Std. Error, df, t value, Pr(>|t|).
    """
    method = _check_ddf(ddf) or "Satterthwaite"
    L = _as_contrast(res, L)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],)).copy()
    beta = res.fixef.to_numpy()
    if not joint:
        rows = []
        for i in range(L.shape[0]):
            var, df = _contrast_var_df(res, L[i], method)
            est = float(L[i] @ beta)
            t = (est - rhs[i]) / math.sqrt(var)
            rows.append((est, math.sqrt(var), df, t, 2 * stats.t.sf(abs(t), df)))
        return pd.DataFrame(rows, columns=["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"])
    return pd.DataFrame([_contest_md(res, L, rhs, method)],
                        columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])


def _ftable_row(F: float, ndf: float, ddf: float, sigma: float, scale: float = 1.0) -> tuple:
    ms = F * sigma**2
    Fs = F * scale
    return (ms * ndf, ms, ndf, ddf, Fs, float(stats.f.sf(Fs, ndf, ddf)))


def _contest_md(res, L: np.ndarray, rhs: np.ndarray, method: str) -> tuple:
    beta = res.fixef.to_numpy()
    sigma = res.sigma
    if method == "Kenward-Roger":
        kr = res._kenward_roger()
        betaH = np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else np.zeros_like(beta)
        adj = _kr_adjust(kr, L)
        d = L @ (beta - betaH)
        wald = float(d @ np.linalg.solve(L @ kr.phi_adj @ L.T, d))
        return _ftable_row(wald / adj["q"], adj["q"], adj["ddf"], sigma, adj["F.scaling"])
    if L.shape[0] == 1:
        var, df = _contest1d_satterthwaite(res._satterthwaite(), L[0])
        t = (float(L[0] @ beta) - rhs[0]) / math.sqrt(var)
        return _ftable_row(t * t, 1, df, sigma)
    s = res._satterthwaite()
    if np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L) @ rhs
    V = L @ s.vcov_beta @ L.T
    d, P = np.linalg.eigh(V)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int(np.sum(d > tol))
    PtL = (P.T @ L)[:q]
    if q == 1:
        var, df = _contest1d_satterthwaite(s, PtL[0])
        t = float(PtL[0] @ beta) / math.sqrt(var)
        return _ftable_row(t * t, 1, df, sigma)
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = np.empty(q)
    for m in range(q):
        grad = np.array([float(PtL[m] @ J @ PtL[m]) for J in s.jacobian])
        nu[m] = 2 * d[m] ** 2 / float(grad @ s.vcov_varpar @ grad)
    return _ftable_row(F, q, _fstat_ddf(nu), sigma)


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(math.ceil(math.log10(mx)))))


def type3_contrasts(res) -> dict[str, np.ndarray]:
    """Contrast matrices of lmerTest's type III tests, one per fixed-effects term.

    For a term contained in no other term (every term of a main-effects model, the
    highest-order interactions) the contrast selects the term's columns, as lmerTest's.
    A term contained in others (its variables a subset of theirs, with the same numeric
    variables: ``Days`` in ``Days:f``, ``A`` in ``A:B``, not ``f`` in ``Days:f``) gets
    lmerTest's contrast (``extract_contrasts_type3``): the rows of ginv(X) rdX, with rdX
    the design with every factor coded by indicators of all levels, orthogonalized
    against the contrasts of the terms containing it, highest-order terms first.
    """
    info = res._fixed_terms()
    labels, bits, assign = info["labels"], info["bits"], info["assign"]
    p = len(res.fixef)
    cols = [[j for j, a in enumerate(assign) if a == k + 1] for k in range(len(labels))]
    state = res._frame_state("fixed")
    num = state.numeric_bits()

    def contains(a: int, b: int) -> bool:  # lmerTest's term_contain: term a inside term b
        return a != b and (a & ~b) == 0 and (a & num) == (b & num)

    containing = [[m for m, b in enumerate(bits) if contains(a, b)] for a in bits]
    if not any(containing[k] and cols[k] for k in range(len(labels))):
        return {label: np.eye(p)[cols[k]] for k, label in enumerate(labels) if cols[k]}

    X = res.model.design.X
    names = list(res.fixef.index)
    rdX, rdnames, _ = state.complete_design()
    pos = {name: j for j, name in enumerate(rdnames)}
    rows = [pos.get(name, -1) for name in names]
    if (X.shape[1] != p or -1 in rows or rdX.shape[0] != X.shape[0]
            or not np.allclose(rdX[:, rows], X, rtol=1e-12, atol=1e-12)):
        raise NotImplementedError(
            "the type III test of a term contained in an interaction is implemented for treatment "
            "contrasts of the factors only; test the higher-order terms, or a contrast with res.test(L)")
    L = _zapsmall(np.linalg.pinv(X) @ rdX).T  # rows: columns of rdX, columns: fixed effects
    order = sorted(range(len(labels)), key=lambda k: -bin(bits[k]).count("1"))  # stable, as R's order()
    for k in order:
        if not containing[k] or not cols[k]:
            continue
        other = [j for m in containing[k] for j in cols[m]]
        A, Y = L[:, other], L[:, cols[k]]
        coef = np.linalg.lstsq(A, Y, rcond=None)[0] if other else np.zeros((0, len(cols[k])))
        L[:, cols[k]] = _zapsmall(Y - A @ coef)
    L = L[rows]
    out: dict[str, np.ndarray] = {}
    for k, label in enumerate(labels):
        if not cols[k]:
            continue
        C = L[:, cols[k]].T
        out[label] = C[np.sum(np.abs(C), axis=1) > 1e-8]
    return out


def anova_type3(res, ddf="Satterthwaite") -> pd.DataFrame:
    """Type III F tests of the fixed-effects terms, as lmerTest's ``anova(fit)``."""
    method = _check_ddf(ddf) or "Satterthwaite"
    rows, names = [], []
    for label, L in type3_contrasts(res).items():
        rows.append(_contest_md(res, L, np.zeros(L.shape[0]), method))
        names.append(label)
    return pd.DataFrame(rows, index=names, columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])


# --------------------------------------------------------------------------- conditional variances


def conditional_covariances(res) -> list[np.ndarray]:
    """Per model term, the (ℓ, p, p) conditional covariances of b given y (lme4's condVar).

    σ² Λ (Λ'Z'ZΛ + I)⁻¹ Λ' restricted to each level's block, at the estimates (β fixed),
    as lme4's ``ranef(fit, condVar = TRUE)``: from the core's factor (its selected
    inverse), for any number of levels.
    """
    core_model = res.model.core
    core_model.set_theta(res.theta)
    out = []
    for t, c in zip(res.model.terms, core_model.conditional_variances()):
        # c is p × (p·ℓ), block j in columns j·p .. j·p + p − 1.
        out.append(res.sigma**2 * np.asarray(c).reshape(t.p, t.nlevels, t.p).transpose(1, 0, 2))
    return out


# --------------------------------------------------------------------------- profile


@dataclass
class Profile:
    """A likelihood profile, as lme4's ``profile(fit)``.

    Attributes:
        curves: dict parameter name → DataFrame with columns ``value`` and ``zeta``,
            sorted by value (zeta = sign(value − estimate)·sqrt(deviance − minimum)).
        estimates: ML estimates of the parameters (lme4 profiles the ML deviance).
        lower, upper: bounds of the parameters (0 for standard deviations, ±1 for correlations).
        zeta_functions: parameter name → exact zeta(value) (one profiled optimization per call).
    """

    curves: dict
    estimates: pd.Series
    lower: pd.Series
    upper: pd.Series
    zeta_functions: dict = field(repr=False, default_factory=dict)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile intervals: where zeta = ±z_{(1+level)/2}; a bound where the profile does not reach it."""
        z = stats.norm.ppf((1 + level) / 2)
        lo_name, hi_name = _perc_names(level)
        rows = []
        for name in self.curves:
            rows.append([self._root(name, -z), self._root(name, z)])
        return pd.DataFrame(rows, index=list(self.curves), columns=[lo_name, hi_name])

    def _root(self, name: str, target: float) -> float:
        curve = self.curves[name]
        v, zt = curve["value"].to_numpy(), curve["zeta"].to_numpy()
        f = self.zeta_functions.get(name)
        if target > 0:
            idx = np.flatnonzero(zt >= target)
            if idx.size == 0:
                return float(self.upper[name]) if np.isfinite(self.upper[name]) else float("nan")
            i = idx[0]
        else:
            idx = np.flatnonzero(zt <= target)
            if idx.size == 0:
                return float(self.lower[name]) if np.isfinite(self.lower[name]) else float("nan")
            i = idx[-1]
        j = i - 1 if target > 0 else i + 1
        a, b = sorted((v[i], v[j]))
        if f is None:
            return float(np.interp(target, zt[min(i, j):max(i, j) + 1], v[min(i, j):max(i, j) + 1]))
        return float(sopt.brentq(lambda x: f(x) - target, a, b, xtol=1e-10, rtol=1e-12))


def _perc_names(level: float) -> tuple[str, str]:
    a = (1 - level) / 2

    def fmt(x: float) -> str:
        s = f"{100 * x:.3g}"
        return f"{s} %"

    return fmt(a), fmt(1 - a)


def _ml_fit(res):
    """(θ, σ, β, deviance) of the ML fit of the same model (res itself for ML fits)."""
    if not res.REML:
        return res.theta, res.sigma, res.fixef.to_numpy(), res.objective
    c = private_core(res)
    opt = optimize_theta(_CoreObjective(c, reml=False, theta_scale=res.model.theta_scale), start=res.theta)
    c.set_theta(opt.theta)
    _, beta = c.solve()
    return opt.theta, c.sigma(False), np.asarray(beta), c.objective(False)


def profile(res, which=None, alphamax: float = 0.01, maxpts: int = 100, delta_cutoff: float = 1 / 8,
            cutoff: Optional[float] = None) -> Profile:
    """Profile the ML deviance over σ's, correlations, σ and the fixed effects (lme4's ``profile``).

    Args:
        res: the fitted result (REML fits are refitted by ML, as lme4 does).
        which: parameter names (``.sig01``, ``.sigma``, fixed-effect names) or None for all.
        alphamax: the profile extends to zeta = sqrt(χ²_{1−alphamax}(number of parameters)), lme4's default.
        maxpts: most points per direction.
        delta_cutoff: target step in zeta as a fraction of the cutoff (lme4's 1/8).
        cutoff: override the zeta range.

    Returns:
        Profile.
    """
    model = res.model
    terms = model.terms
    c = private_core(res)
    theta_ml, sigma_ml, beta_ml, base = _ml_fit(res)
    vnames = varpar_names(terms)
    xnames = list(res.fixef.index)
    pars0 = theta_to_sdcor(theta_ml, sigma_ml, terms)
    names = vnames + xnames
    estimates = pd.Series(np.concatenate([pars0, beta_ml]), index=names)
    lower_theta = np.asarray(c.theta_lower)
    lower = np.concatenate([np.where(lower_theta == 0, 0.0, -1.0), [0.0], np.full(len(xnames), -np.inf)])
    upper = np.concatenate([np.where(lower_theta == 0, np.inf, 1.0), [np.inf], np.full(len(xnames), np.inf)])
    lower_s, upper_s = pd.Series(lower, index=names), pd.Series(upper, index=names)
    if which is None:
        which = names
    elif isinstance(which, str):
        which = [which]
    unknown = [w for w in which if w not in names]
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; parameters are {names}")
    if cutoff is None:
        cutoff = math.sqrt(stats.chi2.ppf(1 - alphamax, len(names)))
    delta = cutoff * delta_cutoff
    nv = len(vnames)

    mldev = _MLDeviance(model, c)
    curves, funcs = {}, {}
    with _blas_single_thread():
        se_ml = _ml_se(res, theta_ml)
        for w in which:
            if w in vnames:
                i = vnames.index(w)
                f = _VarparZeta(mldev, pars0, i, lower[:nv], upper[:nv], base)
                start_step = 0.001 if pars0[i] == 0 else pars0[i] * 0.01
            else:
                j = xnames.index(w)
                f = _FixedZeta(model, j, beta_ml[j], theta_ml, base)
                start_step = delta * se_ml[j]
            curves[w] = _trace(f, estimates[w], start_step, lower_s[w], upper_s[w], cutoff, delta, maxpts)
            funcs[w] = f
    return Profile(curves=curves, estimates=estimates, lower=lower_s, upper=upper_s, zeta_functions=funcs)


def _ml_se(res, theta: np.ndarray) -> np.ndarray:
    c = private_core(res)
    c.set_theta(theta)
    v = np.asarray(c.vcov_beta(False))
    return np.sqrt(np.diag(v))


class _MLDeviance:
    """The ML deviance as a function of (sd/cor parameters, σ), with β profiled out, and its exact gradient.

    deviance = ldL2(θ) + r²(θ)/σ² + n log(2πσ²), θ from the sd/cor scale (lme4's devfun2).
    The gradient in θ at fixed σ combines the core's exact gradient of the profiled ML
    deviance, ∂ldL2 + (n/r²)∂r², with ∂r²/∂θ_i = −2 Σ_j (Z'e)_{j,a} u_{j,b} (envelope
    theorem, e the residual at β̂ and b̂); the sd/cor → θ map is differenced centrally.
    """

    def __init__(self, model, core_model) -> None:
        self.c = core_model
        self.terms = model.terms
        self.n = model.nobs
        self.y, self.X = model.design.y, model.design.X
        self.Z = z_matrix(model)
        self.Zt = self.Z.T.tocsr()
        rows_a, rows_b, owner = [], [], []
        off, i = 0, 0
        for t in self.terms:
            base = off + np.arange(t.nlevels) * t.p
            entries = [(a, a) for a in range(t.p)] if t.diagonal else [(a, b) for b in range(t.p) for a in range(b, t.p)]
            for a, b in entries:
                rows_a.append(base + a)
                rows_b.append(base + b)
                owner.append(np.full(t.nlevels, i))
                i += 1
            off += t.nlevels * t.p
        self.ia = np.concatenate(rows_a) if rows_a else np.zeros(0, int)
        self.ib = np.concatenate(rows_b) if rows_b else np.zeros(0, int)
        self.owner = np.concatenate(owner) if owner else np.zeros(0, int)
        self.ntheta = i

    def theta_value_grad(self, theta: np.ndarray, sigma: float) -> tuple[float, np.ndarray, float]:
        c = self.c
        _, g_ml = c.evaluate_with_gradient(theta, False)
        r2, ldL2 = c.pwrss, c.ldL2
        u, beta = c.solve()
        u = np.asarray(u)
        e = self.y - self.X @ np.asarray(beta) - self.Z @ np.asarray(c.b(u))
        ze = self.Zt @ e
        dr2 = -2 * np.bincount(self.owner, weights=ze[self.ia] * u[self.ib], minlength=self.ntheta)
        s2 = sigma * sigma
        value = ldL2 + r2 / s2 + self.n * (math.log(2 * math.pi) + math.log(s2))
        dtheta = np.asarray(g_ml) - (self.n / r2) * dr2 + dr2 / s2
        dsigma = -2 * r2 / sigma**3 + 2 * self.n / sigma
        return value, dtheta, dsigma

    def __call__(self, pars: np.ndarray) -> tuple[float, np.ndarray]:
        theta = sdcor_to_theta(pars, self.terms)
        if theta is None:
            return 1e100, np.zeros_like(pars)
        try:
            value, dtheta, dsigma = self.theta_value_grad(theta, pars[-1])
        except RuntimeError:
            # θ = sd/σ so large that the factorization breaks down (σ → 0 in a trial step):
            # a huge value makes the line search step back
            return 1e100, np.zeros_like(pars)
        grad = np.zeros_like(pars)
        grad[-1] = dsigma
        for k in range(pars.size):
            h = 1e-6 * max(1.0, abs(pars[k]))
            up, dn = pars.copy(), pars.copy()
            up[k] += h
            dn[k] -= h
            tu, td = sdcor_to_theta(up, self.terms), sdcor_to_theta(dn, self.terms)
            if tu is None or td is None:   # at a correlation of ±1: one-sided
                tu = tu if tu is not None else theta
                td = td if td is not None else theta
                hh = h if (tu is theta) != (td is theta) else 2 * h
            else:
                hh = 2 * h
            grad[k] += dtheta @ ((tu - td) / hh)
        return value, grad


class _VarparZeta:
    """zeta for one sd/cor/σ parameter: the ML deviance minimized over the others."""

    def __init__(self, dev: _MLDeviance, pars0, i, lower, upper, base):
        self.dev, self.i, self.base = dev, i, base
        self.est = pars0[i]
        self.start = np.delete(pars0, i)
        self.lo = np.delete(lower, i)
        self.hi = np.delete(upper, i)
        if i != pars0.size - 1:
            self.lo[-1] = 1e-3 * pars0[-1]   # σ > 0, and θ = sd/σ within reach of the factorization

    def __call__(self, x: float) -> float:
        i = self.i

        def fun(rest):
            value, grad = self.dev(np.insert(rest, i, x))
            return value, np.delete(grad, i)

        start = np.clip(self.start, self.lo, self.hi)
        opt = sopt.minimize(fun, start, method="L-BFGS-B", jac=True, bounds=sopt.Bounds(self.lo, self.hi),
                            options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000, "maxcor": 20})
        self.start = np.asarray(opt.x)
        diff = max(0.0, float(opt.fun) - self.base)
        return math.copysign(math.sqrt(diff), x - self.est) if x != self.est else 0.0


class _FixedZeta:
    """zeta for fixed effect j: y − x_j b on X without column j, θ re-optimized (ML)."""

    def __init__(self, model, j, est, theta0, base):
        d = model.design
        self.terms = _core_terms(model)
        self.xj = d.X[:, j].copy()
        self.Xd = np.asfortranarray(np.delete(d.X, j, axis=1))
        self.y = d.y
        self.est, self.base = est, base
        self.core = core.Model(self.terms, self.Xd, self.y - self.xj * est)
        self.obj = _CoreObjective(self.core, reml=False, theta_scale=model.theta_scale)
        self.start = np.asarray(theta0, dtype=float)

    def __call__(self, b: float) -> float:
        self.core.set_response(self.terms, self.Xd, np.ascontiguousarray(self.y - self.xj * b))
        opt = optimize_theta(self.obj, start=np.maximum(self.start, self.obj.theta_lower))
        self.start = opt.theta
        diff = max(0.0, opt.objective - self.base)
        return math.copysign(math.sqrt(diff), b - self.est) if b != self.est else 0.0


def _trace(f, est: float, step0: float, lo: float, hi: float, cutoff: float, delta: float, maxpts: int) -> pd.DataFrame:
    """Points of a zeta curve in both directions until |zeta| > cutoff or a bound (lme4's fillmat)."""
    pts = [(est, 0.0)]
    for sign in (1.0, -1.0):
        if (sign < 0 and est <= lo) or (sign > 0 and est >= hi):
            continue
        prev_x, prev_z = est, 0.0
        x = min(hi, max(lo, est + sign * step0))
        for _ in range(maxpts):
            z = f(x)
            pts.append((x, z))
            if abs(z) > cutoff or x <= lo or x >= hi:
                break
            dz = z - prev_z
            dx = x - prev_x
            if dz * sign <= 0 or dx == 0:
                step = abs(dx) if dx != 0 else step0
            else:
                step = min(abs(delta * dx / dz), 10 * abs(dx))
            prev_x, prev_z = x, z
            x = min(hi, max(lo, x + sign * step))
            if x == prev_x:
                break
    frame = pd.DataFrame(pts, columns=["value", "zeta"]).drop_duplicates("value").sort_values("value")
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- bootstrap


@dataclass
class BootstrapResult:
    """Parametric bootstrap replicates, as lme4's ``bootMer`` with ``confint``'s statistics.

    Attributes:
        replicates: DataFrame, one row per replicate, columns ``.sig01``..., ``.sigma``
            and the fixed effects (lme4's names), plus ``theta`` entries as ``theta_<name>``.
        estimates: the same statistics for the fit (``t0``).
        converged: per replicate, whether the refit converged.
        seconds: wall time.
        n_jobs: workers used.
    """

    replicates: pd.DataFrame
    estimates: pd.Series
    converged: np.ndarray
    seconds: float
    n_jobs: int

    @property
    def statistics(self) -> list[str]:
        return list(self.estimates.index)

    def confint(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """Percentile (``"perc"``), basic or normal intervals, as boot's ``confint`` of lme4."""
        lo_name, hi_name = _perc_names(level)
        a = (1 - level) / 2
        t = self.replicates[self.statistics]
        t0 = self.estimates
        if type == "perc":
            lo, hi = _boot_quantile(t, a), _boot_quantile(t, 1 - a)
        elif type == "basic":
            lo, hi = 2 * t0 - _boot_quantile(t, 1 - a), 2 * t0 - _boot_quantile(t, a)
        elif type == "norm":
            z = stats.norm.ppf(1 - a)
            bias = t.mean() - t0
            sd = t.std(ddof=1)
            lo, hi = t0 - bias - z * sd, t0 - bias + z * sd
        else:
            raise ValueError("type must be 'perc', 'basic' or 'norm'")
        return pd.DataFrame({lo_name: lo, hi_name: hi})

    def __repr__(self) -> str:
        return (f"<BootstrapResult {len(self.replicates)} replicates, {int(self.converged.sum())} converged, "
                f"{self.seconds:.2f} s on {self.n_jobs} worker(s)>")


def _boot_quantile(t: pd.DataFrame, p: float) -> pd.Series:
    """boot's norm.inter order-statistic quantile (type of boot.ci 'perc') without interpolation quirks."""
    return t.quantile(p, interpolation="linear")


class _Refitter:
    """Per-worker state: a core model of the fitted structure, y replaced per replicate."""

    def __init__(self, terms, X, y, reml, lambdas, model_terms, beta, sigma, b_hat, theta0, theta_scale):
        self.terms, self.X, self.reml = terms, X, reml
        self.core = core.Model(terms, X, y)
        self.obj = _CoreObjective(self.core, reml, theta_scale)
        self.lambdas, self.model_terms = lambdas, model_terms
        self.mean = X @ beta
        self.sigma = sigma
        self.b_hat = b_hat
        self.theta0 = theta0

    def simulate(self, rng: np.random.Generator, use_u: bool) -> np.ndarray:
        n = self.mean.shape[0]
        y = self.mean + self.sigma * rng.standard_normal(n)
        off = 0
        for t, lam in zip(self.model_terms, self.lambdas):
            size = t.nlevels * t.p
            if use_u:
                b = self.b_hat[off:off + size].reshape(t.nlevels, t.p)
            else:
                b = self.sigma * rng.standard_normal((t.nlevels, t.p)) @ lam.T
            y += np.einsum("ij,ij->i", t.z, b[t.codes])
            off += size
        return y

    def refit(self, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool]:
        self.core.set_response(self.terms, self.X, np.ascontiguousarray(y))
        opt = optimize_theta(self.obj, start=self.theta0)
        self.core.set_theta(opt.theta)
        _, beta = self.core.solve()
        return opt.theta, float(self.core.sigma(self.reml)), np.asarray(beta), bool(opt.converged)


def _run_chunk(refitter: _Refitter, seeds, use_u: bool, ntheta: int, p: int):
    out = np.empty((len(seeds), ntheta + 1 + p + 1))
    for r, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        theta, sigma, beta, ok = refitter.refit(refitter.simulate(rng, use_u))
        out[r] = np.concatenate([theta, [sigma], beta, [float(ok)]])
    return out


class _Progress:
    """tqdm when installed, else a plain stderr bar; silent when stderr is not a terminal."""

    def __init__(self, total: int, enabled: Optional[bool], desc: str = "bootstrap") -> None:
        if enabled is None:
            enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.enabled, self.total, self.done, self.desc = enabled, total, 0, desc
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._draw()
            else:
                self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)

    def update(self, k: int) -> None:
        self.done += k
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(k)
        else:
            self._draw()

    def _draw(self) -> None:
        width = 30
        frac = self.done / self.total if self.total else 1.0
        fill = int(width * frac)
        sys.stderr.write(f"\r{self.desc} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                         f"{time.perf_counter() - self.t0:.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def _run_bootstrap(chunks, results, make_refitter, use_u, ntheta, p, n_jobs, bar) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    try:
        if n_jobs == 1:
            refitter = make_refitter()
            for k, ch in enumerate(chunks):
                results[k] = _run_chunk(refitter, ch, use_u, ntheta, p)
                bar.update(len(ch))
        else:
            import threading
            local = threading.local()

            def work(k: int):
                if not hasattr(local, "refitter"):
                    local.refitter = make_refitter()
                return k, _run_chunk(local.refitter, chunks[k], use_u, ntheta, p)

            with ThreadPoolExecutor(max_workers=n_jobs) as ex:
                futures = [ex.submit(work, k) for k in range(len(chunks))]
                for fut in as_completed(futures):
                    k, out = fut.result()
                    results[k] = out
                    bar.update(len(chunks[k]))
    finally:
        bar.close()


def _default_jobs(res) -> int:
    """All CPUs when one evaluation of the objective takes long enough for threads to pay off.

    Below ~1 ms per evaluation the optimizer's Python work (under the GIL) dominates and
    threads only contend; above it the core's work (without the GIL) runs in parallel.
    """
    c = res.model._core
    t0 = time.perf_counter()
    for _ in range(3):
        c.evaluate_with_gradient(res.theta, res.REML)
    per_eval = (time.perf_counter() - t0) / 3
    return (os.cpu_count() or 1) if per_eval > 1e-3 else 1


def bootstrap(res, nsim: int = 500, seed=None, use_u: bool = False, n_jobs: Optional[int] = None,
              progress: Optional[bool] = None, chunk: int = 16) -> BootstrapResult:
    """Parametric bootstrap (lme4's ``bootMer(type = "parametric")``).

    Each replicate simulates y from the fitted model (new random effects unless
    ``use_u``) and refits θ with the same criterion, starting at θ̂. Only the response
    changes: each worker keeps a core model whose crossproducts of Z and X are formed
    once. Workers are threads (the core releases the GIL while it computes, so threads
    pay off when evaluations are not tiny); replicate r uses its own random stream spawned from ``seed``, so results do not depend on
    ``n_jobs``.

    Args:
        res: the fitted result.
        nsim: number of replicates.
        seed: seed of ``numpy.random.SeedSequence``.
        use_u: keep the conditional modes b̂ fixed and simulate only the noise.
        n_jobs: worker threads (default: the number of CPUs when an evaluation of the
            objective takes over 1 ms, else 1).
        progress: show a progress bar (default: when stderr is a terminal).
        chunk: replicates per task.

    Returns:
        BootstrapResult.
    """
    model = res.model
    d = model.design
    terms = _core_terms(model)
    ntheta, p = model.ntheta, model.nfixed
    seeds = np.random.SeedSequence(seed).spawn(nsim)
    if n_jobs is None:
        n_jobs = _default_jobs(res)
    n_jobs = max(1, min(int(n_jobs), max(1, nsim // max(1, chunk))))

    def make_refitter() -> _Refitter:
        return _Refitter(terms, d.X, d.y, res.REML, res._lambdas, model.terms, res.fixef.to_numpy(), res.sigma,
                         res._b, res.theta, model.theta_scale)

    bar = _Progress(nsim, progress)
    t0 = time.perf_counter()
    chunks = [seeds[i:i + chunk] for i in range(0, nsim, chunk)]
    results: list = [None] * len(chunks)
    with _blas_single_thread():
        _run_bootstrap(chunks, results, make_refitter, use_u, ntheta, p, n_jobs, bar)
    seconds = time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    raw = np.vstack(results) if results else np.empty((0, ntheta + p + 2))
    vn = varpar_names(model.terms)
    xnames = list(res.fixef.index)
    rows = [np.concatenate([theta_to_sdcor(r[:ntheta], r[ntheta], model.terms), r[ntheta + 1:ntheta + 1 + p]])
            for r in raw]
    frame = pd.DataFrame(rows, columns=vn + xnames)
    for i, name in enumerate(res.theta_names):
        frame[f"theta_{name}"] = raw[:, i]
    t0_stats = pd.Series(np.concatenate([theta_to_sdcor(res.theta, res.sigma, model.terms), res.fixef.to_numpy()]),
                         index=vn + xnames)
    return BootstrapResult(replicates=frame, estimates=t0_stats, converged=raw[:, -1].astype(bool),
                           seconds=seconds, n_jobs=n_jobs)


# --------------------------------------------------------------------------- confint


def confint(res, method: str = "profile", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
    """Confidence intervals for σ's, correlations, σ and β (lme4's ``confint``).

    Args:
        method: ``"wald"`` (β only; variance parameters are NaN, as lme4),
            ``"profile"`` (likelihood profile, lme4's default) or ``"bootstrap"``
            (percentile; ``nsim``, ``seed``, ``n_jobs``, ``progress`` go to :func:`bootstrap`).
        level: confidence level.
        parm: names of parameters to keep (default all).

    Returns:
        DataFrame with columns like ``"2.5 %"``, ``"97.5 %"``, rows ``.sig01``, ..., ``.sigma``, fixed effects.
    """
    method = method.lower()
    names = varpar_names(res.model.terms) + list(res.fixef.index)
    lo_name, hi_name = _perc_names(level)
    if method == "wald":
        z = stats.norm.ppf((1 + level) / 2)
        beta, se = res.fixef.to_numpy(), res.se.to_numpy()
        lo = np.concatenate([np.full(len(names) - len(beta), np.nan), beta - z * se])
        hi = np.concatenate([np.full(len(names) - len(beta), np.nan), beta + z * se])
        out = pd.DataFrame({lo_name: lo, hi_name: hi}, index=names)
    elif method == "profile":
        z = stats.norm.ppf((1 + level) / 2)
        prof = profile(res, which=parm, cutoff=z * 1.05, **kwargs)
        out = prof.confint(level)
    elif method in ("bootstrap", "boot"):
        boot = bootstrap(res, **kwargs)
        out = boot.confint(level)
    else:
        raise ValueError("method must be 'wald', 'profile' or 'bootstrap'")
    if parm is not None:
        parm = [parm] if isinstance(parm, str) else list(parm)
        out = out.loc[parm]
    return out


# --------------------------------------------------------------------------- model comparison


def anova(*models, refit: bool = True, names: Optional[Sequence[str]] = None, ddf="Satterthwaite") -> pd.DataFrame:
    """Likelihood-ratio tests between nested fits (lme4's ``anova(m0, m1, ...)``).

    With one model, the type III F tests of its fixed effects (lmerTest's ``anova(fit)``).

    REML fits are refitted by maximum likelihood first (a RefitMLWarning says so, as lme4's
    message does; ``refit=False`` compares the criteria as fitted). Models are sorted by
    their number of parameters.

    Args:
        *models: fitted results on the same data.
        refit: refit REML fits with ML.
        names: row names (default ``model1``, ``model2``, ... in the order given).
        ddf: for a single model, the denominator degrees of freedom method.

    Returns:
        DataFrame with columns npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq).

    Example:
        >>> import lmm
        >>> df = lmm.datasets.load("sleepstudy")
        >>> m0 = lmm.lmer("Reaction ~ Days + (1 | Subject)", df)
        >>> m1 = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
        >>> lmm.anova(m0, m1)  # doctest: +SKIP
    """
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if not models:
        raise ValueError("anova needs at least one fitted model")
    if len(models) == 1:
        return anova_type3(models[0], ddf=ddf)
    if names is None:
        names = [f"model{i + 1}" for i in range(len(models))]
    names = list(names)
    if len(names) != len(models):
        raise ValueError("names must have one entry per model")
    nobs = {m.nobs for m in models}
    if len(nobs) > 1:
        raise ValueError(f"models were not all fitted to the same number of observations: {sorted(nobs)}")
    reml = [m.REML for m in models]
    if refit:
        if any(reml):
            warnings.warn("refitting model(s) with ML (instead of REML)", RefitMLWarning, stacklevel=2)
        models = tuple(m.refit_ml() if m.REML else m for m in models)
    elif any(reml) and not all(reml):
        warnings.warn("some models fit with REML = TRUE, some not", UserWarning, stacklevel=2)
    npar = np.array([m.npar for m in models], dtype=float)
    order = np.argsort(npar, kind="stable")
    models = [models[i] for i in order]
    names = [names[i] for i in order]
    npar = npar[order]
    llk = np.array([m.loglik for m in models])
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0, np.diff(llk))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        pval = np.where(df == 0, np.nan, stats.chi2.sf(chisq, np.where(df > 0, df, np.nan)))
    out = pd.DataFrame({
        "npar": npar.astype(int),
        "AIC": [m.aic for m in models],
        "BIC": [m.bic for m in models],
        "logLik": llk,
        "deviance": -2 * llk,
        "Chisq": chisq,
        "Df": df,
        "Pr(>Chisq)": pval,
    }, index=names)
    out.attrs["formulas"] = {nm: m.formula for nm, m in zip(names, models)}
    return out
