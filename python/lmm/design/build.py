"""The design: from a parsed formula and a data frame to the arrays the core needs, the
input validated on the way (see :mod:`lmm.design`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from .._util import ones_column, warn_user
from ..formula import Columns, ModelFrameState, ParsedFormula, check_columns, required_columns
from .data import (
    OFFSET_COLUMN,
    WEIGHTS_COLUMN,
    as_frame,
    check_values,
    checked_contrasts,
    checked_weights,
    row_labels,
    used_rows,
    with_column,
)
from .evaluation import evaluate_formula, learned_on_all_rows, learns_from_rows, nan_rows
from .fixed import center, centred_blocks, check_scale, column_norms, full_rank_columns, r_factor
from .response import check_response
from .terms import ReTerm, check_terms, lme4_order, merge_double_bars, share_columns

__all__ = ["Design", "build_design"]


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
    coding = checked_contrasts(contrasts, parsed)
    data, weights_column = with_column(data, weights, "weights", WEIGHTS_COLUMN)
    data, offset_column = with_column(data, offset, "offset", OFFSET_COLUMN)
    if len(data) == 0:
        raise ValueError("data has no rows")
    columns = required_columns(parsed) + [c for c in (weights_column, offset_column) if c]
    data_index = data.index
    cols = Columns(data)  # each column read once, by every evaluation on these rows
    mask = used_rows(cols, columns, missing)
    positions = None
    preset = None
    if mask is not None:
        if learns_from_rows(parsed):
            preset = learned_on_all_rows(parsed, cols, coding)
        data = data.loc[mask]
        cols = Columns(data)
        positions = np.flatnonzero(mask)
    del mask  # (a byte a row, not needed while the design is built)

    ev = evaluate_formula(parsed, cols, offset_column, coding, preset)
    bad, what = nan_rows(ev, parsed.response)
    if bad is not None:
        # As R's na.omit on the model frame: rows where an expression is NaN
        # (log of a negative value, 0/0) are dropped too.
        message = (f"{int(bad.sum())} of {len(data)} rows have NaN values of {', '.join(what)} "
                   f"(row labels {row_labels(data.index, bad)})")
        if missing == "raise":
            raise ValueError(f"{message}; fix the data or use missing='drop'")
        if bad.all():
            raise ValueError(f"no rows left: {message}")
        warn_user(f"{message}; those rows are dropped")
        data = data.loc[~bad]
        positions = np.flatnonzero(~bad) if positions is None else positions[~bad]
        if preset is None:  # the transforms learned on every row, as above
            preset = {}
            for st in [ev.fixed_state] + [st for t in ev.pieces for st in t.states]:
                preset.update(st.transforms.learned())
        del ev, bad  # not alive while the rows left are evaluated
        ev = evaluate_formula(parsed, Columns(data), offset_column, coding, preset)
        bad, what = nan_rows(ev, parsed.response)
        if bad is not None:
            raise ValueError(f"{', '.join(what)} still evaluate to NaN after dropping rows; check the "
                             "expressions (e.g. scale() of a constant column)")
    n = len(data)
    rows = data.index

    y = ev.y
    check_values(f"the response {parsed.response!r}", y, rows)
    X, xnames = ev.X, ev.xnames
    for j, name in enumerate(xnames):
        check_values(f"the fixed-effects column {name!r}", X[:, j], rows)
    for t in ev.pieces:
        for j, name in enumerate(t.cnames):
            check_values(f"the column {name!r} of the random-effects term for {t.name!r}", t.z[:, j], rows)

    offset = ev.offset
    if offset is not None:
        check_values("the offset", offset, rows)
    y_fit = y if offset is None else y - offset

    # One QR of [X_c y_fit] serves the rank test, the scale check, the shift and the
    # exact-fit test; dropping columns then only needs the QR of R's kept columns.
    k = X.shape[1]
    x_center, centred = center(X, xnames)
    R = r_factor(centred_blocks(X, x_center, y_fit), k + 1)
    dropped: list[str] = []
    if k:
        kept = full_rank_columns(R[:, :k], column_norms(R[:, :k], x_center, n))
        if len(kept) < k:
            dropped = [xnames[j] for j in range(k) if j not in kept]
            warn_user(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                  f"column(s): {dropped}")
            X = X[:, kept]
            xnames = [xnames[j] for j in kept]
            x_center = x_center[kept]
            # (NumPy's stubs type qr() as a QRResult in every mode; mode="r" returns the array R.)
            R = np.linalg.qr(R[:, kept + [k]], mode="r")  # type: ignore[assignment]
        check_scale(X, xnames, R, centred)
    X = ones_column(n) if xnames == ["(Intercept)"] else np.asfortranarray(X, dtype=np.float64)

    terms = merge_double_bars(lme4_order(ev.pieces))
    check_terms(terms, n, sigma_known)
    y_coef = check_response(y_fit, X, xnames, terms, parsed.response, R, x_center, sigma_known)
    share_columns(terms, X, xnames)
    # The recorded numeric variables (for complete_design()) become views of the
    # columns held here already, which are then read-only.
    sources = [(X, xnames, [ev.fixed_state] + [state for t in terms for state in t.states])]
    sources += [(t.z, t.cnames, t.states) for t in terms]
    for M, names, states in sources:
        if any([state.share_columns(M, names) for state in states]):
            M.setflags(write=False)
    w = checked_weights(data, weights_column) if weights_column else None
    return Design(y=y, X=X, xnames=xnames, dropped_columns=dropped, terms=terms, rows=rows,
                  fixed_state=ev.fixed_state, x_center=x_center, y_coef=y_coef, weights=w, offset=offset,
                  data_index=data_index, positions=positions)
