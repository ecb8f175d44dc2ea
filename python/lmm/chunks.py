"""Fitting from data that arrive in row chunks: :meth:`LinearMixedModel.from_chunks`.

In a linear mixed model everything after the crossproduct blocks A depends on the
numbers of levels, not on the number of rows, and A is a sum over rows. A model is
therefore built from any number of data frames, none of which needs to fit in memory
beside the others:

1. *levels*: the levels of the grouping factors and of the fixed effects' factors over
   the rows used (those without missing values), as the data frame of all rows would
   give them (not collected for columns whose levels are given with ``levels=``);
2. *statistics*: per chunk, the model matrices, merged into the column means and the
   R factor of ``[X_c y]`` (the shift of the design, see :func:`lmm.model.shift_for`)
   and each term's column statistics (its working coordinates,
   ``lmm._core.term_transform``). When X and the terms' columns hold no factors they
   do not depend on the levels, and this is done in the pass of the levels;
3. *crossproducts*: per chunk, the blocks of A in the compiled core against the
   global level codes, shift and transforms, summed (``lmm._core.Crossprod.add``).

The model is then analysed and fitted as one from all rows. What needs the rows
themselves (fitted values, residuals, refits with other responses) is not kept; the
fitted result predicts on any chunk with ``result.predict(chunk)``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import _core as core
from .design import EXACT_FIT_TOL, ReTerm, as_frame, evaluate_offset
from .design.fixed import full_rank_columns, warn_scales
from .formula import (
    ModelFrameState,
    ParsedFormula,
    check_columns,
    evaluate_response,
    grouping_codes,
    model_matrix,
    parse_formula,
    required_columns,
)
from .formula.functions import CONTRASTS
from .model import EXACT_FIT_SIGMA, CoreModel, LinearMixedModel, warn_uncentred

__all__ = ["ChunkedCoreModel", "ChunkedDesign", "ChunkedLinearMixedModel", "from_chunks", "is_parquet_path",
           "parquet_chunks", "rows_needed"]

# The in-memory design's tolerances (lmm.design): the exact fit, lme4's checkScaleX factor.
_STATEFUL = re.compile(r"\b(scale|poly|ns|bs)\s*\(")
_FACTOR_CALL = re.compile(r"\b(factor|as\.factor|ordered|relevel|C|interaction)\s*\(")

_ROWS_NEEDED = ("a model fitted from chunks keeps only the crossproducts of the rows, not the rows: {what} "
                "needs them. Evaluate it chunk by chunk instead (result.predict(chunk) gives the fitted values "
                "of a chunk's rows; its response minus them the residuals), or fit the concatenated data in memory")


def rows_needed(what: str) -> NotImplementedError:
    """The error of what needs the rows of a chunked model."""
    return NotImplementedError(_ROWS_NEEDED.format(what=what))


@dataclass
class ChunkedDesign:
    """The design of a model fitted from chunks: everything of :class:`lmm.design.Design`
    that does not need the rows (names, terms with their levels, recorded model-frame
    states, the shift); the per-row arrays raise NotImplementedError.

    Attributes:
        nobs: number of rows used (over all chunks).
        xnames: names of the columns of X.
        terms: random-effects terms in lme4's order; their ``codes`` and ``z`` have no rows.
        fixed_state: the recorded model-frame state of the fixed effects (for new data).
        x_center, y_coef: the shift the core works with.
        nchunks: number of chunks read.
        ndropped: rows dropped for missing values.
    """

    nobs: int
    xnames: list[str]
    terms: list[ReTerm]
    fixed_state: ModelFrameState
    x_center: np.ndarray
    y_coef: np.ndarray
    nchunks: int = 0
    ndropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    weights: None = None
    offset: None = None

    @property
    def X(self) -> np.ndarray:
        raise rows_needed("the fixed-effects model matrix X")

    @property
    def y(self) -> np.ndarray:
        raise rows_needed("the response")

    @property
    def y_fit(self) -> np.ndarray:
        raise rows_needed("the response")

    def aligned(self, values: np.ndarray, name: str) -> pd.Series:
        raise rows_needed(f"per-row output ({name})")


def parquet_chunks(path, columns: Optional[Sequence[str]] = None,
                   batch_rows: int = 1 << 20) -> Callable[[], Iterator[pd.DataFrame]]:
    """The rows of a parquet file or dataset (a directory of files) as chunks for
    :meth:`LinearMixedModel.from_chunks`: a function returning a fresh iterator over data
    frames of at most ``batch_rows`` rows, read one at a time with pyarrow.

    Args:
        path: a parquet file or a directory of them (pyarrow's dataset).
        columns: the columns to read (None: all).
        batch_rows: the most rows per chunk.

    Raises:
        ImportError: pyarrow is not installed.

    Example:
        >>> import lmm, tempfile, os
        >>> d = lmm.datasets.load("sleepstudy")
        >>> path = os.path.join(tempfile.mkdtemp(), "sleep.parquet")
        >>> d.to_parquet(path, row_group_size=40)  # doctest: +SKIP
        >>> chunks = parquet_chunks(path)  # doctest: +SKIP
        >>> m = lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (Days | Subject)", chunks)  # doctest: +SKIP
    """
    try:
        import pyarrow.dataset as ds
    except ImportError:
        raise ImportError("reading parquet needs pyarrow: pip install pyarrow") from None
    dataset = ds.dataset(str(path), format="parquet")
    cols = None if columns is None else list(columns)
    if cols is not None:
        missing = [c for c in cols if c not in dataset.schema.names]
        if missing:
            raise ValueError(f"the parquet data at {str(path)!r} has no columns {missing}; it has "
                             f"{dataset.schema.names}")

    def batches() -> Iterator[pd.DataFrame]:
        for batch in dataset.to_batches(columns=cols, batch_size=batch_rows):
            yield batch.to_pandas()

    return batches


def is_parquet_path(data) -> bool:
    """Whether ``data`` names parquet data (a path ending in .parquet or .pq, or a directory)."""
    import os

    if not isinstance(data, (str, os.PathLike)):
        return False
    text = os.fspath(data)
    return str(text).endswith((".parquet", ".pq")) or os.path.isdir(text)


def _chunk_source(chunks) -> Callable[[], Iterator[Any]]:
    """A function returning a fresh iterator over the chunks (several passes are made)."""
    if callable(chunks):
        return lambda: iter(chunks())
    if isinstance(chunks, Iterator):
        raise TypeError("chunks is an iterator, which can be read only once; from_chunks reads the chunks more than "
                        "once: pass a list of data frames, or a function returning a fresh iterator over them "
                        "(e.g. lambda: pd.read_csv(path, chunksize=10**6))")
    if isinstance(chunks, (pd.DataFrame, str, bytes)) or not isinstance(chunks, Iterable):
        raise TypeError(f"chunks must be a list of data frames or a function returning an iterator over them, not "
                        f"{type(chunks).__name__}")
    return lambda: iter(chunks)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class _Plan:
    """What every pass shares: the parsed formula, the columns, the rule for used rows."""

    def __init__(self, parsed: ParsedFormula, weights: Optional[str], offset: Optional[str]) -> None:
        self.parsed = parsed
        self.weights = weights
        self.offset = offset
        self.columns = list(dict.fromkeys(required_columns(parsed) + [c for c in (weights, offset) if c]))
        self.group_columns = list(dict.fromkeys(f for rt in parsed.random for f in rt.factors))
        self.factor_calls = bool(_FACTOR_CALL.search(parsed.text))
        self.missing_counts: dict[str, int] = {}
        self.nread = 0
        self.ndropped = 0

    def used(self, chunk, k: int, count: bool = False) -> pd.DataFrame:
        """The chunk as a data frame of the used columns, its rows with missing values in
        them dropped; with ``count``, the rows read, the rows dropped and the missing values
        per column are counted (in the first pass)."""
        frame = as_frame(chunk)
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            check_columns(self.parsed, frame)  # (the formula's own message, with close matches)
            raise ValueError(f"chunk {k} has no columns {absent}; every chunk needs the columns {self.columns}")
        frame = frame[self.columns]
        na = frame.isna()
        bad = na.any(axis=1).to_numpy()
        if count:
            self.nread += len(frame)
            self.ndropped += int(bad.sum())
            for c, n in na.sum().items():
                if n:
                    self.missing_counts[str(c)] = self.missing_counts.get(str(c), 0) + int(n)
        return frame.loc[~bad] if bad.any() else frame

    def discrete(self, frame: pd.DataFrame) -> list[str]:
        """The columns whose distinct values make levels: not numeric, grouping columns, and
        every numeric column when the formula makes factors of numbers (factor(x)): their
        distinct values are collected then, and the model matrices made on them."""
        out = []
        for c in self.columns:
            if c in (self.weights, self.offset):
                continue
            s = frame[c]
            if c in self.group_columns or not _is_numeric(s) or (self.factor_calls and s.dtype.kind in "iuf"):
                out.append(c)
        return out


def _distinct(values: pd.Series) -> pd.Series:
    return pd.Series(pd.unique(values), name=values.name) if not isinstance(values.dtype, pd.CategoricalDtype) else \
        pd.Series(pd.Categorical(values.cat.remove_unused_categories().cat.categories,
                                 categories=values.cat.categories, ordered=values.cat.ordered), name=values.name)


def _levels_frame(values: dict[str, pd.Series], numeric: dict[str, Any]) -> pd.DataFrame:
    """A small frame on which every discrete column takes each of its values (cyclically
    repeated to a common length) and every numeric column one value: evaluating the
    formula on it records the factor levels of all rows."""
    length = max([len(v) for v in values.values()] + [1])
    cols: dict[str, Any] = {}
    for c, v in values.items():
        idx = np.arange(length) % max(len(v), 1)
        cols[c] = v.iloc[idx].reset_index(drop=True)
    for c, v in numeric.items():
        cols[c] = pd.Series([v] * length)
    return pd.DataFrame(cols)


@dataclass
class _Pieces:
    """A chunk's arrays: the response the core fits, X, per term (model order) codes and z, weights."""

    y: np.ndarray
    X: np.ndarray
    codes: list[np.ndarray]
    zs: list[np.ndarray]
    weights: Optional[np.ndarray]
    xnames: list[str] = field(default_factory=list)


class _Statistics:
    """The shift's and the terms' statistics, merged chunk by chunk: the rows, the means
    and the R factor of the centred [X y] (unweighted, as the in-memory design's shift),
    each term's column statistics (prior weights) and the response's."""

    def __init__(self, nterms: int) -> None:
        self.merged: Optional[tuple[int, np.ndarray, np.ndarray]] = None
        self.stats = [core.TermColumnStats() for _ in range(nterms)]
        self.ystats = core.TermColumnStats()
        self.xnames: list[str] = []
        self.binary: Optional[np.ndarray] = None  # per column of X: every value 0 or 1

    @property
    def n(self) -> int:
        return 0 if self.merged is None else self.merged[0]

    def add(self, d: _Pieces) -> None:
        m = d.y.shape[0]
        if self.merged is None:
            self.xnames = d.xnames
        elif d.xnames != self.xnames:
            raise ValueError(f"the fixed-effects columns of chunks differ ({self.xnames} then {d.xnames})")
        binary = np.all((d.X == 0.0) | (d.X == 1.0), axis=0)
        self.binary = binary if self.binary is None else self.binary & binary
        V = np.column_stack([d.X, d.y])
        mean = V.mean(axis=0)
        self.merged = _merge_mean_r(self.merged, m, mean, np.asarray(np.linalg.qr(V - mean, mode="r")))
        for s, z in zip(self.stats, d.zs):
            s.merge(core.TermColumnStats.of(z, d.weights))
        self.ystats.merge(core.TermColumnStats.of(d.y[:, None]))

    def shift(self) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """As the in-memory design: the columns of X kept (aliased ones dropped, with lme4's
        warning), x_center (their means when X has an intercept), y_coef (the
        least-squares coefficients of y on X_c, from R) and R of [X_c y]; lme4's warning
        when predictors are on very different scales."""
        assert self.merged is not None
        n, mean, Rc = self.merged
        p = len(self.xnames)
        x_center = np.zeros(p)
        if p > 1 and self.xnames[0] == "(Intercept)":
            x_center[1:] = mean[1:p]
        shift = np.concatenate([x_center, [0.0]])
        R = np.asarray(np.linalg.qr(np.vstack([Rc, math.sqrt(n) * (mean - shift)[None, :]]), mode="r"))
        kept = list(range(p))
        if p:
            norms = np.sqrt(np.einsum("ij,ij->j", R[:, :p], R[:, :p]) + n * x_center * x_center)
            kept = full_rank_columns(R[:, :p], norms)
            if len(kept) < p:
                dropped = [self.xnames[j] for j in range(p) if j not in kept]
                warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
                              f"{dropped}", UserWarning, stacklevel=4)
                x_center = x_center[kept]
                R = np.asarray(np.linalg.qr(R[:, kept + [p]], mode="r"))
            assert self.binary is not None
            _check_scale([self.xnames[j] for j in kept], Rc[:, kept], self.binary[kept], n)
        q = len(kept)
        y_coef = np.linalg.solve(R[:q, :q], R[:q, q]) if q else np.zeros(0)
        return kept, x_center, y_coef, R


def _merge_mean_r(a: Optional[tuple[int, np.ndarray, np.ndarray]], n: int, mean: np.ndarray,
                  R: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, column means, R of the centred columns) of two sets of rows stacked: the
    centred columns of each are orthogonal to ones, so [R_a; R_b; √(n_a n_b / n)(m_a − m_b)']
    has the R of the union's centred columns (Chan's update of the mean, as a QR)."""
    if a is None:
        return n, mean, R
    na, ma, Ra = a
    total = na + n
    d = math.sqrt(na * n / total) * (ma - mean)
    R2 = np.linalg.qr(np.vstack([Ra, R, d[None, :]]), mode="r")
    return total, (na / total) * ma + (n / total) * mean, np.asarray(R2)


def from_chunks(formula: str, chunks, *, levels: Optional[dict] = None, REML: bool = True,
                weights: Optional[str] = None, offset: Optional[str] = None, contrasts=None,
                sigma: Optional[float] = None, missing: str = "drop", max_dense_bytes: Optional[float] = None):
    """A linear mixed model from data in row chunks, equal to the model of all rows at once.

    See :meth:`lmm.LinearMixedModel.from_chunks` (the arguments are its own).
    """
    from .model import DEFAULT_MAX_DENSE_BYTES

    coding = _string_contrasts(contrasts)
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', not {missing!r}")
    for name, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} of a chunked fit must be a column name (one value per row cannot follow the "
                            "chunks)")
    if not isinstance(REML, (bool, np.bool_)):
        raise TypeError(f"REML must be True or False, not {REML!r}")
    number = isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool)
    if sigma is not None and not (number and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number (a known residual SD) or None, not {sigma!r}")
    max_dense_bytes = DEFAULT_MAX_DENSE_BYTES if max_dense_bytes is None else float(max_dense_bytes)
    parsed = parse_formula(formula)
    if _STATEFUL.search(parsed.text):
        raise NotImplementedError("scale(), poly(), ns() and bs() learn their coefficients from all rows, which "
                                  "from_chunks does not compute yet: transform those columns before chunking, or "
                                  "fit the data in memory")
    source = _chunk_source(chunks)
    plan = _Plan(parsed, weights, offset)
    given = {str(k): v for k, v in (levels or {}).items()}

    # Columns of the model matrices X and z (not the response, not only grouping): when all
    # are numeric and no factor() call is made, the matrices do not depend on the levels, and
    # the first pass also gathers the shift and the column statistics (two passes in all).
    model_columns = {r.node.name for terms_ in [parsed.fixed_terms] + [rt.terms for rt in parsed.random]
                     for r in terms_.refs if not r.soft}

    def numeric_parts(frame: pd.DataFrame, k: int, fixed_state: ModelFrameState,
                      states: Sequence[ModelFrameState]) -> _Pieces:
        """The chunk's response (minus the offset), X and z of each term in formula order, weights."""
        y = np.ascontiguousarray(evaluate_response(parsed.response_expr, frame), dtype=np.float64)
        off = evaluate_offset(parsed, frame, offset)
        if off is not None:
            y = y - off
        X, names = model_matrix(parsed.fixed_terms, frame, state=fixed_state)
        X = np.asfortranarray(X, dtype=np.float64)
        zs = [np.asfortranarray(model_matrix(rt.terms, frame, state=st)[0], dtype=np.float64)
              for rt, st in zip(parsed.random, states)]
        w = None
        if weights is not None:
            w = np.ascontiguousarray(frame[weights].to_numpy(dtype=np.float64))
            if not np.all(np.isfinite(w) & (w > 0)):
                raise ValueError(f"chunk {k}: weights must be positive and finite; drop rows with zero weight")
        parts = [("the response", y), ("X", X)] + [(f"the term for {rt.name!r}", z) for rt, z in zip(parsed.random, zs)]
        for what, v in parts:
            if v.size and not np.all(np.isfinite(v)):
                raise ValueError(f"chunk {k}: {what} has NaN or infinite values after evaluating the formula (e.g. "
                                 "log of a negative value); from_chunks drops only rows with missing data values: "
                                 "filter those rows first")
        return _Pieces(y=y, X=X, codes=[], zs=zs, weights=w, xnames=list(names))

    # --- pass 1: levels (distinct values of the discrete columns over the rows used) --------
    distinct: dict[str, list[pd.Series]] = {}
    combos: list[list[pd.DataFrame]] = [[] for _ in parsed.random]
    numeric: dict[str, Any] = {}
    nchunks = 0
    levels_free: Optional[bool] = None
    acc = _Statistics(len(parsed.random))
    for k, chunk in enumerate(source()):
        nchunks += 1
        frame = plan.used(chunk, k, count=True)
        discrete = plan.discrete(frame)
        free = not plan.factor_calls and not any(c in model_columns for c in discrete)
        if levels_free is None:
            levels_free = free
        elif free != levels_free:
            raise ValueError(f"chunk {k}: the columns {sorted(model_columns)} do not have the types they have in the "
                             "first chunk (numeric versus categorical); give every chunk the same column types")
        for c in plan.columns:
            if c not in discrete and c not in numeric and len(frame):
                numeric[c] = frame[c].iloc[0]
        for c in discrete:
            if c not in given:
                distinct.setdefault(c, []).append(_distinct(frame[c]))
        for j, rt in enumerate(parsed.random):
            if len(rt.factors) > 1:
                combos[j].append(frame[list(rt.factors)].drop_duplicates())
        if levels_free and len(frame):
            acc.add(numeric_parts(frame, k, ModelFrameState(), [ModelFrameState() for _ in parsed.random]))
    if nchunks == 0:
        raise ValueError("chunks is empty: no data frames to fit")
    ndrop = plan.ndropped
    if ndrop:
        per_column = ", ".join(f"{c}: {k}" for c, k in plan.missing_counts.items())
        if missing == "raise":
            raise ValueError(f"{ndrop} of {plan.nread} rows have missing values ({per_column}); drop them or use "
                             "missing='drop'")
        warnings.warn(f"{ndrop} of {plan.nread} rows dropped because of missing values ({per_column})", UserWarning,
                      stacklevel=3)
    values: dict[str, pd.Series] = {}
    for c, parts in distinct.items():
        values[c] = _distinct(pd.concat(parts, ignore_index=True))
    for c, v in given.items():
        values[c] = pd.Series(list(v), name=c)
    if not values and not numeric:
        raise ValueError("no rows left after dropping rows with missing values")
    lf = _levels_frame(values, numeric)
    fixed_state = ModelFrameState()
    # (lme4 passes contrasts to the fixed effects' model matrix only.)
    fixed_state.transforms.contrasts = {c: k for c, k in coding.items() if c in plan.columns}
    _, xnames = model_matrix(parsed.fixed_terms, lf, state=fixed_state)
    states: list[ModelFrameState] = []
    pieces: list[ReTerm] = []
    for j, rt in enumerate(parsed.random):
        st = ModelFrameState()
        _, cnames = model_matrix(rt.terms, lf, state=st)
        if not cnames:
            raise ValueError(f"random-effects term for {rt.name!r} has no columns ({rt.expr!r})")
        if len(rt.factors) > 1 and not all(f in given for f in rt.factors):
            group_frame = pd.concat(combos[j], ignore_index=True).drop_duplicates()
        else:
            group_frame = pd.DataFrame({f: values[f] for f in rt.factors})
        _, group_levels = grouping_codes(rt, group_frame)
        states.append(st)
        pieces.append(ReTerm(name=rt.name, factors=rt.factors, cnames=list(cnames), codes=np.zeros(0, np.int32),
                             group_levels=group_levels, z=np.zeros((0, len(cnames)), order="F"),
                             structure=rt.structure, double_bar=rt.double_bar, exprs=[rt.expr], states=[st]))
    # The pieces in lme4's order (the core's rule), those of a || term then merged into one
    # diagonal term (as the in-memory design: its columns in that order).
    groups = _merge_groups(pieces, core.term_order([len(t.group_levels) for t in pieces]))
    terms = [_merged([pieces[j] for j in g]) for g in groups]
    lookups = [_Lookup(pieces[k].group_levels) for k in range(len(pieces))]

    def evaluate(chunk, k: int) -> _Pieces:
        """The chunk's arrays on the global levels, terms in model order."""
        frame = plan.used(chunk, k)
        d = numeric_parts(frame, k, fixed_state, states)
        d.codes = [lookups[g[0]].codes(*grouping_codes(parsed.random[g[0]], frame), pieces[g[0]], k) for g in groups]
        d.zs = [d.zs[g[0]] if len(g) == 1 else np.asfortranarray(np.column_stack([d.zs[j] for j in g]))
                for g in groups]
        if dropped:
            d.X = np.asfortranarray(d.X[:, kept])
        return d

    # --- pass 2 (when the model matrices depend on the levels): the shift and the terms'
    # column statistics ---------------------------------------------------------------------
    if not levels_free:
        for k, chunk in enumerate(source()):
            frame = plan.used(chunk, k)
            if len(frame):
                acc.add(numeric_parts(frame, k, fixed_state, states))
    if acc.n == 0:
        raise ValueError("no rows left after dropping rows with missing values")
    if acc.xnames != list(xnames):
        raise ValueError(f"the fixed-effects columns {acc.xnames} of the chunks differ from those of all rows "
                         f"{list(xnames)}")
    n = acc.n
    kept, x_center, y_coef, R = acc.shift()
    dropped = [c for j, c in enumerate(xnames) if j not in kept]
    xnames = [xnames[j] for j in kept]
    p = len(xnames)
    ystats = acc.ystats
    ynorm = math.sqrt(float(ystats.squares[0]))
    if sigma is None and (float(ystats.centred2[0]) == 0.0 or abs(R[p, p]) <= EXACT_FIT_TOL * ynorm):
        raise ValueError(f"the response {parsed.response!r} is constant or fitted exactly by the fixed effects "
                         f"{xnames}: the residual variance would be 0")
    for t in terms:
        if len(t.group_levels) < 2:
            raise ValueError(f"grouping factor {t.name!r} has a single level in the {n} rows used; a random effect "
                             f"needs at least two levels: remove the term {t.label}")
        if sigma is None and len(t.group_levels) >= n:
            raise ValueError(f"grouping factor {t.name!r} has {len(t.group_levels)} levels for {n} observations; "
                             f"the random effect {t.label} and the residual variance are not identifiable")
    term_stats = []
    for g in groups:
        st_ = acc.stats[g[0]]
        if len(g) > 1:
            st_ = core.TermColumnStats()
            st_.merge(acc.stats[g[0]])
            for j in g[1:]:
                st_.append_columns(acc.stats[j])
        term_stats.append(st_)
    transforms = [core.term_transform(st_, t.structure) for st_, t in zip(term_stats, terms)]

    # --- pass 3: the crossproducts, summed ----------------------------------------------
    tree = _TreeSum()
    for k, chunk in enumerate(source()):
        d = evaluate(chunk, k)
        if d.y.shape[0] == 0:
            continue
        tuples: list = [(c, z, len(t.group_levels), t.structure) for c, z, t in zip(d.codes, d.zs, terms)]
        tree.add(core.chunk_crossprod(tuples, d.X, d.y, x_center, y_coef, d.weights, transforms))
    total = tree.total()
    if total.n != n:
        raise ValueError(f"the chunks changed between passes ({n} rows, then {total.n}); pass chunks that give the "
                         "same rows each time they are read")
    design = ChunkedDesign(nobs=int(n), xnames=list(xnames), terms=terms, fixed_state=fixed_state,
                           x_center=x_center, y_coef=y_coef, nchunks=nchunks, ndropped=int(ndrop),
                           dropped_columns=dropped)
    model = ChunkedLinearMixedModel(formula, parsed, design, total, REML=bool(REML), sigma=sigma,
                                    max_dense_bytes=max_dense_bytes,
                                    response_sd=math.sqrt(float(ystats.centred2[0]) / n))
    warn_uncentred(model.core, model.terms, [np.asarray(st_.mean) for st_ in term_stats])
    return model


class ChunkedCoreModel(CoreModel):
    """A :class:`~lmm.model.CoreModel` on crossproducts summed over chunks (no rows kept)."""

    def __init__(self, A: core.Crossprod, terms: Sequence[ReTerm], *, p: int, x_center: np.ndarray,
                 y_coef: np.ndarray, max_dense_bytes: float, reml: bool, sigma: Optional[float]) -> None:
        self._design_terms = list(terms)
        self._tuples = []
        self._X = np.zeros((0, p), order="F")  # (its shape only: the number of fixed effects)
        self._x_center = np.asarray(x_center, dtype=np.float64)
        self._y_coef = np.asarray(y_coef, dtype=np.float64)
        self.weights = None
        self.sigma = sigma
        self._y = np.zeros(0)
        self._max_dense_bytes = float(max_dense_bytes)
        self.core = core.Model.from_crossprod(A, list(range(len(terms))), self._max_dense_bytes, sigma or 0.0)
        self.terms = [self._design_terms[k] for k in self.core.order]
        self.REML = bool(reml)
        self.theta_scale = np.ones(self.ntheta)
        self._delta = np.zeros(p)
        self._R = None

    # Pickled with its crossproducts (sizes set by the levels, not the rows): the core is
    # formed again from them.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["core"] = self.core.crossprod()
        return state

    def __setstate__(self, state: dict) -> None:
        A = state.pop("core")
        self.__dict__.update(state)
        self.core = core.Model.from_crossprod(A, list(range(len(self._design_terms))), self._max_dense_bytes,
                                              self.sigma or 0.0)

    def set_response(self, y: np.ndarray) -> None:
        raise rows_needed("a new response (set_response)")


class ChunkedLinearMixedModel(LinearMixedModel):
    """A :class:`~lmm.LinearMixedModel` built from row chunks (:meth:`LinearMixedModel.from_chunks`).

    Evaluation, fits, results and inference that need only the crossproducts work as
    for the model of all rows; what needs the rows raises NotImplementedError.
    """

    def __init__(self, formula: str, parsed: ParsedFormula, design: ChunkedDesign, A: core.Crossprod, *,
                 REML: bool, sigma: Optional[float], max_dense_bytes: float, response_sd: float) -> None:
        self.formula = formula
        self.REML = bool(REML)
        self.sigma = None if sigma is None else float(sigma)
        self.parsed = parsed
        self.design = design  # type: ignore[assignment]
        self._nobs = design.nobs
        self.offset_argument = False
        self.max_dense_bytes = float(max_dense_bytes)
        try:
            self._shifted = ChunkedCoreModel(A, design.terms, p=len(design.xnames), x_center=design.x_center,
                                             y_coef=design.y_coef, max_dense_bytes=self.max_dense_bytes,
                                             reml=self.REML, sigma=self.sigma)
        except ValueError as err:
            raise ValueError(f"cannot set up the model {formula!r}: {err}") from None
        self._core = self._shifted.core
        self.terms = self._shifted.terms
        self._response_sd = response_sd

    @property
    def nobs(self) -> int:
        return self._nobs

    @property
    def nfixed(self) -> int:
        return len(self.design.xnames)

    def response_core(self) -> CoreModel:
        raise rows_needed("a core for other responses (bootstrap)")

    def with_response(self, y) -> LinearMixedModel:
        raise rows_needed("a refit with another response")

    def fit_many(self, *args, **kwargs):
        raise rows_needed("fit_many (the responses' crossproducts)")

    def fit(self, start=None, *, reml: bool | None = None, optimizer: str = "core", tol: float = 1e-8,
            maxiter: int = 10000, verbose: bool = False):
        """Optimize θ and return the fitted result (see :meth:`LinearMixedModel.fit`)."""
        from .optimize import optimize_theta
        from .results import LmmResult

        reml = self.REML if reml is None else bool(reml)
        opt = optimize_theta(self, start=start, reml=reml, optimizer=optimizer, tol=tol, maxiter=maxiter,
                             verbose=verbose)
        res = LmmResult(self, opt, reml=reml)
        if self.sigma is None and res.sigma <= EXACT_FIT_SIGMA * self._response_sd:
            warnings.warn(f"the residual standard deviation {res.sigma:.3g} is zero to working precision against the "
                          f"response's ({self._response_sd:.3g}): the random effects fit the response exactly, and "
                          "θ is not determined", UserWarning, stacklevel=2)
        return res


class _TreeSum:
    """The sum of chunks' crossproducts, added pairwise as a binary counter adds bits.

    Adding two sums of crossed terms costs the sizes of both (their sparse patterns are
    merged), so adding each chunk to one running total costs the total's size per chunk;
    pairwise, each chunk's blocks are merged about log2(chunks) times. At most
    log2(chunks) partial sums are held.
    """

    def __init__(self) -> None:
        self.stack: list[tuple[int, core.Crossprod]] = []

    def add(self, A: core.Crossprod) -> None:
        height = 0
        while self.stack and self.stack[-1][0] == height:
            _, B = self.stack.pop()
            B.add(A)
            A, height = B, height + 1
        self.stack.append((height, A))

    def total(self) -> core.Crossprod:
        if not self.stack:
            return core.Crossprod()
        out = self.stack.pop()[1]
        while self.stack:
            out.add(self.stack.pop()[1])
        return out


def _merge_groups(pieces: list[ReTerm], order: list[int]) -> list[list[int]]:
    """The pieces (indices, in ``order``) that form each term: a run of one-column pieces of
    ``||`` terms on the same grouping factor is one diagonal term, as the in-memory design."""
    groups: list[list[int]] = []
    for k in order:
        t = pieces[k]
        if groups:
            first = pieces[groups[-1][0]]
            if t.double_bar and t.p == 1 and first.double_bar and first.p == 1 and first.factors == t.factors:
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def _merged(parts: list[ReTerm]) -> ReTerm:
    """One term of the pieces (a diagonal term of several one-column pieces of a || term)."""
    t = parts[0]
    if len(parts) == 1:
        t.double_bar = t.double_bar and t.p == 1
        return t
    cnames = [c for u in parts for c in u.cnames]
    return ReTerm(name=t.name, factors=t.factors, cnames=cnames, codes=t.codes, group_levels=t.group_levels,
                  z=np.zeros((0, len(cnames)), order="F"), structure="diag", double_bar=True,
                  exprs=[e for u in parts for e in u.exprs], states=[s for u in parts for s in u.states])


class _Lookup:
    """Codes of a chunk's levels in the global levels of a grouping factor."""

    def __init__(self, levels) -> None:
        self.values = getattr(levels, "values", None)  # integer ids (sorted int64)
        self.levels = levels
        self.index: Optional[pd.Index] = None  # the labels, made when first needed

    def codes(self, local: np.ndarray, local_levels, term: ReTerm, k: int) -> np.ndarray:
        lv = getattr(local_levels, "values", None)
        if self.values is not None and lv is not None:
            pos = np.searchsorted(self.values, lv)
            pos = np.minimum(pos, len(self.values) - 1)
            idx = np.where(self.values[pos] == lv, pos, -1)
        else:
            if self.index is None:
                self.index = pd.Index(self.levels.labels(), dtype=object)
            idx = self.index.get_indexer(pd.Index(local_levels.labels(), dtype=object))
        if np.any(idx < 0):
            new = [local_levels.labels()[i] for i in np.flatnonzero(idx < 0)[:5]]
            raise ValueError(f"chunk {k}: the grouping factor {term.name!r} has levels {new} that are not among its "
                             "levels (given with levels=?)")
        out = idx[local] if local.size else local
        return np.ascontiguousarray(out, dtype=np.int32)


def _string_contrasts(contrasts) -> dict[str, str]:
    """lme4's ``contrasts`` given as coding names (``{"f": "contr.sum"}``) as the formula's kinds."""
    if contrasts is None:
        return {}
    if not isinstance(contrasts, dict):
        raise TypeError("contrasts must be a dict of column name -> coding, e.g. {'Machine': 'contr.sum'}")
    out = {}
    for column, name in contrasts.items():
        if not isinstance(name, str):
            raise NotImplementedError(f"contrasts[{column!r}] is a matrix, which from_chunks does not take yet: give a "
                                      "coding name ('contr.sum', 'contr.helmert', 'contr.poly', 'contr.treatment')")
        # lme4's contrasts argument names contr.treatment's columns by level (unlike C()'s).
        kind = "treatment" if name == "contr.treatment" else CONTRASTS.get(name)
        if kind is None:
            raise ValueError(f"contrasts[{column!r}] = {name!r} is not a coding; use one of "
                             f"{', '.join(sorted(CONTRASTS))}")
        out[str(column)] = kind
    return out


def _check_scale(xnames: list[str], Rc: np.ndarray, binary: np.ndarray, n: int) -> None:
    """lme4's checkScaleX, as the in-memory design's: warn when the SD of a continuous
    predictor (not all 0/1), or the ratio of two, is beyond 1000. The SDs come from the
    column norms of R of the centred columns."""
    cont = [j for j in range(len(xnames)) if not binary[j]]
    if not cont or n < 2:
        return
    warn_scales([xnames[j] for j in cont], np.linalg.norm(Rc[:, cont], axis=0) / math.sqrt(n - 1))
