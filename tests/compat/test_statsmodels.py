"""lmm.compat.statsmodels against statsmodels' MixedLM and lme4.

The models are the examples of statsmodels' documentation (mixed_linear.html, the
"mixed_lm_example" and "variance_components" notebooks, written as there; the simulated
designs smaller) and of its test suite (Pastes' variance component). Each runs with
statsmodels and with lmm's compat API:

* the two fits agree to ``REL`` where statsmodels' optimizer reaches the optimum; where it
  stops early, lmm's log-likelihood is at least statsmodels' and lmm matches lme4
  (``tests/reference/statsmodels_reference.json``, from make_statsmodels_reference.R);
* statsmodels started at lmm's estimates (it then stays there) gives every derived
  quantity — standard errors from its analytic Hessian, random effects and their
  covariances, fitted values, intervals, the printed summary — to ``SAME``: the meanings
  are statsmodels', independently of the optimizers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sm = pytest.importorskip("statsmodels.api")
import statsmodels.formula.api as smf  # noqa: E402
from statsmodels.regression.mixed_linear_model import VCSpec  # noqa: E402

import lmm  # noqa: E402
import lmm.compat.statsmodels as lsm  # noqa: E402

REL = 1e-4     # statsmodels' own fit against lmm's, where statsmodels converges
SAME = 1e-5    # statsmodels at lmm's estimates: its numbers against lmm's (lmm's Hessian is numerical)
LME4_LLF = 1e-9  # log-likelihood against lme4's (relative)
LME4 = 1e-5    # parameters, scale and random effects against lme4's (relative to the largest)

REF = {f["id"]: f for f in json.loads(
    (Path(__file__).resolve().parents[1] / "reference" / "statsmodels_reference.json").read_text())["fits"]}


def quiet(f, *args, **kwargs):
    """statsmodels' call with its warnings (convergence, boundary) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


def close(a, b, rtol, what=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.nanmax(np.abs(b), initial=0.0), 1e-300)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_fits_agree(s, m, rtol):
    """statsmodels' fit s and lmm's m: estimates, names, random effects."""
    assert list(m.params.index) == list(s.params.index)
    close(m.params, s.params, rtol, "params")
    close(m.bse, s.bse, rtol, "bse")
    close(m.llf, s.llf, rtol * 1e-2, "llf")
    close(m.scale, s.scale, rtol, "scale")
    close(m.cov_re, s.cov_re, rtol, "cov_re")
    close(m.vcomp, s.vcomp, rtol, "vcomp")
    assert list(m.random_effects) == list(s.random_effects)
    for g, v in s.random_effects.items():
        assert list(m.random_effects[g].index) == list(v.index)
    close(np.concatenate([m.random_effects[g] for g in s.random_effects]),
          np.concatenate([v for v in s.random_effects.values()]), rtol, "random_effects")


def assert_same_meaning(sm_model, m, **fit_kwargs):
    """statsmodels started at lmm's estimates: every derived quantity as lmm's."""
    start = m.params_object.get_packed(use_sqrt=True, has_fe=False)
    s = quiet(sm_model.fit, start_params=start, reml=m.reml, **fit_kwargs)
    close(s.params, m.params, 1e-7, "statsmodels moved from lmm's optimum")
    close(m.llf, s.llf, 1e-12, "llf")
    for what in ("bse", "bse_fe", "tvalues"):
        close(getattr(m, what), getattr(s, what), SAME, what)
    close(np.asarray(m.pvalues)[:m.k_fe], np.asarray(s.pvalues)[:m.k_fe], SAME, "pvalues")
    close(m.conf_int(), s.conf_int(), SAME, "conf_int")
    close(m.cov_params(), s.cov_params(), SAME, "cov_params")
    if not m.k_vc:  # statsmodels' bse_re fails with variance components (a length mismatch)
        close(m.bse_re, s.bse_re, SAME, "bse_re")
    for g, v in s.random_effects.items():
        close(m.random_effects[g], v, 1e-7, f"random_effects[{g}]")
        c = s.random_effects_cov[g]
        assert list(m.random_effects_cov[g].index) == list(c.index)
        close(m.random_effects_cov[g], c, 1e-7, f"random_effects_cov[{g}]")
    close(m.fittedvalues, s.fittedvalues, 1e-9, "fittedvalues")
    close(m.resid, s.resid, 1e-7, "resid")
    close(m.predict(), s.predict(), 1e-12, "predict")
    if not m.reml:
        close(m.aic, s.aic, 1e-12, "aic")
        close(m.bic, s.bic, 1e-12, "bic")
    assert m.summary().as_text() == s.summary().as_text()
    return s


def assert_matches_lme4(m, ref, group, vc_names=()):
    """lmm's compat results against lme4's fit ``ref`` (group: the lme4 group of cov_re)."""
    close(m.llf, ref["logLik"], LME4_LLF, "llf")
    close(m.scale, ref["scale"], LME4, "scale")
    close(m.fe_params, list(ref["beta"].values()), LME4, "fe_params")
    if group is not None:
        close(m.cov_re, ref["varcorr"][group], LME4, "cov_re")
    close(m.vcomp, [ref["varcorr"][v][0][0] for v in vc_names], LME4, "vcomp")


def dietox_ranef(m, ref, names):
    """lmm's random effects per pig against lme4's ranef (columns ``names``)."""
    r = ref["ranef"]["Pig"]
    ours = np.array([m.random_effects[p].to_numpy() for p in r["levels"]])
    close(ours, np.column_stack([r[c] for c in names]), LME4, "random_effects")


@pytest.fixture(scope="module")
def dietox():
    return lmm.datasets.load("dietox")


# ---------------------------------------------------------------------- dietox (mixed_linear.html, mixed_lm_example)

def test_dietox_random_intercept(dietox):
    data = dietox
    md = smf.mixedlm("Weight ~ Time", data, groups=data["Pig"])
    mdf = quiet(md.fit, method=["lbfgs"])
    ours = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"]).fit(method=["lbfgs"])
    assert ours.llf >= mdf.llf
    assert_fits_agree(mdf, ours, REL)
    assert list(ours.params.index) == ["Intercept", "Time", "Group Var"]
    ref = REF["dietox_intercept_REML"]
    assert_matches_lme4(ours, ref, "Pig")
    dietox_ranef(ours, ref, ["(Intercept)"])
    assert_same_meaning(md, ours, method=["lbfgs"])
    assert ours.converged and ours.method == "REML" and np.isnan(ours.aic) and np.isnan(ours.bic)
    assert (ours.nobs, ours.k_fe, ours.k_re, ours.model.n_groups) == (861, 2, 1, 72)


def test_dietox_random_slope(dietox):
    data = dietox
    md = smf.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time")
    mdf = quiet(md.fit, method=["lbfgs"])
    ours = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time").fit(method=["lbfgs"])
    # statsmodels stops short (params 5e-4 off): lmm's optimum is lme4's.
    assert ours.llf >= mdf.llf
    assert_fits_agree(mdf, ours, 3e-3)
    assert list(ours.params.index) == ["Intercept", "Time", "Group Var", "Group x Time Cov", "Time Var"]
    ref = REF["dietox_slope_REML"]
    assert_matches_lme4(ours, ref, "Pig")
    dietox_ranef(ours, ref, ["(Intercept)", "Time"])
    assert_same_meaning(md, ours, method=["lbfgs"])


def test_dietox_independent_random_coefficients(dietox):
    data = dietox
    md = smf.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time")
    free = sm.regression.mixed_linear_model.MixedLMParams.from_components(np.ones(2), np.eye(2))
    mdf = quiet(md.fit, free=free, method=["lbfgs"])
    ours_free = lsm.MixedLMParams.from_components(np.ones(2), np.eye(2))
    ours = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time").fit(
        free=ours_free, method=["lbfgs"])
    assert ours.llf >= mdf.llf
    assert ours.params["Group x Time Cov"] == 0 and ours.bse["Group x Time Cov"] == 0
    ref = REF["dietox_independent_REML"]
    close(ours.llf, ref["logLik"], LME4_LLF, "llf")
    close(np.diag(ours.cov_re), [ref["varcorr"]["Pig"][0][0], ref["varcorr"]["Pig.1"][0][0]], LME4, "cov_re")
    close(ours.fe_params, list(ref["beta"].values()), LME4, "fe_params")
    assert_same_meaning(md, ours, free=free, method=["lbfgs"])
    # statsmodels' own object as the pattern works too
    other = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time").fit(free=free)
    close(other.params, ours.params, 1e-12)


def test_dietox_ml_where_statsmodels_stops_early(dietox):
    data = dietox
    md = smf.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time")
    mdf = quiet(md.fit, reml=False)
    ours = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"], re_formula="~Time").fit(reml=False)
    assert ours.llf >= mdf.llf
    ref = REF["dietox_slope_ML"]
    assert_matches_lme4(ours, ref, "Pig")
    dietox_ranef(ours, ref, ["(Intercept)", "Time"])
    # statsmodels' definitions: AIC and BIC count every parameter and the scale.
    df = len(ours.params) + 1
    close(ours.aic, -2 * ours.llf + 2 * df, 1e-14)
    close(ours.bic, -2 * ours.llf + np.log(861) * df, 1e-14)
    assert ours.method == "ML"
    assert_same_meaning(md, ours)
    intercept = lsm.mixedlm("Weight ~ Time", data, groups=data["Pig"]).fit(reml=False)
    assert_matches_lme4(intercept, REF["dietox_intercept_ML"], "Pig")


def test_dietox_arrays_as_in_the_sitka_example(dietox):
    # The notebook's array interface: exog with an Intercept column, exog_re its column.
    data = dietox.copy()
    endog = data["Weight"]
    data["Intercept"] = 1
    exog = data[["Intercept", "Time"]]
    md = sm.MixedLM(endog, exog, groups=data["Pig"], exog_re=exog["Intercept"])
    mdf = quiet(md.fit)
    ours = lsm.MixedLM(endog, exog, groups=data["Pig"], exog_re=exog["Intercept"]).fit()
    assert list(ours.params.index) == ["Intercept", "Time", "Intercept Var"]
    assert_fits_agree(mdf, ours, REL)
    assert_same_meaning(md, ours)
    exog_re = exog.copy()
    md2 = sm.MixedLM(endog, exog, data["Pig"], exog_re)
    ours2 = lsm.MixedLM(endog, exog, data["Pig"], exog_re).fit()
    assert_matches_lme4(ours2, REF["dietox_slope_REML"], "Pig")
    assert_same_meaning(md2, ours2)


def test_ndarray_inputs_give_ndarrays_and_statsmodels_names(dietox):
    y = dietox["Weight"].to_numpy()
    X = np.column_stack([np.ones(len(y)), dietox["Time"].to_numpy(float)])
    g = dietox["Pig"].to_numpy()
    md = sm.MixedLM(y, X, g)
    ours = lsm.MixedLM(y, X, g).fit()
    assert isinstance(ours.params, np.ndarray) and isinstance(ours.cov_re, np.ndarray)
    assert ours.model.exog_names == md.exog_names == ["const", "x1"]
    assert ours.model.endog_names == "y"
    assert list(ours.random_effects[g[0]].index) == ["Group Var"]
    s = assert_same_meaning(md, ours)
    assert isinstance(s.params, np.ndarray)


def test_shift_and_scale_of_the_response(dietox):
    base = lsm.mixedlm("Weight ~ Time", dietox, groups="Pig", re_formula="~Time").fit()
    moved = dietox.assign(Weight=1e4 + 10 * dietox["Weight"])
    res = lsm.mixedlm("Weight ~ Time", moved, groups="Pig", re_formula="~Time").fit()
    close(res.params.iloc[2:], base.params.iloc[2:], 1e-6)   # relative to the scale: unchanged
    close(res.bse_fe, 10 * base.bse_fe, 1e-5)
    close(res.bse.iloc[2:], base.bse.iloc[2:], 1e-5)
    close(res.cov_re, 100 * base.cov_re, 1e-6)
    close(res.llf, base.llf - (861 - 2) * np.log(10), 1e-12)
    assert list(res.random_effects["4601"].index) == ["Pig", "Time"]


def test_predict_fixed_effects_only(dietox):
    md = smf.mixedlm("Weight ~ Time", dietox, groups=dietox["Pig"])
    ours = lsm.mixedlm("Weight ~ Time", dietox, groups=dietox["Pig"]).fit()
    new = pd.DataFrame({"Time": [0.0, 13.0]}, index=["a", "b"])
    pred = ours.predict(new)
    assert list(pred.index) == ["a", "b"]
    close(pred, ours.fe_params["Intercept"] + ours.fe_params["Time"] * new["Time"], 1e-14)
    s = quiet(md.fit, start_params=ours.params_object.get_packed(use_sqrt=True))
    close(pred, s.predict(new), 1e-9)
    close(ours.model.predict(ours.params, np.array([[1.0, 2.0]])), [ours.fe_params.sum() + ours.fe_params["Time"]],
          1e-14)


# ---------------------------------------------------------------------- variance components

def test_pastes_variance_component():
    # statsmodels' test suite: casks within batches as a variance component.
    data = lmm.datasets.load("pastes")
    vcf = {"cask": "0 + cask"}
    for reml, rid in ((True, "pastes_cask_REML"), (False, "pastes_cask_ML")):
        md = sm.MixedLM.from_formula("strength ~ 1", groups="batch", re_formula="1", vc_formula=vcf, data=data)
        mdf = quiet(md.fit, reml=reml)
        ours = lsm.MixedLM.from_formula("strength ~ 1", groups="batch", re_formula="1", vc_formula=vcf,
                                        data=data).fit(reml=reml)
        assert ours.llf >= mdf.llf
        assert list(ours.params.index) == ["Intercept", "batch Var", "cask Var"]
        assert list(ours.random_effects["A"].index) == ["batch", "cask[cask[a]]", "cask[cask[b]]", "cask[cask[c]]"]
        ref = REF[rid]
        assert_matches_lme4(ours, ref, "batch", vc_names=["batch:cask"])
        r = ref["ranef"]["batch:cask"]
        got = [ours.random_effects[lab.split(":")[0]][f"cask[cask[{lab.split(':')[1]}]]"] for lab in r["levels"]]
        close(got, r["(Intercept)"], LME4, "cask effects")
        assert_same_meaning(md, ours)


def generate_nested(n_group1=200, n_group2=20, n_rep=10, group1_sd=2, group2_sd=3, unexplained_sd=4):
    """The variance_components notebook's nested design."""
    group1 = np.kron(np.arange(n_group1), np.ones(n_group2 * n_rep))
    u = group1_sd * np.random.normal(size=n_group1)
    effects1 = np.kron(u, np.ones(n_group2 * n_rep))
    group2 = np.kron(np.ones(n_group1), np.kron(np.arange(n_group2), np.ones(n_rep)))
    u = group2_sd * np.random.normal(size=n_group1 * n_group2)
    effects2 = np.kron(u, np.ones(n_rep))
    e = unexplained_sd * np.random.normal(size=n_group1 * n_group2 * n_rep)
    y = effects1 + effects2 + e
    return pd.DataFrame({"y": y, "group1": group1, "group2": group2})


def generate_crossed(n_group1=100, n_group2=100, n_rep=4, group1_sd=2, group2_sd=3, unexplained_sd=4):
    """The variance_components notebook's crossed design."""
    group1 = np.kron(np.arange(n_group1, dtype=int), np.ones(n_group2 * n_rep, dtype=int))
    group1 = group1[np.random.permutation(len(group1))]
    u = group1_sd * np.random.normal(size=n_group1)
    effects1 = u[group1]
    group2 = np.kron(np.arange(n_group2, dtype=int), np.ones(n_group2 * n_rep, dtype=int))
    group2 = group2[np.random.permutation(len(group2))]
    u = group2_sd * np.random.normal(size=n_group2)
    effects2 = u[group2]
    e = unexplained_sd * np.random.normal(size=n_group1 * n_group2 * n_rep)
    y = effects1 + effects2 + e
    return pd.DataFrame({"y": y, "group1": group1, "group2": group2})


def indicator_vcspec(df, column, by, vcspec):
    """The notebook's hand-made indicator matrices of ``column`` per group of ``by``."""
    mats, colnames = [], []
    for _, x in df.groupby(by):
        u = np.sort(x[column].unique())
        mats.append((x[column].to_numpy()[:, None] == u[None, :]).astype(float))
        colnames.append([f"{z}" for z in u])
    return vcspec([column], [colnames], [mats])


def test_nested_variance_components():
    np.random.seed(3123)
    df = generate_nested(n_group1=20, n_group2=5, n_rep=4)
    kw = dict(re_formula="1", vc_formula={"group2": "0 + C(group2)"}, groups="group1", data=df)
    model1 = sm.MixedLM.from_formula("y ~ 1", **kw)
    result1 = quiet(model1.fit)
    ours = lsm.MixedLM.from_formula("y ~ 1", **kw).fit()
    assert ours.llf >= result1.llf
    assert_fits_agree(result1, ours, REL)
    assert list(ours.random_effects[0.0].index)[:2] == ["group1", "group2[C(group2)[0.0]]"]
    # One scalar term per level set (group1:group2 cells, group1), not a dense block of indicators.
    assert sorted((t.nlevels, t.p) for t in ours.lmm_result.model.terms) == [(20, 1), (100, 1)]
    native = lmm.lmer("y ~ 1 + (1 | group1) + (1 | group1:group2)", df)
    close(ours.llf, native.loglik, 1e-12)
    close(ours.vcomp, native.varcorr["vcov"].iloc[:1], 1e-8)
    assert_same_meaning(model1, ours)
    # The same model from the notebook's hand-made matrices.
    oo = np.ones(df.shape[0])
    model2 = sm.MixedLM(df.y, oo, exog_re=oo, groups=df.group1, exog_vc=indicator_vcspec(df, "group2", "group1",
                                                                                         VCSpec))
    ours2 = lsm.MixedLM(df.y, oo, exog_re=oo, groups=df.group1,
                        exog_vc=indicator_vcspec(df, "group2", "group1", lsm.VCSpec)).fit()
    close(ours2.params, ours.params, 1e-10)
    assert list(ours2.random_effects[0.0].index)[:2] == ["x_re1", "group2[0.0]"]
    assert_same_meaning(model2, ours2)


def test_crossed_effects_as_a_single_group():
    np.random.seed(3123)
    df = generate_crossed(n_group1=20, n_group2=20, n_rep=3)
    vc = {"g1": "0 + C(group1)", "g2": "0 + C(group2)"}
    oo = np.ones(df.shape[0])
    model3 = sm.MixedLM.from_formula("y ~ 1", groups=oo, vc_formula=vc, data=df)
    result3 = quiet(model3.fit)
    ours = lsm.MixedLM.from_formula("y ~ 1", groups=oo, vc_formula=vc, data=df).fit()
    assert ours.llf >= result3.llf
    assert_fits_agree(result3, ours, 1e-3)
    assert list(ours.params.index) == ["Intercept", "g1 Var", "g2 Var"]
    # lme4's crossed model (1 | group1) + (1 | group2), not a dense single-group design.
    assert [(t.nlevels, t.p) for t in ours.lmm_result.model.terms] == [(20, 1), (20, 1)]
    native = lmm.lmer("y ~ 1 + (1 | group1) + (1 | group2)", df)
    close(ours.llf, native.loglik, 1e-12)
    vcov = native.varcorr.set_index("grp")["vcov"]
    close(ours.vcomp, [vcov["group1"], vcov["group2"]], 1e-8)
    close(ours.scale, vcov["Residual"], 1e-8)
    close(ours.random_effects[1.0].iloc[:20], native.ranef["group1"].iloc[:, 0], 1e-8)
    assert_same_meaning(model3, ours)
    # The notebook's matrices for the single group.
    def f(g):
        u = np.sort(g.unique())
        return [(g.to_numpy()[:, None] == u[None, :]).astype(float)], [[f"{z}" for z in u]]
    parts = [f(df.group1), f(df.group2)]
    model4 = sm.MixedLM(df.y, oo[:, None], exog_re=None, groups=oo,
                        exog_vc=VCSpec(["group1", "group2"], [p[1] for p in parts], [p[0] for p in parts]))
    ours4 = lsm.MixedLM(df.y, oo[:, None], exog_re=None, groups=oo,
                        exog_vc=lsm.VCSpec(["group1", "group2"], [p[1] for p in parts], [p[0] for p in parts])).fit()
    close(ours4.params, ours.params, 1e-10)
    assert_same_meaning(model4, ours4)


def test_numeric_variance_component_is_one_shared_variance():
    # statsmodels' docstring: {'pretest': '0 + pretest'}, an independent slope per group.
    data = lmm.datasets.load("dietox")
    kw = dict(re_formula="1", vc_formula={"Time": "0 + Time"}, groups="Pig", data=data)
    md = sm.MixedLM.from_formula("Weight ~ Time", **kw)
    ours = lsm.MixedLM.from_formula("Weight ~ Time", **kw).fit()
    ref = REF["dietox_independent_REML"]
    close(ours.llf, ref["logLik"], LME4_LLF)
    close(ours.vcomp, [ref["varcorr"]["Pig.1"][0][0]], LME4)
    assert list(ours.random_effects["4601"].index) == ["Pig", "Time[Time]"]
    assert_same_meaning(md, ours)


# ---------------------------------------------------------------------- data handling and errors

def test_missing_values(dietox):
    data = dietox.astype({"Time": float})
    data.loc[[3, 40], "Time"] = np.nan
    with pytest.raises(ValueError, match="missing"):
        lsm.mixedlm("Weight ~ Time", data, groups="Pig")
    md = sm.MixedLM.from_formula("Weight ~ Time", data, groups="Pig", missing="drop")
    with pytest.warns(UserWarning, match="2 of 861 rows dropped"):
        ours = lsm.mixedlm("Weight ~ Time", data, groups="Pig", missing="drop").fit()
    assert ours.nobs == 859 and len(ours.fittedvalues) == 859 and 3 not in ours.fittedvalues.index
    assert_same_meaning(md, ours)


def test_subset_selects_rows(dietox):
    ours = lsm.mixedlm("Weight ~ Time", dietox, groups=dietox["Pig"], subset=dietox["Time"] <= 6).fit()
    native = lmm.lmer("Weight ~ Time + (1 | Pig)", dietox[dietox["Time"] <= 6])
    close(ours.llf, native.loglik, 1e-12)
    assert ours.nobs == native.nobs


def test_unsupported_requests_say_so(dietox):
    m = lsm.mixedlm("Weight ~ Time", dietox, groups="Pig", re_formula="~Time")
    with pytest.raises(NotImplementedError, match="penal"):
        m.fit(fe_pen=object())
    with pytest.raises(NotImplementedError, match="independent random coefficients"):
        m.fit(free=lsm.MixedLMParams.from_components(np.ones(2), np.array([[1.0, 1.0], [1.0, 0.0]])))
    with pytest.raises(ValueError, match="not available"):
        m.fit(method="newton")
    with pytest.warns(FutureWarning, match="not used"):
        m.fit(bogus=1)
    with pytest.raises(NotImplementedError, match="0 \\+ C"):
        lsm.mixedlm("Weight ~ Time", dietox, groups="Pig", vc_formula={"c": "C(Litter) + Time"})
    with pytest.raises(AttributeError, match="groups"):
        lsm.MixedLM.from_formula("Weight ~ Time", dietox)
    with pytest.raises(ValueError, match="single group"):
        lsm.mixedlm("Weight ~ Time", dietox, groups=np.ones(len(dietox)))   # one group, a random intercept


def test_top_level_names():
    assert lmm.MixedLM is lsm.MixedLM
    assert lmm.mixedlm is lsm.mixedlm
    res = lmm.mixedlm("Reaction ~ Days", lmm.datasets.load("sleepstudy"), groups="Subject", re_formula="~Days").fit()
    native = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    close(res.cov_re, native.sigma ** 2 * (lambda L: L @ L.T)(np.asarray(native.solution.lambdas[0])), 1e-12)
    close(res.llf, native.loglik, 1e-14)


def test_pigs_within_litters_with_a_slope_without_intercept(dietox):
    # Two levels: litters as groups with a random Time slope ("0 + Time"), pigs within
    # litters as a variance component (statsmodels' docstring pattern).
    data = dietox.assign(Pig=dietox["Pig"].astype(int), Litter=dietox["Litter"].astype(int))
    kw = dict(re_formula="0 + Time", vc_formula={"Pig": "0 + C(Pig)"}, groups="Litter", data=data)
    md = sm.MixedLM.from_formula("Weight ~ Time", **kw)
    mdf = quiet(md.fit)
    ours = lsm.MixedLM.from_formula("Weight ~ Time", **kw).fit()
    assert ours.llf >= mdf.llf
    assert list(ours.params.index) == ["Intercept", "Time", "Time Var", "Pig Var"]
    assert list(ours.random_effects[1].index)[:2] == ["Time", "Pig[C(Pig)[4601]]"]
    native = lmm.lmer("Weight ~ Time + (0 + Time | Litter) + (1 | Litter:Pig)", data)
    close(ours.llf, native.loglik, 1e-12)
    assert_same_meaning(md, ours)
