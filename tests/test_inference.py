"""Inference after the fit against lmerTest, pbkrtest and lme4 (tests/reference/inference_reference.json)."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import inference

REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "inference_reference.json").read_text())

# Tolerances per quantity (relative unless named absolute). Satterthwaite quantities
# come from differenced derivatives in lmerTest and here: they agree to ~1e-6.
SATT_DF = 1e-5          # observed 4e-7
SATT_P = 1e-4           # observed 1e-5 (p ~ 1e-17 amplifies df differences)
VCOV_VARPAR = 1e-4      # observed 4e-6
KR_DF = 1e-6            # observed 1e-8
KR_SE = 1e-6            # observed 7e-8
VCOV_KR = 1e-5          # observed 3e-7
F_VALUE = 1e-6          # observed 1e-7
PROFILE_LME4 = 1e-3     # lme4's confint interpolates zeta with a spline; observed 2e-4
PROFILE_FINE = 1e-6     # lme4 with a finer profile grid converges to the exact roots; observed 4e-9
WALD = 1e-6
LRT = 1e-6
PREDICT = 1e-7          # observed 2e-9 (relative to the prediction)
CONDVAL_ABS = 1e-4      # observed 1.4e-6
CONDSD = 1e-5
COEF = 1e-5

_FITS: dict = {}


def fit(formula: str, dataset: str, REML: bool = True):
    key = (formula, dataset, REML)
    if key not in _FITS:
        _FITS[key] = lmm.lmer(formula, lmm.datasets.load(dataset), REML=REML)
    return _FITS[key]


def table(record: dict) -> pd.DataFrame:
    """A data frame stored by make_inference_reference.R's frame()."""
    return pd.DataFrame({k: v for k, v in record.items() if k != "rows"}, index=record["rows"])


def by_id(section: str) -> dict:
    return {r["id"]: r for r in REFERENCE[section]}


TESTS = by_id("tests")


def _ids(section):
    return [pytest.param(r, id=r["id"]) for r in REFERENCE[section]]


# --------------------------------------------------------------------------- Satterthwaite and Kenward–Roger


def test_sleepstudy_days_satterthwaite_df_is_17():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    tab = res.coef_table()
    assert tab.loc["Days", "df"] == pytest.approx(16.9997, abs=1e-3)
    assert tab.loc["Days", "Pr(>|t|)"] == pytest.approx(3.2637878e-06, rel=SATT_P)


@pytest.mark.parametrize("ref", _ids("tests"))
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


@pytest.mark.parametrize("ref", [r for r in _ids("tests") if "kenward_roger" in r.values[0]])
def test_kenward_roger_matches_pbkrtest(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    want = table(ref["kenward_roger"])
    got = res.coef_table("Kenward-Roger")
    np.testing.assert_allclose(got["df"], want["df"], rtol=KR_DF)
    np.testing.assert_allclose(got["Std. Error"], want["Std. Error"], rtol=KR_SE)
    np.testing.assert_allclose(got["Pr(>|t|)"], want["Pr(>|t|)"], rtol=SATT_P)
    np.testing.assert_allclose(res.vcov_kr().to_numpy(), np.array(ref["vcov_kr"]), rtol=VCOV_KR,
                               atol=VCOV_KR * np.max(np.abs(ref["vcov_kr"])))


@pytest.mark.parametrize("ref", [r for r in _ids("tests") if "contrasts" in r.values[0]])
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


@pytest.mark.parametrize("ref", [r for r in _ids("tests") if "anova_satterthwaite" in r.values[0]])
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


TYPE3 = json.loads((pathlib.Path(__file__).parent / "reference" / "type3_reference.json").read_text())


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
    L = inference.type3_contrasts(res)
    np.testing.assert_allclose(L["fday"], [[0, 0, 1, 0]])
    np.testing.assert_allclose(L["Days:fday"], [[0, 0, 0, 1]])
    np.testing.assert_allclose(L["Days"], [[0, 1, 0, 0.5]])


def test_type3_inside_an_interaction_with_sum_contrasts_is_refused():
    res = lmm.lmer("Reaction ~ Days * C(fday, contr.sum) + (1 | Subject)", _type3_data("sleepstudy"))
    with pytest.raises(NotImplementedError, match="treatment contrasts"):
        res.anova()


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


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("ref", _ids("intervals"))
def test_profile_intervals_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    got = res.confint()
    want = table(ref["profile"])
    fine = table(ref["profile_fine"])
    assert list(got.index) == list(want.index)
    assert list(got.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=PROFILE_LME4)
    np.testing.assert_allclose(got.to_numpy(), fine.to_numpy(), rtol=PROFILE_FINE)
    wald = res.confint("wald")
    want = table(ref["wald"])
    assert list(wald.index) == list(want.index)
    np.testing.assert_allclose(wald.to_numpy(), want.to_numpy(dtype=float), rtol=WALD)


def test_profile_zeta_curve_matches_lme4_points():
    ref = by_id("intervals")["dyestuff"]
    res = fit(ref["formula"], ref["dataset"], ref["REML"])
    prof = res.profile()
    for name, curve in ref["zeta"].items():
        f = prof.zeta_functions[name]
        for value, zeta in list(zip(curve["value"], curve["zeta"]))[::3]:
            assert f(value) == pytest.approx(zeta, abs=1e-4), (name, value)
        pts = prof.curves[name]
        assert (np.diff(pts["zeta"].to_numpy()) > 0).all()   # monotone profile
        assert pts["zeta"].abs().max() >= 2.5


def test_confint_level_and_parm():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff")
    ci = res.confint(level=0.9, parm=["(Intercept)"])
    assert list(ci.columns) == ["5 %", "95 %"] and list(ci.index) == ["(Intercept)"]
    assert ci.iloc[0, 0] > res.confint().loc["(Intercept)"].iloc[0]
    with pytest.raises(ValueError, match="method"):
        res.confint("asymptotic")


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_and_independent_of_workers():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    b1 = res.bootstrap(24, seed=7, n_jobs=1, progress=False)
    b2 = res.bootstrap(24, seed=7, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates)
    assert b1.converged.all()
    assert list(b1.replicates.columns[:6]) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    # the replicates centre near the estimates
    t = b1.replicates
    assert abs(t["Days"].mean() - res.fixef["Days"]) < 4 * res.se["Days"] / np.sqrt(24)
    ci = b1.confint()
    assert (ci.iloc[:, 0] < ci.iloc[:, 1]).all()


def test_bootstrap_use_u_and_confint_method():
    res = fit("Yield ~ 1 + (1 | Batch)", "dyestuff")
    b = res.bootstrap(30, seed=1, use_u=True, progress=False)
    # conditional on b̂ the intercept varies only by the noise: much less than its SE
    assert b.replicates["(Intercept)"].std() < 0.5 * res.se["(Intercept)"]
    ci = res.confint("bootstrap", nsim=30, seed=2, progress=False)
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"]


def test_progress_bar_draws_on_a_terminal(capsys):
    bar = inference.Progress(10, enabled=True, desc="boot")
    bar.bar = None   # the plain bar, whether or not tqdm is installed
    bar.update(5)
    bar.close()
    assert "5/10" in capsys.readouterr().err
    quiet = inference.Progress(10, enabled=None)   # stderr captured: not a terminal
    quiet.update(10)
    quiet.close()
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- likelihood-ratio tests


@pytest.mark.parametrize("ref", _ids("lrts"))
def test_lrt_table_matches_lme4(ref):
    fits = [fit(f, ref["dataset"], ref["REML"]) for f in ref["formulas"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = lmm.anova(*fits)
    refit = [w for w in caught if issubclass(w.category, inference.RefitMLWarning)]
    assert bool(refit) == ref["REML"]
    want = table(ref["table"])
    assert list(got.index) == list(want.index)
    assert list(got.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    np.testing.assert_array_equal(got["npar"], want["npar"])
    for col in ("AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(got[col], want[col], rtol=LRT)
    for col in ("Chisq", "Df", "Pr(>Chisq)"):
        np.testing.assert_allclose(got[col].iloc[1:], want[col].iloc[1:].astype(float), rtol=1e-5)
        assert np.isnan(got[col].iloc[0])


def test_anova_checks_its_models():
    a = fit("Reaction ~ Days + (1 | Subject)", "sleepstudy", REML=False)
    b = fit("Yield ~ 1 + (1 | Batch)", "dyestuff", REML=False)
    with pytest.raises(ValueError, match="same number of observations"):
        lmm.anova(a, b)
    with pytest.raises(ValueError, match="at least one"):
        lmm.anova()


# --------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("ref", _ids("predictions"))
def test_predictions_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"])
    newdata = table(ref["newdata"]).reset_index(drop=True)
    np.testing.assert_allclose(res.fitted()[:10], ref["fitted"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, re_form="~0"), ref["population"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, re_form="NA"), ref["population"], rtol=PREDICT)
    np.testing.assert_allclose(res.predict(newdata, allow_new_levels=True), ref["new_levels"], rtol=PREDICT)
    known = newdata.iloc[ref["known_rows"]]
    np.testing.assert_allclose(res.predict(known), ref["known"], rtol=PREDICT)
    if "re_form_intercept" in ref:
        np.testing.assert_allclose(res.predict(known, re_form="~(1 | Subject)"), ref["re_form_intercept"],
                                   rtol=PREDICT)
    if len(known) < len(newdata):
        with pytest.raises(ValueError, match="allow_new_levels"):
            res.predict(newdata)


def test_predict_on_training_rows_and_errors():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    np.testing.assert_allclose(res.predict(), res.fitted())
    X = res.model.design.X
    np.testing.assert_allclose(res.predict(re_form="~0"), X @ res.fixef.to_numpy())
    with pytest.raises(ValueError, match="not in the model"):
        res.predict(re_form="~(1 | Subject)")
    new = pd.DataFrame({"Days": [1.0], "Subject": ["308"]})
    with pytest.raises(lmm.FormulaError, match="unknown column"):
        res.predict(pd.DataFrame({"days": [1.0], "Subject": ["308"]}))
    # strings or categoricals: levels are matched by label
    assert res.predict(new)[0] == pytest.approx(res.predict(new.astype({"Subject": "category"}))[0])


def test_predict_rejects_unseen_factor_level():
    res = fit("score ~ Machine + (1 | Worker)", "machines")
    with pytest.raises(lmm.FormulaError, match="not in the data the model was fitted to"):
        res.predict(pd.DataFrame({"Machine": ["D"], "Worker": ["1"]}))


# --------------------------------------------------------------------------- random effects


@pytest.mark.parametrize("ref", _ids("ranefs"))
def test_conditional_variances_and_coef_match_lme4(ref):
    res = fit(ref["formula"], ref["dataset"])
    want = pd.DataFrame(ref["ranef"])
    got = res.ranef_frame()
    merged = want.merge(got, on=["grpvar", "term", "grp"], suffixes=("_R", ""))
    assert len(merged) == len(want) == len(got)
    np.testing.assert_allclose(merged["condval"], merged["condval_R"], atol=CONDVAL_ABS)
    np.testing.assert_allclose(merged["condsd"], merged["condsd_R"], rtol=CONDSD)
    coefs = res.coef()
    assert set(coefs) == set(ref["coef"])
    for grp, frame in ref["coef"].items():
        w = table(frame)
        g = coefs[grp]
        assert list(g.columns) == list(w.columns)
        np.testing.assert_allclose(g.loc[w.index].to_numpy(), w.to_numpy(), rtol=COEF)


def test_condvar_shapes():
    res = fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy")
    cv = res.ranef_condvar()
    assert cv["Subject"].shape == (18, 2, 2)
    assert np.all(cv["Subject"][:, 0, 1] == 0)          # two terms: no cross block, as lme4
    full = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy").ranef_condvar()["Subject"]
    assert np.all(np.linalg.eigvalsh(full) > 0)


# --------------------------------------------------------------------------- simulate, residuals, tables


def test_simulate_reproduces_moments():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    d = res.model.design
    nsim = 4000
    y = res.simulate(nsim, seed=11)
    assert y.shape == (res.nobs, nsim)
    np.testing.assert_array_equal(y, res.simulate(nsim, seed=11))
    mean = d.X @ res.fixef.to_numpy()
    t = res.model.terms[0]
    lam = res.solution.lambdas[0]
    cov_b = res.sigma**2 * lam @ lam.T
    var = res.sigma**2 + np.einsum("ij,jk,ik->i", t.z, cov_b, t.z)
    sd_mean = np.sqrt(var / nsim)
    assert np.max(np.abs(y.mean(axis=1) - mean) / sd_mean) < 4.5
    rel_var = y.var(axis=1, ddof=1) / var
    assert abs(rel_var.mean() - 1) < 0.02
    # two rows of one subject covary through the random effects
    i, j = 0, 9
    cov_ij = t.z[i] @ cov_b @ t.z[j]
    assert np.cov(y[i], y[j])[0, 1] == pytest.approx(cov_ij, rel=0.1)
    yu = res.simulate(nsim, seed=3, use_u=True)
    assert np.max(np.abs(yu.mean(axis=1) - res.fitted())) < 5 * res.sigma / np.sqrt(nsim)
    assert yu.var(axis=1, ddof=1).mean() == pytest.approx(res.sigma**2, rel=0.02)


def test_residual_types():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    r = res.residuals()
    np.testing.assert_allclose(r, res.model.design.y - res.fitted())
    np.testing.assert_allclose(res.residuals(type="pearson"), r / res.sigma)
    np.testing.assert_allclose(res.residuals(scaled=True), r / res.sigma)
    with pytest.raises(ValueError, match="type"):
        res.residuals(type="deviance")


@pytest.mark.parametrize("ref", _ids("tidies"))
def test_tidy_matches_broom_mixed(ref):
    res = fit(ref["formula"], ref["dataset"])
    want = table(ref["tidy"]).reset_index(drop=True)
    got = res.tidy()
    assert list(got.columns) == list(want.columns)
    assert list(got["effect"]) == list(want["effect"])
    assert list(got["group"].fillna("")) == list(want["group"])
    assert list(got["term"]) == list(want["term"])
    for col, rtol in (("estimate", 1e-5), ("std.error", 1e-5), ("statistic", 1e-5), ("df", SATT_DF),
                      ("p.value", SATT_P)):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=rtol)


def test_tidy_options():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    t = res.tidy()
    np.testing.assert_allclose(t["df"].iloc[:2], res.coef_table()["df"])
    ci = res.tidy(conf_int=True)
    assert {"conf.low", "conf.high"} <= set(ci.columns)
    rv = res.tidy(effects="ran_vals")
    assert len(rv) == 36 and rv["std.error"].gt(0).all()
    pd.testing.assert_frame_equal(res.to_frame(), t)
    with pytest.raises(ValueError, match="unknown effects"):
        res.tidy(effects="random")


def test_refit_ml_matches_an_ml_fit():
    reml = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    ml = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy", REML=False)
    refit = reml.refit_ml()
    assert not refit.REML
    assert refit.objective == pytest.approx(ml.objective, rel=1e-10)
    # the REML result still answers from its own θ
    assert reml.coef_table()["df"].iloc[1] == pytest.approx(17.0, abs=1e-3)


# --------------------------------------------------------------------------- helpers


def test_sdcor_round_trip():
    res = fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    terms = res.model.terms
    pars = inference.theta_to_sdcor(res.theta, res.sigma, terms)
    np.testing.assert_allclose(pars[:3], [res.varcorr.sdcor[0], res.varcorr.sdcor[2], res.varcorr.sdcor[1]])
    np.testing.assert_allclose(inference.sdcor_to_theta(pars, terms), res.theta, rtol=1e-12)
    assert inference.varpar_names(terms) == [".sig01", ".sig02", ".sig03", ".sigma"]


def test_numderiv_replicas_are_accurate():
    f = lambda x: np.sin(x[0]) * np.exp(x[1]) + x[0] ** 2 * x[1]  # noqa: E731
    x = np.array([0.7, -0.3])
    H = inference.hessian_richardson(f, x)
    want = np.array([[-np.sin(0.7) * np.exp(-0.3) + 2 * -0.3, np.cos(0.7) * np.exp(-0.3) + 2 * 0.7],
                     [np.cos(0.7) * np.exp(-0.3) + 2 * 0.7, np.sin(0.7) * np.exp(-0.3)]])
    np.testing.assert_allclose(H, want, rtol=1e-8)
    J = inference.jacobian_richardson(lambda v: np.array([v[0] * v[1], np.exp(v[0])]), x)
    np.testing.assert_allclose(J, [[-0.3, 0.7], [np.exp(0.7), 0.0]], atol=1e-10)
