"""statsmodels' ``MixedLMResults`` from an lmm fit: its attributes, with its meanings.

statsmodels' parameters are in its "profile" parameterization: ``params`` holds the fixed
effects, then the lower triangle (row by row) of ``cov_re / scale``, then ``vcomp / scale``;
``cov_re = σ² λλ'`` and ``vcomp = σ² λ²`` in lmm's terms, ``scale = σ²``. Its covariance
of the estimates, ``cov_params()``, is the inverse of the negative Hessian of the
log-likelihood profiled over the scale (not over the fixed effects) with respect to those
parameters. With ψ the variance parameters, ℓ_p(ψ) the log-likelihood profiled over β as
well (−½ lmm's criterion) and J = ∂β̂/∂ψ, the blocks of that inverse are (block
elimination; X'V⁻¹X/σ² is the Hessian's fixed-effects block)

    Cov(ψ) = C = (−∇²ℓ_p)⁻¹,   Cov(β, ψ) = J C,   Cov(β) = σ²(X'V⁻¹X)⁻¹ + J C J',

so they come from lmm's criterion and β̂ at nearby ψ, differentiated numerically
(Richardson-extrapolated central differences, as R's numDeriv).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..covariance import ntheta, theta_positions
from ..inference.numdiff import hessian_richardson, jacobian_richardson

__all__ = ["MixedLMParams", "MixedLMResults", "Summary"]


class MixedLMParams:
    """statsmodels' ``MixedLMParams``: fixed effects, ``cov_re`` and ``vcomp`` (relative to the scale).

    Attributes:
        fe_params: fixed effects (k_fe,).
        cov_re: covariance of the random coefficients, relative to the scale (k_re × k_re).
        vcomp: variance components, relative to the scale (k_vc,).
    """

    def __init__(self, k_fe: int, k_re: int, k_vc: int) -> None:
        self.k_fe, self.k_re, self.k_vc = k_fe, k_re, k_vc
        self.k_re2 = k_re * (k_re + 1) // 2
        self.fe_params = np.zeros(k_fe)
        self.cov_re = np.eye(k_re)
        self.vcomp = np.ones(k_vc)

    @staticmethod
    def from_components(fe_params=None, cov_re=None, cov_re_sqrt=None, vcomp=None) -> "MixedLMParams":
        """A parameter state from its parts (``cov_re_sqrt``: the Cholesky factor of ``cov_re``).

        Example:
            >>> MixedLMParams.from_components(np.ones(2), np.eye(2)).cov_re.tolist()
            [[1.0, 0.0], [0.0, 1.0]]
        """
        fe = np.zeros(0) if fe_params is None else np.asarray(fe_params, dtype=np.float64)
        vc = np.zeros(0) if vcomp is None else np.asarray(vcomp, dtype=np.float64)
        if cov_re_sqrt is not None:
            L = np.asarray(cov_re_sqrt, dtype=np.float64)
            cov = L @ L.T
        else:
            cov = np.zeros((0, 0)) if cov_re is None else np.asarray(cov_re, dtype=np.float64)
        out = MixedLMParams(fe.size, cov.shape[0], vc.size)
        out.fe_params, out.cov_re, out.vcomp = fe, cov, vc
        return out

    @staticmethod
    def from_packed(params, k_fe: int, k_re: int, use_sqrt: bool, has_fe: bool) -> "MixedLMParams":
        """A parameter state from statsmodels' packed vector (fixed effects first when
        ``has_fe``; then the lower triangle of ``cov_re``, or of its Cholesky factor when
        ``use_sqrt``; then the variance components, or their square roots)."""
        params = np.asarray(params, dtype=np.float64)
        k_re2 = k_re * (k_re + 1) // 2
        start = k_fe if has_fe else 0
        tri = np.zeros((k_re, k_re))
        tri[np.tril_indices(k_re)] = params[start:start + k_re2]
        cov = tri @ tri.T if use_sqrt else tri + tri.T - np.diag(np.diag(tri))
        vc = params[start + k_re2:]
        out = MixedLMParams(k_fe, k_re, vc.size)
        out.fe_params = params[:k_fe] if has_fe else np.zeros(k_fe)
        out.cov_re, out.vcomp = cov, vc**2 if use_sqrt else vc
        return out

    def get_packed(self, use_sqrt: bool, has_fe: bool = False) -> np.ndarray:
        """The packed vector (the inverse of :meth:`from_packed`)."""
        if self.k_re and use_sqrt:
            try:
                tri = np.linalg.cholesky(self.cov_re)[np.tril_indices(self.k_re)]
            except np.linalg.LinAlgError:
                tri = np.diag(np.sqrt(np.diag(self.cov_re)))[np.tril_indices(self.k_re)]
        else:
            tri = np.asarray(self.cov_re)[np.tril_indices(self.k_re)]
        vc = np.sqrt(self.vcomp) if use_sqrt else self.vcomp
        return np.concatenate([self.fe_params if has_fe else np.zeros(0), tri, vc])


# ---------------------------------------------------------------------- summary text

def _fmt(x, float_format: str = "%.4f") -> str:
    """statsmodels' summary2 cell formatter: floats with ``float_format``, others as text."""
    try:
        return (float_format % x).strip()
    except (TypeError, ValueError):
        return str(x).strip()


class Summary:
    """statsmodels' ``summary2.Summary`` of a MixedLM fit: a title, the model's facts and
    the coefficient table, printed as statsmodels prints them.

    Attributes:
        title: the title line.
        tables: the facts (a 4-column DataFrame of text) and the coefficient table (text
            cells, one row per parameter).
    """

    def __init__(self, title: str, info: dict, table: pd.DataFrame) -> None:
        self.title = title
        cells = [[_fmt(k), _fmt(v)] for k, v in info.items()]
        if len(cells) % 2:
            cells.append(["", ""])
        half = len(cells) // 2
        self.tables = [pd.DataFrame([a + b for a, b in zip(cells[:half], cells[half:])]), table]

    @staticmethod
    def _lines(rows: list[list[str]], aligns: list[str], header, sep: str) -> list[str]:
        widths = [max(len(r[j]) for r in rows + ([header] if header else [])) for j in range(len(aligns))]

        def line(cells, header_line=False):
            out = []
            for j, (c, w) in enumerate(zip(cells, widths)):
                a = "l" if j == 0 and aligns[0] == "stub" else ("c" if header_line else aligns[j])
                out.append(c.ljust(w) if a in ("l", "stub") else c.center(w) if a == "c" else c.rjust(w))
            return sep.join(out)

        body = [line(r) for r in rows]
        width = len(body[0]) if body else 0
        out = ["-" * width]
        if header:
            out += [line(header, True), "-" * width]
        return out + body

    def _render(self, pads=None) -> list[list[str]]:
        info, table = self.tables
        pad_sep, pad_index = pads or ((0, 0), (0, 0))
        rows = [[str(c) for c in r] for r in info.to_numpy().tolist()]
        for r in rows:
            r[0] = r[0] + " " * pad_index[0]
        first = self._lines(rows, ["l"] * info.shape[1], None, " " * (pad_sep[0] + 1))
        prow = [[str(i) + " " * pad_index[1]] + [str(c) for c in r] for i, r in zip(table.index, table.to_numpy())]
        header = [""] + [str(c) for c in table.columns]
        second = self._lines(prow, ["stub"] + ["r"] * table.shape[1], header, " " * (pad_sep[1] + 1))
        return [first, second]

    def as_text(self) -> str:
        """The summary as statsmodels' ``summary().as_text()`` lays it out."""
        plain = self._render()
        lengths = [len(t[0]) for t in plain]
        widest = max(lengths)
        # statsmodels widens the narrower table by padding its column separators
        # (counting one fewer separator than a table with row labels has) and its first column.
        pad_sep, pad_index = [], []
        for t, length in zip(self.tables, lengths):
            nsep = max(t.shape[1] - 1, 1)
            pad = int((widest - length) / nsep)
            pad_sep.append(pad)
            pad_index.append(widest - (length + nsep * pad))
        lines = [line for t in self._render((pad_sep, pad_index)) for line in t]
        lines[0] = "=" * widest
        lines.append("=" * widest)
        title = self.title
        if len(title) < widest:
            title = " " * int(widest / 2 - len(title) / 2) + title
        return f"{title}\n" + "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return f'{type(self)}\n"""\n{self.as_text()}\n"""'


# ---------------------------------------------------------------------- results

def _scaled_hessian(f, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Hessian of f at x by numDeriv's scheme on steps proportional to ``base``; the
    steps shrink (to 1/100) while a step leaves f's domain (f then returns NaN)."""
    for kappa in (1.0, 0.1, 0.01):
        d = kappa * base
        H = hessian_richardson(lambda u: f(x + d * (u - 1.0)), np.ones_like(x))  # noqa: B023 - called in this iteration
        if np.all(np.isfinite(H)):
            return H / np.outer(d, d)
    return np.full((x.size, x.size), np.nan)


class MixedLMResults:
    """The results of :meth:`lmm.compat.statsmodels.MixedLM.fit`, with statsmodels' attributes.

    The attributes have statsmodels' meanings:

    - ``params``: fixed effects, then ``cov_re / scale`` (lower triangle by rows), then
      ``vcomp / scale``, named ``"Intercept"``, ..., ``"Group Var"``,
      ``"Group x Time Cov"``, ``"Time Var"``, ``"<component> Var"``.
    - ``fe_params``, ``bse``, ``bse_fe``, ``bse_re``, ``tvalues``, ``pvalues`` (normal
      distribution): as statsmodels'; ``bse_re`` is ``sqrt(scale · Var)`` of the variance
      parameters.
    - ``cov_re``: the covariance of the random coefficients (``σ² λλ'``); ``vcomp``: the
      variance components; ``scale``: the residual variance σ².
    - ``llf``: the log-likelihood (the restricted one for REML fits, as lme4's); ``aic``,
      ``bic``: NaN for REML fits, as statsmodels'.
    - ``converged``, ``nobs``, ``k_fe``, ``k_re``, ``k_re2``, ``k_vc``, ``method``
      (``"REML"``/``"ML"``), ``reml``, ``model``.
    - ``lmm_result``: the underlying :class:`lmm.LmmResult` (lme4's view of the same fit).
    """

    def __init__(self, model, lmm_result, reml: bool, re_diag: bool) -> None:
        spec = model._spec
        self.model = model
        self.lmm_result = lmm_result
        self._spec = spec
        lm = lmm_result.model
        self._lmm_model = lm
        names = [t.name for t in lm.terms]
        self._re_term = names.index(spec.group_column) if spec.re_rhs is not None else None
        self._vc_terms = [names.index(vc.column) for vc in spec.vcs]
        self._offsets = np.concatenate([[0], np.cumsum([ntheta(t) for t in lm.terms])]).astype(int)
        self._re_diag = re_diag
        sol = lmm_result.solution
        self._sol = sol
        self.reml = bool(reml)
        self.method = "REML" if self.reml else "ML"
        self.converged = bool(lmm_result.converged)
        self.scale = float(lmm_result.sigma) ** 2
        self.k_fe = lm.nfixed
        self.k_re = 0 if self._re_term is None else lm.terms[self._re_term].p
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_vc = len(spec.vcs)
        self.nobs = lm.nobs
        self.df_resid = self.nobs - np.linalg.matrix_rank(lm.design.X)
        self.use_sqrt = model.use_sqrt
        self.hist = None
        if self._re_term is None:
            unscaled = np.zeros((0, 0))
        else:
            lam = np.asarray(sol.lambdas[self._re_term])
            unscaled = lam @ lam.T
        self.cov_re_unscaled_ = unscaled
        self.vcomp = self.scale * np.array([float(sol.lambdas[k][0, 0]) ** 2 for k in self._vc_terms])
        self.llf = -0.5 * float(lmm_result.objective)
        tri = np.tril_indices(self.k_re)
        self._fe = np.array(sol.beta)
        self._params = np.concatenate([self._fe, unscaled[tri], self.vcomp / self.scale])
        # Which variance parameters the fit estimated (``free``): the random coefficients'
        # correlations are held at 0 when they are independent.
        free = np.ones(self._params.size, dtype=bool)
        if re_diag:
            free[self.k_fe:self.k_fe + self.k_re2] = tri[0] == tri[1]
        self._free = free
        #: statsmodels' ``freepat``, the pattern of estimated parameters (None: all).
        self.freepat = MixedLMParams.from_components(np.ones(self.k_fe), np.eye(self.k_re),
                                                     vcomp=np.ones(self.k_vc)) if re_diag else None
        self.params_object = MixedLMParams.from_components(self._fe, unscaled, vcomp=self.vcomp / self.scale)
        self._rows = np.asarray(lm.design.rows, dtype=np.int64)
        self._group_of_row = spec.group_codes[self._rows]
        present = np.unique(self._group_of_row)
        self._present = present
        self._group_rows = {int(g): np.flatnonzero(self._group_of_row == g) for g in present}

    # --- names -----------------------------------------------------------------------

    @functools.cached_property
    def _exog_names(self) -> list[str]:
        return self.model.exog_names

    @functools.cached_property
    def _re_names(self) -> list[str]:
        spec = self._spec
        if self._re_term is None:
            return []
        if spec.re_names is not None:
            return list(spec.re_names)
        cn = self._lmm_model.terms[self._re_term].cnames
        return [spec.group_name if c == "(Intercept)" else c for c in cn]

    @functools.cached_property
    def _param_names(self) -> list[str]:
        spec, names = self._spec, self._re_names
        if spec.re_param_names is not None:
            re_par = list(spec.re_param_names)
        else:
            re_par = [f"{names[i]} Var" if i == j else f"{names[j]} x {names[i]} Cov"
                      for i, j in zip(*np.tril_indices(self.k_re))]
        return self._exog_names + re_par + [f"{vc.name} Var" for vc in spec.vcs]

    def _series(self, values, names):
        return pd.Series(np.asarray(values, dtype=np.float64), index=names) if self._spec.pandas else np.asarray(values)

    # --- parameters -------------------------------------------------------------------

    @property
    def params(self):
        """Fixed effects, then the variance parameters relative to the scale (statsmodels' packed order)."""
        return self._series(self._params, self._param_names)

    @property
    def fe_params(self):
        """The fixed effects."""
        return self._series(self._fe, self._exog_names)

    @property
    def cov_re(self):
        """Covariance matrix of the random coefficients (``scale · cov_re_unscaled``)."""
        cov = self.scale * self.cov_re_unscaled_
        return pd.DataFrame(cov, index=self._re_names, columns=self._re_names) if self._spec.pandas else cov

    @property
    def cov_re_unscaled(self):
        """``cov_re / scale``."""
        cov = self.cov_re_unscaled_
        return pd.DataFrame(cov, index=self._re_names, columns=self._re_names) if self._spec.pandas else cov

    # --- covariance of the estimates -----------------------------------------------------

    def _theta_of(self, psi: np.ndarray):
        """lmm's θ at statsmodels' variance parameters ψ (relative to the scale), or None
        outside the parameter space (a covariance that is not positive semi-definite)."""
        lm = self._lmm_model
        theta = np.array(self._sol.theta)
        if self._re_term is not None:
            k = self.k_re
            tri = np.zeros((k, k))
            tri[np.tril_indices(k)] = psi[:self.k_re2]
            cov = tri + tri.T - np.diag(np.diag(tri))
            if self._re_diag:
                if np.any(np.diag(cov) < 0):
                    return None
                L = np.diag(np.sqrt(np.diag(cov)))
            else:
                try:
                    L = np.linalg.cholesky(cov)
                except np.linalg.LinAlgError:
                    return None
            off = self._offsets[self._re_term]
            for pos, (i, j) in enumerate(theta_positions(lm.terms[self._re_term])):
                theta[off + pos] = L[i, j]
        for v, k in zip(psi[self.k_re2:], self._vc_terms):
            if v < 0:
                return None
            theta[self._offsets[k]] = math.sqrt(v)
        return theta

    @functools.cached_property
    def _cov_params(self) -> np.ndarray:
        k_fe, m = self.k_fe, self._params.size
        psi_hat = self._params[k_fe:]
        free = self._free[k_fe:].copy()
        # ψ at 0 (a variance on its boundary) has no two-sided neighbourhood: held fixed.
        at_bound = np.zeros(free.size, dtype=bool)
        if self.k_re:
            diag = np.diag(self.cov_re_unscaled_)
            if np.min(np.linalg.eigvalsh(self.cov_re_unscaled_)) <= 1e-12 * max(np.max(diag), 1e-300):
                at_bound[:self.k_re2] = True
        at_bound[self.k_re2:] = psi_hat[self.k_re2:] <= 0
        est = free & ~at_bound
        idx = np.flatnonzero(est)
        cov = np.zeros((m, m))
        cov[:k_fe, :k_fe] = np.asarray(self._sol.vcov)
        for i in np.flatnonzero(at_bound & free):
            cov[k_fe + i, k_fe + i] = np.nan
        if idx.size == 0:
            return cov
        lm, reml = self._lmm_model, self.reml
        x0 = psi_hat[idx]
        if self.k_re:
            d = np.sqrt(np.diag(self.cov_re_unscaled_))
            rows, cols = np.tril_indices(self.k_re)
            scale_re = np.where(rows == cols, np.abs(psi_hat[:self.k_re2]), 1e-3 * d[rows] * d[cols])
        else:
            scale_re = np.zeros(0)
        base = np.concatenate([scale_re, np.abs(psi_hat[self.k_re2:])])[idx]
        base = np.where(base > 0, np.maximum(base, 1e-3 * np.abs(base).max()), 1e-3)

        def full(x):
            psi = psi_hat.copy()
            psi[idx] = x
            return self._theta_of(psi)

        def objective(x):
            theta = full(x)
            return np.nan if theta is None else lm.objective(theta, reml)

        H = _scaled_hessian(objective, x0, base)
        try:
            C = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            C = np.full(H.shape, np.nan)
        if k_fe:
            J = jacobian_richardson(lambda u: lm.solution(full(x0 + base * (u - 1.0)), reml).beta,
                                    np.ones_like(x0)) / base
        else:
            J = np.zeros((0, idx.size))
        pos = k_fe + idx
        if np.all(np.isfinite(C)):
            cov[:k_fe, :k_fe] += J @ C @ J.T
            cov[np.ix_(np.arange(k_fe), pos)] = J @ C
            cov[np.ix_(pos, np.arange(k_fe))] = (J @ C).T
        cov[np.ix_(pos, pos)] = C
        return cov

    def cov_params(self):
        """Covariance of the estimates of ``params`` (statsmodels' inverse negative Hessian)."""
        names = self._param_names
        c = self._cov_params
        return pd.DataFrame(c, index=names, columns=names) if self._spec.pandas else c.copy()

    @property
    def bse(self):
        """Standard errors of ``params``."""
        return self._series(np.sqrt(np.diag(self._cov_params)), self._param_names)

    @property
    def bse_fe(self):
        """Standard errors of the fixed effects."""
        return self._series(np.sqrt(np.diag(self._cov_params)[:self.k_fe]), self._exog_names)

    @property
    def bse_re(self):
        """statsmodels' standard errors of the variance parameters, ``sqrt(scale · Var(params))``."""
        return self._series(np.sqrt(self.scale * np.diag(self._cov_params)[self.k_fe:]),
                            self._param_names[self.k_fe:])

    @property
    def tvalues(self):
        """``params / bse``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = self._params / np.sqrt(np.diag(self._cov_params))
        return self._series(t, self._param_names)

    @property
    def pvalues(self):
        """Two-sided p-values of ``tvalues`` from the normal distribution (as statsmodels)."""
        t = np.asarray(self.tvalues, dtype=np.float64)
        return self._series(2.0 * norm.sf(np.abs(t)), self._param_names)

    def conf_int(self, alpha: float = 0.05, cols=None):
        """Wald intervals ``params ± z_{1−α/2} · bse`` (columns 0 and 1, as statsmodels).

        Args:
            alpha: one minus the confidence level.
            cols: positions of the parameters to return (default all).
        """
        q = norm.ppf(1.0 - alpha / 2.0)
        se = np.sqrt(np.diag(self._cov_params))
        out = np.column_stack([self._params - q * se, self._params + q * se])
        names = list(self._param_names)
        if cols is not None:
            out, names = out[list(cols)], [names[c] for c in cols]
        return pd.DataFrame(out, index=names) if self._spec.pandas else out

    @property
    def aic(self) -> float:
        """Akaike's criterion; NaN for REML fits (as statsmodels)."""
        return math.nan if self.reml else -2.0 * (self.llf - self._df_model)

    @property
    def bic(self) -> float:
        """Schwarz's criterion; NaN for REML fits (as statsmodels)."""
        return math.nan if self.reml else -2.0 * self.llf + math.log(self.nobs) * self._df_model

    @property
    def _df_model(self) -> int:
        return int(self._free.sum()) + 1

    # --- random effects -------------------------------------------------------------------

    @functools.cached_property
    def _layout(self) -> dict[int, list[tuple[int, int, int, str]]]:
        """Per group (by index into the spec's labels): [(term, level, column slice, label)]."""
        spec, lm = self._spec, self._lmm_model
        out: dict[int, list[tuple[int, int, int, str]]] = {int(g): [] for g in self._present}
        if self._re_term is not None:
            t = lm.terms[self._re_term]
            for lev, lab in enumerate(t.levels):
                g = int(lab)
                for c, name in enumerate(self._re_names):
                    out[g].append((self._re_term, lev, c, name))
        for vc, k in zip(spec.vcs, self._vc_terms):
            t = lm.terms[k]
            if vc.kind == "levels":
                codes = np.array([int(lab) for lab in t.levels])
                order = np.argsort(codes, kind="stable")
                for lev in order:
                    code = codes[lev]
                    out[int(vc.level_group[code])].append((k, int(lev), 0, f"{vc.name}[{vc.level_label[code]}]"))
            else:
                cn = ["Intercept" if c == "(Intercept)" else c for c in t.cnames]
                for lev, lab in enumerate(t.levels):
                    g = int(lab)
                    labels = cn if vc.labels is None else vc.labels[g]
                    for c, name in enumerate(labels):
                        out[g].append((k, lev, c, f"{vc.name}[{name}]"))
        return out

    @functools.cached_property
    def random_effects(self) -> dict:
        """dict group label → Series of the group's predicted random effects (conditional modes)."""
        b = self._sol.b
        out = {}
        for g in self._present:
            items = self._layout[int(g)]
            out[self._spec.group_labels[g]] = pd.Series([float(b[k][lev, c]) for k, lev, c, _ in items],
                                                        index=[name for *_, name in items], dtype=np.float64)
        return out

    @functools.cached_property
    def random_effects_cov(self) -> dict:
        """The conditional covariance of each group's random effects given the data (fixed
        effects at their estimates), ``σ² Λ(Λ'Z'ZΛ + I)⁻¹Λ'``, as a dict group label → DataFrame."""
        lm, sol = self._lmm_model, self._sol
        out = {}
        for g in self._present:
            items = self._layout[int(g)]
            rows = self._group_rows[int(g)]
            Z = np.zeros((rows.size, len(items)))
            lam = np.zeros((len(items), len(items)))
            blocks: dict = {}
            for col, (k, lev, c, _) in enumerate(items):
                t = lm.terms[k]
                Z[:, col] = np.where(t.codes[rows] == lev, t.z[rows, c], 0.0)
                blocks.setdefault((k, lev), []).append((col, c))
            for (k, _lev), cols in blocks.items():
                lk = np.asarray(sol.lambdas[k])
                for ca, a in cols:
                    for cb, bb in cols:
                        lam[ca, cb] = lk[a, bb]
            ZL = Z @ lam
            A = ZL.T @ ZL + np.eye(len(items))
            cov = self.scale * lam @ np.linalg.solve(A, lam.T)
            names = [name for *_, name in items]
            out[self._spec.group_labels[g]] = pd.DataFrame(cov, index=names, columns=names)
        return out

    # --- fitted values ----------------------------------------------------------------------

    def _rows_series(self, values):
        if self._spec.pandas:
            return pd.Series(values, index=self._spec.index[self._rows])
        return values

    @functools.cached_property
    def fittedvalues(self):
        """Fitted values Xβ̂ + Zb̂ on the rows used."""
        return self._rows_series(self.lmm_result.fitted(array=True))

    @functools.cached_property
    def resid(self):
        """Residuals ``endog − fittedvalues``."""
        return self._rows_series(self._lmm_model.design.y - self.lmm_result.fitted(array=True))

    def predict(self, exog=None, transform: bool = True):
        """Predictions of the fixed effects only (statsmodels' meaning): ``exog @ fe_params``.

        Args:
            exog: None (the rows used in the fit: an array), a data frame of new data for a
                formula model (its fixed-effects formula is evaluated there; a Series
                indexed as the frame), or a fixed-effects design matrix.
            transform: for a formula model, whether ``exog`` holds data to pass through
                the formula (else it is the design matrix).
        """
        if exog is None:
            return self._lmm_model.design.X @ self._fe
        if self._spec.formula_mode and transform:
            frame = exog if isinstance(exog, pd.DataFrame) else pd.DataFrame(exog)
            values = self.lmm_result.predict(frame.reset_index(drop=True), re_form="~0", array=True)
            return pd.Series(values, index=frame.index)
        return np.asarray(exog, dtype=np.float64) @ self._fe

    # --- summary ----------------------------------------------------------------------

    def summary(self, yname=None, xname_fe=None, xname_re=None, title=None, alpha: float = 0.05) -> Summary:
        """The summary table in statsmodels' layout (``print(res.summary())``; ``.as_text()``).

        Args:
            yname: the response's name (default the model's).
            xname_fe, xname_re: names for the fixed-effects and variance-parameter rows.
            title: the title (default ``"Mixed Linear Model Regression Results"``).
            alpha: 1 − the level of the fixed effects' intervals.
        """
        names = list(self._param_names)
        k_fe = self.k_fe
        if xname_fe is not None:
            if len(xname_fe) != k_fe:
                raise ValueError(f"xname_fe should be a list of length {k_fe}")
            names[:k_fe] = list(xname_fe)
        if xname_re is not None:
            if len(xname_re) != len(names) - k_fe:
                raise ValueError(f"xname_re should be a list of length {len(names) - k_fe}")
            names[k_fe:] = list(xname_re)
        sizes = np.array([self._group_rows[int(g)].size for g in self._present])
        info = {
            "Model:": "MixedLM",
            "No. Observations:": str(self.nobs),
            "No. Groups:": str(len(self._present)),
            "Min. group size:": f"{sizes.min():.0f}",
            "Max. group size:": f"{sizes.max():.0f}",
            "Mean group size:": f"{sizes.mean():.1f}",
            "Dependent Variable:": self.model.endog_names if yname is None else yname,
            "Method:": self.method,
            "Scale:": self.scale,
            "Log-Likelihood:": self.llf,
            "Converged:": "Yes" if self.converged else "No",
        }
        cov = self._cov_params
        se = np.sqrt(np.diag(cov))
        table = np.full((len(names), 6), np.nan)
        fe = self._fe
        z = fe / se[:k_fe]
        q = -norm.ppf(alpha / 2)
        table[:k_fe] = np.column_stack([fe, se[:k_fe], z, 2 * norm.cdf(-np.abs(z)), fe - q * se[:k_fe],
                                        fe + q * se[:k_fe]])
        tri = np.tril_indices(self.k_re)
        scaled = np.concatenate([self.scale * self.cov_re_unscaled_[tri], self.vcomp])
        table[k_fe:, 0] = scaled
        table[k_fe:, 1] = math.sqrt(self.scale) * se[k_fe:]
        cells = pd.DataFrame([["%.3f" % v if np.isfinite(v) else "" for v in r] for r in table], index=names,
                             columns=["Coef.", "Std.Err.", "z", "P>|z|", f"[{alpha / 2}", f"{1 - alpha / 2}]"])
        return Summary("Mixed Linear Model Regression Results" if title is None else title, info, cells)
