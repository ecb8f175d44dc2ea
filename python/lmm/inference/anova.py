"""Likelihood-ratio tests between nested fits (lme4's anova)."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .contrasts import anova_table

__all__ = ["RefitMLWarning", "anova"]


class RefitMLWarning(UserWarning):
    """REML fits were refitted by maximum likelihood (for likelihood-ratio tests or profiles)."""


def anova(*models, refit: bool = True, names: Sequence[str] | None = None, type=3,
          ddf: str | None = "Satterthwaite") -> pd.DataFrame:
    """Likelihood-ratio tests between nested fits (lme4's ``anova(m0, m1, ...)``).

    With one model, the F tests of its fixed effects (lmerTest's ``anova(fit, type, ddf)``,
    see :meth:`lmm.results.LmmResult.anova`).

    REML fits are refitted by maximum likelihood first (a RefitMLWarning says so, as lme4's
    message does; ``refit=False`` compares the criteria as fitted). Models are sorted by
    their number of parameters.

    Args:
        *models: fitted results on the same data.
        refit: refit REML fits with ML.
        names: row names (default ``model1``, ``model2``, ... in the order given).
        type: for a single model, the type of the tests: 3 (default), 2 or 1 (or
            ``"III"``, ``"II"``, ``"I"``).
        ddf: for a single model, the denominator degrees of freedom method:
            ``"Satterthwaite"``, ``"Kenward-Roger"`` or ``"lme4"``/None.

    Returns:
        DataFrame with columns npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq);
        for a single model, the F table of :meth:`lmm.results.LmmResult.anova`.

    Example:
        >>> import lmm
        >>> df = lmm.datasets.load("sleepstudy")
        >>> m0 = lmm.lmer("Reaction ~ Days + (1 | Subject)", df)
        >>> m1 = lmm.lmer("Reaction ~ Days + (Days | Subject)", df)
        >>> lmm.anova(m0, m1)  # doctest: +SKIP
    """
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if not models:
        raise ValueError("anova needs at least one fitted model")
    if len(models) == 1:
        return anova_table(models[0], type=type, ddf=ddf)
    if names is None:
        names = [f"model{i + 1}" for i in range(len(models))]
    names = list(names)
    if len(names) != len(models):
        raise ValueError("names must have one entry per model")
    nobs = {m.nobs for m in models}
    if len(nobs) > 1:
        raise ValueError(f"models were not all fitted to the same number of observations: {sorted(nobs)}")
    reml = [m.REML for m in models]
    if refit:
        if any(reml):
            warnings.warn("refitting model(s) with ML (instead of REML)", RefitMLWarning, stacklevel=2)
        models = tuple(m.refit_ml() if m.REML else m for m in models)
    elif any(reml) and not all(reml):
        warnings.warn("some models fit with REML = TRUE, some not", UserWarning, stacklevel=2)
    npar = np.array([m.npar for m in models], dtype=float)
    order = np.argsort(npar, kind="stable")
    models = tuple(models[i] for i in order)
    names = [names[i] for i in order]
    npar = npar[order]
    llk = np.array([m.loglik for m in models])
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0, np.diff(llk))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        pval = np.where(df == 0, np.nan, stats.chi2.sf(chisq, np.where(df > 0, df, np.nan)))
    out = pd.DataFrame({
        "npar": npar.astype(int),
        "AIC": [m.aic for m in models],
        "BIC": [m.bic for m in models],
        "logLik": llk,
        "deviance": -2 * llk,
        "Chisq": chisq,
        "Df": df,
        "Pr(>Chisq)": pval,
    }, index=names)
    out.attrs["formulas"] = {nm: m.formula for nm, m in zip(names, models)}
    return out
