"""Satterthwaite and Kenward–Roger df, contrasts and type III tests against lmerTest and pbkrtest."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import inference

from inference_cases import F_VALUE, KR_DF, KR_SE, SATT_DF, SATT_P, VCOV_KR, VCOV_VARPAR, cases, fit, table

# --------------------------------------------------------------------------- Satterthwaite and Kenward–Roger


def test_sleepstudy_days_satterthwaite_df_is_17():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    tab = res.coef_table()
    assert tab.loc["Days", "df"] == pytest.approx(16.9997, abs=1e-3)
    assert tab.loc["Days", "Pr(>|t|)"] == pytest.approx(3.2637878e-06, rel=SATT_P)


@pytest.mark.parametrize("ref", cases("tests"))
def test_satterthwaite_matches_lmertest(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    want = table(ref["satterthwaite"])
    got = res.coef_table("Satterthwaite")
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got["Estimate"], want["Estimate"], rtol=1e-5)
    np.testing.assert_allclose(got["Std. Error"], want["Std. Error"], rtol=1e-5)
    np.testing.assert_allclose(got["df"], want["df"], rtol=SATT_DF)
    np.testing.assert_allclose(got["Pr(>|t|)"], want["Pr(>|t|)"], rtol=SATT_P)
    np.testing.assert_allclose(res.satterthwaite().vcov_varpar, np.array(ref["vcov_varpar"]), rtol=VCOV_VARPAR,
                               atol=VCOV_VARPAR * np.max(np.abs(ref["vcov_varpar"])))


@pytest.mark.parametrize("ref", [r for r in cases("tests") if "kenward_roger" in r.values[0]])
def test_kenward_roger_matches_pbkrtest(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    want = table(ref["kenward_roger"])
    got = res.coef_table("Kenward-Roger")
    np.testing.assert_allclose(got["df"], want["df"], rtol=KR_DF)
    np.testing.assert_allclose(got["Std. Error"], want["Std. Error"], rtol=KR_SE)
    np.testing.assert_allclose(got["Pr(>|t|)"], want["Pr(>|t|)"], rtol=SATT_P)
    np.testing.assert_allclose(res.vcov_kr().to_numpy(), np.array(ref["vcov_kr"]), rtol=VCOV_KR,
                               atol=VCOV_KR * np.max(np.abs(ref["vcov_kr"])))


@pytest.mark.parametrize("ref", [r for r in cases("tests") if "contrasts" in r.values[0]])
def test_contrast_f_tests_match_lmertest(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    for c in ref["contrasts"]:
        L = np.array(c["L"], dtype=float)
        for ddf, key in (("Satterthwaite", "satterthwaite"), ("Kenward-Roger", "kenward_roger")):
            want = table(c[key])
            got = res.test(L, ddf=ddf)
            assert got["NumDF"].iloc[0] == want["NumDF"].iloc[0]
            assert got["F value"].iloc[0] == pytest.approx(want["F value"].iloc[0], rel=F_VALUE)
            assert got["DenDF"].iloc[0] == pytest.approx(want["DenDF"].iloc[0], rel=SATT_DF)
            assert got["Pr(>F)"].iloc[0] == pytest.approx(want["Pr(>F)"].iloc[0], rel=SATT_P)
            assert got["Sum Sq"].iloc[0] == pytest.approx(want["Sum Sq"].iloc[0], rel=F_VALUE)


@pytest.mark.parametrize("ref", [r for r in cases("tests") if "anova_satterthwaite" in r.values[0]])
def test_type3_anova_matches_lmertest(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    for ddf, key in (("Satterthwaite", "anova_satterthwaite"), ("Kenward-Roger", "anova_kenward_roger")):
        want = table(ref[key])
        got = res.anova(ddf=ddf)
        assert list(got.index) == list(want.index)
        np.testing.assert_allclose(got["F value"], want["F value"], rtol=F_VALUE)
        np.testing.assert_allclose(got["DenDF"], want["DenDF"], rtol=SATT_DF)
        np.testing.assert_allclose(got["NumDF"], want["NumDF"])
        np.testing.assert_allclose(got["Pr(>F)"], want["Pr(>F)"], rtol=SATT_P)
    # lmm.anova with one model is the type III table
    pd.testing.assert_frame_equal(lmm.anova(res), res.anova())


def test_contrast_forms_agree():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    a = res.test([0, 1])
    for L in ({"Days": 1.0}, pd.Series({"Days": 1.0}), "Days", np.array([[0.0, 1.0]])):
        pd.testing.assert_frame_equal(res.test(L), a)
    rows = res.test(np.eye(2), joint=False)
    tab = res.coef_table()
    np.testing.assert_allclose(rows["df"], tab["df"])
    np.testing.assert_allclose(rows["t value"], tab["t value"])
    # a one-row F test is the square of the t test
    assert a["F value"].iloc[0] == pytest.approx(tab.loc["Days", "t value"] ** 2)
    with pytest.raises(ValueError, match="columns, one per fixed effect"):
        res.test([1, 0, 0])
    with pytest.raises(ValueError, match="unknown fixed effect"):
        res.test({"days": 1})


def test_kenward_roger_needs_reml_and_moderate_size(monkeypatch):
    ml = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy", REML=False)
    with pytest.raises(ValueError, match="only available for REML"):
        ml.coef_table("Kenward-Roger")
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    monkeypatch.setattr(inference.kenward_roger, "KR_MAX_ELEMENTS", 1000)
    with pytest.raises(ValueError, match="KR_MAX_ELEMENTS"):
        res.coef_table("Kenward-Roger")


TYPE3 = json.loads((pathlib.Path(__file__).parent.parent / "reference" / "type3_reference.json").read_text())


def _type3_data(dataset: str) -> pd.DataFrame:
    """The data of make_type3_reference.R."""
    if dataset == "simulated":
        return pd.DataFrame({k: v for k, v in TYPE3["simulated"].items() if k != "rows"})
    df = lmm.datasets.load(dataset)
    if dataset == "sleepstudy":
        df["fday"] = pd.Categorical(np.where(df["Days"] >= 5, "late", "early"), categories=["early", "late"])
    elif dataset == "machines":
        df["x"] = ((7 * np.arange(1, len(df) + 1)) % 11) / 10
    return df


@pytest.mark.parametrize("ref", [pytest.param(r, id=r["id"]) for r in TYPE3["fits"]])
def test_type3_anova_of_terms_inside_interactions_matches_lmertest(ref):
    res = lmm.lmer(ref["formula"], _type3_data(ref["dataset"]))
    for ddf, key in (("Satterthwaite", "anova_satterthwaite"), ("Kenward-Roger", "anova_kenward_roger")):
        want = table(ref[key])
        got = res.anova(ddf=ddf)
        assert list(got.index) == list(want.index)
        np.testing.assert_allclose(got["NumDF"], want["NumDF"])
        np.testing.assert_allclose(got["F value"], want["F value"], rtol=F_VALUE)
        np.testing.assert_allclose(got["DenDF"], want["DenDF"], rtol=1e-6)
        np.testing.assert_allclose(got["Pr(>F)"], want["Pr(>F)"], rtol=1e-5)


def test_type3_containment_follows_lmertest():
    # Days is contained in Days:fday (same numeric variables), fday is not: its contrast
    # selects its column (the fday effect at Days = 0), Days' is orthogonalized.
    res = lmm.lmer("Reaction ~ Days * fday + (1 | Subject)", _type3_data("sleepstudy"))
    L = inference.anova_contrasts(res, 3)
    np.testing.assert_allclose(L["fday"], [[0, 0, 1, 0]])
    np.testing.assert_allclose(L["Days:fday"], [[0, 0, 0, 1]])
    np.testing.assert_allclose(L["Days"], [[0, 1, 0, 0.5]])


def test_summary_prints_lmertest_columns():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    text = res.summary()
    assert "t-tests use Satterthwaite's method" in text
    assert "Pr(>|t|)" in text and "17.000" in text and "3.26e-06 ***" in text
    assert "df" not in res.summary(ddf=None).split("Fixed effects:")[1].splitlines()[1]
    assert "Kenward-Roger" in res.summary(ddf="Kenward-Roger")
    with pytest.raises(ValueError, match="unknown ddf"):
        res.summary(ddf="Satterwhite")


def test_singular_fit_summary_and_tests_run():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff2")
    assert res.singular
    tab = res.coef_table()
    assert np.isfinite(tab["df"]).all() and tab["df"].iloc[0] > 0
    assert "Pr(>|t|)" in str(res)


def test_central_differences_give_richardsons_df(monkeypatch):
    # The df come from central differences of the exact gradient (two evaluations per
    # θ entry): they agree with one Richardson step more (four) to well below their
    # printed digits.
    from lmm.inference import satterthwaite

    rng = np.random.default_rng(5)
    n, ng = 2000, 60
    g = rng.integers(0, ng, n)
    x = rng.standard_normal((n, 4))
    b = rng.standard_normal((ng, 5)) * [1.0, 0.5, 0.4, 0.3, 0.2]
    y = x @ [1, -1, 0.5, 0.2] + b[g, 0] + np.sum(b[g, 1:] * x, axis=1) + rng.standard_normal(n)
    data = pd.DataFrame({"y": y, "g": g, **{f"x{j}": x[:, j] for j in range(4)}})
    res = lmm.lmer("y ~ x0 + x1 + x2 + x3 + (x0 + x1 + x2 + x3 | g)", data)
    assert res.model.ntheta == 15
    L = np.eye(5)
    calls = {"n": 0}
    original = type(res.model).deviance_terms

    def counted(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(res.model), "deviance_terms", counted)
    s = satterthwaite.satterthwaite_setup(res)
    assert calls["n"] <= 2 * 15 + 2
    central = [satterthwaite.variance_and_df(s, L[i])[1] for i in range(5)]
    monkeypatch.setattr(satterthwaite, "DIFFERENCE_STEPS", 2)
    s = satterthwaite.satterthwaite_setup(res)
    richardson = [satterthwaite.variance_and_df(s, L[i])[1] for i in range(5)]
    np.testing.assert_allclose(central, richardson, rtol=1e-5)
