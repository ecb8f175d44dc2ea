"""Likelihood profiles and profile intervals as lme4's profile/confint."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from .._threads import dense_blas
from ..covariance import is_entry_structure, sdcor_to_theta, theta_to_sdcor, varpar_names
from ..model import build_core
from ..optimize import optimize_theta
from .common import Progress, blas_single_thread, percent_names

__all__ = ["Profile", "profile"]


@dataclass
class Profile:
    """A likelihood profile, as lme4's ``profile(fit)``.

    Attributes:
        curves: dict parameter name → DataFrame with columns ``value`` and ``zeta``,
            sorted by value (zeta = sign(value − estimate)·sqrt(deviance − minimum)).
        estimates: ML estimates of the parameters (lme4 profiles the ML deviance).
        lower: lower bounds of the parameters (0 for standard deviations, −1 for correlations).
        upper: upper bounds of the parameters (+inf for standard deviations, 1 for correlations).
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
        lo_name, hi_name = percent_names(level)
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
        if f is None:
            return float(np.interp(target, zt[min(i, j):max(i, j) + 1], v[min(i, j):max(i, j) + 1]))
        with dense_blas(f.tail_size):
            return _bracketed_root(f, target, (v[j], zt[j]), (v[i], zt[i]))


def _bracketed_root(f, target: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """x with f(x) = target to |f(x) − target| <= ROOT_ZETA_TOL, from points a and b of the
    curve on either side (regula falsi, Illinois variant: each profiled optimization is
    costly, and the curve is near linear between neighbouring points of its trace)."""
    (xa, za), (xb, zb) = a, b
    za, zb = za - target, zb - target
    side = 0
    x = xa
    for _ in range(ROOT_MAX_STEPS):
        x = xb - zb * (xb - xa) / (zb - za) if zb != za else 0.5 * (xa + xb)
        z = f(x) - target
        if abs(z) <= ROOT_ZETA_TOL or x in (xa, xb):
            break
        if z * zb > 0:           # x replaces b; a stays: halve its weight when it stayed before
            xb, zb = x, z
            if side == -1:
                za *= 0.5
            side = -1
        else:
            xa, za = x, z
            if side == 1:
                zb *= 0.5
            side = 1
    return float(x)


#: A profile interval's bound solves zeta(x) = ±z to this accuracy in zeta (about 1e-6
#: standard errors in x; lme4 interpolates a spline through the trace's points).
ROOT_ZETA_TOL = 1e-6
ROOT_MAX_STEPS = 30


def profile(res, which=None, alphamax: float = 0.01, maxpts: int = 100, delta_cutoff: float = 1 / 8,
            cutoff: float | None = None, progress: bool | None = None, verbose: bool = False,
            client=None) -> Profile:
    """Profile the ML deviance over σ's, correlations, σ and the fixed effects (lme4's ``profile``).

    Args:
        res: the fitted result (REML fits are refitted by ML, as lme4 does).
        which: parameter names (``.sig01``, ``.sigma``, fixed-effect names) or None for all.
        alphamax: the profile extends to zeta = sqrt(χ²_{1−alphamax}(number of parameters)), lme4's default.
        maxpts: most points per direction.
        delta_cutoff: target step in zeta as a fraction of the cutoff (lme4's 1/8).
        cutoff: override the zeta range.
        progress: show a progress bar, one step per parameter (None: when stderr is a terminal).
        verbose: print a line per parameter profiled.
        client: a ``dask.distributed`` Client: each parameter's profile (both directions)
            is traced on its workers, a task per parameter (see :mod:`lmm.cluster`); the
            curves are those traced here.

    Returns:
        Profile.

    Raises:
        NotImplementedError: a structured covariance term (cs, ar1, diag with hom, toep), or a known σ.
    """
    model = res.model
    terms = model.terms
    structured = [t.label for t in terms if not is_entry_structure(t)]
    if structured:
        raise NotImplementedError(f"profiles are not implemented for structured covariance terms "
                                  f"({', '.join(structured)}); use confint(method='Wald') or 'boot'")
    if model.sigma is not None:
        raise NotImplementedError("profiles are not implemented for a known residual SD; use "
                                  "confint(method='Wald') or 'boot'")
    if client is not None:
        from .. import cluster

        client = cluster.as_client(client)
    ml = res.refit_ml()
    theta_ml, sigma_ml, beta_ml = ml.par, ml.sigma, ml.fixef.to_numpy()
    vnames = varpar_names(terms)
    xnames = list(res.fixef.index)
    pars0 = theta_to_sdcor(theta_ml, sigma_ml, terms)
    names = vnames + xnames
    lower_theta = model.theta_lower
    lower = np.concatenate([np.where(lower_theta == 0, 0.0, -1.0), [0.0], np.full(len(xnames), -np.inf)])
    upper = np.concatenate([np.where(lower_theta == 0, np.inf, 1.0), [np.inf], np.full(len(xnames), np.inf)])
    if which is None:
        which = names
    elif isinstance(which, str):
        which = [which]
    unknown = [w for w in which if w not in names]
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; parameters are {names}")
    if cutoff is None:
        cutoff = math.sqrt(stats.chi2.ppf(1 - alphamax, len(names)))
    setup = _Setup(model=model, vnames=vnames, xnames=xnames, pars0=pars0, theta_ml=theta_ml, beta_ml=beta_ml,
                   se_ml=ml.se.to_numpy(), base=ml.objective, lower=lower, upper=upper, cutoff=cutoff,
                   delta=cutoff * delta_cutoff, maxpts=maxpts)

    curves, funcs = {}, {}
    bar = Progress(len(which), progress, desc="profile", verbose=verbose)

    def done(w: str, curve: pd.DataFrame, f) -> None:
        curves[w], funcs[w] = curve, f
        z = curve["zeta"]
        bar.update(1, f"{w}: {len(z)} points, zeta from {z.min():.3g} to {z.max():.3g}")

    with bar:
        if client is None:
            with dense_blas(model.core.tail_size):
                for w in which:
                    f = setup.zeta(w)
                    done(w, setup.trace(w, f), f)
        else:
            # A task per parameter; its zeta function is rebuilt here in the state the trace
            # left it in (its last optimum, where the interval's root searches start).
            silent = Progress(len(which), False)
            for w, (curve, starts) in zip(which, cluster.map_blocks(client, _profile_task, setup,
                                                                   ((w, 1, "") for w in which), silent)):
                f = setup.zeta(w)
                f.starts = starts
                done(w, curve, f)
    estimates = pd.Series(np.concatenate([pars0, beta_ml]), index=names)
    return Profile(curves=curves, estimates=estimates, lower=pd.Series(lower, index=names),
                   upper=pd.Series(upper, index=names), zeta_functions=funcs)


@dataclass
class _Setup:
    """What tracing a parameter's profile needs: the model and its ML fit's numbers
    (pickled once to each worker with ``client``)."""

    model: object
    vnames: list
    xnames: list
    pars0: np.ndarray      # sd/cor and σ at the ML fit
    theta_ml: np.ndarray
    beta_ml: np.ndarray
    se_ml: np.ndarray
    base: float            # the ML deviance
    lower: np.ndarray      # bounds of sd/cor, σ and β
    upper: np.ndarray
    cutoff: float
    delta: float
    maxpts: int

    def zeta(self, w: str) -> "_VarparZeta | _FixedZeta":
        """The zeta function of parameter ``w``, at its start."""
        nv = len(self.vnames)
        if w in self.vnames:
            return _VarparZeta(_MLDeviance(self.model), self.pars0, self.vnames.index(w), self.lower[:nv],
                               self.upper[:nv], self.base)
        j = self.xnames.index(w)
        return _FixedZeta(self.model, j, self.beta_ml[j], self.theta_ml, self.base)

    def trace(self, w: str, f) -> pd.DataFrame:
        """The points of ``w``'s zeta curve (both directions), by ``f``."""
        names = self.vnames + self.xnames
        k = names.index(w)
        if w in self.vnames:
            est = self.pars0[k]
            step = 0.001 if est == 0 else est * 0.01
        else:
            j = self.xnames.index(w)
            est = self.beta_ml[j]
            step = self.delta * self.se_ml[j]
        return _trace(f, est, step, self.lower[k], self.upper[k], self.cutoff, self.delta, self.maxpts)


def _profile_task(setup: _Setup, w: str) -> tuple[pd.DataFrame, "_Starts"]:
    """A worker's profile of parameter ``w``: its curve and the optima its trace found.

    The zeta functions evaluate on the model's core, which the worker's threads share:
    each task works on its own copy.
    """
    setup = dataclasses.replace(setup, model=copy.deepcopy(setup.model))
    f = setup.zeta(w)
    with blas_single_thread():
        curve = setup.trace(w, f)
    return curve, f.starts


class _MLDeviance:
    """The ML deviance as a function of (sd/cor parameters, σ), with β profiled out, and its exact gradient.

    deviance = ldL2(θ) − Σ log w + r²(θ)/σ² + n log(2πσ²), θ from the sd/cor scale (lme4's
    devfun2); the core's profiled criterion gives ldL2 − Σ log w, its gradient parts
    ∂ldL2/∂θ and ∂r²/∂θ (weights and working coordinates included), so the gradient in θ at
    fixed σ is ∂ldL2 + ∂r²/σ²; the sd/cor → θ map is differenced centrally.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.terms = model.terms
        self.n = model.nobs

    def theta_value_grad(self, theta: np.ndarray, sigma: float) -> tuple[float, np.ndarray, float]:
        t = self.model.deviance_terms(theta, reml=False)
        n, r2, s2 = self.n, t.pwrss, sigma * sigma
        log2pi = math.log(2 * math.pi)
        logdet = t.objective - n * (1 + log2pi + math.log(r2 / n))  # ldL2 − Σ log w
        value = logdet + r2 / s2 + n * (log2pi + math.log(s2))
        dsigma = -2 * r2 / sigma**3 + 2 * n / sigma
        return value, t.dlogdet + t.dpwrss / s2, dsigma

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


class _Starts:
    """The optima of a parameter's profiled optimizations by its value: the next one starts
    from their linear extrapolation to the new value (along a profile the other parameters
    move smoothly)."""

    def __init__(self, est: float, opt: np.ndarray) -> None:
        self.values = [float(est)]
        self.optima = [np.asarray(opt, dtype=float)]

    def add(self, x: float, opt: np.ndarray) -> None:
        self.values.append(float(x))
        self.optima.append(np.asarray(opt, dtype=float))

    def at(self, x: float) -> np.ndarray:
        """The start for value ``x``: the line through the optima at the two values nearest
        it, within twice their distance (else the nearest optimum)."""
        order = np.argsort(np.abs(np.asarray(self.values) - x))
        near = self.optima[order[0]]
        if len(order) < 2:
            return near
        x1, x2 = self.values[order[0]], self.values[order[1]]
        if x1 == x2 or abs(x - x1) > 2 * abs(x2 - x1):
            return near
        return near + (x - x1) / (x2 - x1) * (self.optima[order[1]] - near)


class _VarparZeta:
    """zeta for one sd/cor/σ parameter: the ML deviance minimized over the others."""

    def __init__(self, dev: _MLDeviance, pars0, i, lower, upper, base):
        self.dev, self.i, self.base = dev, i, base
        self.tail_size = dev.model.core.tail_size
        self.est = pars0[i]
        self.starts = _Starts(self.est, np.delete(pars0, i))
        self.lo = np.delete(lower, i)
        self.hi = np.delete(upper, i)
        if i != pars0.size - 1:
            self.lo[-1] = 1e-3 * pars0[-1]   # σ > 0, and θ = sd/σ within reach of the factorization

    def __call__(self, x: float) -> float:
        i = self.i

        def fun(rest):
            value, grad = self.dev(np.insert(rest, i, x))
            return value, np.delete(grad, i)

        start = np.clip(self.starts.at(x), self.lo, self.hi)
        opt = sopt.minimize(fun, start, method="L-BFGS-B", jac=True, bounds=sopt.Bounds(self.lo, self.hi),
                            options={"ftol": 1e-13, "gtol": 1e-6, "maxiter": 2000, "maxcor": 20})
        self.starts.add(x, opt.x)
        diff = max(0.0, float(opt.fun) - self.base)
        return math.copysign(math.sqrt(diff), x - self.est) if x != self.est else 0.0


class _FixedZeta:
    """zeta for fixed effect j: y − x_j b on X without column j, θ re-optimized (ML).

    Its core comes from :func:`lmm.model.build_core`, with the shift of X without
    column j and y − x_j b̂; each new b replaces the response, which refreshes the shift.
    """

    def __init__(self, model, j, est, theta0, base):
        d = model.design
        self.xj = d.X[:, j].copy()
        Xd = np.asfortranarray(np.delete(d.X, j, axis=1))
        self.y = d.y_fit
        self.est, self.base = est, base
        self.core = build_core(d.terms, Xd, self.y - self.xj * est, max_dense_bytes=model.max_dense_bytes,
                               theta_scale=model.theta_scale, reml=False, weights=d.weights)
        self.tail_size = self.core.core.tail_size
        self.starts = _Starts(est, theta0)

    def __call__(self, b: float) -> float:
        self.core.set_response(self.y - self.xj * b)
        start = np.clip(self.starts.at(b), self.core.theta_lower, self.core.theta_upper)
        opt = optimize_theta(self.core, start=start, reml=False)
        self.starts.add(b, opt.theta)
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
