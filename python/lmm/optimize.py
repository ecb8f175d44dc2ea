"""Optimization of the profiled objective over θ.

``"core"``, the default, is the C++ library's L-BFGS-B (``lmm::fit``, run with the GIL
released, no Python work per evaluation); ``"L-BFGS-B"`` is SciPy's, driven from Python
with the core's exact gradient and the same stopping rules, and SciPy's derivative-free
methods are available through the same objective.
The convergence verdict, the singular tolerance and the restart rule off the
boundary are the core's (``lmm._core.FIT_DEFAULTS``), whichever method runs.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize as sopt

from . import _core as core
from ._threads import dense_blas

if TYPE_CHECKING:
    from .model import Solution

__all__ = ["OptimizeResult", "optimize_theta", "SINGULAR_TOL", "OPTIMIZERS"]

_DEFAULTS = core.FIT_DEFAULTS
#: lme4's isSingular tolerance: a diagonal entry of λ below this is at the boundary.
SINGULAR_TOL: float = _DEFAULTS["singular_tolerance"]
#: Largest entry of the projected gradient still called converged, in deviance units per
#: unit θ and, for objectives above 1000, relative to the objective (whose rounding error
#: and curvature both grow with the number of observations).
GRADIENT_TOL: float = _DEFAULTS["convergence_tolerance"]
GRADIENT_TOL_REL: float = _DEFAULTS["convergence_tolerance_rel"]
OPTIMIZERS = ("L-BFGS-B", "core", "COBYQA", "Nelder-Mead", "Powell")
#: The rounding floor of the objective (the core's rule, lmm::FitOptions): a change below
#: this, relative to the objective, is not progress. Once the projected gradient is below
#: FLOOR_GRADIENT_REL relative to the objective, FLOOR_STALLS (plus one per
#: FLOOR_STALLS_PER_THETA entries of θ, whose flat directions can improve by less than the
#: floor per step and still improve) evaluations in a row without progress end the run
#: (the line search would otherwise spend up to 20 evaluations on rounding noise).
FLOOR_REL: float = _DEFAULTS["floor_rel"]
FLOOR_GRADIENT_REL: float = _DEFAULTS["floor_gradient_rel"]
FLOOR_STALLS: int = int(_DEFAULTS["floor_stalls"])
FLOOR_STALLS_PER_THETA: int = int(_DEFAULTS["floor_stalls_per_theta"])
#: Runs of L-BFGS-B started again without memory after stalling (the core's rule, lmm::fit).
MAX_FRESH_STARTS = 5
#: Relative decrease of the objective in one iteration below which both L-BFGS-B
#: methods stop (SciPy's ftol).
FTOL = 1e-14


class _AtFloor(Exception):
    """Raised inside the objective to end a run that only meets rounding noise."""


@dataclass
class OptimizeResult:
    """What the optimizer did.

    Attributes:
        theta: θ at the optimum.
        objective: criterion at ``theta``.
        optimizer: optimizer name.
        nfev: objective evaluations (gradient differencing included).
        ngev: gradient evaluations.
        time: seconds spent optimizing.
        message: the optimizer's message.
        converged: whether the projected gradient at the optimum is small.
        gradient: gradient of the objective at ``theta``.
        solution: the model's :class:`~lmm.model.Solution` at ``theta`` when the optimizer
            left it (the core's: its estimates at the optimum), else None.
    """

    theta: np.ndarray
    objective: float
    optimizer: str
    nfev: int
    ngev: int
    time: float
    message: str
    converged: bool
    gradient: np.ndarray
    solution: "Solution | None" = field(default=None, repr=False, compare=False)


def projected_gradient(theta: np.ndarray, grad: np.ndarray, lower: np.ndarray,
                       upper: np.ndarray | None = None) -> np.ndarray:
    """Gradient with the entries that push against an active bound removed."""
    pg = grad.copy()
    pg[(theta <= lower + 1e-12) & (grad > 0)] = 0.0
    if upper is not None:
        pg[(theta >= upper - 1e-12) & (grad < 0)] = 0.0
    return pg


def _escape_boundary(f, theta: np.ndarray, lower: np.ndarray, value: float) -> np.ndarray | None:
    """A point off the boundary with a lower objective, or None when the boundary holds.

    Where a column of λ has only its diagonal entry left, the objective is even
    in that entry, so its gradient vanishes at 0 whether or not 0 is the
    minimum: a gradient method that lands there stays. lme4's restart_edge
    handles the same trap. Entries below the singular tolerance are tried at
    small positive values (the core's rule, lmm::fit); any decrease restarts.
    """
    for i in np.flatnonzero((lower == 0) & (theta < SINGULAR_TOL)):
        for step in (1e-3, 1e-2, 1e-1):
            trial = theta.copy()
            trial[i] = step
            if f(trial) < value - 1e-10 * max(1.0, abs(value)):
                return trial
    return None


def optimize_theta(model, start=None, optimizer: str = "core", tol: float = 1e-8, maxiter: int = 10000,
                   verbose: bool = False, max_restarts: int = int(_DEFAULTS["max_restarts"]),
                   reml: bool | None = None) -> OptimizeResult:
    """Minimize ``model.objective`` over θ within the bounds of each term's parameterization.

    ``"core"`` (the default) is the C++ library's L-BFGS-B; ``"L-BFGS-B"`` is
    SciPy's (both with the exact gradient from the core); ``"COBYQA"`` (a
    successor of lme4's BOBYQA), ``"Nelder-Mead"`` and ``"Powell"`` are
    derivative-free. ``reml`` picks the criterion (None: the model's). The
    optimizer works on φ = θ̃ / ``model.theta_scale``, θ̃ the core's working coordinates
    (each term's columns centred and scaled, ``model.working_from_theta``). A fit that
    ends with a diagonal entry of λ at 0 is restarted off the boundary when that
    lowers the objective (at most ``max_restarts`` times). Warns (UserWarning)
    when the result is not converged. ``reml`` chooses the criterion passed to the
    model's objective (None: ``model.REML``).

    Raises:
        ValueError: the objective cannot be evaluated at a trial θ (the
            factorization fails), e.g. when the response is fitted exactly.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    reml = model.REML if reml is None else bool(reml)
    if optimizer == "core":
        return _core_fit(model, start, reml, tol, maxiter, verbose)
    # φ = θ̃ / scale: the core's working coordinates (centred, scaled columns), as lmm::fit.
    scale = model.theta_scale
    lower, upper = model.theta_lower / scale, model.theta_upper / scale
    phi = (model.working_start if start is None else model.working_from_theta(start)) / scale
    counts = {"f": 0, "g": 0}

    # The last evaluation, reused when the same θ comes again (the optimizer's
    # start and end points are asked for more than once).
    last: dict = {"phi": None, "value": None, "grad": None}

    def evaluate(phi, gradient: bool):
        if last["phi"] is not None and np.array_equal(phi, last["phi"]) and (not gradient or last["grad"] is not None):
            return (last["value"], last["grad"]) if gradient else last["value"]
        theta = np.clip(phi, lower, upper) * scale
        counts["f"] += 1
        counts["g"] += gradient
        try:
            if gradient:
                value, grad = model.working_objective_and_gradient(theta, reml=reml)
                grad = grad * scale
            else:
                value, grad = model.working_objective(theta, reml=reml), None
        except RuntimeError as err:
            theta = model.theta_from_working(theta)
            raise ValueError(
                f"the objective cannot be evaluated at theta = {np.array2string(theta, precision=4)}: {err}. "
                "The residual variance is zero to working precision there: the random effects fit the "
                "response exactly."
            ) from None
        last.update(phi=np.array(phi, dtype=np.float64), value=value, grad=grad)
        return (value, grad) if gradient else value

    def f(phi):
        value = evaluate(phi, False)
        if verbose:
            print(f"  eval {counts['f']:4d}: objective {value:.10g}")
        return value

    best: dict = {"phi": None, "value": np.inf, "small_gradient": False, "stalls": 0}
    stalls_allowed = FLOOR_STALLS + phi.size // FLOOR_STALLS_PER_THETA

    def fg(phi):
        value, grad = evaluate(phi, True)
        if verbose:
            print(f"  eval {counts['f']:4d}: objective {value:.10g}  |grad| {np.max(np.abs(grad)):.3g}")
        progress = best["phi"] is None or value < best["value"] - FLOOR_REL * abs(best["value"])
        best["stalls"] = 0 if progress else best["stalls"] + 1
        if value < best["value"]:
            pg = np.max(np.abs(projected_gradient(np.clip(phi, lower, upper), grad, lower, upper)), initial=0.0)
            best.update(phi=np.array(phi, dtype=np.float64), value=value, grad=grad,
                        small_gradient=pg <= FLOOR_GRADIENT_REL * max(1.0, abs(value)))
        if best["small_gradient"] and best["stalls"] >= stalls_allowed:
            raise _AtFloor
        return value, grad

    bounds = sopt.Bounds(lower, upper)
    t0 = time.perf_counter()
    restarts = fresh_starts = 0
    while True:
        try:
            res = _minimize(f, fg, phi, optimizer, bounds, tol, maxiter)
            phi = np.clip(np.asarray(res.x, dtype=np.float64), lower, upper)
        except _AtFloor:
            res = sopt.OptimizeResult(message="stopped at the objective's rounding floor")
            phi = np.clip(best["phi"], lower, upper)
            last.update(phi=phi, value=best["value"], grad=best["grad"])
        best.update(phi=None, value=np.inf, small_gradient=False, stalls=0)
        if optimizer == "L-BFGS-B" and fresh_starts < MAX_FRESH_STARTS and counts["f"] < maxiter:
            # A run that stalls far from a stationary point starts again without its
            # memory (the core's rule, lmm::fit: near a bound the quasi-Newton step can
            # keep pointing far uphill, and the line search cuts it to nothing).
            value, g = evaluate(phi, True)
            pg = float(np.max(np.abs(projected_gradient(phi, g, lower, upper)), initial=0.0))
            if pg > max(GRADIENT_TOL, GRADIENT_TOL_REL * abs(value)):
                fresh_starts += 1
                continue
        value = f(phi)
        escape = _escape_boundary(f, phi, lower, value) if restarts < max_restarts else None
        if escape is None:
            break
        restarts += 1
        phi = escape
    elapsed = time.perf_counter() - t0
    value, g = evaluate(phi, True)
    max_pg = float(np.max(np.abs(projected_gradient(phi, g, lower, upper)), initial=0.0))
    converged = max_pg <= max(GRADIENT_TOL, GRADIENT_TOL_REL * abs(value))
    message = f"{'converged' if converged else 'not converged'}: max |projected gradient| {max_pg:.2g}"
    if restarts:
        message += f", {restarts} restart(s) off the boundary"
    message = f"{message} ({optimizer}: {res.message})"
    if not converged:
        warnings.warn(f"the optimizer did not converge: {message}", UserWarning, stacklevel=3)
    theta = model.theta_from_working(phi * scale)
    return OptimizeResult(theta=theta, objective=value, optimizer=optimizer, nfev=counts["f"], ngev=counts["g"],
                          time=elapsed, message=message, converged=converged,
                          gradient=model.objective_and_gradient(theta, reml=reml)[1])


def _on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _FitStatus:
    """A status line on a terminal for fits that run long: from the second second on, the
    evaluations so far and the criterion, redrawn at most every INTERVAL seconds."""

    AFTER = 2.0
    INTERVAL = 0.5

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.shown = False

    def __call__(self, evaluation: int, value: float) -> None:
        elapsed = time.perf_counter() - self.t0
        if elapsed < self.AFTER:
            return
        sys.stderr.write(f"\rfitting: {evaluation} evaluations, criterion {value:.10g}, {elapsed:.0f} s ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def _core_fit(model, start, reml: bool, tol: float, maxiter: int, verbose: bool) -> OptimizeResult:
    """The C++ optimizer (lmm::fit) on the model's core, with the same scaling of θ, the same
    stopping rules as SciPy's L-BFGS-B here (gtol from ``tol``, ftol, the rounding floor) and
    the same verdict (on the projected gradient in φ = θ / scale)."""
    status = None if verbose or not _on_terminal() else _FitStatus()
    trace = (lambda k, value: print(f"  eval {k:4d}: objective {value:.10g}")) if verbose else status
    scale = model.theta_scale
    # The core's default start (model.working_start), as for SciPy's methods.
    theta0 = None if start is None else model._theta(start)
    try:
        with dense_blas(model.core.tail_size):
            r = model.core.fit(reml, theta_start=theta0, theta_scale=scale, max_evaluations=maxiter,
                               gradient_tolerance=0.1 * tol, gradient_tolerance_rel=0.1 * tol,
                               relative_decrease_tolerance=FTOL, trace=trace,
                               trace_interval=0.0 if verbose else _FitStatus.INTERVAL)
    except RuntimeError as err:
        raise ValueError(f"the objective cannot be evaluated at the starting theta: {err}") from None
    finally:
        if status is not None:
            status.close()
    theta, grad = np.asarray(r.theta), np.asarray(r.gradient)
    # The core's verdict: the projected gradient in its φ (the same rule as above).
    max_pg, converged = float(r.max_projected_gradient), bool(r.converged)
    message = f"{'converged' if converged else 'not converged'}: max |projected gradient| {max_pg:.2g}"
    if r.restarts:
        message += f", {r.restarts} restart(s) off the boundary"
    message = f"{message} (core: {r.stop_reason})"
    if not converged:
        warnings.warn(f"the optimizer did not converge: {message}", UserWarning, stacklevel=3)
    return OptimizeResult(theta=theta, objective=r.criterion, optimizer="core", nfev=r.evaluations,
                          ngev=r.gradient_evaluations, time=r.seconds, message=message, converged=converged,
                          gradient=grad, solution=model.solution_from_fit(r, reml))


def _minimize(f, fg, theta0, optimizer, bounds, tol, maxiter):
    if optimizer == "L-BFGS-B":
        # gtol is on the projected gradient, whose size grows with the objective's.
        gtol = tol * 0.1 * max(1.0, abs(fg(theta0)[0]))
        return sopt.minimize(fg, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                             options={"maxiter": maxiter, "ftol": FTOL, "gtol": gtol, "maxcor": 20})
    if optimizer == "COBYQA":
        return sopt.minimize(f, theta0, method="COBYQA", bounds=bounds,
                             options={"maxfev": maxiter, "final_tr_radius": 1e-8})
    if optimizer == "Nelder-Mead":
        return sopt.minimize(f, theta0, method=optimizer, bounds=bounds,
                             options={"maxiter": maxiter, "maxfev": maxiter, "xatol": 1e-8, "fatol": tol})
    return sopt.minimize(f, theta0, method=optimizer, bounds=bounds,
                         options={"maxiter": maxiter, "xtol": 1e-8, "ftol": tol})
