"""The formula evaluated on the rows used: the response, the fixed-effects model matrix,
each random-effects term's columns and grouping codes, the offset; rows where an
expression is NaN (``log`` of a negative value, 0/0).

Stateful transforms (``scale``, ``poly``, ``ns``, ``bs``) learn their values on every row
of the data, as R's model frame does before it drops incomplete rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ..formula import Columns, ModelFrameState, ParsedFormula, evaluate_response, model_matrix
from .data import numeric_column
from .terms import ReTerm, make_term

__all__ = ["Evaluated", "evaluate_formula", "evaluate_offset", "learned_on_all_rows", "learns_from_rows",
           "nan_rows"]


@dataclass
class Evaluated:
    """The formula's values on some rows (before aliased columns are dropped and the
    terms are ordered): y, X and its column names, one :class:`ReTerm` per piece of a
    random-effects term, the recorded state of X, the offset."""

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
        parts.append(numeric_column(data, column, "offset"))
    if not parts:
        return None
    return np.ascontiguousarray(np.sum(parts, axis=0), dtype=np.float64)


def _state(contrasts: dict[str, str], preset: Optional[dict] = None) -> ModelFrameState:
    state = ModelFrameState()
    state.transforms.contrasts = dict(contrasts)
    state.transforms.preset = dict(preset or {})
    return state


# Functions whose values depend on the rows they are evaluated on (what R's model frame
# learns before it drops incomplete rows).
_STATEFUL = re.compile(r"\b(scale|poly|ns|bs)\s*\(")


def learns_from_rows(parsed: ParsedFormula) -> bool:
    """Whether the formula has a transform whose values depend on the rows it is evaluated on."""
    return _STATEFUL.search(parsed.text) is not None


def learned_on_all_rows(parsed: ParsedFormula, data: Columns, contrasts: dict[str, str]) -> dict:
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


def evaluate_formula(parsed: ParsedFormula, data: Columns, offset_column: Optional[str] = None,
                     contrasts: Optional[dict[str, str]] = None, preset: Optional[dict] = None) -> Evaluated:
    """The formula's values on the rows of ``data``: the fixed effects coded with
    ``contrasts``, numeric transforms with the ``preset`` values where given (else learned
    on these rows), the offset summed with ``data[offset_column]``."""
    y = np.ascontiguousarray(evaluate_response(parsed.response_expr, data), dtype=np.float64)
    state = _state(contrasts or {}, preset)
    X, xnames = model_matrix(parsed.fixed_terms, data, state=state)
    X, xnames = np.asarray(X, dtype=np.float64), list(xnames)
    # lme4 passes `contrasts` to the fixed effects' model.matrix only: the random-effects
    # terms code their factors with R's defaults (or their own C()).
    pieces = [make_term(rt, data, X, xnames, _state({}, preset)) for rt in parsed.random]
    return Evaluated(y=y, X=X, xnames=xnames, pieces=pieces, fixed_state=state,
                     offset=evaluate_offset(parsed, data, offset_column))


def _has_nan(values: np.ndarray) -> bool:
    """True when values holds a NaN: np.min propagates NaN, so no n-sized mask is made."""
    return values.size > 0 and bool(np.isnan(np.min(values)))


def nan_rows(ev: Evaluated, response: str) -> tuple[Optional[np.ndarray], list[str]]:
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
