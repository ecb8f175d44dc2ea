"""From a parsed formula and a data frame to the arrays the core needs.

The design holds the response ``y``, the fixed-effects model matrix ``X`` and,
per random-effects term, the level codes of its grouping factor and the
columns ``z`` of its own model matrix (n × p_k). The random-effects matrix Z is
never formed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .formula import (
    ParsedFormula,
    RandomTerm,
    check_columns,
    evaluate_response,
    grouping_factor,
    model_matrix,
    required_columns,
)

__all__ = ["Design", "ReTerm", "build_design"]

# Relative tolerance of the rank test on X, as lme4's default (chkRank.drop.cols).
RANK_TOL = 1e-7


@dataclass
class ReTerm:
    """One random-effects term: grouping factor codes and its z columns.

    Attributes:
        name: lme4's group name (``"Subject"``, ``"cask:batch"``).
        factors: data columns whose interaction is the grouping factor.
        cnames: names of the columns of ``z`` (``["(Intercept)", "Days"]``).
        codes: int32 level code per row, in ``[0, nlevels)``.
        levels: level labels (``levels[codes[i]]`` is row i's level).
        z: float64 (n, p) Fortran-ordered columns of the term's model matrix.
        diagonal: True for a diagonal λ (merged from a ``||`` term).
        exprs: the formula text of each piece (one for an ordinary term).
    """

    name: str
    factors: tuple[str, ...]
    cnames: list[str]
    codes: np.ndarray
    levels: pd.Index
    z: np.ndarray
    diagonal: bool
    exprs: list[str] = field(default_factory=list)

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def p(self) -> int:
        return self.z.shape[1]


@dataclass
class Design:
    """Arrays of a model after row filtering.

    Attributes:
        y: response (n,).
        X: fixed-effects model matrix (n, p), Fortran order, full column rank.
        xnames: names of the columns of X.
        dropped_columns: names of aliased X columns that were dropped.
        terms: random-effects terms in lme4's order (decreasing number of levels).
        rows: index labels of the data rows used.
    """

    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    dropped_columns: list[str]
    terms: list[ReTerm]
    rows: pd.Index


def _used_rows(data: pd.DataFrame, columns: list[str], missing: str) -> np.ndarray:
    """Boolean mask of rows without missing values in the used columns."""
    mask = ~data[columns].isna().any(axis=1).to_numpy()
    ndrop = int((~mask).sum())
    if ndrop:
        if missing == "raise":
            bad = [c for c in columns if data[c].isna().any()]
            raise ValueError(f"missing values in column(s) {bad}; drop them or use missing='drop'")
        warnings.warn(
            f"{ndrop} of {len(data)} rows dropped because of missing values in {columns}",
            stacklevel=4,
        )
    if not mask.any():
        raise ValueError("no rows left after dropping rows with missing values")
    return mask


def _full_rank_columns(X: np.ndarray) -> list[int]:
    """Columns kept by a sequential rank test, dropping later aliased columns as R's qr does."""
    kept: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        x = X[:, j]
        norm = np.linalg.norm(x)
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)
        rnorm = np.linalg.norm(r)
        if norm > 0 and rnorm > RANK_TOL * norm:
            kept.append(j)
            Q = np.column_stack([Q, r / rnorm])
    return kept


def _check_finite(name: str, values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} has infinite values; remove or transform those rows")


def _lme4_order(pieces: list[ReTerm]) -> list[ReTerm]:
    """Order terms as lme4's mkReTrms does, so that θ compares with lme4's.

    lme4 reorders only when some term has more levels than the one before it,
    and then by decreasing number of levels with ties in reverse formula order
    (``rev(order(nl))``).
    """
    nl = np.array([t.nlevels for t in pieces])
    if not np.any(np.diff(nl) > 0):
        return pieces
    order = np.argsort(nl, kind="stable")[::-1]
    return [pieces[k] for k in order]


def _merge_double_bars(pieces: list[ReTerm]) -> list[ReTerm]:
    """Merge runs of scalar pieces of ``||`` terms on one factor into a diagonal term.

    A piece with several columns (``0 + f`` for a factor f) stays an
    unstructured term of its own, as in lme4.
    """
    out: list[ReTerm] = []
    for t in pieces:
        prev = out[-1] if out else None
        if t.diagonal and t.p == 1 and prev is not None and prev.diagonal and prev.factors == t.factors:
            prev.z = np.asfortranarray(np.column_stack([prev.z, t.z]))
            prev.cnames = prev.cnames + t.cnames
            prev.exprs = prev.exprs + t.exprs
            continue
        t.diagonal = t.diagonal and t.p == 1
        out.append(t)
    return out


def build_design(parsed: ParsedFormula, data: pd.DataFrame, missing: str = "drop") -> Design:
    """Evaluate a parsed formula on ``data``.

    Args:
        parsed: the parsed lme4 formula.
        data: one row per observation.
        missing: ``"drop"`` (default, like lme4's ``na.omit``, with a warning)
            or ``"raise"``.

    Returns:
        The Design with rows containing missing values removed.

    Raises:
        ValueError: missing columns, non-finite values, a grouping factor with
            a single level, more random effects than observations.
    """
    if missing not in ("drop", "raise"):
        raise ValueError("missing must be 'drop' or 'raise'")
    if not isinstance(data, pd.DataFrame):
        data = pd.DataFrame(data)
    if data.columns.duplicated().any():
        dup = list(data.columns[data.columns.duplicated()].unique())
        raise ValueError(f"data has duplicated column names {dup}")
    check_columns(parsed, data)
    columns = required_columns(parsed)
    mask = _used_rows(data, columns, missing)
    if not mask.all():
        data = data.loc[mask]
    n = len(data)

    y = np.ascontiguousarray(evaluate_response(parsed.response, data), dtype=np.float64)
    _check_finite(f"the response {parsed.response!r}", y)
    X, xnames = model_matrix(parsed.fixed, data)
    _check_finite("the fixed-effects model matrix", X)
    dropped: list[str] = []
    if X.shape[1]:
        kept = _full_rank_columns(X)
        if len(kept) < X.shape[1]:
            dropped = [xnames[j] for j in range(X.shape[1]) if j not in kept]
            warnings.warn(
                f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                f"column(s): {dropped}",
                stacklevel=3,
            )
            X = X[:, kept]
            xnames = [xnames[j] for j in kept]
    X = np.asfortranarray(X, dtype=np.float64)

    pieces = _lme4_order([_term(rt, data) for rt in parsed.random])
    terms = _merge_double_bars(pieces)
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(
                f"grouping factor {t.name!r} has a single level; a random effect needs at least two levels"
            )
        if t.nlevels >= n:
            raise ValueError(
                f"grouping factor {t.name!r} has {t.nlevels} levels for {n} observations; the random effect "
                "and the residual variance are not identifiable (number of levels must be < number of observations)"
            )
        if t.nlevels * t.p >= n:
            raise ValueError(
                f"term for {t.name!r} has {t.nlevels * t.p} random effects for {n} observations; "
                "the random-effects parameters and the residual variance are unidentifiable"
            )
    return Design(y=y, X=X, xnames=xnames, dropped_columns=dropped, terms=terms, rows=data.index)


def _term(rt: RandomTerm, data: pd.DataFrame) -> ReTerm:
    z, cnames = model_matrix(rt.expr, data)
    if z.shape[1] == 0:
        raise ValueError(f"random-effects term for {rt.name!r} has no columns ({rt.expr!r})")
    _check_finite(f"the random-effects columns for {rt.name!r}", z)
    codes, levels = grouping_factor(rt, data)
    return ReTerm(
        name=rt.name,
        factors=rt.factors,
        cnames=list(cnames),
        codes=codes,
        levels=pd.Index(levels),
        z=np.asfortranarray(z, dtype=np.float64),
        diagonal=rt.double_bar,
        exprs=[rt.expr],
    )
