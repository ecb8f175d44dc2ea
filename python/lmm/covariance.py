"""Covariance parameters: θ ↔ λ per term, and λ → variances, standard deviations, correlations.

The one owner of the θ layout and of the variance components. Each random-effects term
has a p × p lower-triangular relative factor λ (Σ = σ² λλ'); θ lists its free entries in
lme4's order. Everything that turns θ or λ into numbers a user reads (``VarCorr``,
summary, tidy, lme4's ``.sig01`` parameters of profiles and bootstraps) goes through
this module, and every read of the θ layout goes through :func:`theta_positions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import _core as core
from .design import ReTerm

__all__ = [
    "Component",
    "components",
    "lambdas_from_theta",
    "make_unique",
    "sdcor_to_theta",
    "theta_from_lambdas",
    "theta_names",
    "theta_positions",
    "theta_to_sdcor",
    "varcorr_frame",
    "varpar_names",
]


def theta_positions(term: ReTerm) -> list[tuple[int, int]]:
    """(row, column) of λ for each θ entry of ``term``, in lme4's θ order, from the core
    (the owner of each structure's parameterization).

    Args:
        term: a random-effects term.

    Returns:
        The diagonal for a diagonal λ, else the lower triangle column by column.
    """
    structure = "diag" if term.diagonal else "us"
    return [(int(i), int(j)) for i, j in core.theta_positions(term.p, structure)]


def theta_names(terms: Sequence[ReTerm]) -> list[str]:
    """lme4's names of θ: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ...

    Args:
        terms: the model's random-effects terms in model order.
    """
    return [f"{t.name}.{t.cnames[i]}" if i == j else f"{t.name}.{t.cnames[i]}.{t.cnames[j]}"
            for t in terms for i, j in theta_positions(t)]


def varpar_names(terms: Sequence[ReTerm]) -> list[str]:
    """lme4's names of the sd/cor parameters (``.sig01``, ...) followed by ``.sigma``.

    Args:
        terms: the model's random-effects terms in model order.
    """
    k = sum(len(theta_positions(t)) for t in terms)
    return [f".sig{i + 1:02d}" for i in range(k)] + [".sigma"]


def lambdas_from_theta(theta: np.ndarray, terms: Sequence[ReTerm]) -> list[np.ndarray]:
    """Per term, λ (p × p lower triangular) from θ in lme4's order.

    Args:
        theta: relative covariance parameters.
        terms: the terms in model order.
    """
    theta = np.asarray(theta, dtype=np.float64)
    out, off = [], 0
    for t in terms:
        lam = np.zeros((t.p, t.p))
        for i, j in theta_positions(t):
            lam[i, j] = theta[off]
            off += 1
        out.append(lam)
    return out


def theta_from_lambdas(lams: Sequence[np.ndarray], terms: Sequence[ReTerm]) -> np.ndarray:
    """θ in lme4's order from the per-term λ (inverse of :func:`lambdas_from_theta`)."""
    return np.asarray([lam[i, j] for t, lam in zip(terms, lams) for i, j in theta_positions(t)], dtype=np.float64)


def make_unique(names: list[str]) -> list[str]:
    """R's make.unique: later duplicates get .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


@dataclass(frozen=True)
class Component:
    """One block of lme4's ``VarCorr``: a term, or one column of a diagonal term.

    Attributes:
        group: lme4's group name, made unique (``Subject``, ``Subject.1``).
        names: names of the block's columns.
        cov: covariance matrix σ² λλ' of the block (P × P).
        sd: standard deviations (P,).
        corr: correlations (P × P; NaN where a standard deviation is 0).
    """

    group: str
    names: list[str]
    cov: np.ndarray
    sd: np.ndarray
    corr: np.ndarray


def components(terms: Sequence[ReTerm], lambdas: Sequence[np.ndarray], sigma: float) -> list[Component]:
    """The variance components of a fit, as lme4's ``VarCorr`` lists them.

    Args:
        terms: the terms in model order.
        lambdas: per term, its λ.
        sigma: residual standard deviation.

    Returns:
        One component per term, one per column for a diagonal term, in model order.

    Example:
        >>> import lmm
        >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> components(res.model.terms, res.solution.lambdas, res.sigma)[0].sd.round(2).tolist()
        [24.74, 5.92]
    """
    pieces = []
    for t, lam in zip(terms, lambdas):
        blocks = [[j] for j in range(t.p)] if t.diagonal else [list(range(t.p))]
        pieces += [(t, lam, cols) for cols in blocks]
    groups = make_unique([t.name for t, _, _ in pieces])
    out = []
    for group, (t, lam, cols) in zip(groups, pieces):
        L = lam[np.ix_(cols, cols)]
        cov = sigma**2 * (L @ L.T)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(np.outer(sd, sd) > 0, cov / np.outer(sd, sd), np.nan)
        out.append(Component(group=group, names=[t.cnames[j] for j in cols], cov=cov, sd=sd, corr=corr))
    return out


def varcorr_frame(terms: Sequence[ReTerm], lambdas: Sequence[np.ndarray], sigma: float) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))``: columns grp, var1, var2, vcov, sdcor.

    Args:
        terms: the terms in model order.
        lambdas: per term, its λ.
        sigma: residual standard deviation.
    """
    rows = []
    for c in components(terms, lambdas, sigma):
        for i, name in enumerate(c.names):
            rows.append((c.group, name, None, c.cov[i, i], c.sd[i]))
        for j in range(len(c.names)):
            for i in range(j + 1, len(c.names)):
                rows.append((c.group, c.names[j], c.names[i], c.cov[i, j], c.corr[i, j]))
    rows.append(("Residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def theta_to_sdcor(theta: np.ndarray, sigma: float, terms: Sequence[ReTerm]) -> np.ndarray:
    """θ and σ → standard deviations and correlations in θ's order (lme4's ``Cv_to_Sv``), then σ.

    Args:
        theta: relative covariance parameters.
        sigma: residual standard deviation.
        terms: the terms in model order.

    Returns:
        Array of length ``len(theta) + 1``, named by :func:`varpar_names`.
    """
    out = []
    for c in components(terms, lambdas_from_theta(theta, terms), sigma):
        for j in range(len(c.names)):
            for i in range(j, len(c.names)):
                out.append(c.sd[i] if i == j else c.corr[i, j])
    out.append(sigma)
    return np.asarray(out, dtype=np.float64)


def sdcor_to_theta(pars: np.ndarray, terms: Sequence[ReTerm]) -> np.ndarray | None:
    """Inverse of :func:`theta_to_sdcor` (lme4's ``Sv_to_Cv``).

    Args:
        pars: standard deviations and correlations in θ's order, then σ.
        terms: the terms in model order.

    Returns:
        θ, or None when σ is not positive or a correlation matrix is not positive semi-definite.
    """
    sigma = pars[-1]
    if not sigma > 0:
        return None
    lams, off = [], 0
    for t in terms:
        p = t.p
        if t.diagonal:
            lams.append(np.diag(pars[off:off + p]) / sigma)
            off += p
            continue
        sd = np.zeros(p)
        corr = np.eye(p)
        for i, j in theta_positions(t):
            if i == j:
                sd[i] = pars[off]
            else:
                corr[i, j] = corr[j, i] = pars[off]
            off += 1
        chol = _psd_cholesky(corr)
        if chol is None:
            return None
        lams.append((sd[:, None] * chol) / sigma)
    return theta_from_lambdas(lams, terms)


def _psd_cholesky(c: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a correlation matrix that may be singular (|r| = 1)."""
    p = c.shape[0]
    L = np.zeros((p, p))
    for j in range(p):
        d = c[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10:
            return None
        L[j, j] = math.sqrt(max(d, 0.0))
        for i in range(j + 1, p):
            v = c[i, j] - L[i, :j] @ L[j, :j]
            if L[j, j] > 1e-12:
                L[i, j] = v / L[j, j]
            elif abs(v) > 1e-8:
                return None
    return L
