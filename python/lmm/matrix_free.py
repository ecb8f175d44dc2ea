"""Matrix-free REML and ML for two crossed scalar terms: data past the exact method's dense block.

The exact method factors a dense block of the crossed factor with fewer levels (ℓ² doubles:
14 GiB for MovieLens ml-25m's 59,047 movies, hours per factorization on two cores). The
matrix-free method (C++ ``lmm::fit_matrix_free``, see ``cpp/include/lmm/matrix_free.hpp``)
solves with the random effects' system by conjugate gradients on the smaller factor's Schur
complement, estimates the two traces its exact gradient needs by Hutchinson's estimator with
the dominant directions taken out exactly, finds θ by Newton's method on that score, and
estimates log|Λ'Z'ZΛ + I| (for the criterion's value only) by stochastic Lanczos quadrature.
Memory and time are set by the nonzeros of Z_b'Z_a (one pass per product), not by ℓ².

``method="auto"`` (the default of :func:`lmm.lmer`) takes it when the exact method's dense
block would exceed ``max_dense_bytes`` and the model is ``y ~ X + (1 | a) + (1 | b)`` (one
column per term, crossed); ``method="matrix-free"`` takes it for any such model (with at most
64 levels in the smaller factor its traces and log-determinant are exact). Results are
reproducible from ``seed``; θ's and the criterion's Monte Carlo standard errors are reported
(``theta_se``, ``objective_se``). What needs the criterion at other θ (Satterthwaite and
Kenward–Roger df, profiles, the bootstrap, conditional variances) raises NotImplementedError.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from . import _core as core
from ._threads import dense_blas
from .model import CoreModel, Solution, _readonly
from .optimize import OptimizeResult
from .results import LmmResult

__all__ = ["METHODS", "check_method", "matrix_free_core", "MatrixFreeCore", "MatrixFreeResult", "DEFAULT_PROBES"]

#: The fitting methods, ``"auto"`` (exact unless its dense block would exceed
#: ``max_dense_bytes``), ``"exact"`` (the blocked Cholesky) and ``"matrix-free"``.
METHODS = ("auto", "exact", "matrix-free")

#: Hutchinson probes per trace in the Newton iterations (the last score uses four times as many).
DEFAULT_PROBES = 8

_NO_EVALUATION = ("the matrix-free model of {what} has no exact criterion at a given θ (its log-determinant "
                  "is a stochastic estimate): fit it (fit()), or fit the exact model (method='exact') when its "
                  "dense block fits in memory")


def matrix_free_core(A_of, terms: Sequence, *, p: int, x_center: np.ndarray, y_coef: np.ndarray, reml: bool,
                     sigma: float | None, formula: str, too_large: str | None) -> "MatrixFreeCore":
    """The :class:`MatrixFreeCore` of a model, or the error that says why not.

    ``A_of()`` forms the crossproducts (called only when the method can fit the model);
    ``too_large``: the exact method's refusal when it was tried first — then a model the
    matrix-free method does not fit raises ValueError with both reasons, else
    NotImplementedError (``method="matrix-free"`` was asked for)."""
    try:
        if sigma is not None:
            raise NotImplementedError("the matrix-free method estimates sigma (a known sigma is not supported)")
        return MatrixFreeCore(A_of(), terms, p=p, x_center=x_center, y_coef=y_coef, reml=reml)
    except NotImplementedError as err:
        if too_large is not None:
            raise ValueError(f"cannot set up the model {formula!r}: {too_large}; and {err}") from None
        raise NotImplementedError(f"method='matrix-free' for {formula!r}: {err}") from None


def check_method(method) -> str:
    """``method`` if it is one of :data:`METHODS`, else ValueError."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, not {method!r}")
    return method


class MatrixFreeCore(CoreModel):
    """A model on its crossproducts A for the matrix-free method: fits, but no evaluation at a θ.

    Args:
        A: the crossproducts (terms in model order: the factor with more levels first).
        terms: the terms in model order.
        p: the number of fixed effects.
        x_center, y_coef: the shift A was formed with (β maps back through it).
        reml: the default criterion.

    Raises:
        NotImplementedError: the method does not fit this model (says why).
    """

    def __init__(self, A: core.Crossprod, terms: Sequence, *, p: int, x_center: np.ndarray, y_coef: np.ndarray,
                 reml: bool) -> None:
        why = core.matrix_free_unsupported(A)
        if why:
            raise NotImplementedError(why)
        self.A = A
        self._without_rows(terms, p=p, x_center=x_center, y_coef=y_coef, sigma=None)
        self.terms = list(terms)
        self.REML = bool(reml)
        self.theta_scale = np.ones(2)
        self.core = None  # type: ignore[assignment]  # (no exact core: LinearMixedModel.core says so)

    # (Pickled with its crossproducts, as any object: there is no compiled core to rebuild.)
    def __getstate__(self) -> dict:
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def ntheta(self) -> int:
        return 2

    @property
    def theta_lower(self) -> np.ndarray:
        return np.zeros(2)

    @property
    def theta_upper(self) -> np.ndarray:
        return np.full(2, np.inf)

    @property
    def theta_start(self) -> np.ndarray:
        return np.ones(2)

    @property
    def working_start(self) -> np.ndarray:
        """λ = I, the matrix-free fit's default start."""
        return np.ones(2)

    def fit(self, reml: bool, *, start=None, probes: int = DEFAULT_PROBES, seed: int = 0) -> core.MatrixFreeFit:
        """The core's matrix-free fit (``lmm._core.MatrixFreeFit``) by the criterion ``reml``."""
        if not isinstance(probes, (int, np.integer)) or probes < 2:
            raise ValueError(f"probes must be an integer of at least 2, not {probes!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        theta_start = None
        if start is not None:
            theta_start = np.asarray(start, dtype=np.float64).reshape(-1)
            if theta_start.size != 2 or not np.all(theta_start > 0) or not np.all(np.isfinite(theta_start)):
                raise ValueError(f"start of a matrix-free fit must be two positive values, not {start!r}")
        try:
            # (the products with N on the user's BLAS threads, as the exact method's dense kernels)
            with dense_blas(min(t.nlevels for t in self.terms)):
                return core.fit_matrix_free(self.A, reml=bool(reml), probes=int(probes),
                                            final_probes=4 * int(probes), seed=int(seed), theta_start=theta_start)
        except RuntimeError as err:
            raise RuntimeError(f"the matrix-free fit failed: {err}") from None

    def solution_of(self, r: core.MatrixFreeFit, reml: bool) -> Solution:
        """The :class:`~lmm.model.Solution` of a matrix-free fit ``r`` (criterion ``reml``)."""
        theta = np.asarray(r.theta)
        b = np.asarray(r.b)
        blocks, off = [], 0
        for t in self.terms:
            blocks.append(_readonly(b[off:off + t.nlevels].reshape(t.nlevels, 1)))
            off += t.nlevels
        beta = self.beta_from_core(np.asarray(r.beta) + self._delta)
        return Solution(theta=_readonly(theta), reml=reml, objective=float(r.criterion), sigma=float(r.sigma),
                        beta=_readonly(beta), vcov=_readonly(self.vcov_from_core(np.asarray(r.vcov_beta))),
                        u=_readonly(r.u), b=blocks, lambdas=[_readonly([[v]]) for v in theta],
                        pwrss=float(r.pwrss), ldL2=float(r.ldL2), ldRX2=float(r.ldRX2), gradient=None)

    def is_singular(self, theta) -> bool:
        return bool(np.any(np.asarray(theta) < core.FIT_DEFAULTS["singular_tolerance"]))

    def _refuse(self, *args, **kwargs):
        raise NotImplementedError(_NO_EVALUATION.format(what=f"{len(self.terms)} crossed terms"))

    objective = objective_and_gradient = deviance_terms = solution = solution_from_fit = _refuse
    working_objective = working_objective_and_gradient = working_from_theta = theta_from_working = _refuse
    working_transforms = _refuse

    def set_response(self, y: np.ndarray) -> None:
        raise NotImplementedError("the matrix-free model keeps no rows: build a model of the new response")


class MatrixFreeResult(LmmResult):
    """A model fitted by the matrix-free method (see :mod:`lmm.matrix_free`).

    As :class:`~lmm.LmmResult` for θ, β̂, Var(β̂), σ̂, the conditional modes, fitted values,
    residuals, predictions, Wald intervals and the ML refit; in addition:

    Attributes:
        theta_se: Monte Carlo standard errors of θ (0 when the traces were exact).
        objective_se: the Monte Carlo standard error of ``objective`` (its log-determinant
            is estimated; 0 when exact). ``loglik``, AIC and BIC carry it too.
        fit_info: what the method did: evaluations of the score, Newton iterations,
            conjugate-gradient iterations, products with S, seconds per phase, the seed and
            the probes, the last step in log θ.
    """

    def __init__(self, model, r: core.MatrixFreeFit, *, reml: bool, seconds: float, seed: int, probes: int) -> None:
        shifted: MatrixFreeCore = model._shifted
        sol = shifted.solution_of(r, reml)
        opt = OptimizeResult(theta=np.asarray(r.theta), objective=float(r.criterion), optimizer="matrix-free",
                             nfev=int(r.evaluations), ngev=int(r.evaluations), time=seconds, message=r.message,
                             converged=bool(r.converged), gradient=np.full(2, np.nan), solution=sol)
        super().__init__(model, opt, reml)
        self.theta_se = np.asarray(r.theta_se)
        self.objective_se = float(r.criterion_se)
        self.fit_info = {
            "method": "matrix-free", "exact_traces": bool(r.exact_traces), "seed": int(seed), "probes": int(probes),
            "final_probes": 4 * int(probes), "evaluations": int(r.evaluations),
            "newton_iterations": int(r.newton_iterations), "cg_iterations": int(r.cg_iterations),
            "products": int(r.products), "seconds_iterations": float(r.seconds_iterations),
            "seconds_final": float(r.seconds_final), "seconds_logdet": float(r.seconds_logdet),
            "last_step": np.asarray(r.last_step).tolist(), "seconds": seconds,
        }

    @property
    def fit_notes(self) -> list[str]:
        if self.fit_info["exact_traces"]:
            return ["matrix-free fit with exact traces and log-determinant"]
        se = ", ".join(f"{v:.2g}" for v in self.theta_se)
        return [f"matrix-free fit (seed {self.fit_info['seed']}, {self.fit_info['probes']} probes): the criterion is "
                f"estimated, SE {self.objective_se:.2g}; Monte Carlo SEs of theta: {se}"]

    def _unavailable(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{what} of a matrix-free fit: it needs the criterion at other θ, which the "
                                   "matrix-free method only estimates; fit with method='exact' where the dense "
                                   "block fits in memory")

    def satterthwaite(self, *, progress: bool | None = None, verbose: bool = False):
        raise self._unavailable("Satterthwaite degrees of freedom")

    def kenward_roger(self, *, progress: bool | None = None, verbose: bool = False):
        raise self._unavailable("Kenward–Roger degrees of freedom")

    def ranef_condvar(self) -> dict[str, np.ndarray]:
        raise self._unavailable("conditional variances")

    def profile(self, which=None, **kwargs):
        raise self._unavailable("profiles")

    def confint(self, method: str = "wald", level: float = 0.95, parm=None, **kwargs):
        """Wald intervals of the fixed effects (profile and bootstrap intervals are not available)."""
        if str(method).lower() != "wald":
            raise self._unavailable(f"{method!r} intervals")
        return super().confint(method, level, parm, **kwargs)

    def bootstrap(self, *args, **kwargs):
        raise self._unavailable("the parametric bootstrap")

    def coef_table(self, ddf: str | None = None):
        return super().coef_table(ddf)

    def summary(self, ddf: str | None = None) -> str:
        return super().summary(ddf)

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "ML"
        return (f"<MatrixFreeResult {self.formula!r} {kind} objective={self.objective:.4f} "
                f"(SE {self.objective_se:.2g})>")


def fit_model(model, *, start=None, reml: bool, probes: int | None, seed: int | None) -> MatrixFreeResult:
    """Fit a :class:`~lmm.LinearMixedModel` whose core is a :class:`MatrixFreeCore`."""
    probes = DEFAULT_PROBES if probes is None else probes
    seed = 0 if seed is None else seed
    t0 = time.perf_counter()
    r = model._shifted.fit(reml, start=start, probes=probes, seed=seed)
    return MatrixFreeResult(model, r, reml=reml, seconds=time.perf_counter() - t0, seed=seed, probes=probes)
