"""Richardson-extrapolated numerical derivatives exactly as R's numDeriv (Hessian and Jacobian)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["hessian_richardson", "jacobian_richardson"]

_ND_EPS = 1e-4
_ND_ZERO_TOL = math.sqrt(np.finfo(float).eps / 7e-7)


def _nd_step(x: np.ndarray, d: float) -> np.ndarray:
    return np.abs(d * x) + _ND_EPS * (np.abs(x) < _ND_ZERO_TOL)


def hessian_richardson(f: Callable[[np.ndarray], float], x: np.ndarray, r: int = 4) -> np.ndarray:
    """Hessian of a scalar function as R's ``numDeriv::hessian`` (genD, Richardson, d = 0.1).

    Args:
        f: the function.
        x: the point.
        r: number of Richardson steps (halvings of the step).

    Returns:
        The n × n Hessian.

    Example:
        >>> import numpy as np
        >>> hessian_richardson(lambda v: v[0] ** 2 * v[1], np.array([1.0, 2.0])).round(8).tolist()
        [[4.0, 2.0], [2.0, 0.0]]
    """
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


def jacobian_richardson(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, r: int = 4,
                        f0: np.ndarray | None = None) -> np.ndarray:
    """Jacobian (len(f) × len(x)) as R's ``numDeriv::jacobian`` (Richardson, d = 1e-4).

    Args:
        f: the vector-valued function.
        x: the point.
        r: number of Richardson steps.
        f0: f(x) when the caller has it (central differences need only its size; an
            expensive f is then not evaluated at x).

    Returns:
        The Jacobian.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    f0 = np.asarray(f(x) if f0 is None else f0, dtype=np.float64).reshape(-1)
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
