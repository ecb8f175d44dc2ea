"""Random-effects terms: their codes and columns, lme4's order, the merged pieces of ``||``
terms, the identifiability checks, and columns shared with X instead of copied.

A grouping factor with one level, as many levels as observations, or more random
effects than observations raises ``ValueError`` naming the term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from .._util import ones_column, same_values
from ..formula import Columns, GroupLevels, ModelFrameState, RandomTerm, grouping_codes, model_matrix

__all__ = ["ReTerm", "check_terms", "lme4_order", "make_term", "merge_double_bars", "share_columns"]


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


def make_term(rt: RandomTerm, data: Columns, X: np.ndarray, xnames: list[str], state: ModelFrameState) -> ReTerm:
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


def lme4_order(pieces: list[ReTerm]) -> list[ReTerm]:
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


def merge_double_bars(pieces: list[ReTerm]) -> list[ReTerm]:
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


def check_terms(terms: list[ReTerm], n: int, sigma_known: bool = False) -> None:
    """Refuse a term whose grouping factor has one level, or one level (or effect) per
    observation when the residual variance is estimated (``sigma_known`` False)."""
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


def share_columns(terms: list[ReTerm], X: np.ndarray, xnames: list[str]) -> None:
    """Terms hold views of columns the design has already, not copies (n × p doubles each).

    A term whose columns are a run of X's columns, with the same names and values (the
    intercept of ``(1 | g)``, the ``1 + t`` of ``(1 + t | g)`` in ``y ~ 1 + t + ...``),
    holds the view ``X[:, a:a + p]`` (Fortran-contiguous); a random intercept otherwise
    holds :func:`ones_column`; a term with the same columns as an earlier one shares that term's z.
    X and each shared z are then read-only, so that writing into one cannot change
    another. A z that still views the X from before aliased columns were dropped gets
    its own copy, so that the old X is freed.
    """
    own: list[ReTerm] = []  # earlier terms whose z is their own array
    for t in terms:
        view = _view_in(X, xnames, t)
        if view is None and t.cnames == ["(Intercept)"]:
            view = ones_column(X.shape[0])
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
