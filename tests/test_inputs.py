"""Column types, row order and bad input: clear errors, never crashes or silent changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm

FORMULA = "Reaction ~ Days + (Days | Subject)"
THETA = np.array([0.9, 0.05, 0.25])


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return lmm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def reference_objective(sleep) -> float:
    return lmm.LinearMixedModel(FORMULA, sleep).objective(THETA)


@pytest.mark.parametrize("kind", ["category", "string", "int", "object"])
def test_grouping_column_types_give_the_same_model(sleep, reference_objective, kind):
    data = sleep.copy()
    subject = data["Subject"].astype(str)
    data["Subject"] = {
        "category": subject.astype("category"),
        "string": subject.astype("string"),
        "int": subject.astype(int),
        "object": subject.astype(object),
    }[kind]
    assert lmm.LinearMixedModel(FORMULA, data).objective(THETA) == pytest.approx(reference_objective, rel=1e-12)


def test_row_order_and_index_do_not_matter(sleep, reference_objective):
    shuffled = sleep.sample(frac=1.0, random_state=3)
    shuffled.index = np.arange(1000, 1000 + len(shuffled))[::-1]
    model = lmm.LinearMixedModel(FORMULA, shuffled)
    assert model.objective(THETA) == pytest.approx(reference_objective, rel=1e-12)
    ordered = lmm.lmer(FORMULA, sleep)
    res = model.fit()
    np.testing.assert_allclose(res.theta, ordered.theta, rtol=1e-6)
    pd.testing.assert_frame_equal(res.ranef["Subject"].sort_index(), ordered.ranef["Subject"].sort_index(),
                                  rtol=1e-5)


def test_missing_values_are_dropped_with_a_warning(sleep):
    data = sleep.copy()
    data.loc[data.index[:3], "Reaction"] = np.nan
    data.loc[data.index[5], "Days"] = np.nan
    with pytest.warns(UserWarning, match="4 of 180 rows dropped"):
        model = lmm.LinearMixedModel(FORMULA, data)
    assert model.nobs == 176
    with pytest.raises(ValueError, match="missing values"):
        lmm.LinearMixedModel(FORMULA, data, missing="raise")


def test_unknown_column_is_named(sleep):
    with pytest.raises(lmm.FormulaError, match="Dayz"):
        lmm.LinearMixedModel("Reaction ~ Dayz + (1 | Subject)", sleep)
    with pytest.raises(lmm.FormulaError, match="Subjekt"):
        lmm.LinearMixedModel("Reaction ~ Days + (1 | Subjekt)", sleep)


def test_malformed_formula_says_where(sleep):
    with pytest.raises(lmm.FormulaError) as err:
        lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject", sleep)
    assert "^" in str(err.value)


def test_single_level_grouping_factor(sleep):
    data = sleep.assign(one="a")
    with pytest.raises(ValueError, match="single level"):
        lmm.LinearMixedModel("Reaction ~ Days + (1 | one)", data)


def test_more_random_effects_than_observations(sleep):
    data = sleep.assign(row=np.arange(len(sleep)))
    with pytest.raises(ValueError, match="levels for 180 observations"):
        lmm.LinearMixedModel("Reaction ~ Days + (1 | row)", data)
    small = sleep.iloc[:12]
    with pytest.raises(ValueError, match="random effects for 12 observations"):
        lmm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", small.assign(Subject=np.arange(12) % 6))


def test_non_numeric_response(sleep):
    data = sleep.assign(label=sleep["Subject"].astype(str) + "x")
    with pytest.raises((TypeError, ValueError), match="label"):
        lmm.LinearMixedModel("label ~ Days + (1 | Subject)", data)


def test_infinite_values_raise(sleep):
    data = sleep.copy()
    data.loc[data.index[0], "Days"] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        lmm.LinearMixedModel(FORMULA, data)


def test_rank_deficient_X_drops_columns_with_a_warning(sleep):
    data = sleep.assign(Days2=2.0 * sleep["Days"])
    with pytest.warns(UserWarning, match="rank deficient.*Days2"):
        res = lmm.lmer("Reaction ~ Days + Days2 + (Days | Subject)", data)
    assert list(res.fixef.index) == ["(Intercept)", "Days"]
    assert res.objective == pytest.approx(lmm.lmer(FORMULA, sleep).objective, rel=1e-8)


def test_theta_of_wrong_length_or_out_of_bounds(sleep):
    model = lmm.LinearMixedModel(FORMULA, sleep)
    with pytest.raises(ValueError, match="3"):
        model.objective([1.0, 0.0])
    with pytest.raises(ValueError, match="bounds"):
        model.objective([-1.0, 0.0, 1.0])


def test_dense_block_limit_is_reported():
    data = lmm.datasets.load("penicillin")
    with pytest.raises(ValueError, match="dense block"):
        lmm.LinearMixedModel("diameter ~ 1 + (1 | plate) + (1 | sample)", data, max_dense_bytes=100, method="exact")
    # the default takes the matrix-free method past the limit instead
    model = lmm.LinearMixedModel("diameter ~ 1 + (1 | plate) + (1 | sample)", data, max_dense_bytes=100)
    assert model.method == "matrix-free"


# --- data frames other than pandas ---------------------------------------------------------


def test_polars_frame_gives_the_same_fit(sleep, reference_objective):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({c: sleep[c].to_numpy() for c in sleep.columns})
    m = lmm.LinearMixedModel(FORMULA, frame)
    assert m.objective(THETA) == pytest.approx(reference_objective, rel=1e-12)
    assert lmm.LinearMixedModel(FORMULA, frame.lazy()).objective(THETA) == pytest.approx(reference_objective,
                                                                                         rel=1e-12)
    res = m.fit()
    np.testing.assert_allclose(res.predict(frame.head(5)), lmm.lmer(FORMULA, sleep).predict(sleep.head(5)),
                               rtol=1e-10)


def test_polars_nulls_are_missing_and_enum_keeps_its_level_order():
    pl = pytest.importorskip("polars")
    rng = np.random.default_rng(1)
    n = 60
    g = rng.integers(0, 6, n)
    f = np.array(["lo", "mid", "hi"])[rng.integers(0, 3, n)]
    y = rng.normal(size=n) + g
    frame = pl.DataFrame({"y": [None] + list(y[1:]), "f": pl.Series(f, dtype=pl.Enum(["lo", "mid", "hi"])),
                          "g": [str(v) for v in g]})
    with pytest.warns(UserWarning, match="1 of 60 rows dropped"):
        res = lmm.lmer("y ~ f + (1 | g)", frame)
    # The Enum's order gives the levels (R's sort would put "hi" first).
    assert list(res.fixef.index) == ["(Intercept)", "fmid", "fhi"]
    want = lmm.lmer("y ~ f + (1 | g)", pd.DataFrame({"y": y, "f": pd.Categorical(f, categories=["lo", "mid", "hi"]),
                                                     "g": g.astype(str)}).iloc[1:])
    assert res.objective == pytest.approx(want.objective, rel=1e-12)


def test_dict_of_columns(sleep, reference_objective):
    columns = {c: sleep[c].to_numpy() for c in sleep.columns}
    assert lmm.LinearMixedModel(FORMULA, columns).objective(THETA) == pytest.approx(reference_objective, rel=1e-12)


def test_pyarrow_table(sleep, reference_objective):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({c: sleep[c].to_numpy() for c in sleep.columns})
    assert lmm.LinearMixedModel(FORMULA, table).objective(THETA) == pytest.approx(reference_objective, rel=1e-12)


def test_data_that_is_not_tabular_is_refused():
    with pytest.raises(TypeError, match="data is None"):
        lmm.lmer(FORMULA, None)
    with pytest.raises(TypeError, match="without column names"):
        lmm.lmer(FORMULA, np.zeros((3, 3)))
