"""The fitted model: estimates, variance components, conditional modes, and everything a user
does after the fit (tests, intervals, predictions), delegating the statistics to
:mod:`lmm.inference`, printing to :mod:`lmm.results.summary` and tables to
:mod:`lmm.results.tidy`."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..chunks import ChunkedDesign
from ..covariance import lme4_theta, lme4_theta_names, varcorr_frame
from ..inference.bootstrap import BootstrapResult, bootstrap
from ..inference.condvar import conditional_covariances
from ..inference.confint import confint
from ..inference.contrasts import anova_table, coef_table, contrast_test
from ..inference.kenward_roger import KenwardRoger, kenward_roger_setup
from ..inference.profile import Profile, profile
from ..inference.satterthwaite import Satterthwaite, satterthwaite_setup
from ..model import LinearMixedModel, Solution
from ..optimize import OptimizeResult
from .predict import PredictionMixin
from .summary import format_summary, format_summary_html
from .tidy import tidy

if TYPE_CHECKING:
    from ..formula import ModelFrameState

__all__ = ["FixedTerms", "LmmResult"]


@dataclass(frozen=True)
class FixedTerms:
    """The fixed-effects terms of a fit and the columns of X they make.

    Attributes:
        labels: term labels (``"Days"``, ``"A:B"``).
        bits: per term, a bit mask of the variables it contains.
        assign: per column of X, the 1-based index of its term (0: the intercept).
        state: the recorded :class:`~lmm.formula.ModelFrameState` of the fixed-effects model frame.
    """

    labels: list[str]
    bits: list[int]
    assign: list[int]
    state: ModelFrameState


class LmmResult(PredictionMixin):
    """A fitted linear mixed model.

    Attributes:
        par: the covariance parameters at the optimum, as the optimizer sees them (lme4
            2.x's ``getME(fit, "par")``, named by ``par_names``): for ``us`` and ``diag``
            terms the entries of λ (lme4's θ); for structured terms relative SDs then
            correlation parameters.
        theta: lme4's ``getME(fit, "theta")``: the entries of each term's λ, lower triangle
            column by column (the diagonal of ``diag`` terms, one entry for ``hom = TRUE``
            diagonals); equal to ``par`` when every term is ``us`` or ``diag``.
        fixef: fixed effects (pandas Series in model-matrix column order).
        sigma: residual standard deviation.
        objective: REML criterion (REML fits) or deviance (ML fits).
        loglik: log-likelihood (REML fits: the restricted one, as lme4).
        aic: Akaike's information criterion, from ``loglik``.
        bic: Schwarz's Bayesian information criterion, from ``loglik``.
        nobs: number of observations used.
        ngroups: levels per grouping factor.
        varcorr: DataFrame grp, var1, var2, vcov, sdcor as R's ``as.data.frame(VarCorr(fit))``.
        ranef: dict group → DataFrame of conditional modes (levels × coefficients), made
            on first use (the level labels are not needed before).
        vcov: covariance of the fixed effects (DataFrame).
        converged: whether the optimizer converged.
        singular: whether the fit is on the boundary (a diagonal entry of λ below 1e-4, lme4's ``isSingular``).
        optinfo: what the optimizer did (OptimizeResult).
        solution: the model's :class:`~lmm.model.Solution` at θ̂ (β̂, σ̂, û, b̂ per term,
            λ per term), stored at construction: the result never reads the model's core again.
    """


    def __init__(self, model: LinearMixedModel, opt: OptimizeResult, reml: bool | None = None) -> None:
        self.model = model
        self.optinfo = opt
        self.REML = model.REML if reml is None else bool(reml)
        self.formula = model.formula
        sol = opt.solution
        if sol is None or sol.reml != self.REML:
            sol = model.solution(opt.theta, reml=self.REML)
        self.solution: Solution = sol
        self.par = np.array(sol.theta)
        self.theta = lme4_theta(self.par, model.terms)
        self.objective = sol.objective
        self.sigma = sol.sigma
        self.nobs = model.nobs
        self.loglik = -0.5 * self.objective
        npar = model.nfixed + model.ntheta + (model.sigma is None)  # (a known σ is not a parameter)
        self.npar = npar
        self.aic = -2.0 * self.loglik + 2.0 * npar
        self.bic = -2.0 * self.loglik + math.log(self.nobs) * npar
        self.singular = model.is_singular(self.par)
        self.converged = opt.converged
        self.ngroups: dict[str, int] = {}
        for t in model.terms:
            self.ngroups.setdefault(t.name, t.nlevels)
        self._cache: dict = {}

    @property
    def fit_notes(self) -> list[str]:
        """Notes on how the fit was made that the summary prints (none for the exact method)."""
        return []

    # (Labelled forms are made when first read: a fit in a loop needs only the numbers.)
    @functools.cached_property
    def fixef(self) -> pd.Series:
        """Fixed effects (pandas Series in model-matrix column order)."""
        return pd.Series(np.array(self.solution.beta), index=self.model.design.xnames, name="Estimate")

    @functools.cached_property
    def par_names(self) -> list[str]:
        """Names of ``par`` (lme4 2.x's)."""
        return self.model.theta_names

    @functools.cached_property
    def theta_names(self) -> list[str]:
        """Names of ``theta`` (lme4's)."""
        return lme4_theta_names(self.model.terms)

    # --- variance components ----------------------------------------------------------

    @functools.cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects (DataFrame; built when first read)."""
        xnames = list(self.fixef.index)
        return pd.DataFrame(np.array(self.solution.vcov), index=xnames, columns=xnames)

    @functools.cached_property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))`` with columns grp, var1, var2, vcov, sdcor (built when first read)."""
        return varcorr_frame(self.model.terms, self.solution.lambdas, self.sigma)

    @functools.cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """dict group → DataFrame of conditional modes (levels × coefficients), lme4's ``ranef(fit)``."""
        out: dict[str, pd.DataFrame] = {}
        for t, b in zip(self.model.terms, self.solution.b):
            frame = pd.DataFrame(np.array(b), index=t.levels, columns=t.cnames)
            if t.name in out:
                out[t.name] = pd.concat([out[t.name], frame], axis=1)
            else:
                out[t.name] = frame
        return out

    @property
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.solution.vcov)), index=self.fixef.index, name="Std. Error")

    # --- fitted values ----------------------------------------------------------------

    def fitted(self, *, array: bool = False) -> pd.Series | np.ndarray:
        """Fitted values Xβ̂ + Zb̂ (+ the offset).

        Args:
            array: an array of the rows used in the fit, instead of the Series.

        Returns:
            A Series on the data's index, NaN on rows dropped for missing values (lme4's
            ``na.exclude``: it can be put back into the data), or the array (nobs,). For a
            model fitted from a Dask data frame, a Dask series (a Dask array with ``array``),
            computed lazily partition by partition.
        """
        if isinstance(self.model.design, ChunkedDesign):
            out_rows = self.model.design.per_row(self, "fitted")
            return out_rows.to_dask_array() if array else out_rows
        out = self.model.design.X @ self.solution.beta
        for t, b in zip(self.model.terms, self.solution.b):
            out += np.einsum("ij,ij->i", t.z, b[t.codes])
        if self.model.design.offset is not None:
            out += self.model.design.offset
        return out if array else self.model.design.aligned(out, "fitted")

    def residuals(self, type: str = "response", scaled: bool = False, *,
                  array: bool = False) -> pd.Series | np.ndarray:
        """Residuals y − fitted.

        Args:
            type: ``"response"`` (y − ŷ) or ``"pearson"`` (times √w_i / σ̂, lme4's
                ``residuals(fit, type = "pearson")``).
            scaled: divide by σ̂ (lme4's ``scaled = TRUE``); ``type="pearson"`` without weights.
            array: an array of the rows used in the fit, instead of the Series.

        Returns:
            A Series on the data's index (NaN on rows dropped, as :meth:`fitted`), or the
            array (nobs,); a Dask series for a model from a Dask data frame (as :meth:`fitted`).
        """
        if type not in ("response", "pearson"):
            raise ValueError("type must be 'response' or 'pearson'")
        if isinstance(self.model.design, ChunkedDesign):
            r_rows = self.model.design.per_row(self, "residuals", type, scaled)
            return r_rows.to_dask_array() if array else r_rows
        r = self.model.design.y - self.fitted(array=True)
        w = self.model.design.weights
        if type == "pearson" and w is not None:
            r = r * np.sqrt(w) / self.sigma
        elif scaled or type == "pearson":
            r = r / self.sigma
        return r if array else self.model.design.aligned(r, "residuals")

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
            blocks = conditional_covariances(self)
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

    def satterthwaite(self, *, progress: bool | None = None, verbose: bool = False) -> Satterthwaite:
        """lmerTest's Satterthwaite ingredients for this fit (computed once, then kept).

        The summary, ``coef_table``, ``test`` and ``anova`` use them; calling this first
        chooses how their computation reports on itself.

        Args:
            progress: progress bar on stderr (default: on a terminal, when the
                evaluations will take over two seconds).
            verbose: print a line per evaluation of the criterion.

        Returns:
            :class:`~lmm.inference.satterthwaite.Satterthwaite`.
        """
        if "satt" not in self._cache:
            self._cache["satt"] = satterthwaite_setup(self, progress=progress, verbose=verbose)
        return self._cache["satt"]

    def kenward_roger(self, *, progress: bool | None = None, verbose: bool = False) -> KenwardRoger:
        """pbkrtest's adjusted covariance of β̂ for this REML fit (computed once, then kept).

        Args:
            progress: progress bar on stderr (default: on a terminal, once the work has
                run two seconds).
            verbose: print a line per stage of the computation.

        Returns:
            :class:`~lmm.inference.kenward_roger.KenwardRoger`.

        Raises:
            ValueError: an ML fit, or a model too large for the dense matrices it needs.
        """
        if "kr" not in self._cache:
            self._cache["kr"] = kenward_roger_setup(self, progress=progress, verbose=verbose)
        return self._cache["kr"]

    def fixed_terms(self) -> FixedTerms:
        """The fixed-effects terms behind the columns of X (for type III tests).

        Raises:
            NotImplementedError: the design does not record the fixed-effects model frame.
        """
        state = self._frame_state("fixed")
        assign = [state.assign[state.names.index(c)] for c in self.fixef.index]
        return FixedTerms(labels=state.term_labels, bits=state.term_bits, assign=assign, state=state)

    def vcov_kr(self) -> pd.DataFrame:
        """Kenward–Roger adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``; REML fits)."""
        names = self.fixef.index
        return pd.DataFrame(self.kenward_roger().phi_adj, index=names, columns=names)

    def coef_table(self, ddf: str | None = "Satterthwaite") -> pd.DataFrame:
        """Fixed-effects table with df and p-values (lmerTest's ``coef(summary(fit))``).

        Args:
            ddf: ``"Satterthwaite"`` (default, as lmerTest), ``"Kenward-Roger"`` (as
                pbkrtest; adjusted standard errors; REML fits) or None (lme4's table
                without df and p).

        Returns:
            DataFrame with columns Estimate, Std. Error, df, t value, Pr(>|t|).
        """
        return coef_table(self, ddf)

    def test(self, L, rhs=0.0, ddf: str | None = "Satterthwaite", joint: bool = True) -> pd.DataFrame:
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
        return contrast_test(self, L, rhs=rhs, ddf=ddf, joint=joint)

    def anova(self, type=3, ddf: str | None = "Satterthwaite") -> pd.DataFrame:
        """F tests of the fixed-effects terms (lmerTest's ``anova(fit, type, ddf)``).

        Args:
            type: 3 (default), 2 or 1, or ``"III"``, ``"II"``, ``"I"``: lmerTest's
                (SAS's) types; see :mod:`lmm.inference.anova_contrasts`.
            ddf: ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` (REML fits) or
                ``"lme4"``/None (lme4's table: npar, Sum Sq, Mean Sq, F value; any type).

        Returns:
            DataFrame indexed by term with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F).
        """
        return anova_table(self, type=type, ddf=ddf)

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Confidence intervals (lme4's ``confint``): ``"profile"`` (default), ``"wald"`` or ``"bootstrap"``.

        Rows are lme4's: ``.sig01``, ``.sig02``, ... (standard deviations and
        correlations of the random effects in θ's order), ``.sigma`` and the fixed
        effects. Profile intervals profile the ML deviance (REML fits are refitted by
        ML first, as lme4 does). Profile keywords (``progress``, ``verbose``, ...) go to
        :func:`lmm.inference.profile`, bootstrap keywords (``nsim``, ``seed``, ``n_jobs``,
        ``progress``, ``verbose``) to :meth:`bootstrap`.

        Returns:
            DataFrame with columns ``"2.5 %"`` and ``"97.5 %"`` (for level 0.95).
        """
        return confint(self, method=method, level=level, parm=parm, **kwargs)

    def profile(self, which=None, **kwargs) -> Profile:
        """Likelihood profile (lme4's ``profile(fit)``); see :func:`lmm.inference.profile`."""
        return profile(self, which=which, **kwargs)

    def bootstrap(self, nsim: int = 500, seed=None, use_u: bool = False, n_jobs: int | None = None,
                  progress: bool | None = None, verbose: bool = False, client=None) -> BootstrapResult:
        """Parametric bootstrap (lme4's ``bootMer``), refitting only the response, in parallel.

        Args:
            nsim: number of replicates.
            seed: random seed (results do not depend on ``n_jobs``).
            use_u: condition on the conditional modes (simulate only the noise).
            n_jobs: worker threads (default: all CPUs).
            progress: progress bar on stderr (default: when stderr is a terminal; tqdm if installed).
            verbose: print a line per batch of replicates done.
            client: a ``dask.distributed`` Client: the replicates are fitted on its workers,
                the same as here (see :mod:`lmm.cluster`).

        Returns:
            BootstrapResult with ``replicates`` (sd/cor, σ, β per replicate) and ``confint()``.
        """
        return bootstrap(self, nsim=nsim, seed=seed, use_u=use_u, n_jobs=n_jobs, progress=progress,
                         verbose=verbose, client=client)

    def refit_ml(self) -> "LmmResult":
        """The same model fitted by maximum likelihood (self for ML fits), starting at this θ.

        A fit of the same model with ``reml=False``: nothing is copied, and this result is unchanged.
        """
        if not self.REML:
            return self
        if "ml" not in self._cache:
            self._cache["ml"] = self.model.fit(start=self.par, reml=False)
        return self._cache["ml"]


    def refit(self, y) -> "LmmResult":
        """lme4's ``refit(fit, newresp)``: the same model fitted to a new response.

        Args:
            y: one value per row the fit used (``nobs`` of them; a Series is read by position).

        Returns:
            LmmResult of the new response (REML or ML as this fit), from the default start,
            so that it equals a fresh ``lmer`` fit of that response.
        """
        return self.model.with_response(np.asarray(y, dtype=np.float64)).fit(reml=self.REML)

    # --- tables ---------------------------------------------------------------------------

    def tidy(self, effects: Sequence[str] = ("fixed", "ran_pars"), ddf: str | None = "Satterthwaite",
             conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "wald") -> pd.DataFrame:
        """A broom.mixed-style table of the estimates; see :func:`lmm.results.tidy.tidy`."""
        return tidy(self, effects=effects, ddf=ddf, conf_int=conf_int, conf_level=conf_level,
                    conf_method=conf_method)

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
            "par": dict(zip(self.par_names, self.par.tolist())),
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

    def summary(self, ddf: str | None = "Satterthwaite") -> str:
        """Summary text as lmerTest's ``summary(fit, ddf = ...)``.

        Args:
            ddf: ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` or None (lme4's
                summary: no df and p-value columns).
        """
        return format_summary(self, ddf)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """The summary as HTML tables, for notebooks."""
        return format_summary_html(self)

    def __repr__(self) -> str:
        kind = "REML" if self.REML else "ML"
        return f"<LmmResult {self.formula!r} {kind} objective={self.objective:.4f}>"


