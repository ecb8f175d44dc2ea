"""statsmodels' MixedLM specification → one lmm formula on a data frame.

statsmodels partitions the rows into groups; each group has random coefficients for the
columns of ``exog_re`` (one unstructured covariance, ``cov_re``) and variance components:
per component, the columns of a per-group matrix get independent random effects with one
common variance. In lmm's (lme4's) terms:

* ``exog_re`` / ``re_formula`` is one term ``(re | group)``.
* A component whose per-group matrix has at most one non-zero entry per row (indicators
  such as ``"0 + C(classroom)"``) is one term on the interaction factor: a level per
  (group, column) pair, ``(1 | group:column)`` — never a dense design. With a single
  group (statsmodels' way of writing crossed effects) the factor is the column alone, so
  ``{"a": "0 + C(a)", "b": "0 + C(b)"}`` becomes the crossed ``(1 | a) + (1 | b)``.
* Any other component (numeric columns, ``"0 + pretest"``) is ``diag(0 + cols | group,
  hom = TRUE)``: its columns' effects independent, with one variance.

Each term gets its own grouping column in the frame (names starting ``.sm_``), so every
lmm term maps back to one statsmodels component by its name.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

__all__ = ["Spec", "VCSpec", "VCTerm", "array_spec", "formula_spec"]


class VCSpec:
    """statsmodels' ``VCSpec``: the variance components of an array-based model.

    Args:
        names: ``names[k]`` is the name of component k.
        colnames: ``colnames[k][i]`` the column names of ``mats[k][i]``.
        mats: ``mats[k][i]`` the design matrix of component k for group i (groups in
            sorted order; rows in the order the group's rows appear in the data).
    """

    def __init__(self, names, colnames, mats) -> None:
        self.names = list(names)
        self.colnames = colnames
        self.mats = mats


@dataclass
class VCTerm:
    """One variance component as one lmm term.

    Attributes:
        name: statsmodels' name of the component.
        column: the term's grouping column in the frame (the lmm term's name).
        kind: ``"levels"`` (a level per (group, column) pair) or ``"columns"`` (the
            component's columns on the group factor, ``diag(..., hom = TRUE)``).
        rhs: the term's text left of the bar.
        level_group: levels kind: the group index of each level code.
        level_label: levels kind: the column label of each level code.
        labels: columns kind: the column labels of each group (None: the lmm term's
            column names, the same for every group).
    """

    name: str
    column: str
    kind: str
    rhs: str
    level_group: Optional[np.ndarray] = None
    level_label: Optional[list] = None
    labels: Optional[list] = None

    def term(self) -> str:
        if self.kind == "levels":
            return f"({self.rhs} | {self.column})"
        return f"diag({self.rhs} | {self.column}, hom = TRUE)"


@dataclass
class Spec:
    """A statsmodels MixedLM specification translated to an lmm formula and frame.

    Attributes:
        frame: the data lmm fits (the user's columns and the added ``.sm_`` columns),
            indexed by row position.
        lhs, fixed_rhs: the response and the fixed-effects part of the lmm formula.
        re_rhs: the ``exog_re`` term's text left of the bar, or None (no such term).
        group_column: the grouping column of the ``exog_re`` term.
        group_name: statsmodels' name of the groups (``"Group"``, or the column name).
        group_codes: per row of ``frame``, the index of its group in ``group_labels`` (-1: missing).
        group_labels: the group labels, sorted (statsmodels' ``group_labels``).
        vcs: the variance components, in statsmodels' order.
        endog_name: the response's name.
        exog_names: the fixed effects' names (None: lmm's column names).
        re_names: the names of the ``exog_re`` columns (None: lmm's, with the intercept
            named after the groups).
        re_param_names: statsmodels' names of the ``cov_re`` parameters when they are not
            made from ``re_names`` (its array-based random intercept, ``"Group Var"``).
        pandas: whether results are pandas objects (statsmodels' pandas-data wrapping).
        index: the user's row labels, by row position of ``frame``.
        formula_mode: built by ``from_formula`` (new data for ``predict`` are data frames).
        aliases: internal column names → the names a message should show.
    """

    frame: pd.DataFrame
    lhs: str
    fixed_rhs: str
    re_rhs: Optional[str]
    group_column: str
    group_name: str
    group_codes: np.ndarray
    group_labels: list
    vcs: list[VCTerm]
    endog_name: str
    exog_names: Optional[list[str]]
    re_names: Optional[list[str]]
    re_param_names: Optional[list[str]]
    pandas: bool
    index: pd.Index
    formula_mode: bool
    aliases: dict = field(default_factory=dict)

    def formula(self, re_diag: bool = False) -> str:
        """The lmm formula; ``re_diag``: the ``exog_re`` term with independent effects."""
        terms = []
        if self.re_rhs is not None:
            bar = f"{self.re_rhs} | {self.group_column}"
            terms.append(f"diag({bar})" if re_diag else f"({bar})")
        terms += [vc.term() for vc in self.vcs]
        if not terms:
            raise ValueError("the model has no random effects: give exog_re, exog_vc, re_formula or vc_formula")
        return f"{self.lhs} ~ {self.fixed_rhs} + " + " + ".join(terms)


def _fresh(base: str, taken) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}{k}", k + 1
    return name


def _group_codes(groups) -> tuple[np.ndarray, list]:
    """(per-row index into the sorted labels, -1 where missing; the sorted labels)."""
    values = np.asarray(groups)
    if values.ndim != 1:
        raise ValueError(f"groups must be one label per row, not an array of shape {values.shape}")
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), list(uniques)


def _code_column(codes: np.ndarray, ncodes: int) -> pd.Categorical:
    """A grouping column of integer codes (-1: missing), its levels in code order."""
    return pd.Categorical.from_codes(codes, categories=pd.RangeIndex(ncodes))


# ---------------------------------------------------------------------- formulas

def _strip_tilde(text: str) -> str:
    text = str(text).strip()
    return text[1:].strip() if text.startswith("~") else text


def _split_terms(text: str) -> list[str]:
    """Top-level terms of a one-sided formula, a ``-`` kept on its term (``x - 1`` → ``x``, ``-1``)."""
    out, depth, start, sign = [], 0, 0, ""
    quoted = False
    for i, c in enumerate(text + "+"):
        if c == "`":
            quoted = not quoted
        if quoted:
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c in "+-":
            piece = text[start:i].strip()
            if piece:
                out.append(sign + piece)
            sign, start = ("-" if c == "-" else ""), i + 1
    return out


_C_CALL = re.compile(r"^C\(\s*(`[^`]+`|[A-Za-z_.][\w.]*)\s*\)$")


def _factor_column(term: str, data: pd.DataFrame) -> Optional[str]:
    """The column of a factor term (``C(x)``, or a non-numeric column ``x``), else None."""
    m = _C_CALL.match(term)
    if m:
        return m.group(1).strip("`")
    name = term.strip("`")
    if name in data.columns:
        col = data[name]
        if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            return name
    return None


def _levels_of(values: pd.Series) -> tuple[np.ndarray, list]:
    """Level codes (-1: missing) and levels as patsy orders them: a categorical's
    categories, else the sorted distinct values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return np.asarray(values.cat.codes, dtype=np.int64), list(values.cat.categories)
    codes, uniques = pd.factorize(np.asarray(values), sort=True)
    return codes.astype(np.int64), list(uniques)


def _pair_levels(group_codes: np.ndarray, inner: np.ndarray, ninner: int):
    """Codes of the present (group, inner) pairs, ordered by group then inner; -1 where
    either is missing. Returns (codes, group of each level, inner code of each level)."""
    valid = (group_codes >= 0) & (inner >= 0)
    pair = np.where(valid, group_codes * ninner + inner, -1)
    present = np.unique(pair[valid])
    codes = np.full(pair.shape, -1, dtype=np.int64)
    codes[valid] = np.searchsorted(present, pair[valid])
    return codes, present // ninner, present % ninner


def _vc_from_formula(name: str, text: str, data: pd.DataFrame, group_codes: np.ndarray, single: bool,
                     column: str, frame_columns: dict) -> VCTerm:
    terms = _split_terms(_strip_tilde(text))
    intercept = not any(t in ("0", "-1") for t in terms)
    body = [t for t in terms if t not in ("0", "1", "-1", "+1")]
    if any(t.startswith("-") for t in body):
        raise NotImplementedError(f"vc_formula[{name!r}] = {text!r}: removing terms with '-' is not supported")
    factors = [_factor_column(t, data) for t in body]
    if any(f is not None for f in factors):
        if len(body) != 1 or intercept:
            raise NotImplementedError(
                f"vc_formula[{name!r}] = {text!r}: a factor in a variance component is supported alone "
                "and without an intercept, as '0 + C(x)' (statsmodels' advice for such components)")
        fcol = factors[0]
        if fcol not in data.columns:
            raise ValueError(f"vc_formula[{name!r}] = {text!r}: no column {fcol!r} in data")
        inner, levels = _levels_of(data[fcol])
        # One group (statsmodels' crossed effects): the levels are the column's alone.
        outer = np.where(group_codes >= 0, 0, -1) if single else group_codes
        codes, lgroup, linner = _pair_levels(outer, inner, max(len(levels), 1))
        frame_columns[column] = _code_column(codes, len(lgroup))
        return VCTerm(name=name, column=column, kind="levels", rhs="1", level_group=lgroup,
                      level_label=[f"{body[0]}[{levels[k]}]" for k in linner])
    rhs = ("1" if intercept else "0") + "".join(f" + {t}" for t in body)
    frame_columns[column] = _code_column(group_codes, int(group_codes.max()) + 1)
    return VCTerm(name=name, column=column, kind="columns", rhs=rhs)


def _select(data: pd.DataFrame, subset) -> np.ndarray:
    """Row positions of ``data`` that ``subset`` (booleans, or index labels) selects."""
    pos = pd.Series(np.arange(len(data)), index=data.index)
    subset = np.asarray(subset) if not isinstance(subset, (pd.Series, pd.Index)) else subset
    if getattr(subset, "dtype", None) == np.dtype(bool) and len(subset) == len(data):
        return pos.to_numpy()[np.asarray(subset)]
    return np.asarray(pos.loc[subset]).reshape(-1)


def formula_spec(formula: str, data, re_formula, vc_formula, subset, groups) -> Spec:
    """The :class:`Spec` of ``MixedLM.from_formula``."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a two-sided formula text such as 'y ~ x', not {formula!r}")
    data = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    group_name = "Group"
    if isinstance(groups, str):
        if groups not in data.columns:
            raise ValueError(f"groups={groups!r} is not a column of data")
        group_name, groups = groups, data[groups]
    groups = np.asarray(groups)
    if groups.shape[0] != len(data):
        raise ValueError(f"groups has {groups.shape[0]} entries; data has {len(data)} rows")
    if subset is not None:
        rows = _select(data, subset)
        data, groups = data.iloc[rows], groups[rows]
    index = data.index
    frame = data.reset_index(drop=True)
    codes, labels = _group_codes(groups)
    if not labels:
        raise ValueError("groups has no non-missing label")
    taken = set(frame.columns)
    group_column = _fresh(".sm_group", taken)
    taken.add(group_column)
    added = {group_column: _code_column(codes, len(labels))}
    aliases = {group_column: group_name}
    lhs, rhs = formula.split("~", 1)
    if re_formula is None:
        re_rhs = "1" if vc_formula is None else None
    else:
        re_rhs = _strip_tilde(re_formula) or "1"
    single = len(labels) == 1
    vcs = []
    for k, name in enumerate(sorted(vc_formula or {})):
        column = _fresh(f".sm_vc{k + 1}", taken)
        taken.add(column)
        aliases[column] = name
        vcs.append(_vc_from_formula(name, vc_formula[name], frame, codes, single, column, added))
    frame = frame.assign(**added)
    return Spec(frame=frame, lhs=lhs.strip(), fixed_rhs=rhs.strip(), re_rhs=re_rhs, group_column=group_column,
                group_name=group_name, group_codes=codes, group_labels=labels, vcs=vcs,
                endog_name=lhs.strip(), exog_names=None, re_names=None, re_param_names=None, pandas=True,
                index=index, formula_mode=True, aliases=aliases)


# ---------------------------------------------------------------------- arrays

def _exog_names(x: np.ndarray) -> list[str]:
    """statsmodels' default names: ``const`` for a constant column, ``x1``, ``x2``, ... the others."""
    k = x.shape[1]
    var = x.var(axis=0) if x.shape[0] else np.ones(k)
    if k and np.any(var == 0):
        names = [f"x{i}" for i in range(1, k)]
        names.insert(int(np.argmin(var)), "const")
        return names
    return [f"x{i}" for i in range(1, k + 1)]


def _matrix(x, what: str, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"{what} must have one row per observation ({n}), not shape {a.shape}")
    return a


def _columns_of(x, default) -> list[str]:
    if isinstance(x, pd.DataFrame):
        return [str(c) for c in x.columns]
    if isinstance(x, pd.Series) and x.name is not None:
        return [str(x.name)]
    if isinstance(x, list) and x and all(isinstance(v, str) for v in x):
        return list(x)
    return default


def _convert_vc(exog_vc: dict) -> VCSpec:
    """statsmodels' deprecated dict of dicts (``exog_vc[name][group]``) as a VCSpec."""
    warnings.warn("Using deprecated variance components format", FutureWarning, stacklevel=4)
    groups = sorted(set().union(*(v.keys() for v in exog_vc.values())))
    names = sorted(exog_vc)
    colnames, mats = [], []
    for k in names:
        v = exog_vc[k]
        colnames.append([list(map(str, v[g].columns)) if hasattr(v[g], "columns") else
                         [str(j) for j in range(np.shape(v[g])[1])] for g in groups])
        mats.append([v[g] for g in groups])
    return VCSpec(names, colnames, mats)


def _dense(m) -> np.ndarray:
    return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=np.float64)


def _vc_from_arrays(k: int, spec: VCSpec, group_rows: list[np.ndarray], n: int, column: str,
                    added: dict, taken: set) -> VCTerm:
    name = str(spec.names[k])
    mats = [_dense(m) for m in spec.mats[k]]
    if len(mats) != len(group_rows):
        raise ValueError(f"exog_vc component {name!r} has {len(mats)} matrices; there are {len(group_rows)} groups")
    for i, (m, rows) in enumerate(zip(mats, group_rows)):
        if m.ndim != 2 or m.shape[0] != len(rows):
            raise ValueError(f"exog_vc component {name!r}, group {i}: the matrix has shape {m.shape}; the group "
                             f"has {len(rows)} rows")
    colnames = [list(map(str, spec.colnames[k][i])) for i in range(len(mats))]
    if all(np.count_nonzero(m, axis=1).max(initial=0) <= 1 for m in mats):
        # Indicator-like: one level per (group, column), z the row's non-zero value.
        codes = np.zeros(n, dtype=np.int64)
        w = np.zeros(n)
        level_group, level_label, offset = [], [], 0
        for i, (m, rows) in enumerate(zip(mats, group_rows)):
            if m.shape[1]:
                j = np.argmax(m != 0, axis=1)
                codes[rows] = offset + j
                w[rows] = m[np.arange(len(rows)), j]
            level_group += [i] * m.shape[1]
            level_label += colnames[i]
            offset += m.shape[1]
        if offset == 0:
            raise ValueError(f"exog_vc component {name!r} has no columns")
        added[column] = _code_column(codes, offset)
        if np.all(w == 1.0):
            rhs = "1"
        else:
            wcol = _fresh(f"{column}_z", taken)
            taken.add(wcol)
            added[wcol] = w
            rhs = f"0 + {wcol}"
        return VCTerm(name=name, column=column, kind="levels", rhs=rhs, level_group=np.asarray(level_group),
                      level_label=level_label)
    # Several non-zero columns per row: the j-th columns of all groups share a z column.
    width = max(m.shape[1] for m in mats)
    wcols = []
    for j in range(width):
        w = np.zeros(n)
        for m, rows in zip(mats, group_rows):
            if j < m.shape[1]:
                w[rows] = m[:, j]
        wcol = _fresh(f"{column}_z{j + 1}", taken)
        taken.add(wcol)
        added[wcol] = w
        wcols.append(wcol)
    codes = np.empty(n, dtype=np.int64)
    for i, rows in enumerate(group_rows):
        codes[rows] = i
    added[column] = _code_column(codes, len(group_rows))
    return VCTerm(name=name, column=column, kind="columns", rhs="0 + " + " + ".join(wcols), labels=colnames)


def array_spec(endog, exog, groups, exog_re, exog_vc) -> Spec:
    """The :class:`Spec` of ``MixedLM(endog, exog, groups, exog_re, exog_vc)``."""
    pandas = isinstance(endog, (pd.Series, pd.DataFrame)) or isinstance(exog, (pd.Series, pd.DataFrame))
    y = np.asarray(endog, dtype=np.float64).reshape(-1) if np.ndim(endog) <= 1 or np.shape(endog)[1] == 1 else None
    if y is None:
        raise ValueError(f"endog must be one value per observation, not shape {np.shape(endog)}")
    n = y.shape[0]
    if exog is None:
        raise ValueError("exog is required (use a column of ones for an intercept-only model)")
    X = _matrix(exog, "exog", n)
    exog_names = _columns_of(exog, _exog_names(X))
    endog_name = str(endog.name) if isinstance(endog, pd.Series) and endog.name is not None else "y"
    index = endog.index if isinstance(endog, pd.Series) else (
        exog.index if isinstance(exog, (pd.Series, pd.DataFrame)) else pd.RangeIndex(n))
    codes, labels = _group_codes(groups)
    if codes.shape[0] != n:
        raise ValueError(f"groups has {codes.shape[0]} entries; endog has {n}")
    cols = {".sm_y": y}
    cols.update({f".sm_x{j + 1}": X[:, j] for j in range(X.shape[1])})
    fixed_rhs = "0" + "".join(f" + .sm_x{j + 1}" for j in range(X.shape[1]))
    taken = set(cols) | {".sm_group"}
    aliases = {".sm_group": "Group", ".sm_y": endog_name}
    aliases.update({f".sm_x{j + 1}": nm for j, nm in enumerate(exog_names)})
    cols[".sm_group"] = _code_column(codes, len(labels))
    re_names = re_param_names = None
    if exog_re is not None:
        Z = _matrix(exog_re, "exog_re", n)
        re_names = _columns_of(exog_re, [f"x_re{k + 1}" for k in range(Z.shape[1])])
        cols.update({f".sm_z{j + 1}": Z[:, j] for j in range(Z.shape[1])})
        taken |= {f".sm_z{j + 1}" for j in range(Z.shape[1])}
        aliases.update({f".sm_z{j + 1}": nm for j, nm in enumerate(re_names)})
        re_rhs = "0" + "".join(f" + .sm_z{j + 1}" for j in range(Z.shape[1]))
    elif exog_vc is None:
        re_rhs, re_names, re_param_names = "1", ["Group Var"], ["Group Var"]
    else:
        re_rhs = None
    vcs = []
    if exog_vc is not None:
        if isinstance(exog_vc, dict):
            exog_vc = _convert_vc(exog_vc)
        if np.any(codes < 0):
            raise ValueError("groups has missing labels; variance components need every row's group")
        group_rows = [np.flatnonzero(codes == i) for i in range(len(labels))]
        for k in range(len(exog_vc.names)):
            column = _fresh(f".sm_vc{k + 1}", taken)
            taken.add(column)
            aliases[column] = str(exog_vc.names[k])
            vcs.append(_vc_from_arrays(k, exog_vc, group_rows, n, column, cols, taken))
    frame = pd.DataFrame(cols)
    return Spec(frame=frame, lhs=".sm_y", fixed_rhs=fixed_rhs, re_rhs=re_rhs, group_column=".sm_group",
                group_name="Group", group_codes=codes, group_labels=labels, vcs=vcs, endog_name=endog_name,
                exog_names=exog_names, re_names=re_names, re_param_names=re_param_names, pandas=pandas,
                index=index, formula_mode=False, aliases=aliases)
