"""Checks on the response and its least-squares shift.

A constant response, or one the fixed effects (alone or with one random-effects term)
fit exactly, raises ``ValueError``: the residual variance would be 0 and the
likelihood unbounded. The least-squares coefficients of y on X_c are the design's
``y_coef``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _core as core
from .._util import row_blocks, same_values
from .terms import ReTerm

__all__ = ["EXACT_FIT_TOL", "check_response"]

# A response whose residual, after the best fit by the fixed effects (and one
# random-effects term), is below this fraction of its norm is fitted exactly:
# the residual variance is 0 to working precision (some 5000 ε: a response of
# 1e12 + Reaction, six digits of signal, is a proper model, as lme4 fits it).
EXACT_FIT_TOL = 1e-12
# Rows of the sample of levels on which a random-effects term's exact fit is tried
# before all rows (see _fitted_exactly_by): the rows of some hundred levels, where noise
# shows at once, for a fraction of a millisecond.
_EXACT_FIT_SAMPLE = 4_000


def _outside_term(t: ReTerm, X: np.ndarray, xnames: list[str], x_center: np.ndarray) -> list[int]:
    """The columns of X_c = X − x_center that t's columns do not span within each level.

    X_c's intercept is spanned when t has an intercept, and a column of X that t has too
    (same name and values: ``t`` in ``y ~ t + (1 + t | g)``) when t has an intercept or
    the column is not shifted. Those columns project to exactly zero within each level:
    they add nothing to the fit, and an exactly zero block makes the core's residual NaN.
    """
    intercept = "(Intercept)" in t.cnames
    kept = []
    for j, name in enumerate(xnames):
        if name in t.cnames and (intercept or x_center[j] == 0.0 or name == "(Intercept)"):
            k = t.cnames.index(name)
            if name == "(Intercept)" or same_values(X[:, j], t.z[:, k]):
                continue
        kept.append(j)
    return kept


def _response_and_centred(y: np.ndarray, X: np.ndarray, x_center: np.ndarray, columns: list[int],
                          rows: Optional[np.ndarray] = None) -> np.ndarray:
    """[y X_c[:, columns]] (Fortran order) on ``rows`` (default: all), X_c = X − x_center,
    column by column."""
    m = y.shape[0] if rows is None else rows.shape[0]
    V = np.empty((m, len(columns) + 1), order="F")
    V[:, 0] = y if rows is None else y[rows]
    for i, j in enumerate(columns):
        V[:, i + 1] = X[:, j] if rows is None else X[rows, j]
        V[:, i + 1] -= x_center[j]
    return V


def _sample_levels(t: ReTerm, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows of a subset of t's levels, about ``size`` of them (at least one level): the
    rows, their codes among the levels taken, and the number of levels taken.

    Each level is taken with probability ``size / n`` by a fixed pseudo-random draw
    (seeded: the same sample every time), not in code order, where the first levels are
    often the largest; two passes over the codes, no count per level and no sort. Levels
    of many rows each (a few taken hold many more than ``size``) keep every k-th of their
    rows: an exact fit on all rows is exact on any subset of them, and each level keeps
    k times fewer rows, still many (InstEval's 14 departments: 4 taken, 27,000 rows).
    """
    n, L = t.codes.shape[0], t.nlevels
    draw = np.random.default_rng(0).random(L)
    picked = draw < size / n
    if not picked.any():
        picked[int(np.argmin(draw))] = True
    rows = np.flatnonzero(picked[t.codes])
    if rows.size > 2 * size:
        rows = rows[::rows.size // size]
    new_codes = (np.cumsum(picked, dtype=np.int32) - 1)[t.codes[rows]]
    return rows, new_codes, int(np.count_nonzero(picked))


def _fitted_exactly_by(t: ReTerm, y: np.ndarray, X: np.ndarray, xnames: list[str], x_center: np.ndarray,
                       ynorm: float) -> float | None:
    """Relative residual of y on [X_c, the term's columns within each level], or None if not exact.

    An exact fit on all rows is also exact on the rows of any subset of levels
    (the residual on a subset is at most the residual on all rows), so a large
    design is first tried on the rows of a sample of its levels (cheap) and only
    checked in full when the sample is fitted exactly. The core projects the term's
    columns out level by level and finds the residual (``within_level_residual``).
    """
    n = y.shape[0]
    columns = _outside_term(t, X, xnames, x_center)
    if n > _EXACT_FIT_SAMPLE:
        rows, codes, nlevels = _sample_levels(t, _EXACT_FIT_SAMPLE)
        if rows.size < n:
            V = _response_and_centred(y, X, x_center, columns, rows)
            z = np.asfortranarray(t.z[rows])
            if core.within_level_residual(codes, z, nlevels, V) > EXACT_FIT_TOL * ynorm:
                return None
    V = _response_and_centred(y, X, x_center, columns)
    rel = core.within_level_residual(t.codes, t.z, t.nlevels, V) / ynorm
    return rel if rel <= EXACT_FIT_TOL else None


def check_response(y: np.ndarray, X: np.ndarray, xnames: list[str], terms: list[ReTerm], response: str,
                    R: np.ndarray, x_center: np.ndarray, sigma_known: bool = False) -> np.ndarray:
    """Refuse a response with no residual variation (unless σ is known); return y_coef.

    lme4's glmer stops on a constant response ("Response is constant"); lmer
    does not check. Here a constant response, one the fixed effects fit exactly,
    and one the fixed effects and a single random-effects term fit exactly all
    raise ValueError, before any work: σ̂ would be 0 and the likelihood unbounded.
    (An exact fit by several crossed terms together is only found by the optimizer.)

    The least squares of y on X_c = X − x_center runs on R, the R factor of [X_c y]
    (TSQR, block by block, X_c never formed in full): y_coef solves R_xx γ = r_xy,
    refined once by the corrected semi-normal equations, and |R_yy| is the norm of
    the residual.
    """
    if not sigma_known and np.min(y) == np.max(y):
        raise ValueError(f"the response {response!r} is constant (every value is {y[0]:.6g}); a linear "
                         "mixed model needs variation in the response (lme4: 'Response is constant')")
    ynorm = float(np.linalg.norm(y))
    p = X.shape[1]
    y_coef = np.zeros(p)
    if p:
        Rxx = R[:p, :p]
        y_coef = np.linalg.solve(Rxx, R[:p, p])
        # One step of iterative refinement with R alone: R'R δ = X_c'(y − X_c γ).
        g = np.zeros(p)
        for rows in row_blocks(X.shape[0], p):
            Xc = X[rows] - x_center
            g += Xc.T @ (y[rows] - Xc @ y_coef)
        y_coef = y_coef + np.linalg.solve(Rxx, np.linalg.solve(Rxx.T, g))
    if sigma_known:  # (a known σ: no residual variance to lose)
        return y_coef
    rel = abs(R[p, p]) / ynorm if R.shape[0] > p else 0.0
    if rel <= EXACT_FIT_TOL:
        raise ValueError(f"the response {response!r} is fitted exactly by the fixed effects {xnames} (to "
                         f"{-math.log10(EXACT_FIT_TOL):.0f} significant digits: the residual is {rel:.1e} of the "
                         "response's norm), so the residual variance would be 0. Was the response computed from the "
                         "predictors without noise?")
    for t in terms:
        # (A structured term's few parameters cannot absorb the residual variance: one
        # effect per observation is a proper model there, see check_terms.)
        if t.p > 20 or t.structured:
            continue
        term_rel = _fitted_exactly_by(t, y, X, xnames, x_center, ynorm)
        if term_rel is not None:
            raise ValueError(
                f"the response {response!r} is fitted exactly by the fixed effects and the random-effects term "
                f"{t.label}: within every level of {t.name!r} it is an exact linear function of "
                f"{', '.join(t.cnames)} (residual {term_rel:.1e} of its norm), so the residual variance would be 0. "
                "Was the response simulated without noise, or is it a group-level variable?")
    return y_coef
