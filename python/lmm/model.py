"""The linear mixed model: formula + data → compiled core → fit.

A model owns one compiled core, built with the shift (X centred, y's least-squares fit
removed, row by row as the crossproducts are formed), and evaluates it through a small
typed interface: :meth:`LinearMixedModel.objective`, :meth:`~LinearMixedModel.objective_and_gradient`
and :meth:`~LinearMixedModel.solution`. Results and inference use only that interface.
Where inference needs a different model (new responses for the bootstrap, X without a
column for the profile of a fixed effect), :func:`build_core` makes its core, always
with the shift.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import _core as core
from ._core import FitResult
from ._threads import THREADED_ORDER, blas_limit, dense_blas, forming
from ._util import row_blocks, warn_user
from .covariance import theta_names
from .design import Design, ReTerm, build_design
from .design.fixed import r_factor
from .formula import parse_formula

__all__ = ["CoreModel", "DevianceTerms", "LinearMixedModel", "Solution", "build_core", "lmer", "shift_for"]

DEFAULT_MAX_DENSE_BYTES = 4.0 * 2**30
# A fitted residual SD below this fraction of the response's SD is zero to working
# precision (the criterion then falls without bound as θ grows).
EXACT_FIT_SIGMA = 1e-6
# A column of a structured random-effects term (which the core cannot centre
# exactly) whose |mean| exceeds this many SDs draws a warning: the crossproducts'
# condition grows with its square (cs(Days | Subject) with Days + 100, 35 SDs,
# already stops short of its optimum).
UNCENTRED_OFFSET = 10.0

# The dense block of crossed terms is factored and inverted by the LAPACK SciPy
# carries (OpenBLAS in SciPy's wheels: faster than Eigen's kernels); large blocks
# split into its BLAS-3 products on the core's threads (_threads.dense_blas).
core.set_dense_backend("lapack")


@dataclass(frozen=True)
class Solution:
    """The model at one θ: criterion, estimates and random effects (arrays are read-only).

    Attributes:
        theta: θ (lme4's order).
        reml: whether ``objective`` is the REML criterion (else the ML deviance).
        objective: the criterion at ``theta``.
        sigma: σ̂ given θ.
        beta: β̂ given θ, for the user's X (p,).
        vcov: Var(β̂) for the user's X (p × p).
        u: spherical random effects û (q,), model term order.
        b: per term, the conditional modes b̂ = Λû as (levels × p).
        lambdas: per term, λ (p × p lower triangular).
        pwrss: penalized residual sum of squares r².
        ldL2: log|L_Z|².
        ldRX2: log|L_X|².
        gradient: exact gradient of ``objective`` in θ, when asked for (else None).
    """

    theta: np.ndarray
    reml: bool
    objective: float
    sigma: float
    beta: np.ndarray
    vcov: np.ndarray
    u: np.ndarray
    b: list[np.ndarray]
    lambdas: list[np.ndarray]
    pwrss: float
    ldL2: float
    ldRX2: float
    gradient: np.ndarray | None = None

    @property
    def b_vector(self) -> np.ndarray:
        """b̂ as one vector (q,) in the core's layout (terms in model order, levels' p entries consecutive)."""
        return np.concatenate([b.ravel() for b in self.b]) if self.b else np.zeros(0)


def _readonly(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class DevianceTerms:
    """The deviance at θ and a given σ (not profiled) and its exact gradient in θ, in parts.

    With dof = n − p (REML) or n, lmerTest's deviance in (θ, σ) is
    ``logdet + pwrss / σ² + dof·log(2πσ²)`` (logdet = log|L_Z|², plus log|L_X|² for
    REML), so its gradient in θ is ``dlogdet + dpwrss / σ²`` and Var(β̂) = σ² ``vcov_unit``.

    Attributes:
        objective: the model's criterion at θ (profiled over σ unless σ is known).
        pwrss: r² at θ.
        dlogdet: ∂ logdet / ∂θ (ntheta,).
        dpwrss: ∂ r² / ∂θ (ntheta,).
        vcov_unit: Var(β̂) / σ² for the user's X (p × p), i.e. (X'V⁻¹X)⁻¹ with V relative to σ².
    """

    objective: float
    pwrss: float
    dlogdet: np.ndarray
    dpwrss: np.ndarray
    vcov_unit: np.ndarray


def _centred_r_factor(X: np.ndarray, x_center: np.ndarray) -> np.ndarray:
    """R (p × p) of X_c = X − x_center = QR, one row block at a time (TSQR)."""
    p = X.shape[1]
    R = r_factor((X[rows] - x_center for rows in row_blocks(X.shape[0], p)), p)
    if R.shape[0] < p:
        R = np.vstack([R, np.zeros((p - R.shape[0], p))])
    return R


def _centred_times(X: np.ndarray, x_center: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X_c v (n,)."""
    return X @ v - float(x_center @ v)


def _centred_t_times(X: np.ndarray, x_center: np.ndarray, r: np.ndarray) -> np.ndarray:
    """X_c' r (p,)."""
    return X.T @ r - x_center * float(np.sum(r))


def _least_squares(R: np.ndarray, X: np.ndarray, x_center: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Coefficients of r on X_c by the corrected semi-normal equations (R'R δ = X_c'r, refined once)."""
    delta = np.zeros(X.shape[1])
    for _ in range(2):
        g = _centred_t_times(X, x_center, r - _centred_times(X, x_center, delta))
        delta = delta + np.linalg.solve(R, np.linalg.solve(R.T, g))
    return delta


def shift_for(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shift of a design: (x_center, y_coef) as :func:`lmm.design.build_design` defines them.

    x_center holds the column means of X except the intercept's when X's first column
    is all ones (else zeros); y_coef the least-squares coefficients of y on
    X_c = X − x_center. The core works on X_c and y − X_c y_coef.

    Args:
        X: (n, p) fixed-effects model matrix of full column rank.
        y: (n,) response.

    Returns:
        (x_center, y_coef), both (p,).

    Example:
        >>> import numpy as np
        >>> X = np.column_stack([np.ones(4), [0.0, 1.0, 2.0, 3.0]])
        >>> [v.round(6).tolist() for v in shift_for(X, 1e6 + 2 * X[:, 1])]
        [[0.0, 1.5], [1000003.0, 2.0]]
    """
    n, p = X.shape
    x_center = np.zeros(p)
    if p > 1 and n and np.min(X[:, 0]) == 1.0 == np.max(X[:, 0]):
        x_center[1:] = X[:, 1:].mean(axis=0)
    if p == 0:
        return x_center, np.zeros(0)
    R = _centred_r_factor(X, x_center)
    return x_center, _least_squares(R, X, x_center, np.asarray(y, dtype=np.float64))


def _theta_or_par(theta, par):
    """The one of θ and lme4 2.x's par that was given (they are one vector here)."""
    if (theta is None) == (par is None):
        raise TypeError("give the covariance parameters as theta or as par (one of them)")
    return theta if par is None else par


def _core_terms(terms: Sequence[ReTerm]) -> list[tuple]:
    return [(t.codes, t.z, t.nlevels, t.structure) for t in terms]


class CoreModel:
    """One compiled core with its shift: evaluation at any θ for one design and response.

    Made by :func:`build_core`. It is what :func:`lmm.optimize.optimize_theta` needs
    (``objective``, ``objective_and_gradient``, ``theta_lower``, ``theta_start``,
    ``theta_scale``, ``_theta``, ``REML``) and gives a :class:`Solution` at any θ.
    """

    def __init__(self, terms: Sequence[ReTerm], X: np.ndarray, y: np.ndarray, *, x_center: np.ndarray,
                 y_coef: np.ndarray, max_dense_bytes: float, theta_scale: np.ndarray | None, reml: bool,
                 weights: np.ndarray | None = None, sigma: float | None = None) -> None:
        self._design_terms = list(terms)
        self._tuples = _core_terms(terms)
        self._X = X
        self._x_center = np.asarray(x_center, dtype=np.float64)
        self._y_coef = np.asarray(y_coef, dtype=np.float64)
        #: Prior weights (n,) or None.
        self.weights = weights
        #: A known residual SD, or None (estimated).
        self.sigma = sigma
        self._y = y  # the response as the core was given it (set_response replaces it)
        self._max_dense_bytes = float(max_dense_bytes)
        #: The compiled core (``lmm._core.Model``).
        self.core: core.Model
        self._compile()
        #: Terms in model order (the core's).
        self.terms: list[ReTerm] = [self._design_terms[k] for k in self.core.order]
        self.REML = bool(reml)
        self.theta_scale = np.ones(self.ntheta) if theta_scale is None else np.asarray(theta_scale, np.float64)
        # y's least-squares coefficients beyond y_coef (a response set after construction)
        self._delta = np.zeros(X.shape[1])
        self._R: np.ndarray | None = None

    def _without_rows(self, terms: Sequence[ReTerm], *, p: int, x_center: np.ndarray, y_coef: np.ndarray,
                      sigma: float | None) -> None:
        """The state of a core on crossproducts alone (no rows kept): subclasses' start."""
        self._design_terms = list(terms)
        self._tuples = []
        self._X = np.zeros((0, p), order="F")  # (its shape only: the number of fixed effects)
        self._x_center = np.asarray(x_center, dtype=np.float64)
        self._y_coef = np.asarray(y_coef, dtype=np.float64)
        self.weights = None
        self.sigma = sigma
        self._y = np.zeros(0)
        self._delta = np.zeros(p)
        self._R = None

    # Pickled without the compiled core, which is formed again from the arrays kept here
    # (one pass over the rows): results travel to worker processes and caches.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["core"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._compile()

    def _compile(self) -> None:
        """The compiled core from the arrays kept here (its crossproducts on the user's threads)."""
        with forming(len(self._y)):
            self.core = core.Model(self._tuples, self._X, self._y, self._max_dense_bytes, x_center=self._x_center,
                                   y_coef=self._y_coef, weights=self.weights, sigma=self.sigma or 0.0)

    @property
    def ntheta(self) -> int:
        return int(self.core.ntheta)

    @property
    def theta_lower(self) -> np.ndarray:
        return np.asarray(self.core.theta_lower)

    @property
    def theta_upper(self) -> np.ndarray:
        return np.asarray(self.core.theta_upper)

    @property
    def theta_start(self) -> np.ndarray:
        return np.asarray(self.core.theta_start)

    # X_c = X S with S = I − e₀ x_center' (unit upper triangular: the intercept is
    # column 0), y_c = y − X_c y_coef: β = S (β_c + y_coef) and Var(β) = S Var(β_c) S'.
    # (Made once: every deviance_terms of a summary's differences converts Var(β̂).)
    @functools.cached_property
    def _S(self) -> np.ndarray:
        p = self._X.shape[1]
        S = np.eye(p)
        if p and np.any(self._x_center):
            S[0, :] -= self._x_center
        S.setflags(write=False)
        return S

    def beta_from_core(self, beta_core: np.ndarray) -> np.ndarray:
        """β̂ for the user's X from the core's β̂ for the shifted problem (p,)."""
        beta_core = np.asarray(beta_core, dtype=np.float64)
        return self._S @ (beta_core + self._y_coef) if beta_core.size else beta_core.copy()

    def vcov_from_core(self, vcov_core: np.ndarray) -> np.ndarray:
        """Var(β̂) for the user's X from the core's (p × p)."""
        vcov_core = np.asarray(vcov_core, dtype=np.float64)
        S = self._S
        return S @ vcov_core @ S.T if vcov_core.size else vcov_core.copy()

    def set_response(self, y: np.ndarray) -> None:
        """Replace the response (same terms and X), keeping the protection of the shift.

        The core re-applies its constructor's shift; the least-squares fit of the new
        response beyond it (δ) is removed here first, so the core again works on a
        response without a component in the column space of X, whatever the new
        response's offset. θ must be set again (any evaluation does).

        Args:
            y: (n,) the new response.
        """
        y = np.asarray(y, dtype=np.float64)
        X, xc = self._X, self._x_center
        if X.shape[1]:
            if self._R is None:
                self._R = _centred_r_factor(X, xc)
            delta = _least_squares(self._R, X, xc, y - _centred_times(X, xc, self._y_coef))
            y = y - _centred_times(X, xc, delta)
        else:
            delta = np.zeros(0)
        self._y = np.ascontiguousarray(y)
        self.core.set_response(self._tuples, X, self._y)
        self._delta = delta

    def _theta(self, theta, bounds: bool = True) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size != self.ntheta:
            raise ValueError(f"theta has {theta.size} entries; this model has {self.ntheta}: "
                             f"{theta_names(self.terms)}")
        if bounds and np.any(theta < self.theta_lower):
            raise ValueError("theta violates its lower bounds (diagonal entries of λ must be >= 0)")
        if bounds and np.any(theta > self.theta_upper):
            raise ValueError(f"theta violates its upper bounds {self.theta_upper}")
        return theta

    def _reml(self, reml: bool | None) -> bool:
        return self.REML if reml is None else bool(reml)

    def _threads(self) -> contextlib.AbstractContextManager:
        """The fits' thread policy (dense_blas) around one evaluation whose dense block is large
        enough to use threads (smaller ones: nothing, which costs nothing)."""
        tail = self.core.tail_size
        return dense_blas(tail) if tail >= THREADED_ORDER else contextlib.nullcontext()

    def objective(self, theta, reml: bool | None = None) -> float:
        """The REML criterion or ML deviance at ``theta`` (None: ``REML``)."""
        with self._threads():
            return float(self.core.evaluate(self._theta(theta), self._reml(reml)))

    def objective_and_gradient(self, theta, reml: bool | None = None) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient at ``theta`` from one factorization."""
        with self._threads():
            value, grad = self.core.evaluate_with_gradient(self._theta(theta), self._reml(reml))
        return float(value), np.asarray(grad)

    def deviance_terms(self, theta, reml: bool | None = None, *, working: bool = False) -> DevianceTerms:
        """The :class:`DevianceTerms` at ``theta`` (see :meth:`LinearMixedModel.deviance_terms`);
        with ``working``, at the working θ̃ ``theta`` and with gradients in θ̃."""
        reml = self._reml(reml)
        c = self.core
        with self._threads():
            if working:
                value = c.evaluate_working(np.asarray(theta, dtype=np.float64).reshape(-1), reml)
            else:
                value = c.evaluate(self._theta(theta, bounds=False), reml)
            vcov_unit = self.vcov_from_core(np.asarray(c.vcov_beta(reml))) / c.sigma(reml) ** 2
            dlogdet, dpwrss = c.gradient_parts(reml, working)  # (after vcov_beta: it uses the factor's storage)
        return DevianceTerms(objective=float(value), pwrss=float(c.pwrss), dlogdet=np.asarray(dlogdet),
                             dpwrss=np.asarray(dpwrss), vcov_unit=vcov_unit)

    # The core's working coordinates: θ̃ of each term's centred and scaled columns
    # z̃ = z T (the same model; bounds and the start λ̃ = I are the vectors of θ).
    # Optimizers move θ̃; everything reported is θ.

    @property
    def working_start(self) -> np.ndarray:
        """The θ̃ optimizers start from: lme4's start (λ = I) unless a column's scale or offset is extreme."""
        return np.asarray(self.core.working_start)

    def working_from_theta(self, theta) -> np.ndarray:
        """θ̃ of ``theta`` (ntheta,)."""
        return np.asarray(self.core.to_working(self._theta(theta, bounds=False)))

    def theta_from_working(self, working) -> np.ndarray:
        """θ (lme4's, of the user's columns) of a working ``working`` θ̃ (ntheta,)."""
        return np.asarray(self.core.to_user(np.asarray(working, dtype=np.float64).reshape(-1)))

    def working_objective(self, working, reml: bool | None = None) -> float:
        """The criterion at the working θ̃."""
        with self._threads():
            return float(self.core.evaluate_working(np.asarray(working, dtype=np.float64).reshape(-1),
                                                    self._reml(reml)))

    def working_objective_and_gradient(self, working, reml: bool | None = None) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ̃ at the working θ̃."""
        with self._threads():
            value, grad = self.core.evaluate_working_with_gradient(
                np.asarray(working, dtype=np.float64).reshape(-1), self._reml(reml))
        return float(value), np.asarray(grad)

    def working_transforms(self) -> list[np.ndarray]:
        """Per term (model order), T (p × p) of its working columns z̃ = z T."""
        return [np.asarray(self.core.transform(k)["matrix"]) for k in range(len(self.terms))]

    def fixed_basis(self) -> np.ndarray:
        """S (p × p) of the shift's fixed effects: X_c = X S, β = S β_c (unit upper triangular)."""
        return self._S

    def is_singular(self, theta) -> bool:
        """lme4's isSingular at ``theta``, judged in the working coordinates: a diagonal entry of λ̃
        below the tolerance (a large column offset makes λ's last entry small at any covariance)."""
        working = self.working_from_theta(theta)
        return bool(np.any(working[self.theta_lower == 0] < core.FIT_DEFAULTS["singular_tolerance"]))

    def solution(self, theta, reml: bool | None = None, *, gradient: bool = False,
                 working: bool = False) -> Solution:
        """The :class:`Solution` at ``theta`` (see :meth:`LinearMixedModel.solution`).

        θ may lie below its bounds (a negative diagonal entry of λ gives the covariance of
        its absolute value): numerical derivatives at a boundary fit step across it.
        With ``working``, ``theta`` is the core's working θ̃ (numerical derivatives are
        well conditioned there); the solution reports θ all the same.
        """
        theta = self._theta(theta, bounds=False)
        reml = self._reml(reml)
        c = self.core
        grad = None
        with dense_blas(c.tail_size):
            if working:
                value = c.evaluate_working(theta, reml)
                theta = np.asarray(c.theta)
                if gradient:
                    grad = _readonly(c.gradient(reml))
            elif gradient:
                value, grad = c.evaluate_with_gradient(theta, reml)
                grad = _readonly(grad)
            else:
                value = c.evaluate(theta, reml)
            u, beta_c = c.solve()
            vcov_c = c.vcov_beta(reml)
        return self._solution(theta, reml, float(value), np.asarray(u), np.asarray(beta_c), np.asarray(vcov_c), grad)

    def solution_from_fit(self, r: FitResult, reml: bool) -> Solution:
        """The :class:`Solution` at the optimum of the core's fit ``r`` (criterion ``reml``),
        from its estimates and the core's state after it: the core is at θ̂ and holds its
        criterion's parts; no factorization again."""
        return self._solution(np.asarray(r.theta), reml, float(r.criterion), np.asarray(r.u), np.asarray(r.beta),
                              np.asarray(r.vcov_beta), _readonly(r.gradient))

    def _solution(self, theta: np.ndarray, reml: bool, value: float, u: np.ndarray, beta_c: np.ndarray,
                  vcov_c: np.ndarray, grad: np.ndarray | None) -> Solution:
        c = self.core
        b = np.asarray(c.b(u))
        blocks, off = [], 0
        for t in self.terms:
            size = t.nlevels * t.p
            blocks.append(_readonly(b[off:off + size].reshape(t.nlevels, t.p)))
            off += size
        beta = self.beta_from_core(beta_c + self._delta)
        return Solution(theta=_readonly(theta), reml=reml, objective=value, sigma=float(c.sigma(reml)),
                        beta=_readonly(beta), vcov=_readonly(self.vcov_from_core(vcov_c)),
                        u=_readonly(u), b=blocks,
                        lambdas=[_readonly(c.lambda_(k)) for k in range(len(self.terms))],
                        pwrss=float(c.pwrss), ldL2=float(c.ldL2), ldRX2=float(c.ldRX2), gradient=grad)


def build_core(terms: Sequence[ReTerm], X: np.ndarray, y: np.ndarray, *, x_center: np.ndarray | None = None,
               y_coef: np.ndarray | None = None, max_dense_bytes: float = DEFAULT_MAX_DENSE_BYTES,
               theta_scale: np.ndarray | None = None, reml: bool = True,
               weights: np.ndarray | None = None, sigma: float | None = None) -> CoreModel:
    """The one factory of cores: a compiled core of (terms, X, y), always with the shift.

    Args:
        terms: random-effects terms in design order (the core orders them).
        X: (n, p) fixed-effects matrix, Fortran order.
        y: (n,) response.
        x_center, y_coef: the shift (default: :func:`shift_for` of X and y).
        max_dense_bytes: the largest dense block of L allowed.
        theta_scale: the optimizer's θ scale (default ones).
        reml: the default criterion of the evaluations.
        weights: prior weights (n,), or None.
        sigma: a known residual SD, or None (estimated).

    Returns:
        CoreModel.

    Raises:
        ValueError: the core cannot be set up (e.g. the dense block would exceed ``max_dense_bytes``).
    """
    X = np.asfortranarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x_center is None or y_coef is None:
        x_center, y_coef = shift_for(X, y)
    return CoreModel(terms, X, y, x_center=x_center, y_coef=y_coef, max_dense_bytes=max_dense_bytes,
                     theta_scale=theta_scale, reml=reml, weights=weights, sigma=sigma)


class LinearMixedModel:
    """A linear mixed model ``y ~ fixed + (expr | group) + ...`` as lme4's ``lmer`` defines it.

    Construction parses the formula, builds the design (dropping rows with
    missing values), forms the crossproducts in one pass and analyses the
    blocked Cholesky factor. Nothing afterwards depends on the number of rows
    except fitted values and residuals.

    Args:
        formula: an lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        data: a pandas DataFrame (or anything ``pandas.DataFrame`` accepts); a Dask data
            frame or the path of parquet data makes the model of their partitions
            (:meth:`from_chunks`, a :class:`lmm.chunks.ChunkedLinearMixedModel`).
        REML: fit by REML (default, as lme4) or maximum likelihood.
        missing: ``"drop"`` rows with missing values in used columns (with a
            warning) or ``"raise"``.
        max_dense_bytes: the largest dense block of L allowed (crossed factors).
        method: ``"auto"`` (default): the exact blocked Cholesky, or the matrix-free method
            (:mod:`lmm.matrix_free`) when its dense block would exceed ``max_dense_bytes`` and
            the model is two crossed terms of one column each; ``"exact"``; ``"matrix-free"``.
            The method taken is the attribute ``method`` (``"exact"`` or ``"matrix-free"``).
        weights: prior weights, a column name or one value per row (residual variance σ²/w_i).
        offset: a known part of the linear predictor, a column name or one value per row
            (summed with the formula's ``offset()`` terms).
        contrasts: lme4's ``contrasts``: factor column → coding (``"contr.sum"``, ...).
        double_bar: ``"split"`` (lme4's ``(x || g)``) or ``"diag"`` (``diag(x | g)``).
        sigma: a known residual SD (MixedModels.jl's ``σ=``; with ``weights`` 1/v_i and
            ``sigma=1`` the residual variances are the known v_i of a meta-analysis), or
            None: estimated. A known σ is not a parameter (``npar``, AIC, BIC,
            Satterthwaite's varpar leave it out), and one random effect per observation
            is then identifiable.

    Example:
        >>> import lmm
        >>> m = lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> round(m.objective([1.0, 0.0, 1.0]), 4)
        1773.6803
    """

    #: The method the model is fitted by (set at construction; see the ``method`` argument).
    method = "exact"

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        REML: bool = True,
        *,
        missing: str = "drop",
        max_dense_bytes: float = DEFAULT_MAX_DENSE_BYTES,
        weights=None,
        offset=None,
        contrasts=None,
        double_bar: str = "split",
        sigma: float | None = None,
        method: str = "auto",
    ) -> None:
        from .chunks import is_partitioned, partitioned_model
        from .matrix_free import check_method

        check_method(method)
        if is_partitioned(data):
            # The model of the partitions (from_chunks): this object becomes it.
            model = partitioned_model(formula, data, REML, missing=missing, max_dense_bytes=max_dense_bytes,
                                      weights=weights, offset=offset, contrasts=contrasts, double_bar=double_bar,
                                      sigma=sigma, method=method)
            self.__class__ = type(model)
            self.__dict__.update(model.__dict__)
            return
        self.formula = formula
        self.REML = bool(REML)
        number = isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool)
        if sigma is not None and not (number and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number (a known residual SD) or None, not {sigma!r}")
        #: A known residual SD, or None (estimated).
        self.sigma = None if sigma is None else float(sigma)
        self.parsed = parse_formula(formula, double_bar=double_bar)
        # The design's products with BLAS (QR, norms) are of a few columns: one thread
        # (waking OpenBLAS's threads for them took 13 ms of sim_long's 0.1 s call).
        with blas_limit(1):
            self.design: Design = build_design(self.parsed, data, missing=missing, weights=weights, offset=offset,
                                               contrasts=contrasts, sigma_known=self.sigma is not None)
        #: Whether the offset argument was given (new data for predict() then need its values).
        self.offset_argument = offset is not None
        d = self.design
        if not isinstance(REML, (bool, np.bool_)):
            raise TypeError(f"REML must be True or False, not {REML!r}")
        if not max_dense_bytes > 0:
            raise ValueError(f"max_dense_bytes must be a positive number of bytes, not {max_dense_bytes!r}")
        self.max_dense_bytes = float(max_dense_bytes)
        self.method = "exact"
        too_large = None
        try:
            # The core works on X centred and y with its least-squares fit on X removed
            # (formed row by row as it reads the data): the same model, β mapping back
            # through the design, without the cancellation that large offsets cause in
            # crossproducts.
            if method != "matrix-free":
                self._shifted = build_core(d.terms, d.X, d.y_fit, x_center=d.x_center, y_coef=d.y_coef,
                                           max_dense_bytes=self.max_dense_bytes, reml=self.REML, weights=d.weights,
                                           sigma=self.sigma)
        except core.DenseLimitError as err:
            if method == "exact":
                raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
            too_large = str(err)
        except ValueError as err:
            raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
        if method == "matrix-free" or too_large is not None:
            self.method = "matrix-free"
            self._shifted = self._matrix_free_core(formula, too_large)
        self._core = self._shifted.core
        #: Random-effects terms in model order (decreasing number of levels, as lme4).
        self.terms: list[ReTerm] = self._shifted.terms
        if self._core is not None:
            warn_uncentred(self._core, self.terms)

    def _matrix_free_core(self, formula: str, too_large: str | None = None):
        """The :class:`~lmm.matrix_free.MatrixFreeCore` of this model's design (crossproducts in one
        pass; see :func:`lmm.matrix_free.matrix_free_core` for ``too_large`` and the errors)."""
        from .matrix_free import matrix_free_core

        d = self.design
        order = core.term_order([t.nlevels for t in d.terms])
        terms = [d.terms[k] for k in order]
        X = np.asfortranarray(d.X, dtype=np.float64)

        def A_of() -> core.Crossprod:
            return core.chunk_crossprod(_core_terms(terms), X, np.asarray(d.y_fit, dtype=np.float64), d.x_center,
                                        d.y_coef, d.weights, [])

        return matrix_free_core(A_of, terms, p=X.shape[1], x_center=d.x_center, y_coef=d.y_coef, reml=self.REML,
                                sigma=self.sigma, formula=formula, too_large=too_large)

    @classmethod
    def from_chunks(cls, formula: str, chunks, *, levels: dict | None = None, REML: bool = True,
                    weights: str | None = None, offset: str | None = None, contrasts=None,
                    sigma: float | None = None, missing: str = "drop", double_bar: str = "split",
                    max_dense_bytes: float = DEFAULT_MAX_DENSE_BYTES, method: str = "auto") -> "LinearMixedModel":
        """The model of the rows of several data frames, without holding them together.

        A is a sum over rows: the chunks are read one at a time, twice (the levels, the
        shift and the terms' column statistics; then the crossproducts, formed in the core
        per chunk and summed; three times when X or a term's columns hold factors, whose
        levels come first), and the model equals the model of their concatenation
        (``pd.concat(chunks)``) to rounding. A Dask data frame's partitions are the chunks
        of the same passes, each a map over the partitions where they are (on the workers
        of the active ``dask.distributed`` client) and a tree of merges; only the merged
        parts come back. See :mod:`lmm.chunks`.

        Args:
            formula: an lme4 formula.
            chunks: a list of data frames, a function returning a fresh iterator over
                them (e.g. ``lambda: pd.read_csv(path, chunksize=10**6)``), or a Dask data
                frame; an iterator, which can be read only once, is refused.
            levels: column → its levels, for grouping or factor columns whose levels are
                known (their distinct values are then not collected; a chunk with another
                value raises ValueError).
            REML, sigma, missing, double_bar, max_dense_bytes, method: as for :class:`LinearMixedModel`.
            weights, offset: column names (one value per row cannot follow the chunks).
            contrasts: lme4's ``contrasts``, as for :class:`LinearMixedModel`.

        Returns:
            A :class:`lmm.chunks.ChunkedLinearMixedModel`: evaluation, fit, results and
            inference that need only the crossproducts work as for the model of all rows;
            fitted values and residuals of a Dask data frame's rows are Dask series
            (lazy); what needs the rows otherwise (refits with other responses, the
            bootstrap) raises NotImplementedError naming the alternative.

        ``scale()``, ``poly()``, ``ns()`` and ``bs()`` learn their values over all chunks first,
        in rounds of small statistics (:mod:`lmm.design.learned`; ``ns()``'s knots exactly,
        in at most four passes).

        Warns:
            UserWarning: as the in-memory model: rows dropped, aliased fixed-effects columns
                dropped, predictors on very different scales.

        Example:
            >>> import lmm
            >>> d = lmm.datasets.load("sleepstudy")
            >>> m = lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (Days | Subject)", [d[:90], d[90:]])
            >>> round(m.fit().objective, 3)
            1743.628
        """
        from .chunks import from_chunks

        return from_chunks(formula, chunks, levels=levels, REML=REML, weights=weights, offset=offset,
                           contrasts=contrasts, sigma=sigma, missing=missing, double_bar=double_bar,
                           max_dense_bytes=max_dense_bytes, method=method)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_core"]  # the CoreModel's, pickled with it
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._core = self._shifted.core

    # --- sizes and parameters ---------------------------------------------------------

    @property
    def nobs(self) -> int:
        return len(self.design.y)

    @property
    def nfixed(self) -> int:
        return self.design.X.shape[1]

    @property
    def ntheta(self) -> int:
        return self._shifted.ntheta

    @property
    def core(self) -> core.Model:
        """The compiled model (crossproducts and factor, built with the shift)."""
        if self._core is None:
            raise NotImplementedError("a matrix-free model has no compiled exact core (its crossproducts are "
                                      "model._shifted.A)")
        return self._core

    @property
    def theta_lower(self) -> np.ndarray:
        """Lower bounds of θ (the core's parameterizations), 0 for diagonal entries of λ."""
        return self._shifted.theta_lower

    @property
    def theta_upper(self) -> np.ndarray:
        """Upper bounds of θ (+inf where unbounded)."""
        return self._shifted.theta_upper

    @property
    def theta_start(self) -> np.ndarray:
        """lme4's starting θ (λ = I)."""
        return self._shifted.theta_start

    @property
    def theta_scale(self) -> np.ndarray:
        """The optimizer's scale of each working θ̃ entry (θ̃ = scale · φ), all ones.

        The optimizer moves the core's working θ̃ (see :meth:`CoreModel.working_from_theta`):
        λ̃ of each term's columns centred against its intercept (``us`` terms) and scaled
        by powers of two to unit root mean square, so φ = θ̃ is of order one whatever the
        units or the offset of a column.
        """
        return self._shifted.theta_scale

    @property
    def theta_names(self) -> list[str]:
        """Names of θ, lme4's (``Subject.(Intercept)``, ``Subject.Days.(Intercept)``) for us and
        diag terms, lme4 2.x's par names (``Subject.Days``, ``Subject.rho``) for structured ones."""
        return theta_names(self.terms)

    # --- evaluation ----------------------------------------------------------------------

    def _theta(self, theta) -> np.ndarray:
        return self._shifted._theta(theta)

    def objective(self, theta=None, reml: bool | None = None, *, par=None) -> float:
        """Profiled REML criterion or ML deviance at ``theta`` (or ``par``).

        Args:
            theta: the covariance parameters in the order of ``theta_names``: lme4's θ
                for us and diag terms, lme4 2.x's ``par`` (relative SDs, then correlation
                parameters) for structured terms.
            reml: the criterion (None: the model's, ``REML``).
            par: the same vector under lme4 2.x's name (give one of ``theta``, ``par``).

        Returns:
            The criterion lme4's ``devfun`` returns at the same parameters (lme4 2.x's
            devfun takes ``par``).
        """
        return self._shifted.objective(_theta_or_par(theta, par), self.REML if reml is None else reml)

    def gradient(self, theta=None, reml: bool | None = None, *, par=None) -> np.ndarray:
        """Exact gradient of :meth:`objective` with respect to θ (``par``).

        Args:
            theta: the covariance parameters (see :meth:`objective`).
            reml: the criterion (None: the model's).
            par: the same vector under lme4 2.x's name.

        Returns:
            Array of length ``ntheta``.
        """
        return self.objective_and_gradient(theta, reml, par=par)[1]

    def objective_and_gradient(self, theta=None, reml: bool | None = None, *,
                               par=None) -> tuple[float, np.ndarray]:
        """The objective and its exact gradient at ``theta`` (``par``) from one factorization.

        Args:
            theta: the covariance parameters (see :meth:`objective`).
            reml: the criterion (None: the model's).
            par: the same vector under lme4 2.x's name.
        """
        return self._shifted.objective_and_gradient(_theta_or_par(theta, par), self.REML if reml is None else reml)

    @property
    def working_start(self) -> np.ndarray:
        """The working θ̃ optimizers start from (see :attr:`CoreModel.working_start`)."""
        return self._shifted.working_start

    def working_from_theta(self, theta) -> np.ndarray:
        """The core's working θ̃ of ``theta`` (see :meth:`CoreModel.working_from_theta`)."""
        return self._shifted.working_from_theta(theta)

    def theta_from_working(self, working) -> np.ndarray:
        """θ of a working θ̃ (see :meth:`CoreModel.theta_from_working`)."""
        return self._shifted.theta_from_working(working)

    def working_objective(self, working, reml: bool | None = None) -> float:
        """The criterion at a working θ̃ (what optimizers move)."""
        return self._shifted.working_objective(working, self.REML if reml is None else reml)

    def working_objective_and_gradient(self, working, reml: bool | None = None) -> tuple[float, np.ndarray]:
        """The criterion and its gradient in θ̃ at a working θ̃."""
        return self._shifted.working_objective_and_gradient(working, self.REML if reml is None else reml)

    def working_transforms(self) -> list[np.ndarray]:
        """Per term (model order), T of its working columns z̃ = z T (see :meth:`CoreModel.working_transforms`)."""
        return self._shifted.working_transforms()

    def fixed_basis(self) -> np.ndarray:
        """S of the shift's fixed effects, X_c = X S (see :meth:`CoreModel.fixed_basis`)."""
        return self._shifted.fixed_basis()

    def is_singular(self, theta) -> bool:
        """lme4's isSingular at ``theta``, judged in the core's working coordinates."""
        return self._shifted.is_singular(theta)

    def solution(self, theta, reml: bool | None = None, *, gradient: bool = False,
                 working: bool = False) -> Solution:
        """Everything the model determines at ``theta``: objective, σ, β̂, Var(β̂), û, b̂, λ.

        β̂ and Var(β̂) are those of the user's X (mapped back from the core's shifted
        problem by :meth:`CoreModel.beta_from_core` and :meth:`CoreModel.vcov_from_core`).
        Evaluating at any θ changes nothing a fitted result depends on: results keep
        their own :class:`Solution`. θ may lie below its bounds (numerical derivatives
        at a boundary fit step across it).

        Args:
            theta: relative covariance parameters in lme4's order.
            reml: the criterion (None: the model's).
            gradient: also compute the exact gradient of the objective.
            working: ``theta`` is the core's working θ̃ (see :meth:`working_from_theta`).

        Returns:
            Solution.

        Example:
            >>> import lmm
            >>> m = lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
            >>> round(m.solution([1.0, 0.0, 1.0]).sigma, 3)  # doctest: +SKIP
        """
        return self._shifted.solution(theta, self.REML if reml is None else reml, gradient=gradient, working=working)

    def solution_from_fit(self, r: FitResult, reml: bool) -> Solution:
        """The :class:`Solution` at the optimum of the core's fit ``r`` (see :meth:`CoreModel.solution_from_fit`)."""
        return self._shifted.solution_from_fit(r, reml)

    def deviance_terms(self, theta, reml: bool | None = None, *, working: bool = False) -> DevianceTerms:
        """r², the exact gradients of the log-determinants and of r², and Var(β̂)/σ² at ``theta``.

        What derivatives of lmerTest's deviance in (θ, σ) need (:class:`DevianceTerms`):
        its Hessian from differences of an exact gradient, Var(β̂) at any σ. θ may lie
        below its bounds, as for :meth:`solution`.

        Args:
            theta: relative covariance parameters in lme4's order (the core's working θ̃
                with ``working``: gradients in θ̃ then, where differences are well conditioned).
            reml: the criterion (None: the model's).
            working: ``theta`` is θ̃.
        """
        return self._shifted.deviance_terms(theta, self.REML if reml is None else reml, working=working)

    def response_core(self) -> CoreModel:
        """A new core of this design for other responses (one per bootstrap worker thread).

        It carries the model's shift, re-applied (and refreshed for the new response's
        least-squares fit) by :meth:`CoreModel.set_response`; β̂ maps back to the user's X
        as the model's does.
        """
        d = self.design
        return build_core(self.design.terms, d.X, d.y_fit, x_center=d.x_center, y_coef=d.y_coef,
                          max_dense_bytes=self.max_dense_bytes, theta_scale=self.theta_scale, reml=self.REML,
                          weights=d.weights, sigma=self.sigma)

    def with_response(self, y) -> "LinearMixedModel":
        """The same design with another response (lme4's ``refit`` uses it): a new model.

        The crossproducts are formed again in one pass (for very many responses,
        :meth:`fit_many` forms only their response parts); the design's arrays are shared.

        Args:
            y: (nobs,) finite values, one per row the model uses (as ``design.y``); the
                offset, if any, is subtracted as for the model's own response.

        Raises:
            ValueError: a response of the wrong length, with non-finite values, or one
                the fixed effects fit exactly.
        """
        d = self.design
        y = np.array(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != self.nobs:
            raise ValueError(f"the new response has {y.shape[0]} values; the model uses {self.nobs} rows")
        if not np.all(np.isfinite(y)):
            raise ValueError("the new response has missing or non-finite values (lme4's refit needs a value "
                             "for every row the model uses)")
        new = copy.copy(self)
        new.design = dataclasses.replace(d, y=y)
        y_fit = new.design.y_fit
        y_coef = shift_for(d.X, y_fit)[1] if d.X.shape[1] else np.zeros(0)
        if d.X.shape[1] and _sd(y_fit - _centred_times(d.X, d.x_center, y_coef)) <= EXACT_FIT_SIGMA * _sd(y_fit):
            raise ValueError("the new response is fitted exactly by the fixed effects: the residual variance "
                             "would be 0")
        if self.method == "matrix-free":
            new.design = dataclasses.replace(new.design, y_coef=y_coef)
            new._shifted = new._matrix_free_core(self.formula)
        else:
            new._shifted = build_core(d.terms, d.X, y_fit, x_center=d.x_center, y_coef=y_coef,
                                      max_dense_bytes=self.max_dense_bytes, theta_scale=self.theta_scale,
                                      reml=self.REML, weights=d.weights, sigma=self.sigma)
        new._core = new._shifted.core
        return new

    def fit_many(self, Y, *, names=None, reml: bool | None = None, n_jobs: int | None = None,
                 warm_start: bool = False, satterthwaite: bool = False, progress: bool | None = None,
                 output=None, chunk_size: int = 4096, verbose: bool = False, client=None):
        """Fit each column of ``Y`` as this design's response, as separate fits would.

        See :func:`lmm.many.fit_many` (the arguments are its own; ``client``, a
        ``dask.distributed`` Client, fits blocks of responses on its workers).

        Returns:
            :class:`lmm.many.ManyResult` (or the path written, with ``output``).
        """
        from .many import fit_many

        return fit_many(self, Y, names=names, reml=reml, n_jobs=n_jobs, warm_start=warm_start,
                        satterthwaite=satterthwaite, progress=progress, output=output, chunk_size=chunk_size,
                        verbose=verbose, client=client)

    def fit(self, start=None, *, reml: bool | None = None, optimizer: str = "core", tol: float = 1e-8,
            maxiter: int = 10000, verbose: bool = False, probes: int | None = None, seed: int | None = None):
        """Optimize θ and return the fitted result.

        Args:
            start: starting θ (default λ = I).
            reml: the criterion (None: the model's ``REML``); ``reml=False`` on a REML
                model is its ML fit (``LmmResult.refit_ml``).
            optimizer: ``"core"`` (default, the C++ library's L-BFGS-B, exact gradient),
                ``"L-BFGS-B"`` (SciPy's, exact gradient, same stopping rules) or SciPy's
                derivative-free ``"COBYQA"``, ``"Nelder-Mead"`` or ``"Powell"``.
            tol: tolerance on the projected gradient (L-BFGS-B) or the objective.
            maxiter: limit on evaluations.
            verbose: print the objective at each evaluation.
            probes, seed: the matrix-free method's Hutchinson probes per trace (default 8) and
                the seed of its random numbers (default 0; see :mod:`lmm.matrix_free`).

        Returns:
            LmmResult (a :class:`lmm.matrix_free.MatrixFreeResult` for the matrix-free method).
        """
        from .optimize import optimize_theta
        from .results import LmmResult

        reml = self.REML if reml is None else bool(reml)
        if self.method == "matrix-free" or probes is not None or seed is not None:
            return self._fit_matrix_free(start, reml, optimizer, probes, seed)
        opt = optimize_theta(self, start=start, reml=reml, optimizer=optimizer, tol=tol, maxiter=maxiter,
                             verbose=verbose)
        res = LmmResult(self, opt, reml=reml)
        if self.sigma is not None:
            return res
        sd = _sd(self.design.y)
        if res.sigma <= EXACT_FIT_SIGMA * sd:
            warnings.warn(
                f"the residual standard deviation {res.sigma:.3g} is zero to working precision against the "
                f"response's ({sd:.3g}): the random effects fit the response exactly, and θ is not "
                "determined", UserWarning, stacklevel=2)
        return res


    def _fit_matrix_free(self, start, reml: bool, optimizer: str, probes: int | None, seed: int | None):
        """The matrix-free fit (:mod:`lmm.matrix_free`), refusing what only the exact method takes."""
        from .matrix_free import fit_model

        if self.method != "matrix-free":
            raise TypeError("probes and seed are options of the matrix-free method (method='matrix-free'); this "
                            "model is fitted exactly")
        if optimizer != "core":
            raise ValueError(f"optimizer={optimizer!r}: the matrix-free method has its own (Newton's method on the "
                             "score); leave optimizer='core'")
        return fit_model(self, start=start, reml=reml, probes=probes, seed=seed)


def warn_uncentred(model: core.Model, terms: Sequence[ReTerm], means: Sequence[np.ndarray] | None = None) -> None:
    """Warn for each term whose structure keeps the core from centring a column with a large offset.

    The core centres the columns of ``us`` terms against their intercept exactly; a
    structured covariance (``diag``, ``cs``, ``ar1``, ``toep``) would not survive
    that change of basis, so its columns stay as given and a large offset leaves the
    crossproducts and the optimizer ill-conditioned. ``means``: per term (model order)
    its columns' means (default: from the term's rows).
    """
    for k, t in enumerate(terms):
        offset = np.asarray(model.transform(k)["offset"])
        large = np.flatnonzero(offset > UNCENTRED_OFFSET)
        if not large.size:
            continue
        mean = np.mean(t.z, axis=0) if means is None else means[k]
        bad = [f"{t.cnames[j]!r} (mean {float(mean[j]):.6g}, |mean| / SD = {offset[j]:.3g})" for j in large]
        warn_user(
            f"the random-effects term {t.label!r} has the {t.structure} covariance structure, which "
            f"centring its columns would not preserve, and columns with large offsets: {', '.join(bad)}. "
            "Its crossproducts and the optimizer are then badly conditioned and the fit may be "
            "inaccurate: centre those columns in the data (subtract their mean) before fitting")


def _sd(y: np.ndarray, block: int = 1 << 12) -> float:
    """Standard deviation of y, in blocks (no temporary of y's length)."""
    mean = float(y.mean())
    ss = sum(float(np.square(y[i:i + block] - mean).sum()) for i in range(0, len(y), block))
    return math.sqrt(ss / max(len(y), 1))


def lmer(formula: str, data, REML: bool = True, *, weights=None, offset=None, contrasts=None,
         sigma: float | None = None, missing: str = "drop", double_bar: str = "split",
         max_dense_bytes: float = DEFAULT_MAX_DENSE_BYTES, method: str = "auto",
         start=None, optimizer: str = "core", tol: float = 1e-8, maxiter: int = 10000, verbose: bool = False,
         probes: int | None = None, seed: int | None = None, **unsupported):
    """Fit a linear mixed model, as lme4's ``lmer``.

    Args:
        formula: an lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
        data: the data frame (pandas, polars, pyarrow, or a dict of columns); a Dask data
            frame, whose partitions' crossproducts are formed where they are (on the workers
            of the active ``dask.distributed`` client) and summed; or the path of parquet
            data (a ``.parquet`` file or a directory of them), read in chunks with pyarrow
            (see :meth:`LinearMixedModel.from_chunks`).
        REML: REML (default) or maximum likelihood.
        weights: prior weights, a column name or one value per row (residual variance σ²/w).
        offset: a known part of the linear predictor, a column name or one value per row
            (summed with the formula's ``offset()`` terms).
        contrasts: lme4's ``contrasts``: a dict of factor column → coding (``"contr.sum"``, ...).
        sigma: a known residual SD (see :class:`LinearMixedModel`), or None: estimated.
        missing: ``"drop"`` rows with missing values (with a warning, as lme4's ``na.omit``)
            or ``"raise"``.
        double_bar: ``"split"`` (lme4's ``(x || g)``) or ``"diag"`` (``diag(x | g)``).
        max_dense_bytes: the largest dense block of the factor allowed (crossed factors).
        method: ``"auto"`` (default), ``"exact"`` or ``"matrix-free"`` (see :class:`LinearMixedModel`
            and :mod:`lmm.matrix_free`).
        start, optimizer, tol, maxiter, verbose, probes, seed: go to :meth:`LinearMixedModel.fit`.

    Returns:
        LmmResult.

    Raises:
        NotImplementedError: lme4 arguments lmm does not have (``family``: lmm fits Gaussian
            linear mixed models; ``subset``, ``na.action``, ``control``), with what to use.
        TypeError: other unknown arguments.

    Example:
        >>> import lmm
        >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> round(res.objective, 3)
        1743.628
    """
    for name in unsupported:
        if name in _LME4_ONLY:
            raise NotImplementedError(f"lmer(..., {name}=...): {_LME4_ONLY[name]}")
        raise TypeError(f"lmer() got an unexpected keyword argument {name!r}")
    model = LinearMixedModel(formula, data, REML=REML, missing=missing, max_dense_bytes=max_dense_bytes,
                             weights=weights, offset=offset, contrasts=contrasts, double_bar=double_bar, sigma=sigma,
                             method=method)
    if model.method == "exact" and probes is None and seed is None:
        return model.fit(start, optimizer=optimizer, tol=tol, maxiter=maxiter, verbose=verbose)
    return model.fit(start, optimizer=optimizer, probes=probes, seed=seed)


#: lme4 arguments of lmer/glmer that lmm does not take, with what to do instead.
_LME4_ONLY = {
    "family": "lmm fits Gaussian linear mixed models (lme4's lmer); generalized models (glmer) are not "
              "supported",
    "subset": "select the rows first, e.g. lmer(formula, data[data['x'] > 0])",
    "na_action": "use missing='drop' (lme4's na.omit, the default) or missing='raise'",
    "control": "pass optimizer=, tol= and maxiter= (see LinearMixedModel.fit)",
}
