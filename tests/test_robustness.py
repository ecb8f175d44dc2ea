"""Bad input and numerical hazards: every case gives a clear error or warning, or a correct fit.

The table ``CASES`` lists malformed or awkward inputs and what the user must see. Cases
already covered by test_inputs.py (NaN in the response and a predictor, unknown fixed
and grouping columns, a string response, inf in a predictor, the rank-deficient
``Days2``, θ of the wrong length, the dense-block limit on Penicillin) are not repeated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pytest

import lmm

N, NG = 60, 6
# Fit comparisons (two optimizations of the same function) and fixed-θ comparisons.
FIT_RTOL, FIT_ATOL = 1e-5, 1e-6
OBJ_RTOL = 1e-10


def base(seed: int = 0) -> pd.DataFrame:
    """60 rows, 6 groups of 10, a within-group predictor, a positive column and a 3-level factor."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(NG), N // NG)
    x = rng.standard_normal(N)
    b = rng.standard_normal((NG, 2))
    y = 10 + b[g, 0] + (1 + 0.5 * b[g, 1]) * x + 0.5 * rng.standard_normal(N)
    return pd.DataFrame({
        "y": y, "x": x, "g": [f"g{k}" for k in g], "w": np.exp(y / 10),
        "f": np.array(["a", "b", "c"])[np.arange(N) % 3],
    })


def with_values(column: str, rows, value) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        d = base()
        v = d[column].to_numpy(dtype=object if isinstance(value, str) or value is None else float).copy()
        v[rows] = value
        d[column] = v
        return d
    return make


@dataclass
class Raises:
    exc: type
    match: str


@dataclass
class Warns:
    match: str
    check: Optional[Callable] = None


@dataclass
class Fits:
    check: Optional[Callable] = None


@dataclass
class Case:
    id: str
    formula: object
    data: Callable[[], object]
    expect: object
    kwargs: dict = field(default_factory=dict)


def _nobs(n):
    def check(model, res):
        assert model.nobs == n
    return check


def _same_objective_as(formula: str, make: Callable[[], pd.DataFrame]):
    """The model fits what ``formula`` on ``make()`` fits (objective at θ = 1 and optimum)."""
    def check(model, res):
        other = lmm.LinearMixedModel(formula, make())
        theta = other.theta_start
        assert model.objective(theta) == pytest.approx(other.objective(theta), rel=OBJ_RTOL)
        assert res.objective == pytest.approx(other.fit().objective, rel=1e-8)
    return check


def _columns(names):
    def check(model, res):
        assert list(res.fixef.index) == names
    return check


def _unused_group_levels():
    d = base()
    d["g"] = pd.Categorical(d["g"], categories=[f"g{k}" for k in range(10)])
    return d


def _unused_fixed_levels():
    d = base()
    d["f"] = pd.Categorical(d["f"], categories=["a", "b", "c", "never", "unused"])
    return d


def _exact_within_groups():
    d = base()
    codes = d["g"].str[1:].astype(int).to_numpy()
    d["y"] = 3.0 + codes * 1.5
    return d


def _exact_slope_within_groups():
    d = base()
    codes = d["g"].str[1:].astype(int).to_numpy()
    d["y"] = codes - (codes % 3) * d["x"]
    return d


def _exact_fixed_plus_group():
    d = base()
    codes = d["g"].str[1:].astype(int).to_numpy()
    d["y"] = 2.0 * d["x"] + np.sin(codes)
    return d


def _crossed_huge(L: int):
    rng = np.random.default_rng(1)
    n = 3 * L
    return pd.DataFrame({"y": rng.standard_normal(n), "a": rng.integers(0, L, n), "b": rng.integers(0, L, n)})


CASES = [
    # --- data of the wrong kind ------------------------------------------------------
    Case("data is None", "y ~ x + (1 | g)", lambda: None, Raises(TypeError, "data is None")),
    Case("data is an unnamed array", "y ~ x + (1 | g)", lambda: base()[["y", "x"]].to_numpy(),
         Raises(TypeError, "NumPy array without column names")),
    Case("data is a dict of columns", "y ~ x + (1 | g)", lambda: base().to_dict("list"),
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    Case("formula is not a string", 42, base, Raises(TypeError, "formula must be a str")),
    Case("no rows", "y ~ x + (1 | g)", lambda: base().iloc[:0], Raises(ValueError, "data has no rows")),
    Case("duplicated column names", "y ~ x + (1 | g)", lambda: pd.concat([base(), base()[["x"]]], axis=1),
         Raises(ValueError, r"duplicated column names \['x'\]")),
    Case("column names equal as text (0 and '0')", "y ~ x + (1 | g)",
         lambda: base().assign(**{"0": 1.0}).rename(columns={"w": 0}),
         Raises(ValueError, r"duplicated column names \['0'\]")),
    Case("non-string column name", "y ~ `7` + (1 | g)", lambda: base().rename(columns={"x": 7}),
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    # --- unknown columns and types --------------------------------------------------
    Case("unknown response column", "yy ~ x + (1 | g)", base, Raises(lmm.FormulaError, r"'yy' \(did you mean 'y'")),
    Case("unknown slope column", "y ~ x + (xx | g)", base, Raises(lmm.FormulaError, r"(?s)'xx'.*\^\^")),
    Case("unknown nested grouping column", "y ~ x + (1 | g/gg)", base, Raises(lmm.FormulaError, "gg")),
    Case("grouping factor as an expression", "y ~ x + (1 | log(g))", base,
         Raises(lmm.FormulaError, "grouping factor must be a column name")),
    Case("categorical response", "y ~ x + (1 | g)", lambda: base().assign(y=pd.Categorical(["lo", "hi"] * 30)),
         Raises(TypeError, "needs a numeric response")),
    Case("complex response", "y ~ x + (1 | g)", lambda: base().assign(y=base()["y"] + 1j),
         Raises(lmm.FormulaError, "complex")),
    Case("datetime predictor", "y ~ x + (1 | g)", lambda: base().assign(x=pd.date_range("2020", periods=N)),
         Raises(TypeError, "convert it to numbers")),
    Case("logical response is 0/1", "y ~ x + (1 | g)", lambda: base().assign(y=base()["y"] > 10), Fits()),
    # --- missing and non-finite values ----------------------------------------------
    Case("missing='typo'", "y ~ x + (1 | g)", base, Raises(ValueError, "missing must be 'drop' or 'raise'"),
         {"missing": "typo"}),
    Case("all responses missing", "y ~ x + (1 | g)", with_values("y", slice(None), np.nan),
         Raises(ValueError, "no rows left")),
    Case("missing grouping labels dropped", "y ~ x + (1 | g)", with_values("g", [0, 1, 2, 3, 4], None),
         Warns(r"5 of 60 rows dropped because of missing values \(g: 5\)", _nobs(55))),
    Case("missing='raise' names the columns", "y ~ x + (1 | g)", with_values("x", [3, 4], np.nan),
         Raises(ValueError, r"2 of 60 rows have missing values \(x: 2\)"), {"missing": "raise"}),
    Case("nullable Float64 response with NA", "y ~ x + (1 | g)",
         lambda: base().assign(y=pd.array([pd.NA] * 4 + list(base()["y"][4:]), dtype="Float64")),
         Warns(r"4 of 60 rows dropped .*\(y: 4\)", _nobs(56))),
    Case("NaN in an unused column keeps the rows", "y ~ x + (1 | g)", lambda: base().assign(other=np.nan),
         Fits(_nobs(60))),
    Case("log of a negative value is dropped like R", "log(y) ~ x + (1 | g)", with_values("y", [7], -1.0),
         Warns(r"1 of 60 rows have NaN values of the response 'log\(y\)' \(row labels 7\)", _nobs(59))),
    Case("log of a negative value with missing='raise'", "log(y) ~ x + (1 | g)", with_values("y", [7], -1.0),
         Raises(ValueError, r"NaN values of the response 'log\(y\)'"), {"missing": "raise"}),
    Case("an expression NaN everywhere", "y ~ sqrt(0 - w) + (1 | g)", base, Raises(ValueError, "no rows left")),
    Case("inf in the response", "y ~ x + (1 | g)", with_values("y", [11], np.inf),
         Raises(ValueError, r"response 'y' has infinite values in 1 row\(s\) \(row labels 11\)")),
    Case("-inf in a slope-only column", "y ~ 1 + (x | g)", with_values("x", [2], -np.inf),
         Raises(ValueError, "column 'x' of the random-effects term for 'g' has infinite values")),
    Case("log(0) response", "log(y) ~ x + (1 | g)", with_values("y", [0], 0.0), Raises(ValueError, "infinite")),
    # --- values the core cannot square --------------------------------------------------
    Case("predictor of magnitude 1e200", "y ~ x + (1 | g)", lambda: base().assign(x=base()["x"] * 1e200),
         Raises(ValueError, r"column 'x' has values of magnitude .*overflow.*rescale")),
    Case("predictor of magnitude 1e-200", "y ~ x + (1 | g)", lambda: base().assign(x=base()["x"] * 1e-200),
         Raises(ValueError, r"column 'x' has values of magnitude .*underflow")),
    Case("response of magnitude 1e200", "y ~ x + (1 | g)", lambda: base().assign(y=base()["y"] * 1e200),
         Raises(ValueError, r"response 'y' has values of magnitude")),
    Case("slope of magnitude 1e200", "y ~ 1 + (x | g)", lambda: base().assign(x=base()["x"] * 1e200),
         Raises(ValueError, r"random-effects term for 'g' has values of magnitude")),
    # --- responses without residual variation -----------------------------------------
    Case("constant response", "y ~ x + (1 | g)", lambda: base().assign(y=4.0),
         Raises(ValueError, r"response 'y' is constant \(every value is 4\)")),
    Case("all-zero response", "y ~ x + (1 | g)", lambda: base().assign(y=0.0), Raises(ValueError, "constant")),
    Case("response exactly linear in X", "y ~ x + (1 | g)", lambda: base().assign(y=1 + 2 * base()["x"]),
         Raises(ValueError, r"fitted exactly by the fixed effects \['\(Intercept\)', 'x'\]")),
    Case("response constant to 14 digits", "y ~ x + (1 | g)",
         lambda: base().assign(y=1.0 + 1e-14 * base()["x"] ** 2), Raises(ValueError, "fitted exactly")),
    Case("response constant within groups", "y ~ x + (1 | g)", _exact_within_groups,
         Raises(ValueError, r"fitted exactly by the fixed effects and the random-effects term \(1 \| g\)")),
    Case("response exact within groups, slope term", "y ~ x + (x | g)", _exact_slope_within_groups,
         Raises(ValueError, r"term \(x \| g\): within every level of 'g'")),
    Case("response = fixed slope + group constant", "y ~ x + (1 | g)", _exact_fixed_plus_group,
         Raises(ValueError, "fitted exactly by the fixed effects and the random-effects term")),
    # --- grouping factors -------------------------------------------------------------
    Case("one level left after dropping rows", "y ~ x + (1 | g)",
         lambda: base().assign(y=np.where(base()["g"] == "g3", base()["y"], np.nan)),
         Raises(ValueError, r"(?s)single level \('g3'\) in the 10 rows used.*\(1 \| g\)")),
    Case("interaction group with one level", "y ~ x + (1 | a:b)", lambda: base().assign(a="p", b=1),
         Raises(ValueError, "grouping factor 'a:b' has a single level")),
    Case("nested group with a level per row", "y ~ x + (1 | g/r)", lambda: base().assign(r=np.arange(N)),
         Raises(ValueError, r"'r:g' has 60 levels for 60 observations")),
    Case("as many random effects as rows", "y ~ x + (x | h)", lambda: base().assign(h=np.arange(N) // 2),
         Raises(ValueError, r"\(x \| h\) has 60 random effects for 60 observations")),
    Case("unused categories of a grouping factor", "y ~ x + (1 | g)", _unused_group_levels,
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    Case("boolean grouping column", "y ~ x + (1 | b)", lambda: base().assign(b=np.arange(N) % 2 == 0), Fits()),
    Case("float grouping column", "y ~ x + (1 | g)",
         lambda: base().assign(g=base()["g"].str[1:].astype(float) / 4),
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    Case("nullable Int64 grouping with NA", "y ~ x + (1 | g)",
         lambda: base().assign(g=pd.array([pd.NA] * 3 + list(base()["g"].str[1:].astype(int)[3:]), dtype="Int64")),
         Warns(r"3 of 60 rows dropped .*\(g: 3\)", _nobs(57))),
    # --- fixed effects ---------------------------------------------------------------
    Case("unused categories of a fixed factor", "y ~ f + (1 | g)", _unused_fixed_levels,
         Fits(_columns(["(Intercept)", "fb", "fc"]))),
    Case("all-zero predictor is dropped", "y ~ x + z + (1 | g)", lambda: base().assign(z=0.0),
         Warns(r"rank deficient so dropping 1 column\(s\): \['z'\]", _columns(["(Intercept)", "x"]))),
    Case("empty cells of an interaction are dropped", "y ~ f * k + (1 | g)",
         lambda: base().assign(k=np.where(base()["f"] == "a", "u", "v")),
         Warns(r"dropping 3 column\(s\): \['kv', 'fb:kv', 'fc:kv'\]")),
    Case("predictor in units 1e5 times too large", "y ~ x + (1 | g)", lambda: base().assign(x=base()["x"] * 1e5),
         Warns(r"Some predictor variables are on very different scales: consider rescaling \(standard deviations: "
               r"x \d\.\d+e\+0[45]\)")),
    Case("two predictors 1e4 apart", "y ~ x + v + (1 | g)",
         lambda: base().assign(v=np.cos(np.arange(N)) * 0.05, x=base()["x"] * 300),
         Warns(r"very different scales.*v 0\.0\d+, x \d+")),
    Case("factor columns do not count as badly scaled", "y ~ f + w + (1 | g)", base, Fits()),
    # --- rows and index ----------------------------------------------------------------
    Case("MultiIndex rows", "y ~ x + (1 | g)", lambda: base().set_index([np.arange(N) % 2, np.arange(N)]),
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    Case("duplicated index labels", "y ~ x + (1 | g)", lambda: base().set_axis(np.zeros(N, dtype=int)),
         Fits(_same_objective_as("y ~ x + (1 | g)", base))),
    # --- model size ----------------------------------------------------------------------
    Case("crossed 10^5 x 10^5 levels, exact method", "y ~ 1 + (1 | a) + (1 | b)", lambda: _crossed_huge(100_000),
         Raises(ValueError, r"dense block of \d+ x \d+ .*above the limit"), {"method": "exact"}),
    Case("max_dense_bytes below a tiny crossed model, exact method", "y ~ x + (1 | g) + (1 | f)", base,
         Raises(ValueError, "above the limit"), {"max_dense_bytes": 8, "method": "exact"}),
    Case("max_dense_bytes below a crossed model the matrix-free method does not fit", "y ~ x + (x | g) + (1 | f)",
         base, Raises(ValueError, "above the limit.*one column each"), {"max_dense_bytes": 8}),
]


def _run(case: Case):
    model = lmm.LinearMixedModel(case.formula, case.data(), **case.kwargs)
    return model, model.fit()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case):
    expect = case.expect
    if isinstance(expect, Raises):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. rows dropped on the way to the error
            with pytest.raises(expect.exc, match=expect.match):
                _run(case)
        return
    if isinstance(expect, Warns):
        with pytest.warns(UserWarning, match=expect.match):
            model, res = _run(case)
    else:
        model, res = _run(case)
    assert np.isfinite(res.objective) and np.isfinite(res.sigma) and np.all(np.isfinite(res.theta))
    assert np.all(np.isfinite(res.fixef)) and np.all(np.isfinite(res.se))
    if expect.check is not None:
        expect.check(model, res)


# --- warnings point at the caller ------------------------------------------------------------


def test_warnings_point_at_user_code():
    data = with_values("y", [0, 1], np.nan)()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lmm.LinearMixedModel("y ~ x + (1 | g)", data)
    assert [w.filename for w in caught] == [__file__]


# --- badly scaled predictors: warned about, fit still correct ---------------------------------


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("c", [1e-5, 1e5])
def test_rescaled_fixed_predictor_gives_the_same_fit(c, reml):
    data = base()
    ref = lmm.lmer("y ~ x + (1 | g)", data, REML=reml)
    with pytest.warns(UserWarning, match="very different scales"):
        res = lmm.lmer("y ~ x + (1 | g)", data.assign(x=data["x"] * c), REML=reml)
    # The deviance does not depend on the units of x; the REML criterion has
    # log|X'V⁻¹X|, which grows by 2 log c. β_x scales by 1/c; nothing else changes.
    assert res.objective == pytest.approx(ref.objective + (2 * np.log(c) if reml else 0.0), rel=1e-9)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=FIT_RTOL, atol=FIT_ATOL)
    assert res.fixef["x"] == pytest.approx(ref.fixef["x"] / c, rel=FIT_RTOL)
    assert res.fixef["(Intercept)"] == pytest.approx(ref.fixef["(Intercept)"], rel=FIT_RTOL)
    assert res.se["x"] == pytest.approx(ref.se["x"] / c, rel=FIT_RTOL)
    assert res.sigma == pytest.approx(ref.sigma, rel=FIT_RTOL)


@pytest.mark.parametrize("c", [1e-5, 1e5])
def test_rescaled_random_slope_gives_the_same_fit(c):
    data = base()
    ref = lmm.lmer("y ~ x + (x | g)", data, REML=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scale warning
        res = lmm.lmer("y ~ x + (x | g)", data.assign(x=data["x"] * c), REML=False)
    # λ's slope row scales by 1/c: the same model, the same deviance.
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    np.testing.assert_allclose(res.theta, ref.theta * np.array([1, 1 / c, 1 / c]), rtol=1e-4)
    assert res.converged


# --- extreme response scales ----------------------------------------------------------------------


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("c", [1e-8, 1e8])
def test_response_units_of_1e8_and_1e_minus_8_give_equivalent_fits(c, reml):
    sleep = lmm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    ref = lmm.lmer(formula, sleep, REML=reml)
    res = lmm.lmer(formula, sleep.assign(Reaction=sleep["Reaction"] * c), REML=reml)
    dof = ref.nobs - (len(ref.fixef) if reml else 0)
    assert res.objective == pytest.approx(ref.objective + 2 * dof * np.log(c), rel=1e-9)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=FIT_RTOL, atol=FIT_ATOL)
    np.testing.assert_allclose(res.fixef / c, ref.fixef, rtol=FIT_RTOL)
    assert res.sigma / c == pytest.approx(ref.sigma, rel=FIT_RTOL)
    np.testing.assert_allclose(res.ranef["Subject"] / c, ref.ranef["Subject"], rtol=1e-4, atol=1e-6 * ref.sigma)
    np.testing.assert_allclose(res.se / c, ref.se, rtol=FIT_RTOL)


# --- numerical hazards ----------------------------------------------------------------------------


def _finite_fit(res):
    assert np.isfinite(res.objective) and np.isfinite(res.sigma) and res.sigma > 0
    for values in (res.theta, res.fixef, res.se, res.optinfo.gradient):
        assert np.all(np.isfinite(values))
    for frame in res.ranef.values():
        assert np.all(np.isfinite(frame.to_numpy()))
    variances = res.varcorr[res.varcorr["var2"].isna()]
    assert np.all(np.isfinite(variances[["vcov", "sdcor"]].to_numpy()))


def test_singular_vector_fit_has_no_nan():
    data = base(3)
    rng = np.random.default_rng(33)
    data["y"] = data["x"] + rng.standard_normal(N)  # no group effect at all
    res = lmm.lmer("y ~ x + (x | g)", data)
    assert res.singular and res.converged
    _finite_fit(res)
    corr = res.varcorr[res.varcorr["var2"].notna()]["sdcor"].to_numpy()
    # A correlation with a zero standard deviation is undefined (NaN, as lme4's
    # VarCorr); any other is a number in [-1, 1].
    sds = res.varcorr[res.varcorr["var2"].isna() & (res.varcorr["grp"] == "g")]["sdcor"].to_numpy()
    if np.all(sds > 0):
        assert np.all(np.abs(corr) <= 1 + 1e-12)


@pytest.mark.parametrize("sign", [1, -1])
def test_perfect_correlation_is_a_finite_boundary_fit(sign):
    data = base(4)
    rng = np.random.default_rng(4)
    b = rng.standard_normal(NG)
    codes = data["g"].str[1:].astype(int).to_numpy()
    data["y"] = b[codes] * (1 + sign * data["x"]) + 0.05 * rng.standard_normal(N)
    res = lmm.lmer("y ~ x + (x | g)", data)
    _finite_fit(res)
    corr = res.varcorr.loc[res.varcorr["var2"].notna(), "sdcor"].item()
    assert corr == pytest.approx(sign, abs=1e-6)
    assert res.singular  # λ's second diagonal entry is at 0


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("formula", ["y ~ x + (x | g)", "y ~ x + (x || g) + (1 | f)", "y ~ x + (1 | g/f)"])
def test_objective_and_gradient_finite_at_zero_and_large_theta(formula, reml):
    model = lmm.LinearMixedModel(formula, base(5), REML=reml)
    lower = model.theta_lower
    for theta in (np.zeros(model.ntheta), np.where(lower == 0, 1e3, 0.5), np.where(lower == 0, 1e-6, -2.0)):
        value, grad = model.objective_and_gradient(theta)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), theta


def test_hundred_thousand_levels_of_one_factor():
    rng = np.random.default_rng(6)
    L, n = 100_000, 250_000
    g = rng.integers(0, L, n)
    x = rng.standard_normal(n)
    y = 0.7 * rng.standard_normal(L)[g] + 0.3 * x + rng.standard_normal(n)
    model = lmm.LinearMixedModel("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}))
    assert model.terms[0].nlevels == len(np.unique(g))
    assert model._core.tail_size == model.nfixed + 1  # block diagonal: nothing dense but [X y]
    res = model.fit()
    assert res.converged
    assert res.theta[0] == pytest.approx(0.7, rel=0.05)


@pytest.mark.parametrize("formula", ["strength ~ 1 + (1 | batch/cask)", "strength ~ 1 + (1 | batch) + (1 | sample)",
                                     "strength ~ 1 + (1 | sample) + (1 | batch)"])
def test_nested_factor_is_detected_and_kept_sparse(formula):
    """sample (30 levels) is nested in batch (10): written as a/b or not, no dense block but [X y]."""
    model = lmm.LinearMixedModel(formula, lmm.datasets.load("pastes"))
    assert model._core.nprefix == 2
    assert model._core.tail_size == model.nfixed + 1


def test_crossed_factor_goes_to_the_dense_tail():
    model = lmm.LinearMixedModel("diameter ~ 1 + (1 | plate) + (1 | sample)", lmm.datasets.load("penicillin"))
    assert model._core.nprefix == 1
    assert model._core.tail_size == 6 + model.nfixed + 1  # sample's 6 levels, then [X y]


_GUARD_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np, pandas as pd
    import lmm
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rng = np.random.default_rng(1)
    L = 100_000
    n = 3 * L
    d = pd.DataFrame({"y": rng.standard_normal(n), "a": rng.integers(0, L, n), "b": rng.integers(0, L, n)})
    try:
        lmm.LinearMixedModel("y ~ 1 + (1 | a) + (1 | b)", d, method="exact")
    except ValueError as err:
        print("ValueError:", err)
    except MemoryError:
        print("MemoryError")
        sys.exit(3)
    else:
        sys.exit(4)
    # the default takes the matrix-free method, within the same address space
    print("method:", lmm.LinearMixedModel("y ~ 1 + (1 | a) + (1 | b)", d).method)
""")


def test_crossed_guard_raises_before_allocating():
    """Two crossed factors of 10^5 levels need a ~70 GB dense block: the exact method's ValueError within 3 GiB
    of address space, and the default's matrix-free model within it too."""
    limit = 3 * 2**30
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, str(limit)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dense block" in proc.stdout
    assert "method: matrix-free" in proc.stdout


def test_cholesky_failure_inside_the_optimizer_is_explained():
    """A factorization failure at a trial θ never escapes as the core's bare RuntimeError."""
    rng = np.random.default_rng(8)
    i, j = np.arange(120) % 10, (np.arange(120) // 10) % 12
    data = pd.DataFrame({"y": rng.standard_normal(10)[i] + rng.standard_normal(12)[j], "i": i, "j": j})
    # y = a_i + b_j exactly: no single term fits it, so the design lets it through; the
    # optimizer drives θ → ∞ until the factorization fails.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = lmm.lmer("y ~ 1 + (1 | i) + (1 | j)", data)
        except ValueError as err:  # acceptable: a clear error that says what happened
            assert "exact" in str(err) or "residual variance" in str(err)
            return
    # also acceptable: a finite result that warns the residual variance is ~0
    assert np.all(np.isfinite(res.theta)) and np.isfinite(res.sigma)
    assert any("residual" in str(w.message) for w in caught)


def test_non_convergence_is_warned_about():
    """converged=False never comes silently."""
    with pytest.warns(UserWarning, match="converge"):
        res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"), maxiter=1)
    assert not res.converged


# --- large offsets: the core works on centred X and y --------------------------------------------


def test_large_response_offset_changes_only_the_intercept():
    sleep = lmm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    ref = lmm.lmer(formula, sleep)
    res = lmm.lmer(formula, sleep.assign(Reaction=sleep["Reaction"] + 1e7))
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=FIT_RTOL, atol=FIT_ATOL)
    assert res.fixef["(Intercept)"] - 1e7 == pytest.approx(ref.fixef["(Intercept)"], rel=1e-6)
    assert res.fixef["Days"] == pytest.approx(ref.fixef["Days"], rel=1e-6)
    assert res.sigma == pytest.approx(ref.sigma, rel=1e-6)


def test_response_with_six_digits_of_signal_is_fitted():
    # 1e12 + Reaction keeps about six significant digits of Reaction: lme4 fits it, so
    # does lmm (not "fitted exactly"); the answers are those of Reaction to that precision.
    sleep = lmm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    ref = lmm.lmer(formula, sleep)
    res = lmm.lmer(formula, sleep.assign(Reaction=sleep["Reaction"] + 1e12))
    assert res.converged
    assert res.objective == pytest.approx(ref.objective, rel=1e-7)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=1e-5, atol=1e-6)
    assert res.fixef["Days"] == pytest.approx(ref.fixef["Days"], rel=1e-5)


def test_large_predictor_offset_changes_only_the_intercept():
    sleep = lmm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (1 | Subject)"
    ref = lmm.lmer(formula, sleep)
    res = lmm.lmer(formula, sleep.assign(Days=sleep["Days"] + 1e6))
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=FIT_RTOL, atol=FIT_ATOL)
    assert res.fixef["Days"] == pytest.approx(ref.fixef["Days"], rel=1e-6)
    np.testing.assert_allclose(res.se["Days"], ref.se["Days"], rtol=1e-6)
