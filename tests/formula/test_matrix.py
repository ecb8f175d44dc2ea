"""Model matrices: R's column names, order, contrasts and values (``model.matrix``).

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmm.formula import FormulaError, model_matrix, parse_formula


def names(rhs: str, data: pd.DataFrame) -> list[str]:
    return model_matrix(rhs, data)[1]


def test_single_level_factor_rejected_like_r():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "u": ["one"] * 3})
    for rhs in ("u", "0 + u", "x + u"):  # R: contrasts can be applied only to factors with 2 or more levels
        with pytest.raises(FormulaError, match="2 or more levels"):
            model_matrix(rhs, df)



R_NAMES = {  # R 4.2.2: colnames(model.matrix(~ rhs, frame))
    'a*b': ['(Intercept)', 'aq', 'bs', 'bt', 'aq:bs', 'aq:bt'],
    'b:a + a': ['(Intercept)', 'aq', 'bs:ap', 'bt:ap', 'bs:aq', 'bt:aq'],
    'a:b + b': ['(Intercept)', 'bs', 'bt', 'aq:br', 'aq:bs', 'aq:bt'],
    'x:a': ['(Intercept)', 'x:ap', 'x:aq'],
    'x + x:a': ['(Intercept)', 'x', 'x:aq'],
    'a:x': ['(Intercept)', 'ap:x', 'aq:x'],
    '0 + a': ['ap', 'aq'],
    '0 + a + b': ['ap', 'aq', 'bs', 'bt'],
    '0 + x + a': ['x', 'ap', 'aq'],
    '0 + x:a': ['x:ap', 'x:aq'],
    'a - 1': ['ap', 'aq'],
    '(a+b+c)^2': ['(Intercept)', 'aq', 'bs', 'bt', 'cn', 'aq:bs', 'aq:bt', 'aq:cn', 'bs:cn', 'bt:cn'],
    '(a+b+x)^3':
        ['(Intercept)', 'aq', 'bs', 'bt', 'x', 'aq:bs', 'aq:bt', 'aq:x', 'bs:x', 'bt:x', 'aq:bs:x', 'aq:bt:x'],
    'a/b': ['(Intercept)', 'aq', 'ap:bs', 'aq:bs', 'ap:bt', 'aq:bt'],
    '(a+x)/c': ['(Intercept)', 'aq', 'x', 'ap:x:cm', 'aq:x:cm', 'ap:x:cn', 'aq:x:cn'],
    'a %in% b': ['(Intercept)', 'ap:br', 'aq:br', 'ap:bs', 'aq:bs', 'ap:bt', 'aq:bt'],
    'I(x^2)': ['(Intercept)', 'I(x^2)'],
    'I(x ^ 2)+I(x**3)': ['(Intercept)', 'I(x^2)', 'I(x^3)'],
    'poly(x, 2)': ['(Intercept)', 'poly(x, 2)1', 'poly(x, 2)2'],
    'poly(x,degree=2)': ['(Intercept)', 'poly(x, degree = 2)1', 'poly(x, degree = 2)2'],
    'poly(x, 2, raw=TRUE)': ['(Intercept)', 'poly(x, 2, raw = TRUE)1', 'poly(x, 2, raw = TRUE)2'],
    'poly(x, 1)': ['(Intercept)', 'poly(x, 1)'],
    'scale(x)': ['(Intercept)', 'scale(x)'],
    'scale(x):a': ['(Intercept)', 'scale(x):ap', 'scale(x):aq'],
    'log(x+3)': ['(Intercept)', 'log(x + 3)'],
    'factor(n)': ['(Intercept)', 'factor(n)2', 'factor(n)3', 'factor(n)1e+05'],
    'l': ['(Intercept)', 'lTRUE'],
    '0 + l': ['lFALSE', 'lTRUE'],
    'l:x': ['(Intercept)', 'lFALSE:x', 'lTRUE:x'],
    'x - 1 + l': ['x', 'lFALSE', 'lTRUE'],
    'factor(l)': ['(Intercept)', 'factor(l)TRUE'],
    'I(x > 0)': ['(Intercept)', 'I(x > 0)TRUE'],
    'o': ['(Intercept)', 'o.L', 'o.Q'],
    '0 + o': ['olo', 'omid', 'ohi'],
    'o:x': ['(Intercept)', 'olo:x', 'omid:x', 'ohi:x'],
    'a:o': ['(Intercept)', 'ap:olo', 'aq:olo', 'ap:omid', 'aq:omid', 'ap:ohi', 'aq:ohi'],
    'x*a - a': ['(Intercept)', 'x', 'x:aq'],
    'a*b - a': ['(Intercept)', 'bs', 'bt', 'aq:br', 'aq:bs', 'aq:bt'],
    '-1 + a:b': ['ap:br', 'aq:br', 'ap:bs', 'aq:bs', 'ap:bt', 'aq:bt'],
    'a:b': ['(Intercept)', 'ap:br', 'aq:br', 'ap:bs', 'aq:bs', 'ap:bt', 'aq:bt'],
    's': ['(Intercept)', 'scat', 'sCat', 'sdog'],
    'x*z': ['(Intercept)', 'x', 'z', 'x:z'],
    'z*x + x': ['(Intercept)', 'z', 'x', 'z:x'],
    'exp(x/10) + sqrt(z) + abs(x) + log(z+1, 2)':
        ['(Intercept)', 'exp(x/10)', 'sqrt(z)', 'abs(x)', 'log(z + 1, 2)'],
    'x + I(2*x - 1)': ['(Intercept)', 'x', 'I(2 * x - 1)'],
    'I(-x)': ['(Intercept)', 'I(-x)'],
    'log(x + 3):a': ['(Intercept)', 'log(x + 3):ap', 'log(x + 3):aq'],
    '(x + z):a': ['(Intercept)', 'x:ap', 'x:aq', 'z:ap', 'z:aq'],
    'a + x:b': ['(Intercept)', 'aq', 'x:br', 'x:bs', 'x:bt'],
    'x:b + a': ['(Intercept)', 'aq', 'x:br', 'x:bs', 'x:bt'],
    'a*b*c - a:b:c': ['(Intercept)', 'aq', 'bs', 'bt', 'cn', 'aq:bs', 'aq:bt', 'aq:cn', 'bs:cn', 'bt:cn'],
    'a + b %in% a': ['(Intercept)', 'aq', 'ap:bs', 'aq:bs', 'ap:bt', 'aq:bt'],
    'C(a, contr.treatment)': ['(Intercept)', 'C(a, contr.treatment)2'],
    'C(a, treatment)': ['(Intercept)', 'C(a, treatment)q'],
    'C(b, contr.sum)': ['(Intercept)', 'C(b, contr.sum)1', 'C(b, contr.sum)2'],
    'C(b, helmert)': ['(Intercept)', 'C(b, helmert)1', 'C(b, helmert)2'],
    '0 + C(a, contr.sum)': ['C(a, contr.sum)p', 'C(a, contr.sum)q'],
    'relevel(a, ref="q")': ['(Intercept)', 'relevel(a, ref = "q")p'],
    '1': ['(Intercept)'],
    '0 + x': ['x'],
    'x + 0': ['x'],
    'x - 1 + 1': ['(Intercept)', 'x'],
    '(a + b)^2 - a:b': ['(Intercept)', 'aq', 'bs', 'bt'],
    'a*x - 1': ['ap', 'aq', 'x', 'aq:x'],
    '0 + x:a + a': ['ap', 'aq', 'x:ap', 'x:aq'],
    'x + 0 + a:x + a': ['x', 'ap', 'aq', 'x:aq'],
    'x + poly(z,2):a':
        ['(Intercept)', 'x', 'poly(z, 2)1:ap', 'poly(z, 2)2:ap', 'poly(z, 2)1:aq', 'poly(z, 2)2:aq'],
    'I(x^2.0) + I(x*1e6) + I(x*100000) + I(x^-1) + I(-x^2) + I(x^(1/2)) + I((x+1)^2)':
        ['(Intercept)', 'I(x^2)', 'I(x * 1e+06)', 'I(x * 1e+05)', 'I(x^-1)', 'I(-x^2)', 'I(x^(1/2))', 'I((x + 1)^2)'],
    'I(x %% 2) + I(1/x) + I(x - -1) + exp(-x) + I(x == 1.5) + I(x*0.1) + I(x*123456789) + I(x + 0.000012)':
        ['(Intercept)', 'I(x%%2)', 'I(1/x)', 'I(x - -1)', 'exp(-x)', 'I(x == 1.5)TRUE', 'I(x * 0.1)',
         'I(x * 123456789)', 'I(x + 1.2e-05)'],
    'I(!l) + I(x > 1 & z > 1)': ['(Intercept)', 'I(!l)TRUE', 'I(x > 1 & z > 1)TRUE'],
    'log(x+3, base=10) + I(x*2L)': ['(Intercept)', 'log(x + 3, base = 10)', 'I(x * 2)'],
}


@pytest.mark.parametrize("rhs", list(R_NAMES))
def test_column_names_match_r(frame, rhs):
    assert names(rhs, frame) == R_NAMES[rhs]


def test_non_syntactic_names_get_backticks():
    df = pd.DataFrame({"my col": [1.0, 2.0], "2x": [3.0, 4.0]})
    assert names("`my col` + log(`2x`)", df) == ["(Intercept)", "`my col`", "log(`2x`)"]  # R


def test_factor_of_numbers_labels_like_r():
    df = pd.DataFrame({"n": [10, 2, 3, 1e5, 0.25, -1], "k": np.arange(1, 7)})
    assert names("factor(n)", df) == ["(Intercept)"] + [f"factor(n){v}" for v in ("0.25", "2", "3", "10", "1e+05")]
    # integer columns keep integer labels (R's as.character of an integer)
    df2 = pd.DataFrame({"k": [100000, 1, 2]})
    assert names("factor(k)", df2) == ["(Intercept)", "factor(k)2", "factor(k)100000"]


def test_string_levels_sorted_like_r():
    # R's sort() with ICU collation (R 4.2, C.UTF-8 locale):
    r_order = ["_x", "a", "A", "a b", "a_b", "a-b", "a.b", "a1", "A1", "a10", "a9", "aa", "aA", "Aa", "AA",
               "ab", "aB", "Ab", "AB", "ab c", "ab-c", "abc", "b", "B", "e", "E", "f", "x_", "X_"]
    shuffled = list(reversed(r_order))
    X, got = model_matrix("0 + s", pd.DataFrame({"s": shuffled}))
    assert got == ["s" + v for v in r_order]
    assert np.array_equal(X, np.fliplr(np.eye(len(r_order))))


def test_values_interaction_and_factor(frame):
    X, nm = model_matrix("x*a + b", frame)
    assert nm == ["(Intercept)", "x", "aq", "bs", "bt", "x:aq"]  # R
    expected = np.array(  # R
        [
            [1, 1.50, 0, 0, 0, 0],
            [1, 2.00, 1, 0, 0, 2],
            [1, 3.25, 0, 1, 0, 0],
            [1, -1.0, 1, 1, 0, -1],
            [1, 0.50, 0, 0, 1, 0],
            [1, 4.00, 1, 0, 1, 4],
        ]
    )
    np.testing.assert_array_equal(X, expected)
    assert X.dtype == np.float64 and X.flags.f_contiguous


def test_ordered_factor_polynomial_contrasts(frame):
    X, _ = model_matrix("o", frame)
    s2, s6 = np.sqrt(0.5), np.sqrt(1 / 6)
    lin = {"lo": -s2, "mid": 0.0, "hi": s2}  # R: contr.poly(3)
    quad = {"lo": s6, "mid": -2 * s6, "hi": s6}
    np.testing.assert_allclose(X[:, 1], [lin[v] for v in frame["o"]], atol=1e-15)
    np.testing.assert_allclose(X[:, 2], [quad[v] for v in frame["o"]], atol=1e-15)


def test_sum_and_helmert_contrasts(frame):
    X, _ = model_matrix("C(b, contr.helmert) + C(b, contr.sum)", frame)
    helmert = {"r": [-1, -1], "s": [1, -1], "t": [0, 2]}  # R: contr.helmert(3)
    sums = {"r": [1, 0], "s": [0, 1], "t": [-1, -1]}  # R: contr.sum(3)
    np.testing.assert_array_equal(X[:, 1:3], [helmert[v] for v in frame["b"]])
    np.testing.assert_array_equal(X[:, 3:5], [sums[v] for v in frame["b"]])


def test_bool_column_is_logical_factor():
    df = pd.DataFrame({"t": [True, True, True]})
    X, nm = model_matrix("t", df)  # both levels exist even when only TRUE occurs (R)
    assert nm == ["(Intercept)", "tTRUE"]
    np.testing.assert_array_equal(X[:, 1], [1.0, 1.0, 1.0])


def test_categorical_category_order_and_unused_levels_dropped():
    f = pd.Categorical(["lo", "hi", "hi"], categories=["zz", "lo", "hi"])
    X, nm = model_matrix("f", pd.DataFrame({"f": f}))
    assert nm == ["(Intercept)", "fhi"]
    np.testing.assert_array_equal(X[:, 1], [0.0, 1.0, 1.0])


def test_missing_values_give_nan():
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0], "f": pd.Categorical(["a", None, "b"])})
    X, nm = model_matrix("x + f", df)
    assert nm == ["(Intercept)", "x", "fb"]
    assert np.isnan(X[1, 1]) and np.isnan(X[1, 2]) and not np.isnan(X[[0, 2]]).any()


def test_nullable_integer_and_string_dtypes():
    df = pd.DataFrame({"k": pd.array([1, None, 3], dtype="Int64"), "s": pd.array(["b", "a", "b"], dtype="string")})
    X, nm = model_matrix("k + s", df)
    assert nm == ["(Intercept)", "k", "sb"]
    np.testing.assert_array_equal(X[[0, 2], 1], [1.0, 3.0])
    assert np.isnan(X[1, 1])


def test_empty_and_intercept_only():
    df = pd.DataFrame({"x": [1.0, 2.0]})
    X, nm = model_matrix("0", df)
    assert X.shape == (2, 0) and nm == []
    X, nm = model_matrix("~ 1", df)
    assert nm == ["(Intercept)"] and X.tolist() == [[1.0], [1.0]]


def test_random_term_exprs_build_lme4_columns():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "f": ["u", "v", "w"]})
    p = parse_formula("y ~ (x || g) + (f || h) + (0 + f | g) + (f | g)")
    got = [model_matrix(t.expr, df)[1] for t in p.random]
    assert got == [  # R: lFormula(...)$reTrms$cnms
        ["(Intercept)"], ["x"], ["(Intercept)"], ["fu", "fv", "fw"], ["fu", "fv", "fw"],
        ["(Intercept)", "fv", "fw"],
    ]


def test_large_frame_is_fast_enough_and_fortran():
    n = 200_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=n), "Days": rng.integers(0, 10, n),
                       "f": pd.Categorical(rng.choice(list("abc"), n))})
    X, nm = model_matrix("Days * f + I(Days^2)", df)
    assert X.shape == (n, 7) and X.flags.f_contiguous
    assert nm == ["(Intercept)", "Days", "fb", "fc", "I(Days^2)", "Days:fb", "Days:fc"]
    np.testing.assert_array_equal(X[:, 6], df.Days * (df.f == "c"))
