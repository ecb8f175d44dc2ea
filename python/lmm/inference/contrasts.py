"""Tests of fixed-effect contrasts: coefficient tables, lmerTest's contest and type III anova."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .kenward_roger import kr_adjust
from .satterthwaite import fstat_ddf, variance_and_df

__all__ = ["anova_type3", "as_contrast", "check_ddf", "coef_table", "contrast_test", "type3_contrasts"]


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
    names = list(res.fixef.index)
    beta = res.fixef.to_numpy()
    if method is None:
        se = res.se.to_numpy()
        return pd.DataFrame({"Estimate": beta, "Std. Error": se, "t value": beta / se}, index=names)
    rows = []
    for j in range(len(names)):
        L = np.eye(len(names))[j]
        var, df = _contrast_var_df(res, L, method)
        rows.append((var, df))
    se = np.sqrt([r[0] for r in rows])
    df = np.array([r[1] for r in rows])
    t = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)}, index=names)


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
            rows.append((est, math.sqrt(var), df, t, 2 * stats.t.sf(abs(t), df)))
        return pd.DataFrame(rows, columns=["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"])
    return pd.DataFrame([_contest_md(res, L, rhs, method)],
                        columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])


def _ftable_row(F: float, ndf: float, ddf: float, sigma: float, scale: float = 1.0) -> tuple:
    ms = F * sigma**2
    Fs = F * scale
    return (ms * ndf, ms, ndf, ddf, Fs, float(stats.f.sf(Fs, ndf, ddf)))


def _contest_md(res, L: np.ndarray, rhs: np.ndarray, method: str) -> tuple:
    beta = res.fixef.to_numpy()
    sigma = res.sigma
    if method == "Kenward-Roger":
        kr = res.kenward_roger()
        betaH = np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else np.zeros_like(beta)
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


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(math.ceil(math.log10(mx)))))


def type3_contrasts(res) -> dict[str, np.ndarray]:
    """Contrast matrices of lmerTest's type III tests, one per fixed-effects term.

    For a term contained in no other term (every term of a main-effects model, the
    highest-order interactions) the contrast selects the term's columns, as lmerTest's.
    A term contained in others (its variables a subset of theirs, with the same numeric
    variables: ``Days`` in ``Days:f``, ``A`` in ``A:B``, not ``f`` in ``Days:f``) gets
    lmerTest's contrast (``extract_contrasts_type3``): the rows of ginv(X) rdX, with rdX
    the design with every factor coded by indicators of all levels, orthogonalized
    against the contrasts of the terms containing it, highest-order terms first.

    Args:
        res: the fitted result.

    Returns:
        dict term label → its contrast matrix (rows × fixed effects).

    Raises:
        NotImplementedError: a term inside an interaction with other than treatment contrasts.
    """
    info = res.fixed_terms()
    labels, bits, assign, state = info.labels, info.bits, info.assign, info.state
    p = len(res.fixef)
    cols = [[j for j, a in enumerate(assign) if a == k + 1] for k in range(len(labels))]
    num = state.numeric_bits()

    def contains(a: int, b: int) -> bool:  # lmerTest's term_contain: term a inside term b
        return a != b and (a & ~b) == 0 and (a & num) == (b & num)

    containing = [[m for m, b in enumerate(bits) if contains(a, b)] for a in bits]
    if not any(containing[k] and cols[k] for k in range(len(labels))):
        return {label: np.eye(p)[cols[k]] for k, label in enumerate(labels) if cols[k]}

    X = res.model.design.X
    names = list(res.fixef.index)
    rdX, rdnames, _ = state.complete_design()
    pos = {name: j for j, name in enumerate(rdnames)}
    rows = [pos.get(name, -1) for name in names]
    if (X.shape[1] != p or -1 in rows or rdX.shape[0] != X.shape[0]
            or not np.allclose(rdX[:, rows], X, rtol=1e-12, atol=1e-12)):
        raise NotImplementedError(
            "the type III test of a term contained in an interaction is implemented for treatment "
            "contrasts of the factors only; test the higher-order terms, or a contrast with res.test(L)")
    L = _zapsmall(np.linalg.pinv(X) @ rdX).T  # rows: columns of rdX, columns: fixed effects
    order = sorted(range(len(labels)), key=lambda k: -bin(bits[k]).count("1"))  # stable, as R's order()
    for k in order:
        if not containing[k] or not cols[k]:
            continue
        other = [j for m in containing[k] for j in cols[m]]
        A, Y = L[:, other], L[:, cols[k]]
        coef = np.linalg.lstsq(A, Y, rcond=None)[0] if other else np.zeros((0, len(cols[k])))
        L[:, cols[k]] = _zapsmall(Y - A @ coef)
    L = L[rows]
    out: dict[str, np.ndarray] = {}
    for k, label in enumerate(labels):
        if not cols[k]:
            continue
        C = L[:, cols[k]].T
        out[label] = C[np.sum(np.abs(C), axis=1) > 1e-8]
    return out


def anova_type3(res, ddf: str | None = "Satterthwaite") -> pd.DataFrame:
    """Type III F tests of the fixed-effects terms, as lmerTest's ``anova(fit)``.

    Args:
        res: the fitted result.
        ddf: ``"Satterthwaite"`` (also for None) or ``"Kenward-Roger"``.

    Returns:
        DataFrame indexed by term with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).
    """
    method = check_ddf(ddf) or "Satterthwaite"
    rows, names = [], []
    for label, L in type3_contrasts(res).items():
        rows.append(_contest_md(res, L, np.zeros(L.shape[0]), method))
        names.append(label)
    return pd.DataFrame(rows, index=names, columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"])
