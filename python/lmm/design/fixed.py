"""The fixed-effects part: one QR of [X_c y] (TSQR, block by block), the rank test that
drops aliased columns (as lme4 does, with a warning naming them), lme4's scale check,
and the centring of X that gives the core a better-conditioned problem.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Optional

import numpy as np
from scipy.linalg import lapack

from .._util import row_blocks, warn_user

__all__ = ["RANK_TOL", "SCALE_TOL", "center", "centred_blocks", "check_scale", "column_norms", "full_rank_columns",
           "r_factor"]

# Relative tolerance of the rank test on X, as lme4's default (chkRank.drop.cols).
RANK_TOL = 1e-7
# Variation of a column below this fraction of its norm is rounding of its values.
_ROUNDING = 1e3 * np.finfo(float).eps
# lme4's checkScaleX: warn when a continuous predictor's standard deviation, or
# the ratio of two of them, is beyond this factor.
SCALE_TOL = 1e3


def r_factor(blocks: Iterable[np.ndarray], k: int) -> np.ndarray:
    """R (min(n, k) × k) of the QR factorization of the row blocks (each m_i × k) stacked.

    One block at a time (TSQR): with [A; B] = diag(Q_A, I) [R_A; B], the R of [R_A; B]
    is the R of [A; B], so the memory is that of one block, not of all n rows. Each
    [R_A; B] is stacked once, in Fortran order, and factored in place by LAPACK's dgeqrf
    (``numpy.linalg.qr`` copies it again and costs as much again in overhead).
    """
    R: Optional[np.ndarray] = None
    for block in blocks:
        top = 0 if R is None else R.shape[0]
        stacked = np.empty((top + block.shape[0], k), order="F")
        if R is not None:
            stacked[:top] = R
        stacked[top:] = block
        factored, _, _, info = lapack.dgeqrf(stacked, overwrite_a=True)
        if info != 0:
            raise ArithmeticError(f"LAPACK dgeqrf failed (info = {info})")
        R = np.triu(factored[:min(factored.shape[0], k)])
    return np.zeros((0, k)) if R is None else R


def full_rank_columns(R: np.ndarray, norms: np.ndarray) -> list[int]:
    """Columns kept by a sequential rank test, dropping later aliased columns as R's qr does.

    Column j is kept when its residual on the kept columns before it exceeds RANK_TOL
    times the norm of its deviations (X_c's column, ``R[:, j]``), lme4's tolerance, and
    some thousand ε times the norm of the column as given (``norms[j]``: variation above
    the rounding of the stored values); an all-zero column is dropped. The residuals come
    from the R factor of X_c = X − x_center (TSQR, block by block: X_c = Q R with Q'Q = I,
    so R's columns have X_c's norms and inner products, and Gram–Schmidt on them, k × k,
    gives X_c's residuals without an n × k Q). Centring subtracts multiples of the
    intercept, column 0, from the others, so the residuals are X's: against the centred
    norm the test does not depend on a column's offset (Days + 1e8 beside the intercept
    is as far from aliased as Days, where lme4's test on X drops it), and Householder QR
    is backward stable column by column, so not on its units either.
    """
    kept: list[int] = []
    Q = np.empty((R.shape[0], R.shape[1]))
    for j, norm in enumerate(norms):
        x = R[:, j]
        basis = Q[:, :len(kept)]
        r = x - basis @ (basis.T @ x)
        r -= basis @ (basis.T @ r)
        rnorm = math.sqrt(float(r @ r))
        if norm > 0.0 and rnorm > RANK_TOL * math.sqrt(float(x @ x)) and rnorm > _ROUNDING * norm:
            Q[:, len(kept)] = r / rnorm
            kept.append(j)
    return kept


def _is_binary(x: np.ndarray) -> bool:
    """True when every value is 0 or 1 (its range first, then block by block: no n-sized masks)."""
    if x.size and (np.min(x) < 0.0 or np.max(x) > 1.0):
        return False
    return all(bool(np.all((x[rows] == 0) | (x[rows] == 1))) for rows in row_blocks(x.shape[0]))


def _sd(x: np.ndarray) -> float:
    """Sample standard deviation (ddof=1), the squared deviations summed block by block."""
    mean = np.mean(x)
    ss = 0.0
    for rows in row_blocks(x.shape[0]):
        d = x[rows] - mean
        ss += float(d @ d)
    return math.sqrt(ss / (x.shape[0] - 1))


def check_scale(X: np.ndarray, xnames: list[str], R: np.ndarray, centred: bool) -> None:
    """lme4's checkScaleX: warn when continuous predictors are on very different scales.

    Continuous columns are those not entirely 0/1. lme4 warns when the standard
    deviation of one of them, or the ratio of two, exceeds 1000 (or is below
    1/1000); the warning here names the columns. When X_c's columns are centred on
    their means, R's column norms (X_c = Q R) are their deviations' norms already.
    """
    cont = [j for j in range(X.shape[1]) if not _is_binary(X[:, j])]
    if not cont or X.shape[0] < 2:
        return
    if centred:
        sd = np.linalg.norm(R[:, cont], axis=0) / math.sqrt(X.shape[0] - 1)
    else:
        sd = np.array([_sd(X[:, j]) for j in cont])
    warn_scales([xnames[j] for j in cont], sd)


def warn_scales(names: list[str], sd: np.ndarray) -> None:
    """lme4's checkScaleX on the standard deviations ``sd`` of the continuous predictors
    ``names``: warn, naming the extreme ones, when one SD or the ratio of two is beyond
    SCALE_TOL."""
    with np.errstate(divide="ignore"):
        logsd = np.log(sd)
    bad_single = ~np.isfinite(logsd) | (np.abs(logsd) > np.log(SCALE_TOL))
    finite = logsd[np.isfinite(logsd)]
    bad_ratio = finite.size > 1 and float(finite.max() - finite.min()) > np.log(SCALE_TOL)
    if not (bad_single.any() or bad_ratio):
        return
    shown = sorted(range(len(names)), key=lambda i: sd[i])
    if len(shown) > 6:
        shown = sorted(set(shown[:2] + shown[-2:] + [i for i in range(len(names)) if bad_single[i]][:4]),
                       key=lambda i: sd[i])
    listing = ", ".join(f"{names[i]} {sd[i]:.3g}" for i in shown)
    warn_user("Some predictor variables are on very different scales: consider rescaling "
              f"(standard deviations: {listing})")


def center(X: np.ndarray, xnames: list[str]) -> tuple[np.ndarray, bool]:
    """Column means to subtract when X has an intercept (first column of ones), else zeros;
    and whether the columns were centred."""
    center = np.zeros(X.shape[1])
    centred = X.shape[1] > 1 and xnames[0] == "(Intercept)" and np.min(X[:, 0]) == 1.0 == np.max(X[:, 0])
    if centred:
        center[1:] = X[:, 1:].mean(axis=0)
    return center, bool(centred)


def column_norms(R: np.ndarray, x_center: np.ndarray, n: int) -> np.ndarray:
    """Norms of X's columns from X_c's (R's): |x|² = |x − c|² + n c² when c is x's mean
    (x − c ⟂ 1), and x_center is zero or the means."""
    return np.sqrt(np.einsum("ij,ij->j", R, R) + n * x_center * x_center)


def centred_blocks(X: np.ndarray, x_center: np.ndarray, y: np.ndarray) -> Iterator[np.ndarray]:
    """Row blocks of [X_c y], X_c = X − x_center: never all n rows at once."""
    n, p = X.shape
    for rows in row_blocks(n, p + 1):
        block = np.empty((rows.stop - rows.start, p + 1), order="F")
        np.subtract(X[rows], x_center, out=block[:, :p])
        block[:, p] = y[rows]
        yield block
