"""Data input and its validation: the data as a pandas frame, the rows used, the columns
that travel with the rows (weights, offset), the argument checks and the value checks.

Everything here runs before any heavy work and speaks the user's terms (column names,
row labels): rows with missing values are dropped with a warning that counts them per
column (``missing="raise"`` refuses them); infinite values, and values whose squares
overflow or underflow (the core works on crossproducts), raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional

import numpy as np
import pandas as pd

from .._util import warn_user
from ..formula import Columns, ParsedFormula, required_columns
from ..formula.functions import CONTRASTS
from ..formula.values import ContrastMatrix

__all__ = ["MAX_MAGNITUDE", "OFFSET_COLUMN", "WEIGHTS_COLUMN", "as_frame", "check_values", "checked_contrasts",
           "checked_weights", "numeric_column", "row_labels", "used_rows", "with_column"]

# Largest (and smallest nonzero) magnitude allowed in y, X and z. The core forms
# crossproducts: sums of n squares must neither overflow nor underflow.
MAX_MAGNITUDE = 1e100

#: The columns under which arrays of weights and offsets travel with the rows of the data.
WEIGHTS_COLUMN = "(weights)"
OFFSET_COLUMN = "(offset)"


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


def used_rows(data: Columns, columns: list[str], missing: str) -> Optional[np.ndarray]:
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
    warn_user(f"{ndrop} of {data.n} rows dropped because of missing values ({per_column})")
    return mask


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


def numeric_column(data: pd.DataFrame | Columns, column: str, what: str) -> np.ndarray:
    """A numeric column as float64 (``what`` names it in the error: ``"weights"``)."""
    values = data.series(column) if isinstance(data, Columns) else data[column]
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        raise TypeError(f"{what} must be numeric, not {values.dtype}")
    return values.to_numpy(dtype=np.float64)


def checked_weights(data: pd.DataFrame, column: str) -> np.ndarray:
    """The prior weights in ``data[column]``; ValueError unless each is positive and finite."""
    w = np.ascontiguousarray(numeric_column(data, column, "weights"))
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        raise ValueError(f"weights must be positive and finite: {int(bad.sum())} row(s) are not (row labels "
                         f"{row_labels(data.index, bad)}); drop rows with zero weight")
    return w


def row_labels(rows: pd.Index, mask: np.ndarray, limit: int = 3) -> str:
    labels = list(rows[np.flatnonzero(mask)[:limit]])
    more = int(mask.sum()) - len(labels)
    return ", ".join(repr(x) for x in labels) + (f" and {more} more" if more > 0 else "")


def _max_abs(values: np.ndarray) -> float:
    """max |values| (0 for none), by two reductions rather than an n-sized |values|."""
    return max(float(np.max(values, initial=0.0)), -float(np.min(values, initial=0.0)))


def check_values(what: str, values: np.ndarray, rows: pd.Index) -> None:
    """Infinite values, or magnitudes whose squares overflow or underflow, raise ValueError."""
    big = _max_abs(values)
    if math.isinf(big):
        inf = np.isinf(values)
        raise ValueError(f"{what} has infinite values in {int(inf.sum())} row(s) (row labels "
                         f"{row_labels(rows, inf)}); remove or transform those rows")
    if big > MAX_MAGNITUDE or 0.0 < big < 1.0 / MAX_MAGNITUDE:
        raise ValueError(f"{what} has values of magnitude {big:.3g}; lmm works with sums of squares of "
                         f"the data, which {'overflow' if big > 1 else 'underflow'} in floating point: "
                         f"rescale it (e.g. divide by {big:.0e})")


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


def checked_contrasts(contrasts, parsed: ParsedFormula) -> dict:
    """lme4's ``contrasts = list(f = "contr.sum", g = M)`` as column → coding kind or matrix."""
    if contrasts is None:
        return {}
    if not isinstance(contrasts, dict):
        raise TypeError("contrasts must be a dict of column name -> coding, e.g. {'Machine': 'contr.sum'}")
    out: dict = {}
    used = set(required_columns(parsed))
    for column, coding in contrasts.items():
        if column not in used:
            warn_user(f"variable {column!r} is absent, its contrast will be ignored")
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
