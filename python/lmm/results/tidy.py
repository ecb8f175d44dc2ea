"""broom.mixed-style tables of a fit."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..covariance import components, varpar_names

__all__ = ["tidy"]


def tidy(res, effects: Sequence[str] = ("fixed", "ran_pars"), ddf: str | None = "Satterthwaite",
         conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "wald") -> pd.DataFrame:
    """A broom.mixed-style table of the estimates (``LmmResult.tidy``).

    Args:
        res: the fitted result.
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
        ci = res.confint(method=conf_method, level=conf_level)
    if "fixed" in effects:
        tab = res.coef_table(ddf)
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
        names = varpar_names(res.model.terms)
        k = 0
        for c in components(res.model.terms, res.solution.lambdas, res.sigma):
            cn = c.names
            for j in range(len(cn)):
                for i in range(j, len(cn)):
                    if i == j:
                        rows.append((c.group, f"sd__{cn[i]}", c.sd[i], names[k]))
                    else:
                        rows.append((c.group, f"cor__{cn[j]}.{cn[i]}", c.corr[i, j], names[k]))
                    k += 1
        rows.append(("Residual", "sd__Observation", res.sigma, ".sigma"))
        f = pd.DataFrame({"effect": "ran_pars", "group": [r[0] for r in rows], "term": [r[1] for r in rows],
                          "estimate": [r[2] for r in rows], "std.error": np.nan, "statistic": np.nan,
                          "df": np.nan, "p.value": np.nan})
        if ci is not None:
            f["conf.low"] = [ci.loc[r[3]].iloc[0] for r in rows]
            f["conf.high"] = [ci.loc[r[3]].iloc[1] for r in rows]
        frames.append(f)
    if "ran_vals" in effects:
        rv = res.ranef_frame(cond_var=True)
        frames.append(pd.DataFrame({"effect": "ran_vals", "group": rv["grpvar"], "level": rv["grp"],
                                    "term": rv["term"], "estimate": rv["condval"], "std.error": rv["condsd"],
                                    "statistic": np.nan, "df": np.nan, "p.value": np.nan}))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return out

