"""statsmodels' ``MixedLM`` API, fitted by lmm: change the import, keep the script.

::

    import statsmodels.formula.api as smf          →   import lmm.compat.statsmodels as smf
    import statsmodels.api as sm; sm.MixedLM       →   from lmm.compat.statsmodels import MixedLM

``MixedLM(endog, exog, groups, exog_re=None, exog_vc=None)``, ``MixedLM.from_formula``,
``mixedlm``, ``fit(reml=True, ...)`` and the results' ``params``, ``fe_params``, ``bse``,
``bse_fe``, ``bse_re``, ``cov_re``, ``vcomp``, ``scale``, ``random_effects``,
``random_effects_cov``, ``llf``, ``aic``, ``bic``, ``converged``, ``tvalues``, ``pvalues``,
``conf_int()``, ``cov_params()``, ``fittedvalues``, ``resid``, ``predict()``, ``summary()``
have statsmodels' names, layouts and meanings (see :mod:`lmm.compat._sm_results`).

The model is lme4's (see :mod:`lmm.compat._sm_design`): the groups' random coefficients
are one unstructured term ``(re | group)``; indicator-like variance components are terms on
the interaction factor (group:level), and with a single group (statsmodels' crossed
effects) on the factor alone, ``(1 | a) + (1 | b)``. Differences from statsmodels:

* The fit is lmm's (its L-BFGS-B on the profiled criterion with the exact gradient):
  ``method``, ``maxiter``, ``gtol`` and statsmodels' other optimizer arguments are
  accepted and have no effect. Where statsmodels stops early, lmm's likelihood is higher.
* Formulas mean what they mean in R (lmm's formula language): the fixed part
  ``"Weight ~ Time"`` and ``re_formula="~Time"`` as in patsy; factor columns are named
  as R names them (``LitterB``, not ``Litter[T.B]``); the intercept is ``Intercept``.
* ``vc_formula`` components are ``"0 + C(x)"`` (or a non-numeric column ``"0 + x"``) or
  numeric columns (``"0 + pretest"``); other forms raise ``NotImplementedError``. A
  categorical column's components list the levels present in each group (statsmodels
  lists every category, with zeros where a level is absent).
* ``missing="none"`` (statsmodels' default, which fits NaN into NaN results) refuses
  missing values with an error; ``"drop"`` drops the incomplete rows (with lmm's warning).
* ``subset`` selects rows (statsmodels' ``from_formula`` ignores it).
* ``free`` supports the independent-random-coefficients pattern of statsmodels' docs
  (``MixedLMParams.from_components(np.ones(k_fe), np.eye(k_re))``); penalties, other
  ``free`` patterns, ``do_cg=False``, ``fit_regularized`` and ``profile_re`` are not there.
* Standard errors of variance parameters on their boundary (a zero variance) are NaN.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..covariance import ntheta, theta_positions
from ..model import LinearMixedModel
from ._sm_design import Spec, VCSpec, array_spec, formula_spec
from ._sm_results import MixedLMParams, MixedLMResults, Summary

__all__ = ["MixedLM", "MixedLMParams", "MixedLMResults", "Summary", "VCSpec", "mixedlm"]

# statsmodels' optimizer arguments of MixedLM.fit: accepted, unused (lmm has its own optimizer).
_OPTIMIZER_ARGS = {"gtol", "maxiter", "eps", "maxcor", "ftol", "tol", "disp", "maxls"}
_MISSING = {"none": "raise", "raise": "raise", "drop": "drop"}


class MixedLM:
    """A linear mixed model in statsmodels' terms, fitted by lmm.

    Args:
        endog: the response (n,).
        exog: the fixed-effects design (n × k_fe; a DataFrame's columns name the effects).
        groups: the group label of each row; groups are independent.
        exog_re: the random coefficients' design (n × k_re), one unstructured covariance
            ``cov_re`` shared by the groups; default a random intercept (unless ``exog_vc``).
        exog_vc: variance components: a :class:`VCSpec` (``mats[k][i]``: component k's
            matrix for the i-th group in sorted order) or statsmodels' deprecated dict of dicts.
        use_sqrt: statsmodels' optimizer parameterization; kept for ``start_params``.
        missing: ``"none"`` (missing values are an error), ``"drop"`` or ``"raise"``.

    Example:
        >>> import lmm
        >>> from lmm.compat.statsmodels import MixedLM
        >>> d = lmm.datasets.load("dietox")
        >>> res = MixedLM(d["Weight"], d[["Time"]].assign(Intercept=1.0), d["Pig"]).fit()
        >>> round(res.scale, 3)
        11.367
    """

    def __init__(self, endog, exog, groups, exog_re=None, exog_vc=None, use_sqrt: bool = True,
                 missing: str = "none", **kwargs) -> None:
        for key in kwargs:
            if key not in ("missing_idx", "model_spec", "formula"):
                raise ValueError(f"argument {key} not permitted for MixedLM initialization")
        self._setup(array_spec(endog, exog, groups, exog_re, exog_vc), use_sqrt, missing,
                    kwargs.get("formula"))

    def _setup(self, spec: Spec, use_sqrt: bool, missing: str, formula) -> None:
        if missing not in _MISSING:
            raise ValueError(f"missing must be 'none', 'drop' or 'raise', not {missing!r}")
        self._spec = spec
        self.use_sqrt = bool(use_sqrt)
        self.missing = missing
        self.formula = formula
        self._models: dict[bool, LinearMixedModel] = {}
        lm = self._lmm_model(False)
        d = lm.design
        #: The response and the fixed-effects design of the rows used.
        self.endog, self.exog = d.y, d.X
        self.endog_names = spec.endog_name
        self.exog_names = [spec.aliases.get(x, "Intercept" if x == "(Intercept)" else x) for x in d.xnames]
        self.k_fe = lm.nfixed
        names = [t.name for t in lm.terms]
        self.k_re = lm.terms[names.index(spec.group_column)].p if spec.re_rhs is not None else 0
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_vc = len(spec.vcs)
        self.nobs = lm.nobs
        present = np.unique(spec.group_codes[np.asarray(d.rows, dtype=np.int64)])
        #: The labels of the groups, sorted (statsmodels' ``group_labels``).
        self.group_labels = [spec.group_labels[g] for g in present]
        self.n_groups = len(self.group_labels)
        self.reml = True

    def _lmm_model(self, re_diag: bool) -> LinearMixedModel:
        """lmm's model of this specification (``re_diag``: independent random coefficients)."""
        if re_diag not in self._models:
            spec = self._spec
            if len(spec.group_labels) == 1 and spec.re_rhs is not None:
                raise ValueError(
                    "there is a single group, so its random coefficients (exog_re or re_formula, by default a "
                    "random intercept) cannot be estimated; with one group (statsmodels' way to write crossed "
                    "effects) give every random effect as a variance component (exog_vc or vc_formula)")
            try:
                self._models[re_diag] = LinearMixedModel(spec.formula(re_diag), spec.frame, REML=True,
                                                         missing=_MISSING[self.missing])
            except ValueError as err:
                msg = str(err)
                for internal, shown in sorted(spec.aliases.items(), key=lambda kv: -len(kv[0])):
                    msg = msg.replace(internal, shown)
                raise ValueError(msg) from None
        return self._models[re_diag]

    @classmethod
    def from_formula(cls, formula: str, data, re_formula=None, vc_formula=None, subset=None,
                     use_sparse: bool = False, missing: str = "none", *args, **kwargs) -> "MixedLM":
        """A model from formulas, as statsmodels' ``MixedLM.from_formula``.

        Args:
            formula: the fixed part, ``"Weight ~ Time"`` (lmm's formula language: R's meaning).
            data: a data frame (or a dict of columns).
            re_formula: the random coefficients of each group, ``"~Time"`` (intercept and
                slope), ``"1"``, ``"0 + x"``; default a random intercept (none when
                ``vc_formula`` is given).
            vc_formula: dict name → formula of a variance component within the groups,
                ``{"classroom": "0 + C(classroom)"}``.
            subset: booleans or index labels of the rows to use.
            use_sparse: accepted (lmm never forms the components' dense matrices).
            missing: ``"none"`` (missing values are an error), ``"drop"`` or ``"raise"``.
            groups: (keyword, required) a column name or one label per row.

        Returns:
            MixedLM.
        """
        if "groups" not in kwargs:
            raise AttributeError("'groups' is a required keyword argument in MixedLM.from_formula")
        groups = kwargs.pop("groups")
        kwargs.pop("eval_env", None)
        if args or kwargs:
            raise TypeError(f"unexpected arguments for MixedLM.from_formula: {list(kwargs) or args}")
        model = cls.__new__(cls)
        model._setup(formula_spec(formula, data, re_formula, vc_formula, subset, groups), True, missing, formula)
        return model

    def predict(self, params, exog=None) -> np.ndarray:
        """``exog @ fe_params`` (statsmodels' ``MixedLM.predict``: the fixed effects only).

        Args:
            params: a :class:`MixedLMParams` or a vector starting with the fixed effects.
            exog: the design (default the model's).
        """
        fe = params.fe_params if isinstance(params, MixedLMParams) else np.asarray(params)[:self.k_fe]
        return np.asarray(self.exog if exog is None else exog, dtype=np.float64) @ fe

    def _start_theta(self, start_params, lm: LinearMixedModel, re_diag: bool):
        """lmm's starting θ from statsmodels' ``start_params`` (None: lmm's own start)."""
        if start_params is None:
            return None
        if isinstance(start_params, MixedLMParams) or hasattr(start_params, "cov_re"):
            cov, vc = np.asarray(start_params.cov_re, dtype=np.float64), np.asarray(start_params.vcomp)
        else:
            p = np.asarray(start_params, dtype=np.float64)
            if p.size not in (self.k_fe + self.k_re2 + self.k_vc, self.k_re2 + self.k_vc):
                raise ValueError("invalid start_params")
            has_fe = p.size == self.k_fe + self.k_re2 + self.k_vc
            unpacked = MixedLMParams.from_packed(p, self.k_fe, self.k_re, self.use_sqrt, has_fe)
            cov, vc = unpacked.cov_re, unpacked.vcomp
        theta = np.array(lm.theta_start)
        names = [t.name for t in lm.terms]
        offsets = np.concatenate([[0], np.cumsum([ntheta(t) for t in lm.terms])]).astype(int)
        spec = self._spec
        if self.k_re:
            k = names.index(spec.group_column)
            try:
                L = np.diag(np.sqrt(np.diag(cov))) if re_diag else np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                raise ValueError("start_params: cov_re is not positive definite") from None
            for pos, (i, j) in enumerate(theta_positions(lm.terms[k])):
                theta[offsets[k] + pos] = L[i, j]
        for v, vcterm in zip(vc, spec.vcs):
            theta[offsets[names.index(vcterm.column)]] = np.sqrt(max(float(v), 0.0))
        return theta

    def _free_is_diagonal(self, free) -> bool:
        """Whether ``free`` is statsmodels' independent-random-coefficients pattern (True)
        or frees everything (False); other patterns raise NotImplementedError."""
        fe = np.asarray(getattr(free, "fe_params", np.ones(self.k_fe)))
        cov = np.asarray(getattr(free, "cov_re", np.ones((self.k_re, self.k_re))))
        vc = np.asarray(getattr(free, "vcomp", np.ones(self.k_vc)))
        if fe.size != self.k_fe or cov.shape != (self.k_re, self.k_re) or vc.size != self.k_vc:
            raise ValueError("free does not match the model's numbers of parameters")
        if np.all(fe != 0) and np.all(vc != 0) and np.all(np.diag(cov) != 0):
            off = cov[~np.eye(self.k_re, dtype=bool)]
            if np.all(off != 0):
                return False
            if np.all(off == 0):
                return True
        raise NotImplementedError(
            "free: only statsmodels' pattern of independent random coefficients "
            "(MixedLMParams.from_components(np.ones(k_fe), np.eye(k_re))) is supported")

    def fit(self, start_params=None, reml: bool = True, niter_sa: int = 0, do_cg: bool = True, fe_pen=None,
            cov_pen=None, free=None, full_output: bool = False, method=None, **fit_kwargs) -> MixedLMResults:
        """Fit by REML (default) or ML, as statsmodels' ``MixedLM.fit``.

        lmm minimizes its profiled criterion with its own optimizer (L-BFGS-B with the exact
        gradient): ``method``, ``niter_sa``, ``full_output`` and the optimizer arguments
        (``maxiter``, ``gtol``, ...) are accepted and have no effect.

        Args:
            start_params: starting values (a :class:`MixedLMParams` or statsmodels' packed vector).
            reml: REML (default) or maximum likelihood.
            free: None, or the independent-random-coefficients pattern.
            do_cg, fe_pen, cov_pen: statsmodels' no-fit and penalty options: not supported.
            method: statsmodels' optimizer name(s); ``"newton"``/``"ncg"`` raise as in statsmodels.

        Returns:
            MixedLMResults.
        """
        unknown = sorted(set(fit_kwargs) - _OPTIMIZER_ARGS)
        if unknown:
            warnings.warn(f"Argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not used by "
                          "MixedLM.fit. Future versions will raise on these arguments.", FutureWarning, stacklevel=2)
        for meth in [method] if isinstance(method, str) else (method or []):
            if str(meth).lower() in ("newton", "ncg"):
                raise ValueError(f"method {meth} not available for MixedLM")
        if not do_cg:
            raise NotImplementedError("do_cg=False (results at the starting values) is not supported; "
                                      "lmm.LinearMixedModel.solution(theta) gives a model at any θ")
        if fe_pen is not None or cov_pen is not None:
            raise NotImplementedError("penalized fits (fe_pen, cov_pen) are not supported")
        re_diag = free is not None and self.k_re > 0 and self._free_is_diagonal(free)
        lm = self._lmm_model(re_diag)
        res = lm.fit(start=self._start_theta(start_params, lm, re_diag), reml=bool(reml))
        self.reml = bool(reml)
        return MixedLMResults(self, res, reml=bool(reml), re_diag=re_diag)


def mixedlm(formula: str, data, re_formula=None, vc_formula=None, subset=None, use_sparse: bool = False,
            missing: str = "none", *args, **kwargs) -> MixedLM:
    """statsmodels.formula.api's ``mixedlm``: :meth:`MixedLM.from_formula`.

    Example:
        >>> import lmm
        >>> import lmm.compat.statsmodels as smf
        >>> data = lmm.datasets.load("dietox")
        >>> mdf = smf.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time").fit()
        >>> print(mdf.summary())  # doctest: +SKIP
    """
    return MixedLM.from_formula(formula, data, re_formula, vc_formula, subset, use_sparse, missing,
                                *args, **kwargs)
