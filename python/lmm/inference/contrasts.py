"""Tests of fixed-effect contrasts: coefficient tables, lmerTest's contest and anova tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.linalg import solve_triangular

from .anova_contrasts import anova_contrasts, check_type
from .kenward_roger import kr_adjust
from .satterthwaite import fstat_ddf, variance_and_df

__all__ = ["anova_table", "as_contrast", "check_ddf", "coef_table", "contrast_test"]

# The columns of an F table (lmerTest's contestMD and anova).
_F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def as_contrast(res, L) -> np.ndarray:
    """Contrasts as an (m, p) array from any form :meth:`LmmResult.test` accepts.

    Args:
        res: the fitted result (for the fixed effects' names).
        L: a vector or matrix with one column per fixed effect, a dict or Series
            {name: weight}, a DataFrame with fixed-effect columns, or a fixed-effect name.

    Raises:
        ValueError: unknown names, or the wrong number of columns.
    """
    names = list(res.fixef.index)
    if isinstance(L, pd.DataFrame):
        L = L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
    elif isinstance(L, pd.Series):
        L = L.reindex(names, fill_value=0.0).to_numpy(dtype=float)
    elif isinstance(L, dict):
        unknown = [k for k in L if k not in names]
        if unknown:
            raise ValueError(f"unknown fixed effects {unknown}; the fixed effects are {names}")
        L = np.array([float(L.get(k, 0.0)) for k in names])
    elif isinstance(L, str):
        if L not in names:
            raise ValueError(f"unknown fixed effect {L!r}; the fixed effects are {names}")
        L = np.eye(len(names))[names.index(L)]
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(names):
        raise ValueError(f"a contrast needs {len(names)} columns, one per fixed effect {names}; got {L.shape[1]}")
    return L


def check_ddf(ddf) -> str | None:
    """The canonical name of a df method: ``"Satterthwaite"``, ``"Kenward-Roger"`` or None.

    Raises:
        ValueError: an unknown method.
    """
    if ddf is None:
        return None
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    if key in ("satterthwaite", "satt"):
        return "Satterthwaite"
    if key in ("kenward-roger", "kr", "kenwardroger"):
        return "Kenward-Roger"
    if key in ("none", "wald", "lme4", "asymptotic"):
        return None
    raise ValueError(f"unknown ddf {ddf!r}; use 'Satterthwaite', 'Kenward-Roger' or None")


def coef_table(res, ddf: str | None = "Satterthwaite") -> pd.DataFrame:
    """Fixed-effects table: Estimate, Std. Error, df, t value, Pr(>|t|) (lmerTest's summary).

    With ``ddf=None`` the df and p columns are left out (lme4's summary). Kenward–Roger
    uses the adjusted standard errors, as lmerTest does.

    Args:
        res: the fitted result.
        ddf: ``"Satterthwaite"``, ``"Kenward-Roger"`` or None.

    Returns:
        DataFrame indexed by fixed effect.
    """
    method = check_ddf(ddf)
    names = list(res.model.design.xnames)
    beta = np.array(res.solution.beta)
    if method is None:
        se = res.se.to_numpy()
        return pd.DataFrame({"Estimate": beta, "Std. Error": se, "t value": beta / se}, index=names)
    rows = []
    for j in range(len(names)):
        L = np.eye(len(names))[j]
        rows.append(_contrast_var_df(res, L, method))
    se = np.sqrt([r[0] for r in rows])
    df = np.array([r[1] for r in rows])
    t = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": _two_sided_p(t, df)}, index=names)


def _two_sided_p(t, df):
    """Pr(>|t|) of Student's t with ``df`` (scipy's t.sf without its distribution
    machinery's ~50 µs a call: the summary's p column)."""
    return 2 * special.stdtr(df, -np.abs(t))


def _contrast_var_df(res, L: np.ndarray, method: str) -> tuple[float, float]:
    if method == "Satterthwaite":
        return variance_and_df(res.satterthwaite(), L)
    kr = res.kenward_roger()
    return float(L @ kr.phi_adj @ L), kr_adjust(kr, L[None, :])["ddf"]


def contrast_test(res, L, rhs=0.0, ddf: str | None = "Satterthwaite", joint: bool = True) -> pd.DataFrame:
    """Test L β = rhs: one F test over the rows (``joint=True``, lmerTest's contestMD) or a t test per row.

    Args:
        res: the fitted result.
        L: contrasts in any form :func:`as_contrast` accepts.
        rhs: right-hand side(s).
        ddf: ``"Satterthwaite"`` (also for None) or ``"Kenward-Roger"``.
        joint: one F test of all rows, or a t test per row.

    Returns:
        DataFrame: with ``joint``, one row with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F);
        otherwise one row per contrast with Estimate, Std. Error, df, t value, Pr(>|t|).
    """
    method = check_ddf(ddf) or "Satterthwaite"
    L = as_contrast(res, L)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],)).copy()
    beta = res.fixef.to_numpy()
    if not joint:
        rows = []
        for i in range(L.shape[0]):
            var, df = _contrast_var_df(res, L[i], method)
            est = float(L[i] @ beta)
            t = (est - rhs[i]) / math.sqrt(var)
            rows.append((est, math.sqrt(var), df, t, float(_two_sided_p(t, df))))
        return pd.DataFrame(rows, columns=["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"])
    row = _contest_md(res, L, rhs, method)
    return pd.DataFrame([row if row is not None else (np.nan,) * len(_F_COLUMNS)], columns=_F_COLUMNS)


def _ftable_row(F: float, ndf: float, ddf: float, sigma: float, scale: float = 1.0) -> tuple:
    ms = F * sigma**2
    Fs = F * scale
    return (ms * ndf, ms, ndf, ddf, Fs, float(stats.f.sf(Fs, ndf, ddf)))


def _contest_md(res, L: np.ndarray, rhs: np.ndarray, method: str) -> tuple | None:
    """lmerTest's ``contestMD``: one F-table row, or None when L has no testable direction."""
    beta = res.fixef.to_numpy()
    sigma = res.sigma
    if method == "Kenward-Roger":
        kr = res.kenward_roger()
        betaH = np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else np.zeros_like(beta)
        # pbkrtest tests a basis of L's rows when L is rank deficient (force_full_rank);
        # its statistics depend only on the row space, so any basis gives them.
        _, sv, Vt = np.linalg.svd(L, full_matrices=False)
        q = int(np.sum(sv > sv[0] * max(L.shape) * np.finfo(float).eps))
        if q == 0:
            return None
        if q < L.shape[0]:
            L = Vt[:q]
        adj = kr_adjust(kr, L)
        d = L @ (beta - betaH)
        wald = float(d @ np.linalg.solve(L @ kr.phi_adj @ L.T, d))
        return _ftable_row(wald / adj["q"], adj["q"], adj["ddf"], sigma, adj["F.scaling"])
    if L.shape[0] == 1:
        var, df = variance_and_df(res.satterthwaite(), L[0])
        t = (float(L[0] @ beta) - rhs[0]) / math.sqrt(var)
        return _ftable_row(t * t, 1, df, sigma)
    s = res.satterthwaite()
    if np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L) @ rhs
    V = L @ s.vcov_beta @ L.T
    d, P = np.linalg.eigh(V)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return None
    PtL = (P.T @ L)[:q]
    if q == 1:
        var, df = variance_and_df(s, PtL[0])
        t = float(PtL[0] @ beta) / math.sqrt(var)
        return _ftable_row(t * t, 1, df, sigma)
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = np.empty(q)
    for m in range(q):
        grad = np.array([float(PtL[m] @ J @ PtL[m]) for J in s.working_jacobian])
        nu[m] = 2 * d[m] ** 2 / float(grad @ s.working_vcov_varpar @ grad)
    return _ftable_row(F, q, fstat_ddf(nu), sigma)


def anova_table(res, type=3, ddf: str | None = "Satterthwaite") -> pd.DataFrame:
    """F tests of the fixed-effects terms, as lmerTest's ``anova(fit, type, ddf)``.

    Each term's contrast comes from :func:`~.anova_contrasts.anova_contrasts` and is
    tested as lmerTest's ``contestMD`` does. A term without a testable contrast (all its
    columns aliased) gets a row of NaN after the others, as in lmerTest. ``ddf="lme4"``
    (or None) gives lme4's table instead, whatever the type: sequential sums of squares
    ``(R_X β)²`` per term, with npar, Sum Sq, Mean Sq and F value and no df.

    Args:
        res: the fitted result.
        type: 1, 2 or 3 (or ``"I"``, ``"II"``, ``"III"``).
        ddf: ``"Satterthwaite"``, ``"Kenward-Roger"`` (REML fits) or ``"lme4"``/None.

    Returns:
        DataFrame indexed by term with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).

    Raises:
        ValueError: an unknown type or ddf.
    """
    kind = check_type(type)
    method = check_ddf(ddf)
    if method is None:
        return _lme4_anova(res)
    rows, names, untested = [], [], []
    for label, L in anova_contrasts(res, kind).items():
        row = _contest_md(res, L, np.zeros(L.shape[0]), method) if L.shape[0] else None
        if row is None:
            untested.append(label)
        else:
            rows.append(row)
            names.append(label)
    rows += [(np.nan,) * len(_F_COLUMNS)] * len(untested)
    return pd.DataFrame(rows, index=names + untested, columns=_F_COLUMNS)


def _lme4_anova(res) -> pd.DataFrame:
    """lme4's ``anova(fit)`` of one model: per term the sum of (R_X β̂)² over its columns.

    R_X is the upper triangular factor with Var(β̂) = σ² (R_X'R_X)⁻¹; from Var(β̂) reversed
    (J V J = G G', G lower triangular), R_X⁻¹ = J G J / σ.
    """
    info = res.fixed_terms()
    beta = res.fixef.to_numpy()
    V = np.asarray(res.solution.vcov)
    rev = slice(None, None, -1)
    G = np.linalg.cholesky(V[rev, rev])
    ss = (res.sigma * solve_triangular(G[rev, rev], beta, lower=False)) ** 2
    assign = np.asarray(info.assign)
    rows, names = [], []
    for k, label in enumerate(info.labels):
        cols = assign == k + 1
        if cols.any():
            npar = int(cols.sum())
            total = float(ss[cols].sum())
            rows.append((npar, total, total / npar, total / npar / res.sigma**2))
            names.append(label)
    return pd.DataFrame(rows, index=names, columns=["npar", "Sum Sq", "Mean Sq", "F value"])
