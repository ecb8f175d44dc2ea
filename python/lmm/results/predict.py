"""Predictions and simulation from a fitted model.

:class:`PredictionMixin` gives :class:`~lmm.results.LmmResult` its ``predict`` and
``simulate``; :func:`simulate_response` is the one simulator of responses from a fit,
used by ``simulate`` and by the parametric bootstrap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..design import OFFSET_COLUMN, as_frame, evaluate_offset, with_column
from ..model import LinearMixedModel, Solution

__all__ = ["PredictionMixin", "simulate_response"]

#: What ``re_form`` values mean "no random effects" (R's ``re.form = NA`` or ``~0``).
_NO_RANDOM = ("~0", "~ 0", "0", "NA", "~-1", "~ -1")


def simulate_response(model: LinearMixedModel, solution: Solution, rng: np.random.Generator,
                      use_u: bool = False) -> np.ndarray:
    """One response simulated from the model at a solution, as lme4's ``simulate``.

    y = Xβ̂ + Zb + ε with ε ~ N(0, σ̂²I) drawn first, then per term b = σ̂ u λ', u standard
    normal (levels × p), or b = b̂ with ``use_u`` (lme4's ``use.u = TRUE``).

    Args:
        model: the model.
        solution: its solution at the estimates (``LmmResult.solution``).
        rng: the random generator.
        use_u: keep the conditional modes b̂ and simulate only the noise.

    Returns:
        Array (n,).

    Example:
        >>> import lmm, numpy as np
        >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
        >>> simulate_response(res.model, res.solution, np.random.default_rng(1)).shape
        (180,)
    """
    X, w = model.design.X, model.design.weights
    sigma = solution.sigma
    noise = rng.standard_normal(X.shape[0])
    y = X @ solution.beta + sigma * (noise if w is None else noise / np.sqrt(w))
    for t, lam, b_hat in zip(model.terms, solution.lambdas, solution.b):
        b = b_hat if use_u else sigma * rng.standard_normal((t.nlevels, t.p)) @ lam.T
        y += np.einsum("ij,ij->i", t.z, b[t.codes])
    if model.design.offset is not None:
        y += model.design.offset
    return y


class PredictionMixin:
    """``predict`` and ``simulate`` of :class:`~lmm.results.LmmResult`, which sets the two
    attributes they use."""

    model: LinearMixedModel
    solution: Solution

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False, offset=None, *,
                array: bool = False) -> pd.Series | np.ndarray:
        """Predictions, as lme4's ``predict(fit, newdata, re.form, allow.new.levels)``.

        The formula's ``offset()`` terms are evaluated on ``newdata`` and added; a model
        fitted with the ``offset`` argument needs ``offset`` here too for new data.

        Args:
            newdata: a data frame with the columns the formula uses (the response is not
                needed); None predicts on the rows used in the fit. Factors keep the levels
                of the fitting data, ``poly()`` and ``scale()`` its coefficients.
            re_form: None (all random effects), ``"~0"`` or ``"NA"`` (none: Xβ̂), or a
                formula of random-effects terms of the model, e.g. ``"~(1 | Subject)"``.
            allow_new_levels: levels of a grouping factor not in the fitting data (and
                missing ones) get random effects 0; otherwise they raise ValueError.
            offset: for new data, the offset argument's values (a column of ``newdata``
                or one value per row).

            array: an array instead of the Series.

        Returns:
            A Series of predictions on ``newdata``'s index (NaN where a used column is
            missing); without ``newdata``, on the fitting data's index (NaN on rows dropped,
            as :meth:`fitted`). With ``array=True`` an array, one value per row of
            ``newdata`` (or per row used in the fit).

        Example:
            >>> import lmm, pandas as pd
            >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
            >>> new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "new"]})
            >>> res.predict(new, allow_new_levels=True, array=True).round(2)  # doctest: +SKIP
            array([253.66, 303.74])
        """
        selected = self._re_selection(re_form)
        beta = self.solution.beta
        if newdata is None:
            out = self.model.design.X @ beta
            if self.model.design.offset is not None:
                out = out + self.model.design.offset
            pieces = [(t, t.codes, t.z) for t in self.model.terms]
        else:
            newdata = as_frame(newdata)
            out = self._new_X(newdata) @ beta
            if self.model.offset_argument and offset is None:
                raise ValueError("the model was fitted with an offset argument: give predict(newdata, offset=...)")
            data, column = (newdata, None) if offset is None else with_column(newdata, offset, "offset", OFFSET_COLUMN)
            new_offset = evaluate_offset(self.model.parsed, data, column)
            if new_offset is not None:
                out = out + new_offset
            pieces = [(t, *self._new_codes_z(t, newdata, allow_new_levels)) if selected[k] else (t, None, None)
                      for k, t in enumerate(self.model.terms)]
        for k, (_, codes, z) in enumerate(pieces):
            cols = selected[k]
            if cols:
                b = self.solution.b[k][:, cols]
                known = codes >= 0
                contrib = np.zeros(len(out))
                contrib[known] = np.einsum("ij,ij->i", z[known][:, cols], b[codes[known]])
                out = out + contrib
        if array:
            return out
        if newdata is None:
            return self.model.design.aligned(out, "predicted")
        return pd.Series(out, index=newdata.index, name="predicted")

    def _re_selection(self, re_form) -> list:
        """Per model term, the columns whose random effects ``re_form`` keeps."""
        terms = self.model.terms
        if re_form is None:
            return [list(range(t.p)) for t in terms]
        text = str(re_form).strip() if not isinstance(re_form, float) or not math.isnan(re_form) else "NA"
        if re_form is False or text.replace(" ", "") in {s.replace(" ", "") for s in _NO_RANDOM}:
            return [[] for _ in terms]
        from ..formula import parse_formula

        parsed = parse_formula("._y_. " + text if text.startswith("~") else text)
        wanted = {(rt.expr, rt.name) for rt in parsed.random}
        if not wanted:
            return [[] for _ in terms]
        out, found = [], set()
        for t in terms:
            cols: list = []
            exprs = t.exprs or []
            if t.double_bar and len(exprs) == t.p:
                for j, e in enumerate(exprs):
                    if (e, t.name) in wanted:
                        cols.append(j)
                        found.add((e, t.name))
            elif exprs and (exprs[0], t.name) in wanted:
                cols = list(range(t.p))
                found.add((exprs[0], t.name))
            out.append(cols)
        missing = wanted - found
        if missing:
            have = [f"({e} | {t.name})" for t in terms for e in (t.exprs or [])]
            raise ValueError(f"re_form has random-effects terms {sorted(f'({e} | {g})' for e, g in missing)} "
                             f"that are not in the model; its terms are {have}")
        return out

    def _frame_state(self, which: str, term=None):
        d = self.model.design
        state = getattr(d, "fixed_state", None) if which == "fixed" else getattr(term, "states", None)
        if not state:
            raise NotImplementedError(
                "this model's design does not record the fitting data's factor levels and poly()/scale() "
                "coefficients (Design.fixed_state / ReTerm.states), which predictions on new data need")
        return state

    def _new_X(self, newdata: pd.DataFrame) -> np.ndarray:
        from ..formula import model_matrix

        state = self._frame_state("fixed")
        X, names = model_matrix(state.terms, newdata, state=state)
        return X[:, [names.index(c) for c in self.model.design.xnames]]

    def _new_codes_z(self, t, newdata: pd.DataFrame, allow_new_levels: bool):
        from ..formula import RandomTerm, grouping_factor, model_matrix

        states = self._frame_state("random", t)
        zs = [model_matrix(st.terms, newdata, state=st)[0] for st in states]
        z = np.column_stack(zs) if zs else np.zeros((len(newdata), 0))
        codes, labels = grouping_factor(RandomTerm(t.exprs[0], t.factors, t.name, t.double_bar, t.structure), newdata)
        idx = t.levels.get_indexer(pd.Index(labels, dtype=object)) if labels else np.zeros(0, dtype=np.intp)
        mapped = np.where(codes >= 0, idx[np.where(codes >= 0, codes, 0)] if idx.size else -1, -1)
        unknown = (mapped < 0) & (codes >= 0)
        if not allow_new_levels and (unknown.any() or (codes < 0).any()):
            new = sorted({labels[c] for c in codes[unknown]})
            what = f"new level(s) {new[:10]}" if new else "missing values"
            raise ValueError(f"grouping factor {t.name!r} has {what} in newdata; use allow_new_levels=True to "
                             "predict them with random effects 0 (the population level)")
        return mapped.astype(np.int64), z


    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> np.ndarray:
        """Simulate responses from the fitted model, as lme4's ``simulate``.

        Args:
            nsim: number of simulated responses.
            seed: seed for ``numpy.random.default_rng``.
            use_u: keep the conditional modes b̂ and simulate only the noise
                (lme4's ``use.u = TRUE``); by default new random effects are drawn.

        Returns:
            Array (n, nsim).
        """
        rng = np.random.default_rng(seed)
        out = np.empty((self.model.nobs, nsim))
        for s in range(nsim):
            out[:, s] = simulate_response(self.model, self.solution, rng, use_u=use_u)
        return out
