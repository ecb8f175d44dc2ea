"""Confidence intervals (lme4's confint): Wald, profile or bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..covariance import varpar_names
from .bootstrap import bootstrap
from .common import percent_names
from .profile import profile

__all__ = ["confint"]


def confint(res, method: str = "profile", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
    """Confidence intervals for σ's, correlations, σ and β (lme4's ``confint``).

    Args:
        method: ``"wald"`` (β only; variance parameters are NaN, as lme4),
            ``"profile"`` (likelihood profile, lme4's default) or ``"bootstrap"``
            (percentile; ``nsim``, ``seed``, ``n_jobs``, ``progress`` go to :func:`bootstrap`).
        level: confidence level.
        parm: names of parameters to keep (default all).

    Returns:
        DataFrame with columns like ``"2.5 %"``, ``"97.5 %"``, rows ``.sig01``, ..., ``.sigma``, fixed effects.
    """
    method = method.lower()
    names = varpar_names(res.model.terms) + list(res.fixef.index)
    lo_name, hi_name = percent_names(level)
    if method == "wald":
        z = stats.norm.ppf((1 + level) / 2)
        beta, se = res.fixef.to_numpy(), res.se.to_numpy()
        lo = np.concatenate([np.full(len(names) - len(beta), np.nan), beta - z * se])
        hi = np.concatenate([np.full(len(names) - len(beta), np.nan), beta + z * se])
        out = pd.DataFrame({lo_name: lo, hi_name: hi}, index=names)
    elif method == "profile":
        z = stats.norm.ppf((1 + level) / 2)
        prof = profile(res, which=parm, cutoff=z * 1.05, **kwargs)
        out = prof.confint(level)
    elif method in ("bootstrap", "boot"):
        boot = bootstrap(res, **kwargs)
        out = boot.confint(level)
    else:
        raise ValueError("method must be 'wald', 'profile' or 'bootstrap'")
    if parm is not None:
        parm = [parm] if isinstance(parm, str) else list(parm)
        out = out.loc[parm]
    return out
