"""Covariance parameters: θ ↔ λ per term, and λ → variances, standard deviations, correlations.

The one owner of the θ layout and of the variance components. Each random-effects term
has a p × p lower-triangular relative factor λ (Σ = σ² λλ'). θ is the vector the core's
parameterization of each term's structure reads: for ``us`` and ``diag`` terms the free
entries of λ in lme4's order; for lme4 2.x's structured terms (``cs``, ``ar1``, ``diag``
with ``hom = TRUE``, and ``toep``) lme4 2.x's ``par``: standard deviations relative to σ,
then correlation parameters. Everything that turns θ or λ into numbers a user reads
(``VarCorr``, summary, tidy, lme4's ``.sig01`` parameters of profiles and bootstraps)
goes through this module, and every read of the θ layout goes through the core.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from . import _core as core
from .design import ReTerm

__all__ = [
    "Component",
    "components",
    "lambdas_from_theta",
    "is_entry_structure",
    "lme4_theta",
    "lme4_theta_names",
    "make_unique",
    "ntheta",
    "sdcor_to_theta",
    "theta_from_lambdas",
    "theta_names",
    "theta_positions",
    "theta_to_sdcor",
    "varcorr_frame",
    "varpar_names",
]


@functools.lru_cache(maxsize=256)
def _parameterization(p: int, structure: str) -> dict:
    return core.parameterization(p, structure)


def is_entry_structure(term: ReTerm) -> bool:
    """True when the term's θ entries are entries of λ (``us`` and ``diag``: θ is lme4's θ)."""
    return not term.structured


def ntheta(term: ReTerm) -> int:
    """Number of θ entries of the term (its structure's parameter count)."""
    return int(_parameterization(term.p, term.structure)["ntheta"])


def _nsd(term: ReTerm) -> int:
    """Number of standard deviations leading a structured term's θ (those bounded below by 0)."""
    return int(np.sum(np.asarray(_parameterization(term.p, term.structure)["lower"]) == 0.0))


def theta_positions(term: ReTerm) -> list[tuple[int, int]]:
    """(row, column) of λ for each θ entry of ``term``, in lme4's θ order, from the core
    (the owner of each structure's parameterization).

    Args:
        term: a random-effects term.

    Returns:
        The diagonal for a diagonal λ, else the lower triangle column by column; empty for
        structured terms, whose θ entries are not entries of λ.
    """
    return [(int(i), int(j)) for i, j in core.theta_positions(term.p, term.structure)]


def _par_names(t: ReTerm) -> list[str]:
    """lme4 2.x's names of a structured term's par (``Subject.Days``, ``Subject.*``, ``Subject.rho``)."""
    nsd = _nsd(t)
    sds = [f"{t.name}.{c}" for c in t.cnames] if nsd == t.p else [f"{t.name}.*"]
    nc = ntheta(t) - nsd
    corr = [f"{t.name}.rho"] if nc == 1 and not t.structure.startswith("toep") else \
        [f"{t.name}.pacf{k + 1}" for k in range(nc)]
    return sds + corr


def theta_names(terms: Sequence[ReTerm]) -> list[str]:
    """lme4's names of θ: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ...;
    lme4 2.x's par names for structured terms (``Subject.Days``, ``Subject.rho``).

    Args:
        terms: the model's random-effects terms in model order.
    """
    out: list[str] = []
    for t in terms:
        if is_entry_structure(t):
            out += [f"{t.name}.{t.cnames[i]}" if i == j else f"{t.name}.{t.cnames[i]}.{t.cnames[j]}"
                    for i, j in theta_positions(t)]
        else:
            out += _par_names(t)
    return out


def varpar_names(terms: Sequence[ReTerm]) -> list[str]:
    """lme4's names of the sd/cor parameters (``.sig01``, ...) followed by ``.sigma``.

    Args:
        terms: the model's random-effects terms in model order.
    """
    k = sum(ntheta(t) for t in terms)
    return [f".sig{i + 1:02d}" for i in range(k)] + [".sigma"]


def lambdas_from_theta(theta: np.ndarray, terms: Sequence[ReTerm]) -> list[np.ndarray]:
    """Per term, λ (p × p lower triangular) from θ, by the core's parameterization.

    Args:
        theta: relative covariance parameters.
        terms: the terms in model order.
    """
    theta = np.asarray(theta, dtype=np.float64)
    out, off = [], 0
    for t in terms:
        k = ntheta(t)
        out.append(np.asarray(core.theta_to_lambda(t.p, t.structure, theta[off:off + k])))
        off += k
    return out


def theta_from_lambdas(lams: Sequence[np.ndarray], terms: Sequence[ReTerm]) -> np.ndarray:
    """θ in lme4's order from the per-term λ (inverse of :func:`lambdas_from_theta`; ``us``
    and ``diag`` terms only)."""
    if not all(is_entry_structure(t) for t in terms):
        raise NotImplementedError("θ from λ is defined for us and diag terms only")
    return np.asarray([lam[i, j] for t, lam in zip(terms, lams) for i, j in theta_positions(t)], dtype=np.float64)


def _lme4_theta_positions(t: ReTerm) -> list[tuple[int, int]]:
    """(row, col) of λ for each entry of lme4's θ of a term: the lower triangle column by
    column, or only the distinct entries where the structure repeats them (as lme4 2.x
    stores them): the diagonal of ``diag``, λ[0, 0] of ``diag_hom``, the diagonal and
    first subdiagonal entry of each column for ``cs_hom``, the first two columns for ``ar1``."""
    p = t.p
    if t.structure == "diag":
        return [(j, j) for j in range(p)]
    if t.structure == "diag_hom":
        return [(0, 0)]
    if t.structure == "cs_hom":
        return [pos for j in range(p) for pos in ([(j, j), (j + 1, j)] if j + 1 < p else [(j, j)])]
    if t.structure == "ar1":
        return [(i, j) for j in range(min(2, p)) for i in range(j, p)]
    return [(i, j) for j in range(p) for i in range(j, p)]


def lme4_theta_names(terms: Sequence[ReTerm]) -> list[str]:
    """Names of :func:`lme4_theta`'s entries: :func:`theta_names` for us and diag terms, λ's
    entries (``Subject.Days.(Intercept)``) for structured ones."""
    out: list[str] = []
    for t in terms:
        if is_entry_structure(t):
            out += theta_names([t])
        else:
            out += [f"{t.name}.{t.cnames[i]}" if i == j else f"{t.name}.{t.cnames[i]}.{t.cnames[j]}"
                    for i, j in _lme4_theta_positions(t)]
    return out


def lme4_theta(theta: np.ndarray, terms: Sequence[ReTerm]) -> np.ndarray:
    """lme4's ``getME(fit, "theta")``: the entries of each term's λ that its structure does
    not repeat (see :func:`_lme4_theta_positions`); equal to θ for us and diag terms."""
    return np.asarray([lam[i, j] for t, lam in zip(terms, lambdas_from_theta(theta, terms))
                       for i, j in _lme4_theta_positions(t)], dtype=np.float64)


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
    """One block of lme4's ``VarCorr``: a term, or one column of a ``||`` term.

    Attributes:
        group: lme4's group name, made unique (``Subject``, ``Subject.1``).
        names: names of the block's columns.
        cov: covariance matrix σ² λλ' of the block (P × P).
        sd: standard deviations (P,).
        corr: correlations (P × P; NaN where a standard deviation is 0).
        structure: the term's covariance structure (``"us"``, ``"cs"``, ...).
    """

    group: str
    names: list[str]
    cov: np.ndarray
    sd: np.ndarray
    corr: np.ndarray
    structure: str = "us"


def components(terms: Sequence[ReTerm], lambdas: Sequence[np.ndarray], sigma: float) -> list[Component]:
    """The variance components of a fit, as lme4's ``VarCorr`` lists them.

    Args:
        terms: the terms in model order.
        lambdas: per term, its λ.
        sigma: residual standard deviation.

    Returns:
        One component per term, one per column for the merged pieces of a ``||`` term, in model order.

    Example:
        >>> import lmm
        >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> components(res.model.terms, res.solution.lambdas, res.sigma)[0].sd.round(2).tolist()
        [24.74, 5.92]
    """
    pieces = []
    for t, lam in zip(terms, lambdas):
        blocks = [[j] for j in range(t.p)] if t.double_bar else [list(range(t.p))]
        pieces += [(t, lam, cols) for cols in blocks]
    groups = make_unique([t.name for t, _, _ in pieces])
    out = []
    for group, (t, lam, cols) in zip(groups, pieces):
        L = lam[np.ix_(cols, cols)]
        cov = sigma**2 * (L @ L.T)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(np.outer(sd, sd) > 0, cov / np.outer(sd, sd), np.nan)
        out.append(Component(group=group, names=[t.cnames[j] for j in cols], cov=cov, sd=sd, corr=corr,
                             structure=t.structure))
    return out


def varcorr_frame(terms: Sequence[ReTerm], lambdas: Sequence[np.ndarray], sigma: float) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))``: columns grp, var1, var2, vcov, sdcor.

    Args:
        terms: the terms in model order.
        lambdas: per term, its λ.
        sigma: residual standard deviation.
    """
    rows: list[tuple[str, Optional[str], Optional[str], float, float]] = []
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

    For structured terms: their SDs (relative SDs times σ) and correlation parameters.

    Args:
        theta: relative covariance parameters.
        sigma: residual standard deviation.
        terms: the terms in model order.

    Returns:
        Array of length ``len(theta) + 1``, named by :func:`varpar_names`.
    """
    theta = np.asarray(theta, dtype=np.float64)
    out: list[float] = []
    off = 0
    for t in terms:
        k = ntheta(t)
        if is_entry_structure(t):
            for c in components([t], lambdas_from_theta(theta[off:off + k], [t]), sigma):
                for j in range(len(c.names)):
                    for i in range(j, len(c.names)):
                        if t.structure == "diag" and i != j:
                            continue
                        out.append(c.sd[i] if i == j else c.corr[i, j])
        else:
            nsd = _nsd(t)
            out += list(np.abs(theta[off:off + nsd]) * sigma) + list(theta[off + nsd:off + k])
        off += k
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
    out: list[np.ndarray] = []
    off = 0
    for t in terms:
        p, k = t.p, ntheta(t)
        if not is_entry_structure(t):
            nsd = _nsd(t)
            out.append(np.concatenate([pars[off:off + nsd] / sigma, pars[off + nsd:off + k]]))
        elif t.structure == "diag":
            out.append(np.asarray(pars[off:off + p]) / sigma)
        else:
            sd = np.zeros(p)
            corr = np.eye(p)
            for m, (i, j) in enumerate(theta_positions(t)):
                if i == j:
                    sd[i] = pars[off + m]
                else:
                    corr[i, j] = corr[j, i] = pars[off + m]
            chol = _psd_cholesky(corr)
            if chol is None:
                return None
            lam = (sd[:, None] * chol) / sigma
            out.append(np.asarray([lam[i, j] for i, j in theta_positions(t)]))
        off += k
    return np.concatenate(out) if out else np.zeros(0)


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
