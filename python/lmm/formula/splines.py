"""R's spline bases ``splines::bs()`` and ``splines::ns()``, and the knots they learn.

The numbers follow R's code step by step, so that the columns are R's to rounding:
the knots are R's type-7 quantiles (:func:`r_quantile`), the B-spline values come from
a port of ``splineDesign``'s C code (:func:`spline_design`: de Boor's recurrence with its
cursor and boundary rules, derivatives by differencing the coefficients), and ``ns()``
removes the second derivatives at the boundary knots with the Householder QR of LINPACK's
``dqrdc2`` that R's ``qr()`` uses, so its columns have R's signs and rotation.

A :class:`SplineBasis` records what a basis learned from the fitting data (knots,
boundary knots, intercept, degree): evaluating it on new data gives R's
``predict(fit, newdata)`` (``makepredictcall``), with R's extrapolation beyond the
boundary knots (linear for ``ns()``; for ``bs()`` the Taylor polynomial at a pivot
inside them, with R's warning).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["SplineBasis", "r_quantile", "type7_ranks", "type7_from_order_statistics", "knot_probs",
           "interior_knot_count", "single_value_boundary", "spline_design", "bs_basis", "ns_basis"]


@dataclass(frozen=True)
class SplineBasis:
    """What ``bs()``/``ns()`` learned from the fitting data (R's attributes of the basis).

    Attributes:
        kind: ``"bs"`` or ``"ns"``.
        knots: the interior knots, as given or as the quantiles of the data.
        boundary: the boundary knots (the range of the data unless given).
        intercept: whether the basis keeps its first column.
        degree: the polynomial degree (3 for ``ns()``).
    """

    kind: str
    knots: tuple[float, ...]
    boundary: tuple[float, float]
    intercept: bool
    degree: int

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The basis at new values ``x``, as R's ``predict(basis, x)``.

        Args:
            x: (n,) float64 values; NaN gives a row of NaN.

        Returns:
            (n, k) float64 basis, Fortran order.

        Warns:
            UserWarning: (``bs()``) values beyond the boundary knots, as R warns.
        """
        if self.kind == "ns":
            return ns_basis(x, knots=self.knots, intercept=self.intercept, boundary=self.boundary)[0]
        return bs_basis(x, knots=self.knots, degree=self.degree, intercept=self.intercept,
                        boundary=self.boundary)[0]


def r_quantile(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(x, probs)`` (type 7, ``names`` aside), with R's arithmetic.

    numpy's linear interpolation rounds differently in the last bit; knots are compared
    with equality later (``x > knot``), so R's own formula is used.
    """
    xs = np.sort(x)
    lo, hi = type7_ranks(xs.size, probs)
    return type7_from_order_statistics(xs.size, probs, xs[lo - 1], xs[hi - 1])


def type7_ranks(n: int, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based ranks (lo, hi) of the two order statistics R's type-7 quantile of n
    values interpolates between at each of ``probs`` (equal where no interpolation is needed)."""
    index = 1.0 + max(n - 1, 0) * probs
    return np.floor(index).astype(np.int64), np.ceil(index).astype(np.int64)


def type7_from_order_statistics(n: int, probs: np.ndarray, at_lo: np.ndarray, at_hi: np.ndarray) -> np.ndarray:
    """R's type-7 quantiles of n values at ``probs`` from their order statistics at the
    ranks :func:`type7_ranks` gives (``at_lo``, ``at_hi``): :func:`r_quantile` without the
    values themselves (what an out-of-core pass finds)."""
    index = 1.0 + max(n - 1, 0) * probs
    lo = np.floor(index)
    qs = np.array(at_lo, dtype=np.float64)
    at_hi = np.asarray(at_hi, dtype=np.float64)
    h = index - lo
    interp = (index > lo) & (at_hi != qs)
    qs[interp] = (1.0 - h[interp]) * qs[interp] + h[interp] * at_hi[interp]
    return qs


def knot_probs(n_interior: int) -> np.ndarray:
    """``seq.int(0, 1, length.out = n + 2)[-c(1, n + 2)]`` as R computes it: the
    probabilities of the interior knots' quantiles."""
    by = 1.0 / (n_interior + 1)
    return np.arange(1, n_interior + 1) * by


def interior_knot_count(kind: str, df: int, degree: int = 3, intercept: bool = False, warn: bool = True) -> int:
    """How many interior knots ``df`` asks of ``ns()`` (``kind="ns"``) or ``bs()``: R's
    ``df - 1 - intercept`` and ``df - degree - intercept``, at least 0.

    Warns:
        UserWarning: (``warn``) R's "'df' was too small; have used ..." when it is below 0.
    """
    base = 1 + int(intercept) if kind == "ns" else degree + int(intercept)
    if df - base >= 0:
        return df - base
    if warn:
        warnings.warn(f"'df' was too small; have used {base}", UserWarning, stacklevel=4)
    return 0


def single_value_boundary(value: float) -> tuple[float, float]:
    """The boundary knots ``ns()`` takes from the data when they hold one value v: R's ``v * c(7, 9) / 8``."""
    return float(value * 7 / 8), float(value * 9 / 8)


def _cursor(t: np.ndarray, x: np.ndarray, ord: int) -> tuple[np.ndarray, np.ndarray]:
    """R's ``set_cursor``: the first knot index with ``t[curs] > x`` (so the interval is
    ``[t[curs - 1], t[curs])``), and whether x is the right boundary knot, which belongs
    to the last interval."""
    nk = t.size
    curs = np.searchsorted(t, x, side="right")
    # No knot above x: R's loop leaves the cursor at the last knot equal to x.
    curs = np.where(curs >= nk, nk - 1, curs)
    last = nk - ord
    boundary = (curs > last) & (x == t[last])
    return np.where(boundary, last, curs), boundary


def _basis_values(t: np.ndarray, x: np.ndarray, curs: np.ndarray, ord: int) -> np.ndarray:
    """R's ``basis_funcs``: the ord B-splines nonzero on each point's interval, (n, ord)."""
    n = x.size
    ordm1 = ord - 1
    rdel = np.empty((n, ordm1))
    ldel = np.empty((n, ordm1))
    for i in range(ordm1):
        rdel[:, i] = t[curs + i] - x
        ldel[:, i] = x - t[curs - (i + 1)]
    b = np.zeros((n, ord))
    b[:, 0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(1, ord):
            saved = np.zeros(n)
            for r in range(j):
                den = rdel[:, r] + ldel[:, j - 1 - r]
                nonzero = den != 0
                term = np.where(nonzero, b[:, r] / np.where(nonzero, den, 1.0), 0.0)
                # R: where the denominator is 0, b[r] keeps its value only for r = 0 at a
                # zero right difference (an interval of zero width); else it takes saved.
                keep = (r == 0) & (rdel[:, r] == 0)
                b[:, r] = np.where(nonzero, saved + rdel[:, r] * term, np.where(keep, b[:, r], saved))
                saved = np.where(nonzero, ldel[:, j - 1 - r] * term, 0.0)
            b[:, j] = saved
    return b


def _basis_derivatives(t: np.ndarray, x: np.ndarray, curs: np.ndarray, boundary: np.ndarray,
                       ord: int, nder: int) -> np.ndarray:
    """R's ``evaluate`` for each of the ord B-splines of each point's interval, (n, ord):
    difference the unit coefficient vectors nder times, then de Boor's recurrence."""
    n = x.size
    a = np.broadcast_to(np.eye(ord), (n, ord, ord)).copy()  # a[i, ii, :]: coefficients of B-spline ii
    outer = ord - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(nder):
            for k in range(outer):
                den = t[curs + k] - t[curs - outer + k]  # R divides by zero here too (its FIXME)
                a[:, :, k] = outer * (a[:, :, k + 1] - a[:, :, k]) / den[:, None]
            outer -= 1
        rdel = np.empty((n, max(outer, 1)))
        ldel = np.empty((n, max(outer, 1)))
        for i in range(outer):
            rdel[:, i] = t[curs + i] - x
            ldel[:, i] = x - t[curs - (i + 1)]
        while outer:
            outer -= 1
            for idx in range(outer + 1):
                lp, rp = ldel[:, outer - idx], rdel[:, idx]
                a[:, :, idx] = ((a[:, :, idx + 1] * lp[:, None] + a[:, :, idx] * rp[:, None])
                                / (rp + lp)[:, None])
    out = a[:, :, 0]
    if nder == ord - 1:
        out[boundary] = 0.0  # R: at the right boundary this derivative "is arbitrary"
    return out


def spline_design(knots: npt.ArrayLike, x: npt.ArrayLike, ord: int = 4,
                  derivs: npt.ArrayLike = 0) -> np.ndarray:
    """R's ``splines::splineDesign(knots, x, ord, derivs)`` for x within the knots' range.

    Args:
        knots: the knot sequence (sorted here, as R sorts it).
        x: (n,) points in ``[knots[ord - 1], knots[-ord]]``.
        ord: the order (degree + 1).
        derivs: the derivative order at each point (recycled as R recycles it).

    Returns:
        (n, len(knots) - ord) matrix of the B-splines (or their derivatives) at x.

    Raises:
        ValueError: points outside the knots' range, or too few knots.
    """
    t = np.sort(np.asarray(knots, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    nk = t.size
    if ord < 1 or nk < 2 * ord - 1:
        raise ValueError(f"need at least 2*ord - 1 = {2 * ord - 1} knots")
    if np.any((x < t[ord - 1]) | (x > t[nk - ord])):
        raise ValueError(f"the values must be in the range {t[ord - 1]:g} to {t[nk - ord]:g}")
    ders = np.resize(np.asarray(derivs, dtype=np.int64), x.size)
    design = np.zeros((x.size, nk - ord))
    if not x.size:
        return design
    curs, boundary = _cursor(t, x, ord)
    values = np.empty((x.size, ord))
    for d in np.unique(ders):
        rows = ders == d
        if d == 0:
            values[rows] = _basis_values(t, x[rows], curs[rows], ord)
        else:
            values[rows] = _basis_derivatives(t, x[rows], curs[rows], boundary[rows], ord, int(d))
    cols = (curs - ord)[:, None] + np.arange(ord)
    design[np.arange(x.size)[:, None], cols] = values
    return design


def _linpack_qr(a: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, int]:
    """The Householder QR of R's ``qr()`` (LINPACK ``dqrdc2``) of a full-rank (m, p) matrix.

    Returns the reflection vectors (column l holds u_l in rows l:, its leading entry in
    qraux[l]), qraux and the rank. A column whose norm falls below ``tol`` times its
    original norm stops the factorization (R would pivot it to the end; for the
    constraints of ``ns()`` that means the knots are degenerate).
    """
    x = np.array(a, dtype=np.float64)
    m, p = x.shape
    qraux = np.linalg.norm(x, axis=0)
    original = np.where(qraux == 0, 1.0, qraux)
    rank = 0
    for l in range(min(m, p)):  # noqa: E741 - dqrdc2's names (l, nrmxl, qraux)
        if qraux[l] < original[l] * tol:
            break
        rank += 1
        if l == m - 1:
            break
        nrmxl = float(np.linalg.norm(x[l:, l]))
        if nrmxl == 0:
            continue
        if x[l, l] != 0:
            nrmxl = math.copysign(nrmxl, x[l, l])
        x[l:, l] /= nrmxl
        x[l, l] += 1.0
        for j in range(l + 1, p):
            tau = -float(np.dot(x[l:, l], x[l:, j])) / x[l, l]
            x[l:, j] += tau * x[l:, l]
            if qraux[j] != 0:
                tt = max(1.0 - (abs(x[l, j]) / qraux[j]) ** 2, 0.0)
                if abs(tt) < 1e-6:
                    qraux[j] = float(np.linalg.norm(x[l + 1:, j]))
                else:
                    qraux[j] *= math.sqrt(tt)
        qraux[l] = x[l, l]
        x[l, l] = -nrmxl
    return x, qraux, rank


def _qty_rows(qr: tuple[np.ndarray, np.ndarray, int], y: np.ndarray) -> np.ndarray:
    """``t(qr.qty(qr, t(y)))``: Q' applied to each row of y (LINPACK ``dqrsl``)."""
    x, qraux, rank = qr
    out = np.array(y, dtype=np.float64)
    for j in range(min(rank, x.shape[0] - 1)):
        if qraux[j] == 0:
            continue
        u = x[j:, j].copy()
        u[0] = qraux[j]
        tau = -(out[:, j:] @ u) / u[0]
        out[:, j:] += tau[:, None] * u
    return out


def _valid(x: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    x = np.asarray(x, dtype=np.float64)
    missing = np.isnan(x)
    if np.isinf(x).any():
        raise ValueError("the values must be finite")
    return (x[~missing], missing) if missing.any() else (x, None)


def _with_missing(basis: np.ndarray, missing: Optional[np.ndarray]) -> np.ndarray:
    if missing is None:
        return np.asfortranarray(basis)
    out = np.full((missing.size, basis.shape[1]), np.nan, order="F")
    out[~missing] = basis
    return out


def _boundary_and_outside(x: np.ndarray, boundary: Optional[Sequence[float]]
                          ) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """The boundary knots (given, sorted, or the range of x) and the values left and right
    of them (none when they are the range)."""
    if boundary is None:
        if not x.size:
            raise ValueError("no values to place the boundary knots at")
        none = np.zeros(x.size, dtype=bool)
        return (float(x.min()), float(x.max())), none, none
    if len(boundary) != 2:
        raise ValueError(f"Boundary.knots must be two numbers, not {len(boundary)}")
    lo, hi = sorted(float(b) for b in boundary)
    return (lo, hi), x < lo, x > hi


def _interior_knots(x: np.ndarray, outside: np.ndarray, n_interior: int) -> tuple[float, ...]:
    if n_interior <= 0:
        return ()
    inside = x[~outside]
    if not inside.size:
        raise ValueError("no values within the boundary knots to place the knots at")
    return tuple(float(k) for k in r_quantile(inside, knot_probs(n_interior)))


def _check_knots(knots: tuple[float, ...], boundary: tuple[float, float]) -> None:
    lo, hi = boundary
    if not lo < hi:
        raise ValueError(f"the boundary knots are equal ({lo:g}); the values need a range "
                         "(or give Boundary.knots)")
    bad = [k for k in knots if not lo <= k <= hi]
    if bad:
        raise ValueError(f"knots {list(bad)} are outside the boundary knots [{lo:g}, {hi:g}]")


def bs_basis(x: np.ndarray, df: Optional[int] = None, knots: Optional[Sequence[float]] = None,
             degree: int = 3, intercept: bool = False, boundary: Optional[Sequence[float]] = None
             ) -> tuple[np.ndarray, SplineBasis]:
    """R's ``splines::bs(x, df, knots, degree, intercept, Boundary.knots)``.

    Args:
        x: (n,) values; NaN gives a row of NaN (knots come from the other values).
        df: degrees of freedom: ``df - degree - (1 - intercept)`` interior knots at
            quantiles of x (ignored when ``knots`` is given).
        knots: the interior knots.
        degree: the polynomial degree (≥ 1).
        intercept: keep the first B-spline.
        boundary: the boundary knots; None: the range of x. Values beyond given
            boundary knots are extrapolated by the Taylor polynomial of the basis at a
            pivot a quarter of the way to the nearest knot, as R does.

    Returns:
        (n, k) basis (Fortran order) and what it learned.

    Raises:
        ValueError: infinite values, degree < 1, knots outside the boundary knots,
            boundary knots that are equal.

    Warns:
        UserWarning: R's warnings: "'df' was too small; have used ...", and "some 'x'
            values beyond boundary knots may cause ill-conditioned bases".
    """
    if degree < 1:
        raise ValueError("'degree' must be integer >= 1")
    ord = degree + 1
    xv, missing = _valid(x)
    bk, left, right = _boundary_and_outside(xv, boundary)
    outside = left | right
    if df is not None and knots is None:
        knots = _interior_knots(xv, outside, interior_knot_count("bs", df, degree, intercept))
    knots = tuple(float(k) for k in (knots or ()))
    _check_knots(knots, bk)
    aknots = np.sort(np.concatenate([np.repeat(bk, ord), knots]))
    if outside.any():
        warnings.warn("some 'x' values beyond boundary knots may cause ill-conditioned bases", UserWarning,
                      stacklevel=3)
        basis = np.zeros((xv.size, aknots.size - ord))
        scalef = np.array([math.factorial(d) for d in range(ord)], dtype=np.float64)
        e = 0.25
        for mask, pivot in ((left, (1 - e) * bk[0] + e * aknots[ord]),
                            (right, (1 - e) * bk[1] + e * aknots[aknots.size - ord - 1])):
            if mask.any():
                powers = np.power.outer(xv[mask] - pivot, np.arange(ord, dtype=np.float64))
                taylor = spline_design(aknots, np.full(ord, pivot), ord, np.arange(ord))
                basis[mask] = powers @ (taylor / scalef[:, None])
        inside = ~outside
        if inside.any():
            basis[inside] = spline_design(aknots, xv[inside], ord)
    else:
        basis = spline_design(aknots, xv, ord)
    if not intercept:
        basis = basis[:, 1:]
    return _with_missing(basis, missing), SplineBasis("bs", knots, bk, bool(intercept), degree)


def ns_basis(x: np.ndarray, df: Optional[int] = None, knots: Optional[Sequence[float]] = None,
             intercept: bool = False, boundary: Optional[Sequence[float]] = None
             ) -> tuple[np.ndarray, SplineBasis]:
    """R's ``splines::ns(x, df, knots, intercept, Boundary.knots)``: the natural cubic splines.

    The cubic B-splines whose second derivatives vanish at both boundary knots: R
    multiplies the basis by the trailing columns of Q from the QR of the constraint
    matrix, so the columns here are R's, signs included.

    Args:
        x: (n,) values; NaN gives a row of NaN (knots come from the other values).
        df: degrees of freedom: ``df - 1 - intercept`` interior knots at quantiles of x
            (ignored when ``knots`` is given).
        knots: the interior knots.
        intercept: keep the column that spans the constant.
        boundary: the boundary knots; None: the range of x (a single value v: R's
            ``v * c(7, 9) / 8``). Beyond given boundary knots the basis is linear (its
            value and slope at the boundary knot), without a warning, as in R.

    Returns:
        (n, k) basis (Fortran order) and what it learned.

    Raises:
        ValueError: infinite values, knots outside the boundary knots, equal boundary
            knots, knots that make the constraints degenerate.

    Warns:
        UserWarning: "'df' was too small; have used ..." as R.
    """
    xv, missing = _valid(x)
    if boundary is None and xv.size == 1:
        boundary_knots = single_value_boundary(float(xv[0]))
        left = right = np.zeros(1, dtype=bool)
    else:
        boundary_knots, left, right = _boundary_and_outside(xv, boundary)
    outside = left | right
    if df is not None and knots is None:
        knots = _interior_knots(xv, outside, interior_knot_count("ns", df, intercept=intercept))
    knots = tuple(float(k) for k in (knots or ()))
    _check_knots(knots, (min(boundary_knots), max(boundary_knots)))
    aknots = np.sort(np.concatenate([np.repeat(boundary_knots, 4), knots]))
    basis = np.zeros((xv.size, len(knots) + 4))
    for mask, pivot in ((left, boundary_knots[0]), (right, boundary_knots[1])):
        if mask.any():
            line = spline_design(aknots, [pivot, pivot], 4, [0, 1])  # value and slope at the knot
            basis[mask] = np.column_stack([np.ones(int(mask.sum())), xv[mask] - pivot]) @ line
    inside = ~outside
    if inside.any():
        basis[inside] = spline_design(aknots, xv[inside], 4)
    const = spline_design(aknots, list(boundary_knots), 4, [2, 2])
    if not intercept:
        const = const[:, 1:]
        basis = basis[:, 1:]
    if not np.isfinite(const).all():
        raise ValueError("the knots make the boundary constraints undefined (repeated knots)")
    qr = _linpack_qr(const.T)
    if qr[2] < 2:
        raise ValueError("the knots make the boundary constraints degenerate")
    basis = _qty_rows(qr, basis)[:, 2:]
    return _with_missing(basis, missing), SplineBasis("ns", knots, boundary_knots, bool(intercept), 3)
