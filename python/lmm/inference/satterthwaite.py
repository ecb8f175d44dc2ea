"""Satterthwaite degrees of freedom as lmerTest (3.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .numdiff import hessian_richardson, jacobian_richardson

__all__ = ["HESSIAN_TOL", "Satterthwaite", "fstat_ddf", "satterthwaite_setup", "variance_and_df"]

#: lmerTest's tolerance on the eigenvalues of the varpar Hessian.
HESSIAN_TOL = 1e-8


@dataclass
class Satterthwaite:
    """lmerTest's ingredients: Var(β̂), Cov(varpar) = 2H⁻¹, and ∂Var(β̂)/∂varpar.

    The derivatives are taken in the core's working coordinates (θ̃, σ) (each term's
    columns centred and scaled, :meth:`~lmm.model.LinearMixedModel.working_from_theta`),
    where numerical differentiation is well conditioned whatever the offsets of the
    columns; the df, invariant to the parameterization, come from those. The user's
    (θ, σ) versions (lmerTest's) follow by the chain rule.

    Attributes:
        vcov_beta: p × p covariance of β̂.
        vcov_varpar: covariance of (θ, σ) from the Hessian of the deviance.
        jacobian: list over (θ, σ) of p × p derivatives of Var(β̂).
        hessian: the Hessian itself, in (θ, σ).
        working_vcov_varpar, working_jacobian: the same in (θ̃, σ).
        notes: messages about the Hessian (non-positive eigenvalues, in (θ̃, σ)), as lmerTest's warnings.
    """

    vcov_beta: np.ndarray
    vcov_varpar: np.ndarray
    jacobian: list
    hessian: np.ndarray
    working_vcov_varpar: np.ndarray
    working_jacobian: list
    notes: list = field(default_factory=list)


def satterthwaite_setup(res) -> Satterthwaite:
    """Compute lmerTest's Satterthwaite ingredients for a fitted result (costs O(dim θ²) evaluations).

    The deviance and Var(β̂) come from the model's :meth:`~lmm.model.LinearMixedModel.solution`
    at each trial θ (the model's one core, with its shift), so the result does not depend
    on an offset of the response or of a predictor.

    Args:
        res: the fitted result.

    Returns:
        Satterthwaite.
    """
    model = res.model
    reml = res.REML
    n, p = model.nobs, model.nfixed
    log2pi = math.log(2 * math.pi)

    def deviance(varpar: np.ndarray) -> float:
        sol = model.solution(varpar[:-1], reml=reml, working=True)
        sigma2 = varpar[-1] ** 2
        dev = sol.ldL2 + sol.pwrss / sigma2 + n * (log2pi + math.log(sigma2))
        if reml:
            dev += sol.ldRX2 - p * (log2pi + math.log(sigma2))
        return dev

    def covbeta(varpar: np.ndarray) -> np.ndarray:
        sol = model.solution(varpar[:-1], reml=reml, working=True)
        return varpar[-1] ** 2 * (sol.vcov / sol.sigma**2)

    # Correlation parameters of structured terms (bounded on both sides) are
    # differentiated through a logistic map of their interval, so that numDeriv's steps
    # (10 % of the value) stay inside it; the df do not depend on the parameterization.
    # Parameters on such a bound are held there (known). Everything maps back to θ.
    x0 = np.concatenate([model.working_from_theta(res.par), [res.sigma]])
    lower = np.append(model.theta_lower, 0.0)
    upper = np.append(model.theta_upper, np.inf)
    corr = np.isfinite(lower) & np.isfinite(upper)
    width = np.where(corr, upper - lower, 1.0)
    z = np.where(corr, (x0 - lower) / width, 0.5)
    held = corr & ((z <= 1e-8) | (z >= 1 - 1e-8))
    mapped = corr & ~held
    free = ~held

    def to_x(u: np.ndarray) -> np.ndarray:
        x = x0.copy()
        v = u.copy()
        v[mapped[free]] = lower[mapped] + width[mapped] / (1 + np.exp(-u[mapped[free]]))
        x[free] = v
        return x

    u0 = x0[free].copy()
    u0[mapped[free]] = np.log(z[mapped] / (1 - z[mapped]))
    dx = np.ones(free.sum())                       # dx/du at u0
    dx[mapped[free]] = width[mapped] * z[mapped] * (1 - z[mapped])
    Hu = hessian_richardson(lambda u: deviance(to_x(u)), u0)
    Ju = jacobian_richardson(lambda u: covbeta(to_x(u)), u0)
    # Back to θ̃ (at the optimum the gradient term of the Hessian's change of variables vanishes).
    H = np.zeros((x0.size, x0.size))
    H[np.ix_(free, free)] = Hu / np.outer(dx, dx)
    J = np.zeros((p * p, x0.size))
    J[:, free] = Ju / dx
    evals, evecs = np.linalg.eigh(H[np.ix_(free, free)])
    notes = []
    if held.any():
        notes.append(f"{int(held.sum())} correlation parameter(s) on a bound held fixed")
    neg = evals < -HESSIAN_TOL
    zero = np.abs(evals) <= HESSIAN_TOL
    if neg.any():
        notes.append(f"the Hessian of the deviance has {int(neg.sum())} negative eigenvalue(s) "
                     f"{', '.join(f'{v:.1e}' for v in evals[neg])}: the fit may not have converged")
    if zero.any():
        notes.append(f"the Hessian of the deviance has {int(zero.sum())} eigenvalue(s) close to zero "
                     f"{', '.join(f'{v:.1e}' for v in evals[zero])}")
    pos = evals > HESSIAN_TOL
    hinv = np.zeros((x0.size, x0.size))
    hinv[np.ix_(free, free)] = (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    # The user's (θ, σ) by the chain rule through A = ∂θ̃/∂θ and B = ∂θ/∂θ̃ (B = A⁻¹).
    k = res.par.size
    A, B = np.eye(x0.size), np.eye(x0.size)
    A[:k, :k] = jacobian_richardson(model.working_from_theta, res.par)
    B[:k, :k] = jacobian_richardson(model.theta_from_working, x0[:k])
    JU = J @ A
    return Satterthwaite(vcov_beta=res.vcov.to_numpy(), vcov_varpar=B @ (2 * hinv) @ B.T,
                         jacobian=[JU[:, i].reshape(p, p) for i in range(x0.size)], hessian=A.T @ H @ A,
                         working_vcov_varpar=2 * hinv,
                         working_jacobian=[J[:, i].reshape(p, p) for i in range(x0.size)], notes=notes)


def variance_and_df(s: Satterthwaite, L: np.ndarray) -> tuple[float, float]:
    """Variance of L'β̂ and its Satterthwaite df (lmerTest's ``contest1D``).

    Args:
        s: the ingredients of the fit.
        L: (p,) one contrast.

    Returns:
        (variance, df).
    """
    var = float(L @ s.vcov_beta @ L)
    grad = np.array([float(L @ J @ L) for J in s.working_jacobian])
    denom = float(grad @ s.working_vcov_varpar @ grad)
    return var, 2 * var**2 / denom if denom > 0 else float("inf")


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: the F test's df from the df ``nu`` of its eigen-contrasts.

    Args:
        nu: df of each orthogonal contrast.
        tol: equal df within this tolerance give their mean.
    """
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)
