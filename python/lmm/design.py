"""From a parsed formula and a data frame to the arrays the core needs.

The design holds the response ``y``, the fixed-effects model matrix ``X`` and,
per random-effects term, the level codes of its grouping factor and the
columns ``z`` of its own model matrix (n × p_k). The random-effects matrix Z is
never formed.

This is also where input is validated, before any heavy work, with messages
in the user's terms (column names, formula text):

- rows with missing values in the columns a formula uses are dropped with a
  warning that counts them per column (``missing="raise"`` refuses them); rows
  where an expression evaluates to NaN (``log`` of a negative value) likewise;
- infinite values, and values so large or small that their squares overflow or
  underflow (the core works on crossproducts), raise ``ValueError``;
- a constant response, or one the fixed effects (alone or with one
  random-effects term) fit exactly, raises ``ValueError``: the residual
  variance would be 0 and the likelihood unbounded;
- aliased fixed-effects columns are dropped with a warning naming them, as
  lme4 does; predictors on very different scales get lme4's warning;
- a grouping factor with one level, as many levels as observations, or more
  random effects than observations, raises ``ValueError`` naming the term.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import Iterable, Iterator, Optional

import numpy as np
import pandas as pd

from . import _core as core
from ._util import row_blocks, same_values
from .formula import (
    Columns,
    GroupLevels,
    ModelFrameState,
    ParsedFormula,
    RandomTerm,
    check_columns,
    evaluate_response,
    grouping_codes,
    model_matrix,
    required_columns,
)
from .formula.functions import CONTRASTS
from .formula.values import ContrastMatrix

__all__ = ["Design", "ReTerm", "as_frame", "build_design"]

# Relative tolerance of the rank test on X, as lme4's default (chkRank.drop.cols).
RANK_TOL = 1e-7
# Variation of a column below this fraction of its norm is rounding of its values.
_ROUNDING = 1e3 * np.finfo(float).eps
# lme4's checkScaleX: warn when a continuous predictor's standard deviation, or
# the ratio of two of them, is beyond this factor.
SCALE_TOL = 1e3
# Largest (and smallest nonzero) magnitude allowed in y, X and z. The core forms
# crossproducts: sums of n squares must neither overflow nor underflow.
MAX_MAGNITUDE = 1e100
# A response whose residual, after the best fit by the fixed effects (and one
# random-effects term), is below this fraction of its norm is fitted exactly:
# the residual variance is 0 to working precision (some 5000 ε: a response of
# 1e12 + Reaction, six digits of signal, is a proper model, as lme4 fits it).
EXACT_FIT_TOL = 1e-12
# Rows of the sample of levels on which a random-effects term's exact fit is tried
# before all rows (see _fitted_exactly_by): the rows of some hundred levels, where noise
# shows at once, for a fraction of a millisecond.
_EXACT_FIT_SAMPLE = 4_000

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _warn(message: str) -> None:
    """Warn with the location of the first caller outside the lmm package."""
    frame: Optional[FrameType] = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        frame = frame.f_back
        level += 1
    warnings.warn(message, UserWarning, stacklevel=level)


@dataclass
class ReTerm:
    """One random-effects term: grouping factor codes and its z columns.

    Attributes:
        name: lme4's group name (``"Subject"``, ``"cask:batch"``).
        factors: data columns whose interaction is the grouping factor.
        cnames: names of the columns of ``z`` (``["(Intercept)", "Days"]``).
        codes: int32 level code per row, in ``[0, nlevels)``.
        group_levels: the grouping factor's levels in a compact form
            (:class:`~lmm.formula.GroupLevels`: integer ids as their values); the
            labels ``levels`` are made from them on first use.
        z: float64 (n, p) Fortran-ordered columns of the term's model matrix; a read-only
            view of the design's X (or of another term's z) when those hold the same columns.
        structure: the covariance structure (``lmm._core.STRUCTURES``): ``"us"``,
            ``"diag"`` for the merged pieces of a ``||`` term or ``diag(x | g)``, ``"cs"``, ...
        double_bar: True for the merged pieces of a ``||`` term (named per column in
            ``VarCorr``, as lme4 does).
        exprs: the formula text of each piece (one for an ordinary term).
        states: per piece, the recorded :class:`~lmm.formula.ModelFrameState` of its
            model matrix (factor levels, ``poly()``/``scale()`` coefficients) for new data.
    """

    name: str
    factors: tuple[str, ...]
    cnames: list[str]
    codes: np.ndarray
    group_levels: GroupLevels
    z: np.ndarray
    structure: str = "us"
    double_bar: bool = False
    exprs: list[str] = field(default_factory=list)
    states: list = field(default_factory=list)
    # The labels, made by the first read of ``levels``: a fit never needs them, and for
    # many levels they are larger than the codes (some 60 bytes a level).
    _levels: Optional[pd.Index] = field(default=None, init=False, repr=False, compare=False)

    @property
    def levels(self) -> pd.Index:
        """Level labels, R's strings (``levels[codes[i]]`` is row i's level); made on first use."""
        if self._levels is None:
            self._levels = pd.Index(self.group_levels.labels())
        return self._levels

    @property
    def nlevels(self) -> int:
        return len(self.group_levels)

    @property
    def structured(self) -> bool:
        """True for lme4 2.x's structured covariances (cs, ar1, diag with hom, toep): their
        θ are SDs and correlation parameters, not entries of λ (us and diag terms)."""
        return self.structure not in ("us", "diag")

    @property
    def p(self) -> int:
        return self.z.shape[1]

    @property
    def label(self) -> str:
        """The term as a user would recognise it: ``(Days | Subject)``-like text."""
        if len(self.exprs) <= 1:
            bar = f"{self.exprs[0] if self.exprs else ' + '.join(self.cnames)} | {self.name}"
            if self.structure == "us":
                return f"({bar})"
            call, _, variant = self.structure.partition("_")
            return f"{call}({bar}{', hom = TRUE' if variant == 'hom' else ', hom = FALSE' if variant else ''})"
        parts = [e[4:] if e.startswith("0 + ") else e for e in self.exprs]
        return f"({' + '.join(parts)} || {self.name})"


@dataclass
class Design:
    """Arrays of a model after row filtering.

    Attributes:
        y: response (n,).
        X: fixed-effects model matrix (n, p), Fortran order, full column rank; read-only
            when terms' z are views of its columns.
        xnames: names of the columns of X.
        dropped_columns: names of aliased X columns that were dropped.
        terms: random-effects terms in lme4's order (decreasing number of levels).
        rows: index labels of the data rows used.
        fixed_state: the recorded :class:`~lmm.formula.ModelFrameState` of the
            fixed-effects model matrix (before aliased columns were dropped), for new data.
        x_center: (p,) value subtracted from each column of X for the core (X_c)
            (the column means when X has an intercept, else zeros; 0 for the intercept).
        y_coef: (p,) least-squares coefficients of y on X_c (y_c = y − X_c y_coef).
        weights: (n,) prior weights of the rows used (residual variance σ²/w_i), or None.
        offset: (n,) the sum of the formula's ``offset()`` terms and the ``offset`` argument,
            or None; the core fits ``y_fit`` = y − offset.
        data_index: the index of the data as given (all rows), or None (the rows used).
        positions: the positions in the data of the rows used, or None when every row is
            used (per-row outputs are aligned to ``data_index`` through it).
    """

    def aligned(self, values: np.ndarray, name: str) -> pd.Series:
        """Values of the rows used as a Series on the data's index, NaN on rows dropped
        (lme4's ``na.exclude``)."""
        if self.positions is None or self.data_index is None:
            return pd.Series(values, index=self.rows if self.data_index is None else self.data_index, name=name)
        out = np.full(len(self.data_index), np.nan)
        out[self.positions] = values
        return pd.Series(out, index=self.data_index, name=name)

    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    dropped_columns: list[str]
    terms: list[ReTerm]
    rows: pd.Index
    fixed_state: Optional[ModelFrameState] = None
    x_center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights: Optional[np.ndarray] = None
    offset: Optional[np.ndarray] = None
    data_index: Optional[pd.Index] = None
    positions: Optional[np.ndarray] = None

    @functools.cached_property
    def y_fit(self) -> np.ndarray:
        """The response the core fits: y − offset (y itself without an offset; formed once)."""
        return self.y if self.offset is None else self.y - self.offset

    # --- a better-conditioned problem for the core -----------------------------------
    #
    # The core works on crossproducts, so r² (the penalized residual sum of squares)
    # is a difference of large numbers when y has a large component in the column
    # space of X (a response of 1e6 ± 10 with an intercept), and X'X loses digits
    # when a predictor has a large offset. Both go away with an exact
    # reparametrization: X_c = X S with S unit upper triangular (centering the
    # columns when there is an intercept; det S = 1, so the REML criterion is
    # unchanged) and y_c = y − X_c γ (β̂_c shifts by γ). θ, σ, û, b̂, the objective
    # and its gradient are the same functions of θ; only β̂ and Var(β̂) map back.
    # The core applies the shift row by row as it forms the crossproducts
    # (``x_center`` and ``y_coef``), so neither X_c nor y_c exists in full;
    # model.CoreModel maps β̂ and Var(β̂) back.


def _from_polars(data) -> pd.DataFrame:
    """A polars DataFrame (or LazyFrame, collected) as pandas, column by column, without pyarrow.

    Numbers come as NumPy arrays (read in place where polars allows: no nulls); nulls
    become NaN (numbers) or None (strings, booleans), which lmm reads as missing. An
    Enum keeps its categories' order as the factor's levels; other strings, Categorical
    included, are sorted as R sorts them.
    """
    import polars as pl

    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    columns = {}
    for s in data.get_columns():
        values = s.to_numpy()
        if isinstance(s.dtype, pl.Enum):
            values = pd.Categorical(values, categories=list(s.dtype.categories))
        columns[s.name] = values
    return pd.DataFrame(columns, copy=False)


def as_frame(data) -> pd.DataFrame:
    """The data as a pandas DataFrame: pandas as it is, polars and pyarrow tables, dicts of
    columns, anything with the dataframe interchange protocol.

    Raises:
        TypeError: no data, a NumPy array without column names, or something not tabular.
        ValueError: duplicated column names.
    """
    if data is None:
        raise TypeError("data is None; pass a data frame (pandas, polars, pyarrow) with the columns the formula uses")
    if isinstance(data, np.ndarray) and data.dtype.names is None:
        raise TypeError("data is a NumPy array without column names; pass a pandas DataFrame, "
                        "e.g. pd.DataFrame(array, columns=[...])")
    if not isinstance(data, pd.DataFrame):
        module = type(data).__module__.split(".")[0]
        try:
            if module == "polars":
                data = _from_polars(data)
            elif module == "pyarrow" and hasattr(data, "to_pandas"):
                data = data.to_pandas()
            elif hasattr(data, "__dataframe__") and not isinstance(data, dict):
                data = pd.api.interchange.from_dataframe(data)
            else:
                data = pd.DataFrame(data)
        except (TypeError, ValueError) as err:
            raise TypeError(f"data must be a data frame (pandas, polars, pyarrow) or a dict of columns, not "
                            f"{type(data).__name__}: {err}") from None
    names = [str(c) for c in data.columns]
    if len(set(names)) < len(names):
        dup = sorted(c for c, count in Counter(names).items() if count > 1)
        raise ValueError(f"data has duplicated column names {dup}; rename them so that each column is "
                         "unique")
    if any(not isinstance(c, str) for c in data.columns):
        data = data.set_axis(names, axis=1)
    return data


def _has_missing(s: pd.Series) -> bool:
    """Whether a column has missing values: NumPy integers and booleans cannot, floats by
    np.min (which propagates NaN), strings by one pass over the objects; else pandas'."""
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iub":
        return False
    if isinstance(dt, np.dtype) and dt.kind == "f":
        return bool(np.isnan(np.min(s.to_numpy()))) if len(s) else False
    if isinstance(dt, pd.StringDtype) and str(dt.storage).startswith("pyarrow"):
        return bool(s.hasnans)  # (pyarrow's null count: no pass over the strings)
    if dt == np.dtype(object) or isinstance(dt, pd.StringDtype):
        return bool(pd.isna(s.to_numpy()).any())
    return bool(s.hasnans)


def _used_rows(data: Columns, columns: list[str], missing: str) -> Optional[np.ndarray]:
    """Boolean mask of rows without missing values in the used columns (None: every row).

    Column by column (``Series.hasnans`` is one pass, no n-sized mask), so complete
    data, the common case, costs no copy of the used columns.
    """
    counts: dict[str, int] = {}
    mask: Optional[np.ndarray] = None
    for c in columns:
        s = data.series(c)
        if not _has_missing(s):
            continue
        na = s.isna().to_numpy()
        counts[c] = int(na.sum())
        mask = ~na if mask is None else mask & ~na
    if mask is None:
        return None
    ndrop = data.n - int(mask.sum())
    per_column = ", ".join(f"{c}: {k}" for c, k in counts.items())
    if missing == "raise":
        raise ValueError(f"{ndrop} of {data.n} rows have missing values ({per_column}); "
                         "drop them or use missing='drop'")
    if not mask.any():
        raise ValueError(f"no rows left after dropping rows with missing values ({per_column})")
    _warn(f"{ndrop} of {data.n} rows dropped because of missing values ({per_column})")
    return mask


# --- values --------------------------------------------------------------------------------


@dataclass
class _Evaluated:
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    pieces: list[ReTerm]
    fixed_state: ModelFrameState
    offset: Optional[np.ndarray] = None


def evaluate_offset(parsed: ParsedFormula, data: pd.DataFrame | Columns,
                    column: Optional[str] = None) -> Optional[np.ndarray]:
    """The sum of the formula's ``offset()`` terms on ``data`` (and of ``data[column]``), or None."""
    parts = [evaluate_response(e, data) for e in parsed.offset_exprs]
    if column is not None:
        parts.append(_numeric_column(data, column, "offset"))
    if not parts:
        return None
    return np.ascontiguousarray(np.sum(parts, axis=0), dtype=np.float64)


def _numeric_column(data: pd.DataFrame | Columns, column: str, what: str) -> np.ndarray:
    values = data.series(column) if isinstance(data, Columns) else data[column]
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        raise TypeError(f"{what} must be numeric, not {values.dtype}")
    return values.to_numpy(dtype=np.float64)


def _state(contrasts: dict[str, str], preset: Optional[dict] = None) -> ModelFrameState:
    state = ModelFrameState()
    state.transforms.contrasts = dict(contrasts)
    state.transforms.preset = dict(preset or {})
    return state


# Functions whose values depend on the rows they are evaluated on (what R's model frame
# learns before it drops incomplete rows).
_STATEFUL = re.compile(r"\b(scale|poly|ns|bs)\s*\(")


def _learned_on_all_rows(parsed: ParsedFormula, data: Columns, contrasts: dict[str, str]) -> dict:
    """The numeric transforms' values on every row of the data, as R's model frame
    computes them before ``na.omit`` (the knots of ``ns(x)`` from every row where x is
    present, whatever the other columns); factor levels are not among them (unused levels
    are dropped after ``na.omit``, as lme4's ``drop.unused.levels``)."""
    learned: dict = {}
    for terms in [parsed.fixed_terms] + [rt.terms for rt in parsed.random]:
        state = _state(contrasts)
        model_matrix(terms, data, state=state)
        learned.update(state.transforms.learned())
    return learned


def _evaluate(parsed: ParsedFormula, data: Columns, offset_column: Optional[str] = None,
              contrasts: Optional[dict[str, str]] = None, preset: Optional[dict] = None) -> _Evaluated:
    y = np.ascontiguousarray(evaluate_response(parsed.response_expr, data), dtype=np.float64)
    state = _state(contrasts or {}, preset)
    X, xnames = model_matrix(parsed.fixed_terms, data, state=state)
    X, xnames = np.asarray(X, dtype=np.float64), list(xnames)
    # lme4 passes `contrasts` to the fixed effects' model.matrix only: the random-effects
    # terms code their factors with R's defaults (or their own C()).
    pieces = [_term(rt, data, X, xnames, _state({}, preset)) for rt in parsed.random]
    return _Evaluated(y=y, X=X, xnames=xnames, pieces=pieces, fixed_state=state,
                      offset=evaluate_offset(parsed, data, offset_column))


def _has_nan(values: np.ndarray) -> bool:
    """True when values holds a NaN: np.min propagates NaN, so no n-sized mask is made."""
    return values.size > 0 and bool(np.isnan(np.min(values)))


def _nan_rows(ev: _Evaluated, response: str) -> tuple[Optional[np.ndarray], list[str]]:
    """Rows where an evaluated expression is NaN (log of a negative value, 0/0), and what
    (None and [] when there is none: no n-sized mask then)."""
    bad: Optional[np.ndarray] = None
    what: list[str] = []
    columns = [(ev.y, f"the response {response!r}")]
    if ev.offset is not None:
        columns.append((ev.offset, "the offset"))
    columns += [(ev.X[:, j], repr(name)) for j, name in enumerate(ev.xnames)]
    columns += [(t.z[:, j], f"{c!r} of the term for {t.name!r}") for t in ev.pieces for j, c in enumerate(t.cnames)]
    for values, name in columns:
        if _has_nan(values):
            bad = np.isnan(values) if bad is None else bad | np.isnan(values)
            what.append(name)
    return bad, what


def _row_labels(rows: pd.Index, mask: np.ndarray, limit: int = 3) -> str:
    labels = list(rows[np.flatnonzero(mask)[:limit]])
    more = int(mask.sum()) - len(labels)
    return ", ".join(repr(x) for x in labels) + (f" and {more} more" if more > 0 else "")


def _max_abs(values: np.ndarray) -> float:
    """max |values| (0 for none), by two reductions rather than an n-sized |values|."""
    return max(float(np.max(values, initial=0.0)), -float(np.min(values, initial=0.0)))


def _check_values(what: str, values: np.ndarray, rows: pd.Index) -> None:
    """Infinite values, or magnitudes whose squares overflow or underflow, raise ValueError."""
    big = _max_abs(values)
    if math.isinf(big):
        inf = np.isinf(values)
        raise ValueError(f"{what} has infinite values in {int(inf.sum())} row(s) (row labels "
                         f"{_row_labels(rows, inf)}); remove or transform those rows")
    if big > MAX_MAGNITUDE or 0.0 < big < 1.0 / MAX_MAGNITUDE:
        raise ValueError(f"{what} has values of magnitude {big:.3g}; lmm works with sums of squares of "
                         f"the data, which {'overflow' if big > 1 else 'underflow'} in floating point: "
                         f"rescale it (e.g. divide by {big:.0e})")


def _r_factor(blocks: Iterable[np.ndarray], k: int) -> np.ndarray:
    """R (min(n, k) × k) of the QR factorization of the row blocks (each m_i × k) stacked.

    One block at a time (TSQR): with [A; B] = diag(Q_A, I) [R_A; B], the R of [R_A; B]
    is the R of [A; B], so the memory is that of one block, not of all n rows.
    """
    R: Optional[np.ndarray] = None
    for block in blocks:
        # (NumPy's stubs type qr() as a QRResult in every mode; mode="r" returns the array R.)
        R = np.linalg.qr(block if R is None else np.vstack([R, block]), mode="r")  # type: ignore[assignment]
    return np.zeros((0, k)) if R is None else R


def _full_rank_columns(R: np.ndarray, norms: np.ndarray) -> list[int]:
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


def _check_scale(X: np.ndarray, xnames: list[str], R: np.ndarray, centred: bool) -> None:
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
    with np.errstate(divide="ignore"):
        logsd = np.log(sd)
    bad_single = ~np.isfinite(logsd) | (np.abs(logsd) > np.log(SCALE_TOL))
    finite = logsd[np.isfinite(logsd)]
    bad_ratio = finite.size > 1 and float(finite.max() - finite.min()) > np.log(SCALE_TOL)
    if not (bad_single.any() or bad_ratio):
        return
    shown = sorted(range(len(cont)), key=lambda i: sd[i])
    if len(shown) > 6:
        shown = sorted(set(shown[:2] + shown[-2:] + [i for i in range(len(cont)) if bad_single[i]][:4]),
                       key=lambda i: sd[i])
    listing = ", ".join(f"{xnames[cont[i]]} {sd[i]:.3g}" for i in shown)
    _warn("Some predictor variables are on very different scales: consider rescaling "
          f"(standard deviations: {listing})")


def _center(X: np.ndarray, xnames: list[str]) -> tuple[np.ndarray, bool]:
    """Column means to subtract when X has an intercept (first column of ones), else zeros;
    and whether the columns were centred."""
    center = np.zeros(X.shape[1])
    centred = X.shape[1] > 1 and xnames[0] == "(Intercept)" and np.min(X[:, 0]) == 1.0 == np.max(X[:, 0])
    if centred:
        center[1:] = X[:, 1:].mean(axis=0)
    return center, bool(centred)


def _column_norms(R: np.ndarray, x_center: np.ndarray, n: int) -> np.ndarray:
    """Norms of X's columns from X_c's (R's): |x|² = |x − c|² + n c² when c is x's mean
    (x − c ⟂ 1), and x_center is zero or the means."""
    return np.sqrt(np.einsum("ij,ij->j", R, R) + n * x_center * x_center)


def _centred_blocks(X: np.ndarray, x_center: np.ndarray, y: np.ndarray) -> Iterator[np.ndarray]:
    """Row blocks of [X_c y], X_c = X − x_center: never all n rows at once."""
    n, p = X.shape
    for rows in row_blocks(n, p + 1):
        block = np.empty((rows.stop - rows.start, p + 1), order="F")
        np.subtract(X[rows], x_center, out=block[:, :p])
        block[:, p] = y[rows]
        yield block


def _response_and_centred(y: np.ndarray, X: np.ndarray, x_center: np.ndarray,
                          rows: Optional[np.ndarray] = None) -> np.ndarray:
    """[y X_c] (Fortran order) on ``rows`` (default: all), X_c = X − x_center, column by column."""
    m = y.shape[0] if rows is None else rows.shape[0]
    V = np.empty((m, X.shape[1] + 1), order="F")
    V[:, 0] = y if rows is None else y[rows]
    for j in range(X.shape[1]):
        V[:, j + 1] = X[:, j] if rows is None else X[rows, j]
        V[:, j + 1] -= x_center[j]
    return V


def _sample_levels(t: ReTerm, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows of a subset of t's levels, about ``size`` of them (at least one level): the
    rows, their codes among the levels taken, and the number of levels taken.

    Each level is taken with probability ``size / n`` by a fixed pseudo-random draw
    (seeded: the same sample every time), not in code order, where the first levels are
    often the largest; two passes over the codes, no count per level and no sort.
    """
    n, L = t.codes.shape[0], t.nlevels
    draw = np.random.default_rng(0).random(L)
    picked = draw < size / n
    if not picked.any():
        picked[int(np.argmin(draw))] = True
    rows = np.flatnonzero(picked[t.codes])
    new_codes = (np.cumsum(picked, dtype=np.int32) - 1)[t.codes[rows]]
    return rows, new_codes, int(np.count_nonzero(picked))


def _fitted_exactly_by(t: ReTerm, y: np.ndarray, X: np.ndarray, x_center: np.ndarray,
                       ynorm: float) -> float | None:
    """Relative residual of y on [X_c, the term's columns within each level], or None if not exact.

    An exact fit on all rows is also exact on the rows of any subset of levels
    (the residual on a subset is at most the residual on all rows), so a large
    design is first tried on the rows of a sample of its levels (cheap) and only
    checked in full when the sample is fitted exactly. The core projects the term's
    columns out level by level and finds the residual (``within_level_residual``).
    """
    n = y.shape[0]
    if n > _EXACT_FIT_SAMPLE:
        rows, codes, nlevels = _sample_levels(t, _EXACT_FIT_SAMPLE)
        if rows.size < n:
            V = _response_and_centred(y, X, x_center, rows)
            z = np.asfortranarray(t.z[rows])
            if core.within_level_residual(codes, z, nlevels, V) > EXACT_FIT_TOL * ynorm:
                return None
    V = _response_and_centred(y, X, x_center)
    rel = core.within_level_residual(t.codes, t.z, t.nlevels, V) / ynorm
    return rel if rel <= EXACT_FIT_TOL else None


def _check_response(y: np.ndarray, X: np.ndarray, xnames: list[str], terms: list[ReTerm], response: str,
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
        # effect per observation is a proper model there, see _check_terms.)
        if t.p > 20 or t.structured:
            continue
        term_rel = _fitted_exactly_by(t, y, X, x_center, ynorm)
        if term_rel is not None:
            raise ValueError(
                f"the response {response!r} is fitted exactly by the fixed effects and the random-effects term "
                f"{t.label}: within every level of {t.name!r} it is an exact linear function of "
                f"{', '.join(t.cnames)} (residual {term_rel:.1e} of its norm), so the residual variance would be 0. "
                "Was the response simulated without noise, or is it a group-level variable?")
    return y_coef


# --- random-effects terms ------------------------------------------------------------------


def _lme4_order(pieces: list[ReTerm]) -> list[ReTerm]:
    """Order terms as lme4's mkReTrms does, so that θ compares with lme4's.

    lme4 reorders only when some term has more levels than the one before it,
    and then by decreasing number of levels with ties in reverse formula order
    (``rev(order(nl))``). The core applies the same rule (lmm::Model), so for C++
    callers too θ follows lme4; here it is applied first because the pieces of a
    ``||`` term are merged into one diagonal term in that order (with reversed ties
    their columns come in lme4's order), after which the core's order keeps them.
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
        if t.double_bar and t.p == 1 and prev is not None and prev.double_bar and prev.factors == t.factors:
            z = np.empty((prev.z.shape[0], prev.p + t.p), order="F")  # one copy, in Fortran order
            z[:, :prev.p], z[:, prev.p:] = prev.z, t.z
            prev.z = z
            prev.cnames = prev.cnames + t.cnames
            prev.exprs = prev.exprs + t.exprs
            prev.states = prev.states + t.states
            prev.structure = "diag"
            continue
        t.double_bar = t.double_bar and t.p == 1
        out.append(t)
    return out


def _check_terms(terms: list[ReTerm], n: int, sigma_known: bool = False) -> None:
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(
                f"grouping factor {t.name!r} has a single level ({t.levels[0]!r}) in the {n} rows used; "
                f"a random effect needs at least two levels: remove the term {t.label}"
            )
        if sigma_known:
            continue  # a known residual variance: one effect per observation is identifiable
        if t.nlevels >= n:
            raise ValueError(
                f"grouping factor {t.name!r} has {t.nlevels} levels for {n} observations; the random effect "
                f"{t.label} and the residual variance are not identifiable (number of levels must be < "
                "number of observations)"
            )
        # A structured covariance (cs, ar1, ...) restricts the term's p × p covariance to
        # a few parameters, so one effect per observation stays identifiable, as in lme4 2.x
        # (Orthodont's ar1(0 + factor(age) | Subject) has as many effects as rows).
        if t.nlevels * t.p >= n and not t.structured:
            raise ValueError(
                f"term {t.label} has {t.nlevels * t.p} random effects for {n} observations ({t.nlevels} levels "
                f"× {t.p} columns); the random-effects parameters and the residual variance are "
                "unidentifiable (lme4: number of observations must be > number of random effects)"
            )


def _ones(n: int) -> np.ndarray:
    """An n × 1 read-only column of ones without storage (one value, broadcast).

    A lone intercept column (X of ``y ~ 1 + (1 | a) + (1 | b)``, z of ``(1 | g)``) takes
    n doubles otherwise; the core copies it only while it forms the crossproducts.
    """
    return np.broadcast_to(np.ones((1, 1)), (n, 1))


def _view_in(X: np.ndarray, xnames: list[str], t: ReTerm) -> Optional[np.ndarray]:
    """The view ``X[:, a:a + p]`` when t's columns are that run of X's (names and values), else None."""
    p = t.p
    if xnames == ["(Intercept)"] == t.cnames:
        return X
    if not X.flags.f_contiguous or t.cnames[0] not in xnames:
        return None
    a = xnames.index(t.cnames[0])
    if xnames[a:a + p] != t.cnames or not same_values(X[:, a:a + p], t.z):
        return None
    return X[:, a:a + p]


def _share_columns(terms: list[ReTerm], X: np.ndarray, xnames: list[str]) -> None:
    """Terms hold views of columns the design has already, not copies (n × p doubles each).

    A term whose columns are a run of X's columns, with the same names and values (the
    intercept of ``(1 | g)``, the ``1 + t`` of ``(1 + t | g)`` in ``y ~ 1 + t + ...``),
    holds the view ``X[:, a:a + p]`` (Fortran-contiguous); a random intercept otherwise
    holds :func:`_ones`; a term with the same columns as an earlier one shares that term's z.
    X and each shared z are then read-only, so that writing into one cannot change
    another. A z that still views the X from before aliased columns were dropped gets
    its own copy, so that the old X is freed.
    """
    own: list[ReTerm] = []  # earlier terms whose z is their own array
    for t in terms:
        view = _view_in(X, xnames, t)
        if view is None and t.cnames == ["(Intercept)"]:
            view = _ones(X.shape[0])
        if view is not None:
            X.setflags(write=False)
            view.setflags(write=False)  # (a view made before X was read-only is not)
            t.z = view
            continue
        if t.z.base is not None:
            t.z = np.array(t.z, order="F")
        same = next((u for u in own if u.cnames == t.cnames and same_values(u.z, t.z)), None)
        if same is None:
            own.append(t)
        else:
            same.z.setflags(write=False)
            t.z = same.z


def _term(rt: RandomTerm, data: Columns, X: np.ndarray, xnames: list[str], state: ModelFrameState) -> ReTerm:
    """The term's codes and columns (recorded in ``state``); z is a view of X when its
    columns are a run of X's."""
    z, cnames = model_matrix(rt.terms, data, state=state, like=(X, xnames))
    if z.shape[1] == 0:
        raise ValueError(f"random-effects term for {rt.name!r} has no columns ({rt.expr!r})")
    codes, levels = grouping_codes(rt, data)
    return ReTerm(
        name=rt.name,
        factors=rt.factors,
        cnames=list(cnames),
        codes=codes,
        group_levels=levels,
        z=np.asfortranarray(z, dtype=np.float64),
        structure=rt.structure,
        double_bar=rt.double_bar,
        exprs=[rt.expr],
        states=[state],
    )


# --- the design ----------------------------------------------------------------------------


#: The columns under which arrays of weights and offsets travel with the rows of the data.
WEIGHTS_COLUMN = "(weights)"
OFFSET_COLUMN = "(offset)"


def with_column(data: pd.DataFrame, values, what: str, name: str) -> tuple[pd.DataFrame, Optional[str]]:
    """The data with ``values`` as a column (given as a column name, or one value per row)."""
    if values is None:
        return data, None
    if isinstance(values, str):
        if values not in data.columns:
            raise ValueError(f"{what} column {values!r} is not in the data")
        return data, values
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != len(data):
        raise ValueError(f"{what} must be a column name or one value per row of the data ({len(data)}), "
                         f"got shape {array.shape}")
    return data.assign(**{name: array}), name


def _checked_weights(data: pd.DataFrame, column: str) -> np.ndarray:
    w = np.ascontiguousarray(_numeric_column(data, column, "weights"))
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        raise ValueError(f"weights must be positive and finite: {int(bad.sum())} row(s) are not (row labels "
                         f"{_row_labels(data.index, bad)}); drop rows with zero weight")
    return w


def _contrast_matrix(column: str, coding) -> ContrastMatrix:
    """A coding given as a matrix: a DataFrame (its columns name the model matrix's columns,
    as R's colnames) or a 2-D array (columns numbered)."""
    names = [str(c) for c in coding.columns] if isinstance(coding, pd.DataFrame) else None
    try:
        values = np.asarray(coding, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"contrasts[{column!r}] must be a coding name or a numeric matrix") from None
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"contrasts[{column!r}] must be a finite levels × columns matrix, got shape "
                         f"{values.shape}")
    return ContrastMatrix(values, names)


def _checked_contrasts(contrasts, parsed: ParsedFormula) -> dict:
    """lme4's ``contrasts = list(f = "contr.sum", g = M)`` as column → coding kind or matrix."""
    if contrasts is None:
        return {}
    if not isinstance(contrasts, dict):
        raise TypeError("contrasts must be a dict of column name -> coding, e.g. {'Machine': 'contr.sum'}")
    out: dict = {}
    used = set(required_columns(parsed))
    for column, coding in contrasts.items():
        if column not in used:
            _warn(f"variable {column!r} is absent, its contrast will be ignored")
        if not isinstance(coding, str):
            out[str(column)] = _contrast_matrix(str(column), coding)
            continue
        # lme4's contrasts argument names contr.treatment's columns by level (unlike C()'s).
        kind = "treatment" if coding == "contr.treatment" else CONTRASTS.get(coding)
        if kind is None:
            raise ValueError(f"contrasts[{column!r}] = {coding!r} is not a coding; use one of "
                             f"{', '.join(sorted(CONTRASTS))} or a matrix")
        out[str(column)] = kind
    return out


def build_design(parsed: ParsedFormula, data: pd.DataFrame, missing: str = "drop", weights=None,
                 offset=None, contrasts=None, sigma_known: bool = False) -> Design:
    """Evaluate a parsed formula on ``data``, validating it on the way.

    Args:
        parsed: the parsed lme4 formula.
        data: one row per observation (a DataFrame, or a dict of columns).
        missing: ``"drop"`` (default, like lme4's ``na.omit``, with a warning)
            or ``"raise"``.
        weights: prior weights, a column name or one value per row (None: all 1);
            rows with a missing weight are dropped as rows with missing values.
        offset: a known term added to the linear predictor, a column name or one value
            per row (None: none), summed with the formula's ``offset()`` terms.
        contrasts: lme4's ``contrasts``: a dict of factor column → coding (``"contr.sum"``,
            ``"contr.helmert"``, ``"contr.poly"``, ``"contr.treatment"``, or a levels ×
            (levels − 1) matrix: a DataFrame whose columns name the model matrix's, or an
            array), for the fixed effects' model matrix, as lme4 (random-effects terms
            keep R's defaults); None: R's defaults.
        sigma_known: the residual SD is known (``sigma=``): one random effect per
            observation is identifiable and a response without residual variation is a model.

    Returns:
        The Design with rows containing missing values removed.

    Raises:
        FormulaError: unknown columns (with close matches), malformed expressions.
        TypeError: ``data`` is not tabular with named columns.
        ValueError: no rows, infinite or unrepresentably scaled values, a response
            that is constant or fitted exactly, a grouping factor with a single
            level or with as many levels as observations, more random effects than
            observations.

    Warns:
        UserWarning: rows dropped (counted per column), aliased fixed-effects
            columns dropped (named), predictors on very different scales.

    Example:
        >>> import lmm
        >>> from lmm.formula import parse_formula
        >>> d = build_design(parse_formula("Reaction ~ Days + (Days | Subject)"), lmm.datasets.load("sleepstudy"))
        >>> d.X.shape, [(t.name, t.nlevels, t.p) for t in d.terms]
        ((180, 2), [('Subject', 18, 2)])
    """
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', not {missing!r}")
    data = as_frame(data)
    check_columns(parsed, data)
    coding = _checked_contrasts(contrasts, parsed)
    data, weights_column = with_column(data, weights, "weights", WEIGHTS_COLUMN)
    data, offset_column = with_column(data, offset, "offset", OFFSET_COLUMN)
    if len(data) == 0:
        raise ValueError("data has no rows")
    columns = required_columns(parsed) + [c for c in (weights_column, offset_column) if c]
    data_index = data.index
    cols = Columns(data)  # each column read once, by every evaluation on these rows
    mask = _used_rows(cols, columns, missing)
    positions = None
    preset = None
    if mask is not None:
        if _STATEFUL.search(parsed.text):
            preset = _learned_on_all_rows(parsed, cols, coding)
        data = data.loc[mask]
        cols = Columns(data)
        positions = np.flatnonzero(mask)
    del mask  # (a byte a row, not needed while the design is built)

    ev = _evaluate(parsed, cols, offset_column, coding, preset)
    bad, what = _nan_rows(ev, parsed.response)
    if bad is not None:
        # As R's na.omit on the model frame: rows where an expression is NaN
        # (log of a negative value, 0/0) are dropped too.
        message = (f"{int(bad.sum())} of {len(data)} rows have NaN values of {', '.join(what)} "
                   f"(row labels {_row_labels(data.index, bad)})")
        if missing == "raise":
            raise ValueError(f"{message}; fix the data or use missing='drop'")
        if bad.all():
            raise ValueError(f"no rows left: {message}")
        _warn(f"{message}; those rows are dropped")
        data = data.loc[~bad]
        positions = np.flatnonzero(~bad) if positions is None else positions[~bad]
        if preset is None:  # the transforms learned on every row, as above
            preset = {}
            for st in [ev.fixed_state] + [st for t in ev.pieces for st in t.states]:
                preset.update(st.transforms.learned())
        del ev, bad  # not alive while the rows left are evaluated
        ev = _evaluate(parsed, Columns(data), offset_column, coding, preset)
        bad, what = _nan_rows(ev, parsed.response)
        if bad is not None:
            raise ValueError(f"{', '.join(what)} still evaluate to NaN after dropping rows; check the "
                             "expressions (e.g. scale() of a constant column)")
    n = len(data)
    rows = data.index

    y = ev.y
    _check_values(f"the response {parsed.response!r}", y, rows)
    X, xnames = ev.X, ev.xnames
    for j, name in enumerate(xnames):
        _check_values(f"the fixed-effects column {name!r}", X[:, j], rows)
    for t in ev.pieces:
        for j, name in enumerate(t.cnames):
            _check_values(f"the column {name!r} of the random-effects term for {t.name!r}", t.z[:, j], rows)

    offset = ev.offset
    if offset is not None:
        _check_values("the offset", offset, rows)
    y_fit = y if offset is None else y - offset

    # One QR of [X_c y_fit] serves the rank test, the scale check, the shift and the
    # exact-fit test; dropping columns then only needs the QR of R's kept columns.
    k = X.shape[1]
    x_center, centred = _center(X, xnames)
    R = _r_factor(_centred_blocks(X, x_center, y_fit), k + 1)
    dropped: list[str] = []
    if k:
        kept = _full_rank_columns(R[:, :k], _column_norms(R[:, :k], x_center, n))
        if len(kept) < k:
            dropped = [xnames[j] for j in range(k) if j not in kept]
            _warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                  f"column(s): {dropped}")
            X = X[:, kept]
            xnames = [xnames[j] for j in kept]
            x_center = x_center[kept]
            # (NumPy's stubs type qr() as a QRResult in every mode; mode="r" returns the array R.)
            R = np.linalg.qr(R[:, kept + [k]], mode="r")  # type: ignore[assignment]
        _check_scale(X, xnames, R, centred)
    X = _ones(n) if xnames == ["(Intercept)"] else np.asfortranarray(X, dtype=np.float64)

    terms = _merge_double_bars(_lme4_order(ev.pieces))
    _check_terms(terms, n, sigma_known)
    y_coef = _check_response(y_fit, X, xnames, terms, parsed.response, R, x_center, sigma_known)
    _share_columns(terms, X, xnames)
    # The recorded numeric variables (for complete_design()) become views of the
    # columns held here already, which are then read-only.
    sources = [(X, xnames, [ev.fixed_state] + [state for t in terms for state in t.states])]
    sources += [(t.z, t.cnames, t.states) for t in terms]
    for M, names, states in sources:
        if any([state.share_columns(M, names) for state in states]):
            M.setflags(write=False)
    w = _checked_weights(data, weights_column) if weights_column else None
    return Design(y=y, X=X, xnames=xnames, dropped_columns=dropped, terms=terms, rows=rows,
                  fixed_state=ev.fixed_state, x_center=x_center, y_coef=y_coef, weights=w, offset=offset,
                  data_index=data_index, positions=positions)
