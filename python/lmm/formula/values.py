"""R's values of data columns: numeric vectors, logicals, factors and matrices.

Factors hold int32 codes (-1 missing) and their level labels, sorted as R sorts them
(:func:`collate_key` approximates ICU's root collation); integer codes are made by
counting where the values span a compact range, never by sorting the rows.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Union

import numpy as np
import pandas as pd

from .._util import row_blocks
from .errors import FormulaTypeError
from .syntax import Name, r_num

__all__ = [
    "ContrastMatrix", "Factor", "Logical", "Matrix", "Value", "collate_key", "r_sorted", "level_label", "drop_unused",
    "labels_to_factor",
    "int_labels", "numeric_codes", "numeric_to_factor", "logical_to_factor", "series_value",
]

# ICU root collation order of ASCII punctuation and symbols (what R's sort() gives).
_PUNCT_ORDER = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
_PUNCT_RANK = {c: i for i, c in enumerate(_PUNCT_ORDER)}


def collate_key(s: str) -> tuple[Any, ...]:
    """Approximate ICU root collation (R's default sort of strings) for level order."""
    primary: list[tuple[int, int]] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for ch in unicodedata.normalize("NFD", s):
        if unicodedata.combining(ch):
            secondary.append(ord(ch))
            continue
        if ch in _PUNCT_RANK:
            primary.append((0, _PUNCT_RANK[ch]))
        elif ch.isspace():
            primary.append((0, -1))
        elif ch.isdigit():
            primary.append((1, ord(ch)))
        elif ch.isalpha():
            primary.append((2, ord(ch.lower())))
        else:
            primary.append((0, 100 + ord(ch)))
        tertiary.append(1 if ch.isupper() else 0)
    return (tuple(primary), tuple(secondary), tuple(tertiary), s)


def _ascii_alnum_key(s: str) -> tuple[str, str]:
    """:func:`collate_key`'s order for ASCII letters and digits: letters compare
    case-blind after digits (their code points in lower case already do), then
    lower case before upper at the first difference (swapcase puts it first)."""
    return (s.lower(), s.swapcase())


def r_sorted(labels: set[str] | list[str]) -> list[str]:
    """The distinct labels in R's order (:func:`collate_key`); the usual ids made of
    ASCII letters and digits by a key of two builtin string methods, or by plain code
    point order when they are all of one case (digits sort before letters either way)."""
    distinct = set(labels)
    joined = "".join(distinct)
    if all(distinct) and joined.isascii() and joined.isalnum():  # (each test one pass in C)
        if joined == joined.lower() or joined == joined.upper():
            return sorted(distinct)
        return sorted(distinct, key=_ascii_alnum_key)
    return sorted(distinct, key=collate_key)


class ContrastMatrix:
    """A coding given as a matrix (lme4's ``contrasts = list(f = M)``): one row per level,
    in level order, and the names of its columns (None: numbered 1, 2, ...)."""

    __slots__ = ("values", "names")

    def __init__(self, values: np.ndarray, names: list[str] | None) -> None:
        self.values = values
        self.names = names


class Factor:
    """An R factor: int32 codes (-1 missing), level labels, ordered flag, contrasts."""

    __slots__ = ("codes", "levels", "ordered", "contrast")

    def __init__(self, codes: np.ndarray, levels: list[str], ordered: bool = False,
                 contrast: str | None = None) -> None:
        self.codes = codes
        self.levels = levels
        self.ordered = ordered
        self.contrast = contrast


class Logical:
    """An R logical vector: bool values and an optional missing mask."""

    __slots__ = ("values", "na")

    def __init__(self, values: np.ndarray, na: np.ndarray | None = None) -> None:
        self.values = values
        self.na = na if na is not None and na.any() else None


class Matrix:
    """A matrix-valued variable (poly, scale): (n, k) float64 values and column names."""

    __slots__ = ("values", "colnames")

    def __init__(self, values: np.ndarray, colnames: list[str] | None) -> None:
        self.values = values
        self.colnames = colnames


# An evaluated expression's value (a runtime alias, so ``Union`` for Python 3.9).
Value = Union[np.ndarray, Factor, Logical, Matrix, float, bool, str]


def level_label(v: Any) -> str:
    """R's label of a level value: ``"TRUE"``, ``"3"``, ``"1e+05"``, or the string itself."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return r_num(float(v))
    return str(v)


def drop_unused(f: Factor) -> Factor:
    """The factor without its levels that no row has (R's ``droplevels``); ``f`` itself when none."""
    nlev = len(f.levels)
    valid = f.codes >= 0 if f.codes.size and f.codes.min() < 0 else None  # None: nothing missing
    present = np.zeros(nlev, dtype=bool)
    if nlev:
        # (not bincount, which would make an int64 copy of the codes)
        present[f.codes if valid is None else f.codes[valid]] = True
    if present.all():
        return f
    if valid is None:
        valid = np.ones(f.codes.shape, dtype=bool)
    remap = np.full(nlev, -1, dtype=np.int32)
    remap[present] = np.arange(int(present.sum()), dtype=np.int32)
    codes = np.where(valid, remap[np.where(valid, f.codes, 0)], -1).astype(np.int32)
    levels = [lev for lev, p in zip(f.levels, present) if p]
    return Factor(codes, levels, f.ordered, f.contrast)


def labels_to_factor(codes: np.ndarray, labels: list[str]) -> Factor:
    """Factor from codes into (possibly duplicated, unsorted) labels; levels sorted as R sorts."""
    levels = r_sorted(labels)
    pos = {lev: i for i, lev in enumerate(levels)}
    remap = np.array([pos[lab] for lab in labels], dtype=np.int32) if labels else np.zeros(0, np.int32)
    if codes.size and codes.min() >= 0:
        return Factor(remap[codes], levels)
    valid = codes >= 0
    out = np.where(valid, remap[np.where(valid, codes, 0)] if len(remap) else 0, -1).astype(np.int32)
    return Factor(out, levels)


def _compact_codes(values: np.ndarray, lo: Any, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Level codes of integer values in ``[lo, lo + span]`` by counting, without sorting the rows.

    Returns the int32 code of each value (levels in increasing order) and the offsets
    from ``lo`` of the values present.  Block by block: the temporaries are O(span + block).
    """
    n = values.shape[0]
    blocks = list(row_blocks(n))
    present = np.zeros(span + 1, dtype=bool)
    for rows in blocks:
        present[(values[rows] - lo).astype(np.int64, copy=False)] = True
    rank = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
    codes = np.empty(n, dtype=np.int32)
    for rows in blocks:
        codes[rows] = rank[(values[rows] - lo).astype(np.int64, copy=False)]
    return codes, np.flatnonzero(present)


def int_labels(values: np.ndarray) -> list[str]:
    """Decimal labels of integers, converted a block at a time (no array or list of all the ints)."""
    labels: list[str] = []
    for rows in row_blocks(values.shape[0]):
        labels.extend(map(str, values[rows].tolist()))
    return labels


def numeric_codes(x: np.ndarray, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """int32 codes of a numeric vector (-1 where NaN) and its sorted distinct values."""
    # np.min propagates NaN: the test needs no n-sized mask, and a column without
    # missing values is read in place.
    valid = ~np.isnan(x) if x.size and np.isnan(np.min(x)) else None
    values = x if valid is None else x[valid]
    lo = values.min() if values.size else 0.0
    span = values.max() - lo if values.size else 0.0
    if integer and span < 4 * values.size + 1024:
        # Integer codes in a compact range (the usual subject or item ids): levels
        # by counting, without sorting the rows.
        inv, offsets = _compact_codes(values, lo, int(span))
        uniq = offsets + int(lo)
    else:
        uniq, inv = np.unique(values, return_inverse=True)
    if valid is None:
        codes = np.asarray(inv, dtype=np.int32).reshape(-1)
    else:
        codes = np.full(x.shape[0], -1, dtype=np.int32)
        codes[valid] = np.asarray(inv).reshape(-1)
    return codes, uniq


def numeric_to_factor(x: np.ndarray, integer: bool) -> Factor:
    """R's ``factor()`` of numbers: levels sorted numerically, labelled as R prints them."""
    codes, uniq = numeric_codes(x, integer)
    labels = int_labels(uniq.astype(np.int64)) if integer else [r_num(float(u)) for u in uniq]
    if len(set(labels)) < len(labels):  # values equal to 15 digits share an R level
        return labels_to_factor(codes, labels)
    return Factor(codes, labels)


def logical_to_factor(v: Logical, all_levels: bool) -> Factor:
    """A logical as a factor with levels ``FALSE``, ``TRUE`` (unused ones dropped unless ``all_levels``)."""
    codes = v.values.astype(np.int32)
    if v.na is not None:
        codes[v.na] = -1
    f = Factor(codes, ["FALSE", "TRUE"])
    return f if all_levels else drop_unused(f)


def series_value(s: pd.Series, node: Name, text: str) -> Value:
    """R's value of a data column: numeric, logical or a factor (see the package docs).

    Args:
        s: the column.
        node: the name that refers to it, for error carets.
        text: the text the node's positions index.

    Returns:
        A float64 array, a :class:`Logical` or a :class:`Factor` (unused levels dropped).

    Raises:
        FormulaTypeError: complex, datetime, timedelta, period or interval columns.
    """
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        labels = [level_label(c) for c in dt.categories]
        codes = s.cat.codes.to_numpy().astype(np.int32)
        if len(set(labels)) < len(labels):
            f = labels_to_factor(codes, labels)
            f.ordered = bool(dt.ordered)
        else:
            f = Factor(codes, labels, bool(dt.ordered))
        return drop_unused(f)
    if pd.api.types.is_bool_dtype(dt):
        if dt == np.bool_:
            return Logical(s.to_numpy())
        return Logical(s.to_numpy(dtype=bool, na_value=False), s.isna().to_numpy())
    if pd.api.types.is_complex_dtype(dt):
        raise FormulaTypeError(f"column '{node.name}' is complex; lmm needs real numbers", text, node.pos, node.end)
    if pd.api.types.is_numeric_dtype(dt):
        if isinstance(dt, np.dtype):  # NumPy numbers: no missing marker but NaN (na_value copies)
            return s.to_numpy(dtype=np.float64)
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if (pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt)
            or isinstance(dt, (pd.PeriodDtype, pd.IntervalDtype))):
        raise FormulaTypeError(
            f"column '{node.name}' has dtype {dt}; convert it to numbers or categories first",
            text, node.pos, node.end)
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred == "boolean":
        na = s.isna().to_numpy()
        return Logical(np.where(na, False, s.to_numpy()).astype(bool), na)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)
    # (The object array factorizes faster than the string-dtype Series.)
    codes, uniques = pd.factorize(s.to_numpy(), sort=False, use_na_sentinel=True)
    labels = uniques.tolist()
    if not all(type(u) is str for u in labels):
        labels = [level_label(u) for u in labels]
    return labels_to_factor(np.asarray(codes), labels)


