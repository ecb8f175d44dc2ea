"""The fitted model: estimates, variance components, conditional modes, summary, and
everything a user does after the fit (tests, intervals, predictions), delegating the
statistics to :mod:`lmm.inference`."""

from __future__ import annotations

import copy
import functools
import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from . import inference
from .optimize import SINGULAR_TOL, OptimizeResult

__all__ = ["LmmResult"]

#: What ``re_form`` values mean "no random effects" (R's ``re.form = NA`` or ``~0``).
_NO_RANDOM = ("~0", "~ 0", "0", "NA", "~-1", "~ -1")


def _make_unique(names: list[str]) -> list[str]:
    """R's make.unique: later duplicates get .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


class LmmResult:
    """A fitted linear mixed model.

    Attributes:
        theta: θ at the optimum (lme4's order, see ``theta_names``).
        fixef: fixed effects (pandas Series in model-matrix column order).
        sigma: residual standard deviation.
        objective: REML criterion (REML fits) or deviance (ML fits).
        loglik, aic, bic: log-likelihood (REML fits: the restricted one, as lme4) and criteria.
        nobs: number of observations used.
        ngroups: levels per grouping factor.
        varcorr: DataFrame grp, var1, var2, vcov, sdcor as R's ``as.data.frame(VarCorr(fit))``.
        ranef: dict group → DataFrame of conditional modes (levels × coefficients), made
            on first use (the level labels are not needed before).
        vcov: covariance of the fixed effects (DataFrame).
        converged, singular: convergence and boundary flags.
        optinfo: what the optimizer did (OptimizeResult).
    """

    def __init__(self, model, opt: OptimizeResult) -> None:
        self.model = model
        self.optinfo = opt
        self.REML = model.REML
        self.formula = model.formula
        core = model._core
        core.set_theta(opt.theta)
        self.theta = np.asarray(opt.theta, dtype=np.float64)
        self.theta_names = model.theta_names
        self.objective = float(core.objective(self.REML))
        self.sigma = float(core.sigma(self.REML))
        u, beta = core.solve()
        self._u = np.asarray(u)
        self._b = np.asarray(core.b(u))
        xnames = model.design.xnames
        design = model.design
        self.fixef = pd.Series(design.beta_from_core(beta), index=xnames, name="Estimate")
        self.vcov = pd.DataFrame(design.vcov_from_core(core.vcov_beta(self.REML)), index=xnames, columns=xnames)
        self.nobs = model.nobs
        self.loglik = -0.5 * self.objective
        npar = model.nfixed + model.ntheta + 1
        self.npar = npar
        self.aic = -2.0 * self.loglik + 2.0 * npar
        self.bic = -2.0 * self.loglik + math.log(self.nobs) * npar
        lower = model.theta_lower
        self.singular = bool(np.any(self.theta[lower == 0] < SINGULAR_TOL))
        self.converged = opt.converged
        self._lambdas = [np.asarray(core.lambda_(k)) for k in range(len(model.terms))]
        self.ngroups = {}
        for t in model.terms:
            self.ngroups.setdefault(t.name, t.nlevels)
        self.varcorr = self._varcorr()
        self._cache: dict = {}

    # --- variance components ----------------------------------------------------------

    def _pieces(self):
        """(group name, term, column indices) per lme4 term; diagonal terms are one piece per column."""
        pieces = []
        for t, lam in zip(self.model.terms, self._lambdas):
            if t.diagonal:
                pieces += [(t.name, t, lam, [j]) for j in range(t.p)]
            else:
                pieces.append((t.name, t, lam, list(range(t.p))))
        names = _make_unique([p[0] for p in pieces])
        return [(name,) + p[1:] for name, p in zip(names, pieces)]

    def _varcorr(self) -> pd.DataFrame:
        rows = []
        s2 = self.sigma**2
        for grp, t, lam, cols in self._pieces():
            L = lam[np.ix_(cols, cols)]
            cov = s2 * (L @ L.T)
            sd = np.sqrt(np.diag(cov))
            names = [t.cnames[j] for j in cols]
            for i, name in enumerate(names):
                rows.append((grp, name, None, cov[i, i], sd[i]))
            for j in range(len(cols)):
                for i in range(j + 1, len(cols)):
                    denom = sd[i] * sd[j]
                    corr = cov[i, j] / denom if denom > 0 else float("nan")
                    rows.append((grp, names[j], names[i], cov[i, j], corr))
        rows.append(("Residual", None, None, s2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    @functools.cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """dict group → DataFrame of conditional modes (levels × coefficients), lme4's ``ranef(fit)``."""
        out: dict[str, pd.DataFrame] = {}
        off = 0
        for t in self.model.terms:
            size = t.nlevels * t.p
            frame = pd.DataFrame(self._b[off:off + size].reshape(t.nlevels, t.p), index=t.levels, columns=t.cnames)
            off += size
            if t.name in out:
                out[t.name] = pd.concat([out[t.name], frame], axis=1)
            else:
                out[t.name] = frame
        return out

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="Std. Error")

    # --- fitted values and predictions -------------------------------------------------

    def fitted(self) -> np.ndarray:
        """Fitted values Xβ̂ + Zb̂ on the rows used in the fit."""
        d = self.model.design
        out = d.X @ self.fixef.to_numpy()
        off = 0
        for t in self.model.terms:
            size = t.nlevels * t.p
            b = self._b[off:off + size].reshape(t.nlevels, t.p)
            out += np.einsum("ij,ij->i", t.z, b[t.codes])
            off += size
        return out

    def residuals(self, type: str = "response", scaled: bool = False) -> np.ndarray:
        """Residuals y − fitted on the rows used in the fit.

        Args:
            type: ``"response"`` (y − ŷ) or ``"pearson"`` (divided by σ̂; lme4's
                ``residuals(fit, type = "pearson")`` for unweighted fits).
            scaled: divide by σ̂ (lme4's ``scaled = TRUE``); same as ``type="pearson"``.

        Returns:
            Array of length nobs.
        """
        if type not in ("response", "pearson"):
            raise ValueError("type must be 'response' or 'pearson'")
        r = self.model.design.y - self.fitted()
        return r / self.sigma if scaled or type == "pearson" else r

    def predict(self, newdata: Optional[pd.DataFrame] = None, re_form=None,
                allow_new_levels: bool = False) -> np.ndarray:
        """Predictions, as lme4's ``predict(fit, newdata, re.form, allow.new.levels)``.

        Args:
            newdata: a data frame with the columns the formula uses (the response is not
                needed); None predicts on the rows used in the fit. Factors keep the levels
                of the fitting data, ``poly()`` and ``scale()`` its coefficients.
            re_form: None (all random effects), ``"~0"`` or ``"NA"`` (none: Xβ̂), or a
                formula of random-effects terms of the model, e.g. ``"~(1 | Subject)"``.
            allow_new_levels: levels of a grouping factor not in the fitting data (and
                missing ones) get random effects 0; otherwise they raise ValueError.

        Returns:
            Array of predictions, one per row of ``newdata`` (NaN where a used column is missing).

        Example:
            >>> import lmm, pandas as pd
            >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
            >>> new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "new"]})
            >>> res.predict(new, allow_new_levels=True).round(2)  # doctest: +SKIP
            array([253.66, 303.74])
        """
        selected = self._re_selection(re_form)
        beta = self.fixef.to_numpy()
        if newdata is None:
            out = self.model.design.X @ beta
            pieces = [(t, t.codes, t.z) for t in self.model.terms]
        else:
            newdata = newdata if isinstance(newdata, pd.DataFrame) else pd.DataFrame(newdata)
            out = self._new_X(newdata) @ beta
            pieces = [(t, *self._new_codes_z(t, newdata, allow_new_levels)) if selected[k] else (t, None, None)
                      for k, t in enumerate(self.model.terms)]
        off = 0
        for k, (t, codes, z) in enumerate(pieces):
            size = t.nlevels * t.p
            cols = selected[k]
            if cols:
                b = self._b[off:off + size].reshape(t.nlevels, t.p)[:, cols]
                known = codes >= 0
                contrib = np.zeros(len(out))
                contrib[known] = np.einsum("ij,ij->i", z[known][:, cols], b[codes[known]])
                out = out + contrib
            off += size
        return out

    def _re_selection(self, re_form) -> list:
        """Per model term, the columns whose random effects ``re_form`` keeps."""
        terms = self.model.terms
        if re_form is None:
            return [list(range(t.p)) for t in terms]
        text = str(re_form).strip() if not isinstance(re_form, float) or not math.isnan(re_form) else "NA"
        if re_form is False or text.replace(" ", "") in {s.replace(" ", "") for s in _NO_RANDOM}:
            return [[] for _ in terms]
        from .formula import parse_formula

        parsed = parse_formula("._y_. " + text if text.startswith("~") else text)
        wanted = {(rt.expr, rt.name) for rt in parsed.random}
        if not wanted:
            return [[] for _ in terms]
        out, found = [], set()
        for t in terms:
            cols: list = []
            exprs = t.exprs or []
            if t.diagonal and len(exprs) == t.p:
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
        from .formula import model_matrix

        state = self._frame_state("fixed")
        X, names = model_matrix(state.terms, newdata, state=state)
        return X[:, [names.index(c) for c in self.fixef.index]]

    def _new_codes_z(self, t, newdata: pd.DataFrame, allow_new_levels: bool):
        from .formula import RandomTerm, grouping_factor, model_matrix

        states = self._frame_state("random", t)
        zs = [model_matrix(st.terms, newdata, state=st)[0] for st in states]
        z = np.column_stack(zs) if zs else np.zeros((len(newdata), 0))
        codes, labels = grouping_factor(RandomTerm(t.exprs[0], t.factors, t.name, t.diagonal), newdata)
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
        d = self.model.design
        n = len(d.y)
        mean = d.X @ self.fixef.to_numpy()
        fixed_b = self.fitted() - mean if use_u else None
        out = np.empty((n, nsim))
        for s in range(nsim):
            y = mean + self.sigma * rng.standard_normal(n)
            if use_u:
                y += fixed_b
            else:
                for t, lam in zip(self.model.terms, self._lambdas):
                    b = self.sigma * rng.standard_normal((t.nlevels, t.p)) @ lam.T
                    y += np.einsum("ij,ij->i", t.z, b[t.codes])
            out[:, s] = y
        return out

    # --- random effects ---------------------------------------------------------------------

    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level, as lme4's ``coef(fit)``.

        Returns:
            dict group → DataFrame (levels × coefficients): the fixed effects, with each
            level's random effect added where the names agree; random-only columns
            (not among the fixed effects) come first with fixed part 0, as in lme4.
        """
        fixed = self.fixef
        out = {}
        for grp, re in self.ranef.items():
            missing = [c for c in re.columns if c not in fixed.index]
            cols = missing + list(fixed.index)
            base = pd.Series(0.0, index=cols)
            base[list(fixed.index)] = fixed.to_numpy()
            frame = pd.DataFrame(np.tile(base.to_numpy(), (len(re), 1)), index=re.index, columns=cols)
            for c in re.columns:
                frame[c] = frame[c] + re[c].to_numpy()
            out[grp] = frame
        return out

    def ranef_condvar(self) -> dict[str, np.ndarray]:
        """Conditional covariances of the random effects per level (lme4's ``condVar``).

        Returns:
            dict group → array (levels, P, P), P the number of columns of ``ranef[group]``:
            σ̂² Λ (Λ'Z'ZΛ + I)⁻¹ Λ' on each level's block at the estimates, as
            ``attr(ranef(fit, condVar = TRUE)[[group]], "postVar")``. Blocks between two
            terms on one factor (``(1|g) + (0+x|g)``) are 0, as lme4 reports per term.
        """
        if "condvar" not in self._cache:
            blocks = inference.conditional_covariances(self)
            out: dict[str, list] = {}
            for t, blk in zip(self.model.terms, blocks):
                out.setdefault(t.name, []).append(blk)
            result = {}
            for grp, parts in out.items():
                nl = parts[0].shape[0]
                P = sum(b.shape[1] for b in parts)
                arr = np.zeros((nl, P, P))
                o = 0
                for b in parts:
                    arr[:, o:o + b.shape[1], o:o + b.shape[1]] = b
                    o += b.shape[1]
                result[grp] = arr
            self._cache["condvar"] = result
        return self._cache["condvar"]

    def ranef_frame(self, cond_var: bool = True) -> pd.DataFrame:
        """Conditional modes as one long table (R's ``as.data.frame(ranef(fit, condVar = TRUE))``).

        Returns:
            DataFrame with columns grpvar, term, grp, condval and (with ``cond_var``) condsd.
        """
        cv = self.ranef_condvar() if cond_var else None
        rows = []
        for grp, re in self.ranef.items():
            for j, term in enumerate(re.columns):
                sd = np.sqrt(cv[grp][:, j, j]) if cv is not None else None
                for i, lev in enumerate(re.index):
                    row = [grp, term, str(lev), re.iloc[i, j]]
                    if sd is not None:
                        row.append(sd[i])
                    rows.append(row)
        cols = ["grpvar", "term", "grp", "condval"] + (["condsd"] if cond_var else [])
        return pd.DataFrame(rows, columns=cols)

    # --- inference ----------------------------------------------------------------------------

    def _satterthwaite(self) -> "inference.Satterthwaite":
        if "satt" not in self._cache:
            self._cache["satt"] = inference.satterthwaite_setup(self)
        return self._cache["satt"]

    def _kenward_roger(self) -> "inference.KenwardRoger":
        if "kr" not in self._cache:
            self._cache["kr"] = inference.kenward_roger_setup(self)
        return self._cache["kr"]

    def _fixed_terms(self) -> dict:
        state = self._frame_state("fixed")
        assign = [state.assign[state.names.index(c)] for c in self.fixef.index]
        return {"labels": state.term_labels, "bits": state.term_bits, "assign": assign}

    def vcov_kr(self) -> pd.DataFrame:
        """Kenward–Roger adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``; REML fits)."""
        names = self.fixef.index
        return pd.DataFrame(self._kenward_roger().phi_adj, index=names, columns=names)

    def coef_table(self, ddf: Optional[str] = "Satterthwaite") -> pd.DataFrame:
        """Fixed-effects table with df and p-values (lmerTest's ``coef(summary(fit))``).

        Args:
            ddf: ``"Satterthwaite"`` (default, as lmerTest), ``"Kenward-Roger"`` (as
                pbkrtest; adjusted standard errors; REML fits) or None (lme4's table
                without df and p).

        Returns:
            DataFrame with columns Estimate, Std. Error, df, t value, Pr(>|t|).
        """
        return inference.coef_table(self, ddf)

    def test(self, L, rhs=0.0, ddf: Optional[str] = "Satterthwaite", joint: bool = True) -> pd.DataFrame:
        """Test the contrasts L β = rhs (lmerTest's ``contest``).

        Args:
            L: a vector or matrix with one column per fixed effect, a dict or Series
               {name: weight}, a DataFrame with fixed-effect columns, or a fixed-effect name.
            rhs: right-hand side(s).
            ddf: ``"Satterthwaite"`` or ``"Kenward-Roger"``.
            joint: one F test of all rows (default) or a t test per row.

        Returns:
            DataFrame: F table (Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)) or t table.

        Example:
            >>> res.test([0, 1])  # doctest: +SKIP  (H0: the Days slope is 0)
        """
        return inference.contrast_test(self, L, rhs=rhs, ddf=ddf, joint=joint)

    def anova(self, ddf: Optional[str] = "Satterthwaite") -> pd.DataFrame:
        """Type III F tests of the fixed-effects terms (lmerTest's ``anova(fit)``).

        Returns:
            DataFrame indexed by term with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).
        """
        return inference.anova_type3(self, ddf=ddf)

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Confidence intervals (lme4's ``confint``): ``"profile"`` (default), ``"wald"`` or ``"bootstrap"``.

        Rows are lme4's: ``.sig01``, ``.sig02``, ... (standard deviations and
        correlations of the random effects in θ's order), ``.sigma`` and the fixed
        effects. Profile intervals profile the ML deviance (REML fits are refitted by
        ML first, as lme4 does). Bootstrap keywords (``nsim``, ``seed``, ``n_jobs``,
        ``progress``) go to :meth:`bootstrap`.

        Returns:
            DataFrame with columns ``"2.5 %"`` and ``"97.5 %"`` (for level 0.95).
        """
        return inference.confint(self, method=method, level=level, parm=parm, **kwargs)

    def profile(self, which=None, **kwargs) -> "inference.Profile":
        """Likelihood profile (lme4's ``profile(fit)``); see :func:`lmm.inference.profile`."""
        return inference.profile(self, which=which, **kwargs)

    def bootstrap(self, nsim: int = 500, seed=None, use_u: bool = False, n_jobs: Optional[int] = None,
                  progress: Optional[bool] = None) -> "inference.BootstrapResult":
        """Parametric bootstrap (lme4's ``bootMer``), refitting only the response, in parallel.

        Args:
            nsim: number of replicates.
            seed: random seed (results do not depend on ``n_jobs``).
            use_u: condition on the conditional modes (simulate only the noise).
            n_jobs: worker threads (default: all CPUs).
            progress: progress bar on stderr (default: when stderr is a terminal; tqdm if installed).

        Returns:
            BootstrapResult with ``replicates`` (sd/cor, σ, β per replicate) and ``confint()``.
        """
        return inference.bootstrap(self, nsim=nsim, seed=seed, use_u=use_u, n_jobs=n_jobs, progress=progress)

    def refit_ml(self) -> "LmmResult":
        """The same model fitted by maximum likelihood (self for ML fits), starting at this θ."""
        if not self.REML:
            return self
        if "ml" not in self._cache:
            from .optimize import optimize_theta

            model = copy.copy(self.model)
            model.REML = False
            self._cache["ml"] = LmmResult(model, optimize_theta(model, start=self.theta))
            self.model._core.set_theta(self.theta)
        return self._cache["ml"]

    # --- tables ---------------------------------------------------------------------------

    def tidy(self, effects: Sequence[str] = ("fixed", "ran_pars"), ddf: Optional[str] = "Satterthwaite",
             conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "wald") -> pd.DataFrame:
        """A broom.mixed-style table of the estimates.

        Args:
            effects: any of ``"fixed"`` (fixed effects with std.error, statistic, df and
                p.value), ``"ran_pars"`` (standard deviations ``sd__x``, correlations
                ``cor__x.y`` and the residual ``sd__Observation``) and ``"ran_vals"``
                (conditional modes per level with conditional standard deviations).
            ddf: df method for the fixed effects (None: no df or p.value).
            conf_int: add conf.low and conf.high (fixed effects: Wald with z, or profile/bootstrap
                for every parameter with ``conf_method``).
            conf_level: their level.
            conf_method: ``"wald"``, ``"profile"`` or ``"bootstrap"``.

        Returns:
            DataFrame with columns effect, group, term, estimate, std.error, statistic, df, p.value
            (``ran_vals`` rows have level too).
        """
        if isinstance(effects, str):
            effects = (effects,)
        unknown = set(effects) - {"fixed", "ran_pars", "ran_vals"}
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; use 'fixed', 'ran_pars', 'ran_vals'")
        frames = []
        ci = None
        if conf_int:
            ci = self.confint(method=conf_method, level=conf_level)
        if "fixed" in effects:
            tab = self.coef_table(ddf)
            f = pd.DataFrame({"effect": "fixed", "group": None, "term": tab.index,
                              "estimate": tab["Estimate"].to_numpy(), "std.error": tab["Std. Error"].to_numpy(),
                              "statistic": tab["t value"].to_numpy(),
                              "df": tab["df"].to_numpy() if "df" in tab else np.nan,
                              "p.value": tab["Pr(>|t|)"].to_numpy() if "Pr(>|t|)" in tab else np.nan})
            if ci is not None:
                f["conf.low"] = ci.loc[list(tab.index)].iloc[:, 0].to_numpy()
                f["conf.high"] = ci.loc[list(tab.index)].iloc[:, 1].to_numpy()
            frames.append(f)
        if "ran_pars" in effects:
            rows = []
            names = inference.varpar_names(self.model.terms)
            k = 0
            for grp, t, lam, cols in self._pieces():
                L = lam[np.ix_(cols, cols)]
                cov = self.sigma**2 * (L @ L.T)
                sd = np.sqrt(np.diag(cov))
                cn = [t.cnames[j] for j in cols]
                for j in range(len(cols)):
                    for i in range(j, len(cols)):
                        if i == j:
                            rows.append((grp, f"sd__{cn[i]}", sd[i], names[k]))
                        else:
                            denom = sd[i] * sd[j]
                            rows.append((grp, f"cor__{cn[j]}.{cn[i]}", cov[i, j] / denom if denom > 0 else np.nan,
                                         names[k]))
                        k += 1
            rows.append(("Residual", "sd__Observation", self.sigma, ".sigma"))
            f = pd.DataFrame({"effect": "ran_pars", "group": [r[0] for r in rows], "term": [r[1] for r in rows],
                              "estimate": [r[2] for r in rows], "std.error": np.nan, "statistic": np.nan,
                              "df": np.nan, "p.value": np.nan})
            if ci is not None:
                f["conf.low"] = [ci.loc[r[3]].iloc[0] for r in rows]
                f["conf.high"] = [ci.loc[r[3]].iloc[1] for r in rows]
            frames.append(f)
        if "ran_vals" in effects:
            rv = self.ranef_frame(cond_var=True)
            frames.append(pd.DataFrame({"effect": "ran_vals", "group": rv["grpvar"], "level": rv["grp"],
                                        "term": rv["term"], "estimate": rv["condval"], "std.error": rv["condsd"],
                                        "statistic": np.nan, "df": np.nan, "p.value": np.nan}))
        out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        return out

    def to_frame(self, **kwargs) -> pd.DataFrame:
        """Same as :meth:`tidy`."""
        return self.tidy(**kwargs)

    # --- reporting ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-Python summary of the fit (for JSON)."""
        vc = self.varcorr.astype(object).where(self.varcorr.notna(), None)
        return {
            "formula": self.formula,
            "REML": self.REML,
            "objective": self.objective,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "nobs": self.nobs,
            "ngroups": self.ngroups,
            "theta": dict(zip(self.theta_names, self.theta.tolist())),
            "fixef": self.fixef.to_dict(),
            "se": self.se.to_dict(),
            "sigma": self.sigma,
            "varcorr": vc.to_dict(orient="records"),
            "converged": self.converged,
            "singular": self.singular,
            "optimizer": {
                "name": self.optinfo.optimizer,
                "nfev": self.optinfo.nfev,
                "ngev": self.optinfo.ngev,
                "time": self.optinfo.time,
                "message": self.optinfo.message,
                "gradient": self.optinfo.gradient.tolist(),
            },
        }

    def summary(self, ddf: Optional[str] = "Satterthwaite") -> str:
        """Summary text as lmerTest's ``summary(fit, ddf = ...)``.

        Args:
            ddf: ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` or None (lme4's
                summary: no df and p-value columns).
        """
        return _format_summary(self, ddf)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "ML"
        return f"<LmmResult {self.formula!r} {kind} objective={self.objective:.4f}>"


def _table(rows: list[list[str]], align: list[str]) -> list[str]:
    """Columns padded to their widest cell; align is 'l' or 'r' per column."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(align))]
    return [" ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()
            for r in rows]


def _abbreviate(name: str, width: int = 6) -> str:
    """R's abbreviate(): drop lower-case vowels, then lower-case letters, from the right."""
    chars = list(name)
    for droppable in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if chars[i] in droppable and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:width]) if len(chars) > width else "".join(chars)


def _g(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def _format_pval(p: float) -> str:
    """R's format.pval(p, digits = 3, eps = 2e-16) as printCoefmat shows it."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def _format_summary(res: LmmResult, ddf: Optional[str] = "Satterthwaite") -> str:
    lines = []
    method = inference._check_ddf(ddf)
    table = None
    note_ddf = None
    if method is not None:
        try:
            table = res.coef_table(method)
        except (ValueError, np.linalg.LinAlgError) as err:
            note_ddf = f"{method} degrees of freedom unavailable: {err}"
            method = None
    tests = f". t-tests use {method}'s method" if method else ""
    if res.REML:
        lines.append(f"Linear mixed model fit by REML{tests}")
    else:
        lines.append(f"Linear mixed model fit by maximum likelihood{tests}")
    lines.append(f"Formula: {res.formula}")
    lines.append("")
    if res.REML:
        lines.append(f"REML criterion at convergence: {res.objective:.4f}")
    else:
        df_resid = res.nobs - res.npar
        lines += _table([["AIC", "BIC", "logLik", "deviance", "df.resid"],
                         [f"{res.aic:.1f}", f"{res.bic:.1f}", f"{res.loglik:.1f}", f"{res.objective:.1f}",
                          str(df_resid)]], ["r"] * 5)
    lines.append("")
    q = np.quantile(res.residuals(scaled=True), [0, 0.25, 0.5, 0.75, 1])
    lines.append("Scaled residuals:")
    lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines.append("Random effects:")
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    for grp, t, lam, cols in res._pieces():
        L = lam[np.ix_(cols, cols)]
        cov = res.sigma**2 * (L @ L.T)
        sd = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sd, sd)
        for i, j in enumerate(cols):
            corr_cells = " ".join(f"{corr[i, k]:.2f}" for k in range(i)) if i else ""
            rows.append([grp if i == 0 else "", t.cnames[j], _g(cov[i, i]), _g(sd[i]), corr_cells])
    rows.append(["Residual", "", _g(res.sigma**2), _g(res.sigma), ""])
    lines += [" " + r for r in _table(rows, ["l", "l", "r", "r", "l"])]
    groups = ", ".join(f"{k}, {v}" for k, v in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    lines.append("")
    lines.append("Fixed effects:")
    if table is None:
        se = res.se
        rows = [["", "Estimate", "Std. Error", "t value"]]
        for name in res.fixef.index:
            est, s = res.fixef[name], se[name]
            rows.append([name, _g(est, 6), _g(s, 5), f"{est / s:.3f}" if s > 0 else "NaN"])
        lines += _table(rows, ["l", "r", "r", "r"])
    else:
        rows = [["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""]]
        for name, r in table.iterrows():
            rows.append([name, _g(r["Estimate"], 6), _g(r["Std. Error"], 5), f"{r['df']:.3f}",
                         f"{r['t value']:.3f}", _format_pval(r["Pr(>|t|)"]), _stars(r["Pr(>|t|)"])])
        lines += _table(rows, ["l", "r", "r", "r", "r", "r", "l"])
        lines.append("---")
        lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
    if len(res.fixef) > 1:
        lines.append("")
        lines.append("Correlation of Fixed Effects:")
        v = res.vcov.to_numpy()
        d = np.sqrt(np.diag(v))
        corr = v / np.outer(d, d)
        abbrev = [_abbreviate(n) for n in res.fixef.index]
        rows = [[""] + abbrev[:-1]]
        for i, name in enumerate(res.fixef.index):
            if i == 0:
                continue
            rows.append([name] + [f"{corr[i, j]:.3f}" for j in range(i)] + [""] * (len(abbrev) - 1 - i))
        lines += _table(rows, ["l"] + ["r"] * (len(abbrev) - 1))
    notes = []
    if res.singular:
        notes.append("boundary (singular) fit: see the variance components")
    if not res.converged:
        notes.append(f"the optimizer did not converge: {res.optinfo.message}")
    if note_ddf:
        notes.append(note_ddf)
    if table is not None and method == "Satterthwaite":
        notes += res._satterthwaite().notes
    if res.model.design.dropped_columns:
        notes.append(f"rank deficient X: dropped {res.model.design.dropped_columns}")
    if notes:
        lines.append("")
        lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
