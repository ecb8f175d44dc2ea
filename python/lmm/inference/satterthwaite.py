"""Satterthwaite degrees of freedom as lmerTest (3.1)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .._threads import dense_blas
from .common import Progress
from .numdiff import jacobian_richardson

__all__ = ["HESSIAN_TOL", "Satterthwaite", "fstat_ddf", "satterthwaite_setup", "variance_and_df"]

#: lmerTest's tolerance on the eigenvalues of the varpar Hessian.
HESSIAN_TOL = 1e-8
#: Steps of the differences of the exact gradient (jacobian_richardson's r): 1, central
#: differences, two evaluations per θ entry. One Richardson step more (four) changed the
#: df of the lmerTest reference cases by 1e-8 relative (their largest difference from
#: lmerTest 1.84e-7 against 1.85e-7) and doubled the summary's time.
DIFFERENCE_STEPS = 1
# Seconds of expected work beyond which the df computation shows a progress bar.
_SLOW = 2.0


@dataclass
class Satterthwaite:
    """lmerTest's ingredients: Var(β̂), Cov(varpar) = 2H⁻¹, and ∂Var(β̂)/∂varpar.

    The derivatives are taken in the core's working coordinates (θ̃, σ) (each term's
    columns centred and scaled, :meth:`~lmm.model.LinearMixedModel.working_from_theta`),
    where numerical differentiation is well conditioned whatever the offsets of the
    columns; the df, invariant to the parameterization, come from those. The user's
    (θ, σ) versions (lmerTest's) follow by the chain rule, when first read.

    Attributes:
        vcov_beta: p × p covariance of β̂.
        vcov_varpar: covariance of (θ, σ) from the Hessian of the deviance.
        jacobian: list over (θ, σ) of p × p derivatives of Var(β̂).
        hessian: the Hessian itself, in (θ, σ).
        working_vcov_varpar, working_jacobian, working_hessian: the same in (θ̃, σ).
        to_working, theta: the map θ ↦ θ̃ and the fit's θ (for the chain rule).
        notes: messages about the Hessian (non-positive eigenvalues, in (θ̃, σ)), as lmerTest's warnings.
    """

    vcov_beta: np.ndarray
    working_vcov_varpar: np.ndarray
    working_jacobian: list
    working_hessian: np.ndarray
    notes: list = field(default_factory=list)
    # θ ↦ θ̃ (the model's working_from_theta) and the fit's θ, for the chain rule.
    to_working: Optional[Callable[[np.ndarray], np.ndarray]] = field(default=None, repr=False)
    theta: Optional[np.ndarray] = field(default=None, repr=False)

    @functools.cached_property
    def _A(self) -> np.ndarray:
        """A = ∂(θ̃, σ)/∂(θ, σ) at the fit (the map is smooth and cheap; one Richardson step
        differentiates it to rounding)."""
        A = np.eye(self.working_hessian.shape[0])
        if self.to_working is not None and self.theta is not None and self.theta.size:
            m = self.theta.size
            A[:m, :m] = jacobian_richardson(self.to_working, self.theta, r=2)
        return A

    @functools.cached_property
    def vcov_varpar(self) -> np.ndarray:
        """The covariance of (θ, σ), B (2H⁻¹) B' from the working one."""
        # B = ∂(θ, σ)/∂(θ̃, σ) = A⁻¹. (At a singular fit the map is not invertible: a λ
        # with a zero column has no unique rotation; the pseudo-inverse's then. The df do
        # not use B.)
        B = np.linalg.pinv(self._A)
        return B @ self.working_vcov_varpar @ B.T

    @functools.cached_property
    def jacobian(self) -> list:
        """∂Var(β̂)/∂(θ, σ), one p × p matrix per parameter."""
        p = self.vcov_beta.shape[0]
        J = np.column_stack([j.ravel() for j in self.working_jacobian]) @ self._A
        return [J[:, i].reshape(p, p) for i in range(J.shape[1])]

    @functools.cached_property
    def hessian(self) -> np.ndarray:
        """The deviance's Hessian in (θ, σ)."""
        return self._A.T @ self.working_hessian @ self._A


def satterthwaite_setup(res, progress: bool | None = None, verbose: bool = False) -> Satterthwaite:
    """Compute lmerTest's Satterthwaite ingredients for a fitted result (two evaluations per θ entry).

    lmerTest differentiates its deviance in varpar = (θ, σ) and Var(β̂) numerically
    (numDeriv). Here the deviance's gradient in θ is exact (the core's log-determinant
    and r² parts: ``dlogdet + dpwrss / σ²``) and its σ derivatives are closed forms,
    so the Hessian needs central differences of the gradient along θ only, from the
    same evaluations as the differences of Var(β̂) = σ² (X'V⁻¹X)⁻¹: two per θ entry
    (DIFFERENCE_STEPS) instead of numDeriv's O(dim θ²), and more accurate. Everything comes from the model's
    :meth:`~lmm.model.LinearMixedModel.deviance_terms` (the model's one core, with its
    shift), so the result does not depend on an offset of the response or of a predictor.

    Args:
        res: the fitted result.
        progress: show a progress bar, one step per evaluation (None: on a terminal, when
            the evaluations will take over two seconds).
        verbose: print a line per evaluation.

    Returns:
        Satterthwaite.
    """
    model = res.model
    reml = res.REML
    n, p = model.nobs, model.nfixed
    dof = n - p if reml else n
    sigma = res.sigma

    # In the working θ̃. Correlation parameters of structured terms (bounded on both
    # sides; the working coordinates only scale such terms) are differentiated through a
    # logistic map of their interval, so that the steps stay inside it; the df do not
    # depend on the parameterization. Parameters on such a bound are held there (known).
    if np.array_equal(np.asarray(model.core.theta), res.par):
        # The core is still at the fit's optimum: its own θ̃ there (the round trip through
        # θ may change a last bit), whose factor and gradient the centre's terms reuse.
        theta0 = np.asarray(model.core.working_theta)
    else:
        theta0 = model.working_from_theta(res.par)
    lower, upper = model.theta_lower, model.theta_upper
    corr = np.isfinite(lower) & np.isfinite(upper)
    width = np.where(corr, upper - lower, 1.0)
    z = np.where(corr, (theta0 - lower) / width, 0.5)
    held = corr & ((z <= 1e-8) | (z >= 1 - 1e-8))
    mapped = (corr & ~held)[~held]
    free = ~held

    def to_theta(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """θ̃ at u (the free entries, mapped ones through the logistic) and dθ̃/du."""
        theta = theta0.copy()
        v, dv = u.copy(), np.ones(u.size)
        e = 1 / (1 + np.exp(-u[mapped]))
        v[mapped] = lower[free][mapped] + width[free][mapped] * e
        dv[mapped] = width[free][mapped] * e * (1 - e)
        theta[free] = v
        return theta, dv

    u0 = theta0[free].copy()
    u0[mapped] = np.log(z[free][mapped] / (1 - z[free][mapped]))
    dtheta = to_theta(u0)[1]
    nf = int(free.sum())

    started = time.perf_counter()
    t0 = model.deviance_terms(theta0, reml, working=True)
    # A bar on a terminal when the differences will take long (a large crossed model):
    # one step per evaluation, 2·r per free entry (jacobian_richardson's r steps; its
    # centre is t0, evaluated above).
    r = DIFFERENCE_STEPS
    steps = 2 * r * nf
    if progress is None and (time.perf_counter() - started) * steps <= _SLOW:
        progress = False
    bar = Progress(steps, progress, desc="Satterthwaite df", verbose=verbose)

    def stacked(t, dv: np.ndarray) -> np.ndarray:
        """[∂dev/∂u at σ̂, Var(β̂)/σ² flattened] from the deviance terms t."""
        g = (t.dlogdet + t.dpwrss / sigma**2)[free] * dv
        return np.concatenate([g, t.vcov_unit.ravel()])

    def gradient_and_vcov(u: np.ndarray) -> np.ndarray:
        """:func:`stacked` at u."""
        theta, dv = to_theta(u)
        t = model.deviance_terms(theta, reml, working=True)
        bar.update(1, "evaluations")
        return stacked(t, dv)

    m = theta0.size
    H = np.zeros((m + 1, m + 1))
    J = np.zeros((p * p, m + 1))
    if nf:
        with bar, dense_blas(model.core.tail_size):
            D = jacobian_richardson(gradient_and_vcov, u0, r=r, f0=stacked(t0, dtheta))
        Hu = D[:nf]
        # Back to θ̃ (at the optimum the gradient term of the Hessian's change of variables vanishes).
        H[np.ix_(free, free)] = 0.5 * (Hu + Hu.T) / np.outer(dtheta, dtheta)
        J[:, :m][:, free] = sigma**2 * D[nf:] / dtheta
    else:
        bar.close()
    # σ: dev = logdet + r²/σ² + dof·log(2πσ²), so ∂²/∂σ∂θ̃ = −2 ∂r²/∂θ̃ / σ³ and
    # ∂²/∂σ² = 6 r²/σ⁴ − 2 dof/σ²; Var(β̂) = σ² (X'V⁻¹X)⁻¹ gives its σ column. A known σ
    # is not a parameter: its row, column and Jacobian stay 0 (held, as a bound ρ).
    known = model.sigma is not None
    if not known:
        H[:m, m] = H[m, :m] = np.where(free, -2 * t0.dpwrss / sigma**3, 0.0)
        H[m, m] = 6 * t0.pwrss / sigma**4 - 2 * dof / sigma**2
        J[:, m] = 2 * sigma * t0.vcov_unit.ravel()
    xfree = np.append(free, not known)
    evals, evecs = np.linalg.eigh(H[np.ix_(xfree, xfree)])
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
    hinv = np.zeros((m + 1, m + 1))
    hinv[np.ix_(xfree, xfree)] = (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    return Satterthwaite(vcov_beta=np.array(res.solution.vcov), working_vcov_varpar=2 * hinv,
                         working_jacobian=[J[:, i].reshape(p, p) for i in range(m + 1)], working_hessian=H,
                         notes=notes, to_working=model.working_from_theta, theta=np.array(res.par))


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
