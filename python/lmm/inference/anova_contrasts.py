"""The contrasts of lmerTest's anova tables of types I, II and III, one matrix per term.

lmerTest (3.1, ``R/anova_contrasts.R`` and ``R/contrast_utils.R``) tests each
fixed-effects term with an F test of a contrast matrix L (rows × fixed effects):

* **Type I** (sequential): the rows of t(L) of the Doolittle factorization of X'X that
  belong to the term, i.e. the rows of X's QR factor R scaled to a unit diagonal. Each
  term is tested after the terms before it.
* **Type II**: a term contained in no other term gets the rows of the identity that
  select its columns; a term contained in others gets its type I rows with X's columns
  reordered as [other terms, the term, the terms containing it] (adjusted for everything
  but the terms that contain it).
* **Type III**: the contrasts of the model coded with treatment contrasts, whatever its
  coding: with rdX the "complete" design (every factor coded by indicators of all its
  levels), the rows of ginv(X_treatment) rdX of a term are made orthogonal to those of
  the terms containing it (highest order first), then mapped to the model's coding by
  ginv(X_treatment) X. The test is the same for any coding of the factors.

Containment is SAS's (lmerTest's ``term_contain``): term A is contained in term B when
B has every variable of A and more, and both have the same plain numeric variables
(``poly()``, ``scale()`` and logicals count as factors here, as their R data classes do).

lmerTest's Doolittle tolerance (1e-6 on the entries of L and on the pivots) is absolute,
so its type I and II tables change with the units of a covariate (``y ~ A * x + B``
with ``x / 1e4``: x's pivot falls below it and its type I F goes from 4.38 to 0.60).
This module applies the tolerance to X with columns scaled to unit root mean square: on
such data the rule is lmerTest's, and the tables do not depend on the units.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["anova_contrasts", "check_type", "containment"]

# Doolittle's tolerance on the entries of L and on the pivots (lmerTest's doolittle eps).
DOOLITTLE_EPS = 1e-6
# Rank tolerance of R's qr (LINPACK dqrdc2), as in lmerTest's ensure_full_rank and lm.fit.
QR_TOL = 1e-7
# Rows of a type III contrast whose absolute values sum to no more than this are dropped.
ZERO_ROW = 1e-8


def check_type(type) -> int:
    """The anova type as 1, 2 or 3, from 1, 2, 3, ``"1"``, ``"2"``, ``"3"``, ``"I"``, ``"II"`` or ``"III"``.

    Raises:
        ValueError: anything else.
    """
    if isinstance(type, (int, np.integer)) and not isinstance(type, (bool, np.bool_)) and type in (1, 2, 3):
        return int(type)
    if isinstance(type, str):
        key = type.strip().upper()
        roman = {"I": 1, "II": 2, "III": 3, "1": 1, "2": 2, "3": 3}
        if key in roman:
            return roman[key]
    raise ValueError(f"unknown anova type {type!r}; use 1, 2 or 3 (or 'I', 'II', 'III')")


def containment(bits: list[int], numeric: int) -> list[list[int]]:
    """For each term, the terms that contain it (lmerTest's ``containment``).

    Args:
        bits: each term as a bit mask over the formula's variables.
        numeric: bit mask of the plain numeric variables.

    Returns:
        list (one entry per term) of the indices of the terms containing it.
    """
    def contains(a: int, b: int) -> bool:  # a inside b
        return a != b and (a & ~b) == 0 and (a & numeric) == (b & numeric)

    return [[m for m, b in enumerate(bits) if contains(a, b)] for a in bits]


def anova_contrasts(res, type=3) -> dict[str, np.ndarray]:
    """lmerTest's contrast matrix of each fixed-effects term for an anova table of a type.

    Args:
        res: the fitted result.
        type: 1, 2 or 3 (or ``"I"``, ``"II"``, ``"III"``).

    Returns:
        dict term label → contrast matrix (rows × fixed effects), in the terms' order. A
        term whose columns were all dropped as aliased has a matrix without rows.

    Raises:
        ValueError: an unknown type.
        NotImplementedError: (type III of a model not coded with treatment contrasts) the
            treatment-coded design cannot be recovered from the recorded model frame.

    Example:
        >>> import lmm
        >>> res = lmm.lmer("Reaction ~ Days + (1 | Subject)", lmm.datasets.load("sleepstudy"))
        >>> anova_contrasts(res, 1)["Days"]
        array([[0., 1.]])
    """
    kind = check_type(type)
    info = res.fixed_terms()
    X = np.asarray(res.model.design.X, dtype=float)
    p = X.shape[1]
    cols = [[j for j, a in enumerate(info.assign) if a == k + 1] for k in range(len(info.labels))]
    # lmerTest: with at most one column or one term, every type is type I.
    if kind == 1 or p <= 1 or len(info.labels) <= 1:
        T = _sequential_rows(X)
        return {label: T[cols[k]] for k, label in enumerate(info.labels)}
    within = containment(info.bits, info.state.numeric_bits())
    if kind == 2:
        return {label: _type2_rows(X, cols, within, k) for k, label in enumerate(info.labels)}
    return _type3(res, info, X, cols, within)


# --------------------------------------------------------------------------- types I and II


def _rms(X: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.mean(X * X, axis=0))
    return np.where(s > 0, s, 1.0)


def _sequential_rows(X: np.ndarray) -> np.ndarray:
    """t(L) of lmerTest's ``doolittle(crossprod(X))``: row i is e_i plus later columns.

    X'X = L U with L unit lower triangular; then t(L) = diag(R)⁻¹ R for the QR factor R of
    X, which is computed instead of X'X (no squared condition number). Entries and pivots
    below Doolittle's tolerance are zeroed, on X scaled to unit RMS columns.
    """
    p = X.shape[1]
    if p == 0:
        return np.zeros((0, 0))
    s = _rms(X)
    # (NumPy's stubs type qr() as a QRResult in every mode; mode="r" returns the array R.)
    R: np.ndarray = np.linalg.qr(X / s, mode="r")  # type: ignore[assignment]
    d = np.diag(R).copy()
    T = np.eye(p)
    # Doolittle leaves L's column at 0 below a (near) zero pivot U_ii = R_ii².
    ok = d * d >= DOOLITTLE_EPS
    T[ok] = R[ok] / d[ok, None]
    T[np.abs(T) < DOOLITTLE_EPS] = 0.0
    return T * s[None, :] / s[:, None]


def _type2_rows(X: np.ndarray, cols: list[list[int]], within: list[list[int]], k: int) -> np.ndarray:
    p = X.shape[1]
    if not within[k]:
        return np.eye(p)[cols[k]]
    last = [j for m in within[k] for j in cols[m]]
    head = [j for j in range(p) if j not in cols[k] and j not in last]
    order = head + cols[k] + last
    T = _sequential_rows(X[:, order])
    rows = T[len(head):len(head) + len(cols[k])]
    out = np.zeros((len(cols[k]), p))
    out[:, order] = rows
    return out


# --------------------------------------------------------------------------- type III


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(math.ceil(math.log10(mx)))))


def _independent_columns(A: np.ndarray) -> list[int]:
    """Columns of A not in the span of the kept columns before them (R's qr with tol 1e-7).

    A column is kept when its residual on the kept columns exceeds QR_TOL times its norm;
    all-zero columns are dropped. The residuals come from Gram–Schmidt on the columns of
    A's QR factor R, which have A's norms and inner products (k × k work after one QR).
    """
    # (NumPy's stubs type qr() as a QRResult in every mode; mode="r" returns the array R.)
    R: np.ndarray = np.linalg.qr(A, mode="r") if A.shape[0] > A.shape[1] else A  # type: ignore[assignment]
    Q = np.zeros((R.shape[0], 0))
    kept: list[int] = []
    for j in range(R.shape[1]):
        x = R[:, j]
        norm = float(np.linalg.norm(x))
        if norm == 0.0:
            continue
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)
        rnorm = float(np.linalg.norm(r))
        if rnorm > QR_TOL * norm:
            kept.append(j)
            Q = np.column_stack([Q, r / rnorm])
    return kept


def _solve_ls(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """ginv(X) B for X of full column rank, on X's columns scaled to unit RMS (units-free)."""
    s = _rms(X)
    Q, R = np.linalg.qr(X / s)
    return np.linalg.solve(R, Q.T @ B) / s[:, None]


def _residuals(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``resid(lm.fit(A, Y))``: Y less its projection on the span of A's columns."""
    keep = _independent_columns(A)
    if not keep:
        return Y
    Q, _ = np.linalg.qr(A[:, keep])
    return Y - Q @ (Q.T @ Y)


def _type3(res, info, X: np.ndarray, cols: list[list[int]], within: list[list[int]]) -> dict[str, np.ndarray]:
    """lmerTest's ``get_contrasts_type3`` (``extract_contrasts_type3`` and the map to the coding)."""
    state = info.state
    names = list(res.fixef.index)
    rdX, rdnames, rdassign = state.complete_design()
    pos = {name: j for j, name in enumerate(rdnames)}
    if all(name in pos for name in names) and np.allclose(rdX[:, [pos[n] for n in names]], X, rtol=1e-12, atol=0.0):
        # Treatment contrasts already (as lmerTest: X itself, no map).
        Xt, tnames, tcols, coding = X, names, cols, None
    else:
        Xt, tnames, tassign = _treatment_design(res, state, rdX, rdnames, rdassign)
        tcols = [[j for j, a in enumerate(tassign) if a == k + 1] for k in range(len(info.labels))]
        coding = _zapsmall(_solve_ls(Xt, X))  # β_treatment = coding @ β
    L = _zapsmall(_solve_ls(Xt, rdX).T)  # rows: columns of rdX; columns: treatment coefficients
    order = sorted(range(len(info.labels)), key=lambda k: -bin(info.bits[k]).count("1"))  # as R's order()
    for k in order:
        if within[k] and tcols[k]:
            other = [j for m in within[k] for j in tcols[m]]
            L[:, tcols[k]] = _zapsmall(_residuals(L[:, other], L[:, tcols[k]]))
    L = L[[pos[n] for n in tnames]]
    out: dict[str, np.ndarray] = {}
    for k, label in enumerate(info.labels):
        C = L[:, tcols[k]].T
        C = C[np.sum(np.abs(C), axis=1) > ZERO_ROW]
        out[label] = C if coding is None else C @ coding
    return out


def _treatment_design(res, state, rdX: np.ndarray, rdnames: list[str],
                      rdassign: list[int]) -> tuple[np.ndarray, list[str], list[int]]:
    """The model matrix with every factor coded by treatment contrasts, aliased columns dropped.

    lmerTest's ``model.matrix(terms, model.frame, contrasts.arg = "contr.treatment")``
    then ``ensure_full_rank``. Its columns are columns of the complete design rdX: in each
    term, a factor R codes by contrasts (its ``TermCode`` 1) loses its first level, one
    coded by indicators keeps all.

    Returns:
        (X, names, assign) of the kept columns.
    """
    terms = state.terms
    parts = _variable_parts(state, rdnames, rdassign)
    is_factor = [kind == "factor" for kind, _ in parts]
    codes = _term_codes(state.term_bits, terms.intercept, is_factor)
    keep: list[int] = [j for j, a in enumerate(rdassign) if a == 0]
    for k, t in enumerate(state.term_bits):
        idx = [j for j, a in enumerate(rdassign) if a == k + 1]
        variables = _bits(t)
        widths = [len(parts[i][1]) for i in variables]
        n_orig = sum(1 for a in state.assign if a == k + 1)
        chosen = []
        for c, j in enumerate(idx):
            rest, ok = c, True
            for i, w in zip(variables, widths):
                level, rest = rest % w, rest // w
                if is_factor[i] and codes[k][i] == 1 and level == 0:
                    ok = False
            if ok:
                chosen.append(j)
        if len(chosen) != n_orig:
            raise NotImplementedError(
                f"the type III contrasts of {state.term_labels[k]!r} need the model coded with treatment "
                "contrasts, which lmm could not rebuild here; test a contrast with res.test(L)")
        keep.extend(chosen)
    Xt = rdX[:, keep]
    scaled = Xt / np.where(np.max(np.abs(Xt), axis=0) > 0, np.max(np.abs(Xt), axis=0), 1.0)
    kept = [keep[j] for j in _independent_columns(scaled)]
    return rdX[:, kept], [rdnames[j] for j in kept], [rdassign[j] for j in kept]


def _bits(term: int) -> list[int]:
    return [i for i in range(term.bit_length()) if term >> i & 1]


def _term_codes(term_bits: list[int], intercept: bool, is_factor: list[bool]) -> list[dict[int, int]]:
    """R's ``TermCode`` of each variable in each term: 1 (contrasts) or 2 (indicators).

    A factor is coded by contrasts when the term without it is empty or contained in an
    earlier term; without an intercept the first factor of the first term holding one is
    coded by indicators.
    """
    codes: list[dict[int, int]] = []
    for k, t in enumerate(term_bits):
        code = {}
        for i in _bits(t):
            rest = t & ~(1 << i)
            code[i] = 1 if rest == 0 or any((rest & ~term_bits[m]) == 0 for m in range(k)) else 2
        codes.append(code)
    if not intercept:
        first = next(((k, i) for k, t in enumerate(term_bits) for i in _bits(t) if is_factor[i]), None)
        if first is not None:
            codes[first[0]][first[1]] = 2
    return codes


def _variable_parts(state, rdnames: list[str], rdassign: list[int]) -> list[tuple[str, list[str]]]:
    """Each variable's kind (``"factor"``, ``"numeric"``, ``"matrix"``) and its parts of rdX's column names.

    Factors are the expressions whose levels the transform state recorded; a logical
    (R codes it as a factor with levels FALSE and TRUE) and a matrix (``poly()``,
    ``scale()``) are told apart by their parts, read off the complete design's column
    names of a term where all the term's other variables are known.
    """
    terms = state.terms
    numeric = state.numeric_bits()
    out: list[tuple[str, list[str]] | None] = []
    for i, (label, node) in enumerate(zip(terms.variables, terms.var_nodes)):
        if numeric >> i & 1:
            out.append(("numeric", [label]))
            continue
        try:
            levels = state.transforms.recorded(node, "factor")
        except ValueError:
            out.append(None)
            continue
        out.append(("factor", [label + lev for lev in levels]))
    used = [any(t >> i & 1 for t in state.term_bits) for i in range(len(out))]
    progress = True
    while progress and any(v is None and u for v, u in zip(out, used)):
        progress = False
        for k, t in enumerate(state.term_bits):
            variables = _bits(t)
            unknown = [i for i in variables if out[i] is None]
            if len(unknown) != 1:
                continue
            u = unknown[0]
            parts = {i: v[1] for i in variables if (v := out[i]) is not None}  # of the term's other variables
            names = [n for n, a in zip(rdnames, rdassign) if a == k + 1]
            known = math.prod(len(p) for p in parts.values())
            if not names or len(names) % known:
                continue
            stride = math.prod(len(parts[i]) for i in variables if i < u)
            before = "".join(parts[i][0] + ":" for i in variables if i < u)
            after = "".join(":" + parts[i][0] for i in variables if i > u)
            found = []
            for j in range(len(names) // known):
                name = names[j * stride]
                if not (name.startswith(before) and name.endswith(after)):
                    break
                found.append(name[len(before):len(name) - len(after)])
            else:
                label = terms.variables[u]
                kind = "factor" if found == [label + "FALSE", label + "TRUE"] else "matrix"
                out[u] = (kind, found)
                progress = True
    missing = [terms.variables[i] for i, v in enumerate(out) if v is None and used[i]]
    if missing:
        raise NotImplementedError(
            f"the type III contrasts need the model coded with treatment contrasts, which lmm could not "
            f"rebuild for {missing}; test a contrast with res.test(L)")
    return [v if v is not None else ("numeric", []) for v in out]  # unused variables: no columns
