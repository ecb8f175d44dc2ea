"""R's codings against lmerTest (tests/reference/contrasts_reference.json, written by
make_contrasts_reference.R): ``C(f, contr.sum)``, ``C(f, contr.helmert)``, ``C(f)``, lme4's
``contrasts=`` argument and ordered factors' polynomial coding: column names, β, SEs, the
criterion and lmerTest's type-3 tables (Satterthwaite and Kenward–Roger)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "contrasts_reference.json").read_text())
FITS = {f["id"]: f for f in REF["fits"]}

OPTIMUM_REL = 1e-7     # the REML criterion at the optimum
ESTIMATE_REL = 1e-5    # β, SEs, F values, denominator df
P_REL = 1e-4           # p values (small ones amplify the df's error)


def _data(fit: dict) -> pd.DataFrame:
    if fit["dataset"] == "simulated":
        return pd.DataFrame({k: v for k, v in REF["simulated"].items() if k != "rows"})
    d = lmm.datasets.load(fit["dataset"])
    if fit["dataset"] == "sleepstudy":
        labels = np.array(["d0_2", "d3_5", "d6_8", "d9"])[(d.Days // 3).astype(int)]
        d = d.assign(band=pd.Categorical(labels, categories=["d0_2", "d3_5", "d6_8", "d9"], ordered=True))
    return d


def _fit(fit: dict):
    contrasts = fit["contrasts_argument"] if isinstance(fit["contrasts_argument"], dict) else None
    return lmm.lmer(fit["formula"], _data(fit), contrasts=contrasts)


@pytest.mark.parametrize("fid", list(FITS))
def test_coefficients(fid):
    fit = FITS[fid]
    res = _fit(fit)
    assert list(res.fixef.index) == list(fit["beta"])
    np.testing.assert_allclose(res.fixef.to_numpy(), list(fit["beta"].values()), rtol=ESTIMATE_REL, atol=1e-8)
    np.testing.assert_allclose(res.se.to_numpy(), list(fit["se"].values()), rtol=ESTIMATE_REL)
    assert res.objective == pytest.approx(fit["objective"], rel=OPTIMUM_REL)
    np.testing.assert_allclose(res.model.design.X[:6], fit["X_first_rows"], atol=1e-12)


# Type-3 tables lmm computes: every term not contained in an interaction, and the
# treatment-coded two-factor model (lmerTest's orthogonalized contrasts for A and B).
TYPE3 = [(fid, ddf) for fid in FITS if fid != "simulated_AB_x_sum" for ddf in ("Satterthwaite", "Kenward-Roger")]


@pytest.mark.parametrize("fid, ddf", TYPE3)
def test_type3_anova(fid, ddf):
    fit = FITS[fid]
    table = fit["anova"]["type3_" + ("satterthwaite" if ddf == "Satterthwaite" else "kenward_roger")]
    ours = _fit(fit).anova(ddf=ddf)
    assert list(ours.index) == list(table["rows"])
    np.testing.assert_array_equal(ours["NumDF"].to_numpy(), table["NumDF"])
    np.testing.assert_allclose(ours["F value"].to_numpy(), table["F value"], rtol=ESTIMATE_REL)
    np.testing.assert_allclose(ours["DenDF"].to_numpy(), table["DenDF"], rtol=ESTIMATE_REL)
    np.testing.assert_allclose(ours["Pr(>F)"].to_numpy(), table["Pr(>F)"], rtol=P_REL)


def test_one_argument_C_is_the_default_coding():
    d = lmm.datasets.load("machines")
    a = lmm.lmer("score ~ C(Machine) + (1 | Worker)", d)
    b = lmm.lmer("score ~ Machine + (1 | Worker)", d)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-10)
    assert list(a.fixef.index) == ["(Intercept)", "C(Machine)B", "C(Machine)C"]


def test_contrasts_argument_checks():
    d = lmm.datasets.load("machines")
    with pytest.raises(ValueError, match="not a coding"):
        lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Machine": "contr.nope"})
    with pytest.raises(NotImplementedError, match="matrix"):
        lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Machine": np.eye(3)[:, 1:]})
    with pytest.warns(UserWarning, match="absent"):
        lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Nope": "contr.sum"})
    # the coding persists for new data
    res = lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Machine": "contr.sum"})
    new = pd.DataFrame({"Machine": ["A", "C"], "Worker": ["1", "2"]})
    np.testing.assert_allclose(res.predict(new, re_form="~0"), [res.fixef.iloc[0] + res.fixef.iloc[1],
                                                               res.fixef.iloc[0] - res.fixef.iloc[1] - res.fixef.iloc[2]])
