"""R's codings against lmerTest (tests/reference/contrasts_reference.json, written by
make_contrasts_reference.R): ``C(f, contr.sum)``, ``C(f, contr.helmert)``, ``C(f)``, lme4's
``contrasts=`` argument and ordered factors' polynomial coding: column names, β, SEs and the
criterion. The anova tables of these fits are tested in tests/inference/test_anova_types.py."""

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
ESTIMATE_REL = 1e-5    # β, SEs
# Fits whose X has aliased columns (lme4 and lmm drop them with a warning).
RANK_DEFICIENT = {"simulated_aliased_term", "empty_cell_AB_x", "empty_cell_AB_x_sum", "empty_cell_ABx"}


def _data(fit: dict) -> pd.DataFrame:
    if fit["dataset"].startswith("simulated"):
        d = pd.DataFrame({k: v for k, v in REF["simulated"].items() if k != "rows"})
        if fit["dataset"] == "simulated_empty_cell":
            d = d[~((d.A == "a3") & (d.B == "b2"))].reset_index(drop=True)
        return d
    d = lmm.datasets.load(fit["dataset"])
    if fit["dataset"] == "sleepstudy":
        labels = np.array(["d0_2", "d3_5", "d6_8", "d9"])[(d.Days // 3).astype(int)]
        d = d.assign(band=pd.Categorical(labels, categories=["d0_2", "d3_5", "d6_8", "d9"], ordered=True))
    return d


def _fit(fit: dict):
    contrasts = fit["contrasts_argument"] if isinstance(fit["contrasts_argument"], dict) else None
    if fit["id"] in RANK_DEFICIENT:
        with pytest.warns(UserWarning, match="rank deficient"):
            return lmm.lmer(fit["formula"], _data(fit), contrasts=contrasts)
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
    # treatment coding as a matrix: the default fit, columns numbered as R names them
    m = lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Machine": np.eye(3)[:, 1:]})
    default = lmm.lmer("score ~ Machine + (1 | Worker)", d)
    assert list(m.fixef.index) == ["(Intercept)", "Machine1", "Machine2"]
    np.testing.assert_allclose(m.fixef.to_numpy(), default.fixef.to_numpy(), rtol=1e-10)
    with pytest.warns(UserWarning, match="absent"):
        lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Nope": "contr.sum"})
    # the coding persists for new data
    res = lmm.lmer("score ~ Machine + (1 | Worker)", d, contrasts={"Machine": "contr.sum"})
    new = pd.DataFrame({"Machine": ["A", "C"], "Worker": ["1", "2"]})
    np.testing.assert_allclose(res.predict(new, re_form="~0"),
                               [res.fixef.iloc[0] + res.fixef.iloc[1],
                                res.fixef.iloc[0] - res.fixef.iloc[1] - res.fixef.iloc[2]])
