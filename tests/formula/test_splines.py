"""``ns()`` and ``bs()`` against R's splines package (tests/reference/splines_reference.json,
written by make_splines_reference.R): basis values, knots, column names, R's warnings, and
the basis on new values (R's ``predict``), beyond the boundary knots included."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm.formula import FormulaError, ModelFrameState, model_matrix, parse_rhs
from lmm.formula.splines import bs_basis, ns_basis, r_quantile, spline_design

REF = json.loads((pathlib.Path(__file__).parent.parent / "reference" / "splines_reference.json").read_text())
BASES = {b["id"]: b for b in REF["bases"]}

BASIS = 1e-10   # basis values, absolute (they are O(1); extrapolated ones relative)
KNOTS = 1e-14   # knots: R's quantiles, relative


def _vector(name: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in REF["vectors"][name]], dtype=np.float64)


def _matrix(rows: list) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def _messages(caught: list) -> set[str]:
    return {str(w.message) for w in caught}


def _evaluate(case: dict, x: np.ndarray, state: ModelFrameState) -> tuple[np.ndarray, list[str], set[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        terms = state.terms if state.frozen else parse_rhs("0 + " + case["call"])
        X, names = model_matrix(terms, pd.DataFrame({"x": x}), state=state)
    return X, names, _messages(caught)


@pytest.mark.parametrize("bid", list(BASES))
def test_basis_matches_r(bid):
    case = BASES[bid]
    state = ModelFrameState()
    X, names, warned = _evaluate(case, _vector(case["vector"]), state)
    assert names == case["columns"]
    np.testing.assert_allclose(X, _matrix(case["values"]), rtol=BASIS, atol=BASIS)
    assert warned == set(case["warnings"])
    basis = state.transforms.recorded(parse_rhs(case["call"]).var_nodes[0], case["call"][:2])
    np.testing.assert_allclose(basis.knots, case["knots"], rtol=KNOTS, atol=0)
    np.testing.assert_allclose(basis.boundary, case["boundary_knots"], rtol=KNOTS, atol=0)
    assert (basis.intercept, basis.degree) == (case["intercept"], case["degree"])


@pytest.mark.parametrize("bid", list(BASES))
def test_new_values_use_the_fitting_knots_as_r_predict(bid):
    case = BASES[bid]
    state = ModelFrameState()
    _evaluate(case, _vector(case["vector"]), state)
    new_x = np.array([np.nan if v is None else v for v in case["new_x"]], dtype=np.float64)
    X, names, warned = _evaluate(case, new_x, state)
    assert names == case["columns"]
    np.testing.assert_allclose(X, _matrix(case["predict"]), rtol=BASIS, atol=BASIS)
    assert warned == set(case["predict_warnings"])


def test_r_quantile_is_type_7():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    probs = np.array([0.0, 0.1, 1 / 3, 0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(r_quantile(x, probs), np.quantile(x, probs), rtol=1e-15)


def test_spline_design_sums_to_one_and_refuses_points_outside():
    knots = [0, 0, 0, 0, 1.5, 4, 10, 10, 10, 10]
    x = np.linspace(0, 10, 41)
    B = spline_design(knots, x, 4)
    np.testing.assert_allclose(B.sum(axis=1), 1.0, rtol=1e-14)
    assert B[-1, -1] == 1.0  # the right boundary belongs to the last interval (R's rule)
    # first derivatives: central differences of the values
    h = 1e-6
    mid = x[1:-1]
    fd = (spline_design(knots, mid + h, 4) - spline_design(knots, mid - h, 4)) / (2 * h)
    np.testing.assert_allclose(spline_design(knots, mid, 4, 1), fd, atol=1e-6)
    with pytest.raises(ValueError, match="range"):
        spline_design(knots, [10.5], 4)


def test_ns_columns_have_zero_second_derivative_at_the_boundary_and_are_linear_beyond():
    x = _vector("unif")
    _, basis = ns_basis(x, df=4)
    lo, hi = basis.boundary
    for side, step in ((lo, -1.0), (hi, 1.0)):
        pts = side + step * np.array([0.5, 1.0, 1.5])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # ns() extrapolates without a warning, as R
            vals = basis.evaluate(pts)
        np.testing.assert_allclose(vals[2] - vals[1], vals[1] - vals[0], atol=1e-12)


def test_state_keeps_the_knots_of_the_fitting_data():
    train = pd.DataFrame({"x": _vector("unif")})
    state = ModelFrameState()
    X, _ = model_matrix("ns(x, df = 3) + bs(x, df = 4)", train, state=state)
    shifted = pd.DataFrame({"x": train["x"].to_numpy()[:7] + 0.01})
    Xn, _ = model_matrix(state.terms, shifted, state=state)
    # knots from the 7 new rows would differ: the fitting data's are used
    assert not np.allclose(Xn, model_matrix("ns(x, df = 3) + bs(x, df = 4)", shifted)[0])
    np.testing.assert_allclose(Xn, model_matrix("ns(x, df = 3) + bs(x, df = 4)", train)[0][:7], atol=0.05)
    Xsame, _ = model_matrix(state.terms, train, state=state)
    np.testing.assert_array_equal(Xsame, X)


def test_one_column_is_named_by_the_call_and_interactions_by_parts():
    d = pd.DataFrame({"x": _vector("unif"), "f": np.where(np.arange(40) % 2, "b", "a")})
    assert model_matrix("ns(x)", d)[1] == ["(Intercept)", "ns(x)"]
    assert model_matrix("ns(x, df = 2):f", d)[1] == ["(Intercept)", "ns(x, df = 2)1:fa", "ns(x, df = 2)2:fa",
                                                     "ns(x, df = 2)1:fb", "ns(x, df = 2)2:fb"]
    # R's deparse of the call names the columns, whatever the spacing typed
    assert model_matrix("bs(x,knots=c(-3,2),degree=2)", d.assign(x=d.x - 5))[1][1] == \
        "bs(x, knots = c(-3, 2), degree = 2)1"


def test_missing_values_give_missing_rows_and_knots_from_the_others():
    x = _vector("na")
    X, _ = model_matrix("0 + ns(x, df = 3)", pd.DataFrame({"x": x}))
    assert np.isnan(X[np.isnan(x)]).all() and not np.isnan(X[~np.isnan(x)]).any()
    _, basis = ns_basis(x[~np.isnan(x)], df=3)
    np.testing.assert_array_equal(X[~np.isnan(x)], basis.evaluate(x[~np.isnan(x)]))


@pytest.mark.parametrize("rhs, message", [
    ("ns(x, knots = 12)", r"knots \[12.0\] are outside the boundary knots"),
    ("bs(x, knots = c(1, 20))", "outside the boundary knots"),
    ("ns(x, Boundary.knots = c(1, 2, 3))", "two numbers"),
    ("bs(x, degree = 0)", "'degree' must be integer >= 1"),
    ("ns(x, df = 2.5)", "whole number"),
    ("ns(x, knots = quantile(x, 0.5))", "a number or numbers"),
    ("bs(x, df = 3, Boundary.knots = c(4, 4))", "boundary knots are equal"),
    ("ns(c0, df = 2)", "boundary knots are equal"),
    ("ns(xr, df = 3)", "undefined"),          # knots at the right boundary: R's qr() fails there too
    ("ns(xi, df = 3)", "finite"),
    ("ns(x, foo = 3)", "has no argument 'foo'"),
])
def test_bad_arguments_give_clear_errors(rhs, message):
    d = pd.DataFrame({"x": np.linspace(0, 10, 8), "c0": 3.0, "xr": _vector("ties_right"),
                      "xi": [0, 1, 2, 3, 4, 5, 6, np.inf]})
    with pytest.raises(FormulaError, match=message):
        model_matrix(rhs, d)


def test_df_too_small_warns_as_r():
    with pytest.warns(UserWarning, match="'df' was too small; have used 3"):
        X, _ = bs_basis(np.linspace(0, 1, 9), df=1)
    assert X.shape == (9, 3)


def test_splines_in_a_fit_predict_the_training_rows_as_fitted():
    d = lmm.datasets.load("sleepstudy")
    res = lmm.lmer("Reaction ~ ns(Days, df = 3) + (ns(Days, df = 2) | Subject)", d)
    np.testing.assert_allclose(res.predict(d), res.fitted(), rtol=1e-12)
    assert list(res.fixef.index) == ["(Intercept)", "ns(Days, df = 3)1", "ns(Days, df = 3)2", "ns(Days, df = 3)3"]
