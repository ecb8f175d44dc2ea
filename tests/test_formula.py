"""Formula parsing and model matrices against R (lme4 1.1-31, R 4.2.2).

Every expected column name, level order and value marked "R" below was produced once by
R's ``model.matrix`` / lme4's ``findbars`` on the same small frame; the tests do not
need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmm.formula import (
    FormulaError,
    FormulaNotImplementedError,
    FormulaTypeError,
    ParsedFormula,
    RandomTerm,
    check_columns,
    evaluate_response,
    grouping_factor,
    model_matrix,
    parse_formula,
    required_columns,
)

# Tolerance for values R printed to 7-8 significant digits.
R_PRINT_ATOL = 5e-8


@pytest.fixture
def frame() -> pd.DataFrame:
    """The frame used for the R runs (factors as pandas Categoricals, s as strings)."""
    d = pd.DataFrame(
        {
            "x": [1.5, 2, 3.25, -1, 0.5, 4],
            "z": [2.0, 1, 0, 3, 5, 1],
            "n": [1, 2, 3, 1, 2, 1e5],
            "a": pd.Categorical(list("pqpqpq")),
            "b": pd.Categorical(list("rrsstt")),
            "c": pd.Categorical(list("mnnmmn")),
            "s": ["dog", "cat", "Cat", "dog", "ant", "cat"],
            "l": [True, False, True, True, False, False],
        }
    )
    d["o"] = pd.Categorical(["lo", "mid", "hi", "lo", "mid", "hi"], categories=["lo", "mid", "hi"], ordered=True)
    return d


def names(rhs: str, data: pd.DataFrame) -> list[str]:
    return model_matrix(rhs, data)[1]


# --------------------------------------------------------------------------- parsing


def terms(text: str) -> list[tuple[str, str, tuple[str, ...], bool]]:
    return [(t.expr, t.name, t.factors, t.double_bar) for t in parse_formula(text).random]


def test_sleepstudy_formula():
    p = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert p == ParsedFormula(
        text="Reaction ~ Days + (Days | Subject)",
        response="Reaction",
        fixed="Days",
        random=(RandomTerm("Days", ("Subject",), "Subject", False),),
    )


@pytest.mark.parametrize(
    "text, fixed",
    [
        ("y ~ (1|g)", "1"),
        ("y ~ 1 + x + (1|g)", "1 + x"),
        ("y ~ 0 + x + (1|g)", "0 + x"),
        ("y ~ x - 1 + (1|g)", "x - 1"),
        ("y ~ (1|g) + 0", "0"),
        ("y ~ -1 + (1|g)", "-1"),
        ("y ~ (1|g) + x + (1|h) + z", "x + z"),
        ("y ~ x*f + I(x^2) + (x|g)", "x * f + I(x^2)"),
    ],
)
def test_fixed_part_has_bars_removed(text, fixed):
    assert parse_formula(text).fixed == fixed


def test_response_expression():
    p = parse_formula("log(Reaction) ~ Days + (1 | Subject)")
    assert p.response == "log(Reaction)"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("y ~ (x | g)", [("x", "g", ("g",), False)]),
        ("y ~ (1 + x | g)", [("1 + x", "g", ("g",), False)]),
        ("y ~ (0 + x | g)", [("0 + x", "g", ("g",), False)]),
        ("y ~ (-1 + x | g)", [("-1 + x", "g", ("g",), False)]),
        ("y ~ (log(x) | g) + (I(x^2) | h)", [("log(x)", "g", ("g",), False), ("I(x^2)", "h", ("h",), False)]),
        ("y ~ (x | g) + (1 | h) + (0 + z | g)",
         [("x", "g", ("g",), False), ("1", "h", ("h",), False), ("0 + z", "g", ("g",), False)]),
        ("y ~ (1 | a:b)", [("1", "a:b", ("a", "b"), False)]),
    ],
)
def test_random_terms(text, expected):
    assert terms(text) == expected


# lme4 1.1-31 findbars(): names and order (R).
@pytest.mark.parametrize(
    "text, expected",
    [
        ("y ~ x + (1|batch/cask)", [("1", "cask:batch", ("cask", "batch"), False),
                                    ("1", "batch", ("batch",), False)]),
        ("y ~ x + (1|a/b/c)", [("1", "c:(b:a)", ("c", "b", "a"), False), ("1", "b:a", ("b", "a"), False),
                               ("1", "a", ("a",), False)]),
        ("y ~ x + (x|a/b)", [("x", "b:a", ("b", "a"), False), ("x", "a", ("a",), False)]),
        ("y ~ (1|a/b:c)", [("1", "b:c:a", ("b", "c", "a"), False), ("1", "a", ("a",), False)]),
        ("y ~ ((1|g))", [("1", "g", ("g",), False)]),
        ("y ~ x + ((1|g) + (1|h))", [("1", "g", ("g",), False), ("1", "h", ("h",), False)]),
    ],
)
def test_nested_groups_follow_lme4(text, expected):
    assert terms(text) == expected


# lme4 1.1-31 expandDoubleVerts() + findbars() (R).
@pytest.mark.parametrize(
    "text, exprs",
    [
        ("y ~ 1 + (1 + x + z || g)", ["1", "0 + x", "0 + z"]),
        ("y ~ (0 + x + z || g)", ["0 + x", "0 + z"]),
        ("y ~ (x || g)", ["1", "0 + x"]),
        ("y ~ (f || g)", ["1", "0 + f"]),
        ("y ~ (1 + f || g)", ["1", "0 + f"]),
        ("y ~ (x*z || g)", ["1", "0 + x", "0 + z", "0 + x:z"]),
        ("y ~ (b*x || g)", ["1", "0 + b", "0 + x", "0 + b:x"]),
        ("y ~ (-1 + x || g)", ["0 + x"]),
        ("y ~ (x - 1 || g)", ["0 + x"]),
        ("y ~ (x + I(x^2) + log(z) || g)", ["1", "0 + x", "0 + I(x^2)", "0 + log(z)"]),
        ("y ~ (poly(x,2) || g)", ["1", "0 + poly(x, 2)"]),
    ],
)
def test_double_bar_expansion(text, exprs):
    got = parse_formula(text).random
    assert [t.expr for t in got] == exprs
    assert all(t.double_bar and t.name == "g" and t.factors == ("g",) for t in got)


def test_double_bar_with_nesting_order():
    # R: 1|b:a, 1|a, 0 + x|b:a, 0 + x|a
    assert [(t.expr, t.name) for t in parse_formula("y ~ (x || a/b)").random] == [
        ("1", "b:a"), ("1", "a"), ("0 + x", "b:a"), ("0 + x", "a")]


def test_mixed_terms_keep_formula_order():
    # R: 1|a, 1|g, 0 + x|g, 0 + z|k:h, 0 + z|h
    got = [(t.expr, t.name, t.double_bar) for t in parse_formula("y ~ (1|a) + (x || g) + (0+z|h/k)").random]
    assert got == [("1", "a", False), ("1", "g", True), ("0 + x", "g", True),
                   ("0 + z", "k:h", False), ("0 + z", "h", False)]


def test_required_columns_first_use_order():
    p = parse_formula("log(Reaction) ~ Days + I(Days^2) + (Days | Subject) + (1 | batch/cask)")
    assert required_columns(p) == ["Reaction", "Days", "Subject", "batch", "cask"]


def test_required_columns_skip_constants_and_parameters():
    p = parse_formula("y ~ I(x * pi) + poly(z, degree = 2, raw = TRUE) + C(f, contr.sum) + (1 | g)")
    assert required_columns(p) == ["y", "x", "z", "f", "g"]


def test_required_columns_backticks():
    p = parse_formula("`my y` ~ `x 1` + (1 | `the group`)")
    assert required_columns(p) == ["my y", "x 1", "the group"]
    assert p.random[0].factors == ("the group",)
    assert p.random[0].name == "`the group`"


# --------------------------------------------------------------------------- errors


def caret_col(err: FormulaError) -> int:
    """Column of the first caret, relative to the quoted formula."""
    lines = str(err).splitlines()
    return lines[-1].index("^") - 4


@pytest.mark.parametrize(
    "text, fragment, pos",
    [
        ("Reaction Days", "operator", 9),
        ("Reaction ~ Days + (Days | Subject", "never closed", 18),
        ("Reaction ~ Days + Days | Subject)", "no matching '('", 32),
        ("Reaction ~ Days + ( | Subject)", "nothing left of '|'", 20),
        ("Reaction ~ Days + (1 | )", "no grouping factor", 23),
        ("Reaction ~ Days | Subject", "in parentheses", 16),
        ("Reaction ~ Days + x:(1 | Subject)", "in parentheses", 23),
        ("Reaction ~ foo(Days) + (1 | Subject)", "unknown function 'foo'", 11),
        ("Reaction ~ Days +", "nothing on its right", 17),
        ("Reaction ~ Days + (x || )", "no grouping factor", 24),
        ("y ~ x + 2", "0 or 1", 8),
        ("y ~ x - (1 | g)", "cannot be subtracted", 8),
        ("y ~ (0 | g)", "no columns", 5),
        ("y ~ x ~ z", "only once", 2),
        ("y ~ x + (1 | factor(g))", "grouping factor", 13),
    ],
)
def test_syntax_errors_point_at_position(text, fragment, pos):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    err = info.value
    assert fragment in err.reason
    assert err.formula == text and err.pos == pos
    assert text in str(err)
    assert caret_col(err) == pos


def test_missing_tilde():
    with pytest.raises(FormulaError, match="needs '~'"):
        parse_formula("Reaction + Days")
    with pytest.raises(FormulaError, match="no response"):
        parse_formula("~ Days + (1 | Subject)")


def test_unknown_function_suggests():
    with pytest.raises(FormulaError, match="did you mean log"):
        parse_formula("y ~ lgo(x) + (1 | g)")


@pytest.mark.parametrize("text", ["cbind(s, f) ~ x + (1 | g)", "y ~ offset(w) + x + (1 | g)", "y ~ . + (1 | g)"])
def test_not_implemented(text):
    with pytest.raises(FormulaNotImplementedError) as info:
        parse_formula(text)
    assert isinstance(info.value, NotImplementedError)
    assert "^" in str(info.value)


def test_unknown_column_lists_close_matches():
    df = pd.DataFrame({"Reaction": [1.0, 2.0], "Days": [0, 1], "Subject": ["a", "b"]})
    p = parse_formula("Reaction ~ days + (Days | subjct)")
    with pytest.raises(FormulaError) as info:
        check_columns(p, df)
    msg = str(info.value)
    assert "'days'" in msg and "'Days'" in msg and "'subjct'" in msg and "'Subject'" in msg
    assert info.value.pos == p.text.index("days")
    check_columns(parse_formula("Reaction ~ Days + (Days | Subject)"), df)  # no error


def test_model_matrix_unknown_column():
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(FormulaError, match="unknown column 'xx'.*'x'") as info:
        model_matrix("1 + xx", df)
    assert caret_col(info.value) == 4


def test_arithmetic_on_factor_is_type_error(frame):
    with pytest.raises(FormulaTypeError) as info:
        model_matrix("I(a^2)", frame)
    assert isinstance(info.value, TypeError)


def test_single_level_factor_rejected_like_r():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "u": ["one"] * 3})
    for rhs in ("u", "0 + u", "x + u"):  # R: contrasts can be applied only to factors with 2 or more levels
        with pytest.raises(FormulaError, match="2 or more levels"):
            model_matrix(rhs, df)


# --------------------------------------------------------------------------- model.matrix names (R)

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
        ['(Intercept)', 'I(x%%2)', 'I(1/x)', 'I(x - -1)', 'exp(-x)', 'I(x == 1.5)TRUE', 'I(x * 0.1)', 'I(x * 123456789)', 'I(x + 1.2e-05)'],
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


# --------------------------------------------------------------------------- values


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


def test_values_poly_scale_like_r(frame):
    X, _ = model_matrix("0 + poly(x, 3) + scale(x) + scale(x, center=FALSE)", frame)
    r_poly3 = np.array(  # R: poly(x, 3)
        [
            [-0.05120737, -0.43358189, 0.02802358],
            [0.07169031, -0.39933598, -0.32486087],
            [0.37893450, 0.02626213, -0.49781976],
            [-0.66569575, 0.56084563, -0.25750359],
            [-0.29700272, -0.26894230, 0.64015588],
            [0.56328102, 0.51475241, 0.41200477],
        ]
    )
    r_scale = [-0.1145031, 0.1603044, 0.8473233, -1.4885409, -0.6641183, 1.2595346]  # R: scale(x)
    r_rms = [0.5746958, 0.7662610, 1.2451742, -0.3831305, 0.1915653, 1.5325221]  # R: scale(x, center=FALSE)
    np.testing.assert_allclose(X[:, :3], r_poly3, atol=R_PRINT_ATOL)
    np.testing.assert_allclose(X[:, 3], r_scale, atol=R_PRINT_ATOL)
    np.testing.assert_allclose(X[:, 4], r_rms, atol=R_PRINT_ATOL)


def test_poly_columns_are_orthonormal():
    x = np.linspace(0, 3, 50) ** 1.5
    X, _ = model_matrix("poly(x, 4)", pd.DataFrame({"x": x}))
    np.testing.assert_allclose(X.T @ X, np.eye(5) * [50, 1, 1, 1, 1], atol=1e-12)


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


def test_arithmetic_like_r():
    df = pd.DataFrame({"x": [1.5, 2, 3.25, -1, 0.5, 4]})
    X, nm = model_matrix("0 + I(x %% 2) + I(x %/% 2) + I(-x %% 2) + round(x) + as.integer(x) + pmin(x, 1)"
                         " + log(x + 2, 3)", df)
    assert nm[:3] == ["I(x%%2)", "I(x%/%2)", "I(-x%%2)"]
    expected = np.array(  # R
        [
            [1.50, 0, 0.50, 2, 1, 1.0, 1.1403140],
            [0.00, 1, 0.00, 2, 2, 1.0, 1.2618595],
            [1.25, 1, 0.75, 3, 3, 1.0, 1.5093842],
            [1.00, -1, 1.00, -1, -1, -1.0, 0.0],
            [0.50, 0, 1.50, 0, 0, 0.5, 0.8340438],
            [0.00, 2, 0.00, 4, 4, 1.0, 1.6309298],
        ]
    )
    np.testing.assert_allclose(X, expected, atol=R_PRINT_ATOL)


def test_power_means_interaction_outside_I():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    X, nm = model_matrix("x^2", df)
    assert nm == ["(Intercept)", "x"]
    X2, nm2 = model_matrix("I(x^2) + I(x**2)", df)
    assert nm2 == ["(Intercept)", "I(x^2)"]  # same variable, listed once
    np.testing.assert_array_equal(X2[:, 1], [1.0, 4.0, 9.0])


def test_power_of_sum_is_all_interactions_up_to_order():
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 0, 1, 1], "c": [0.5, 1, 2, 3]})
    X, nm = model_matrix("(a + b + c)^2", df)
    assert nm == ["(Intercept)", "a", "b", "c", "a:b", "a:c", "b:c"]
    np.testing.assert_array_equal(X[:, 6], df.b * df.c)
    assert model_matrix("a*b*c", df)[1][-1] == "a:b:c"


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


def test_relevel_changes_reference(frame):
    X, nm = model_matrix('relevel(s, "dog")', frame)
    assert nm == ['(Intercept)', 'relevel(s, "dog")ant', 'relevel(s, "dog")cat', 'relevel(s, "dog")Cat']


def test_missing_values_give_nan():
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0], "f": pd.Categorical(["a", None, "b"])})
    X, nm = model_matrix("x + f", df)
    assert nm == ["(Intercept)", "x", "fb"]
    assert np.isnan(X[1, 1]) and np.isnan(X[1, 2]) and not np.isnan(X[[0, 2]]).any()


def test_log_of_negative_is_nan_without_warning():
    X, _ = model_matrix("log(x)", pd.DataFrame({"x": [-1.0, 1.0]}))
    assert np.isnan(X[0, 1]) and X[1, 1] == 0.0


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


# --------------------------------------------------------------------------- response and groups


def test_evaluate_response():
    df = pd.DataFrame({"y": [1, 10, 100], "g": ["a", "b", "c"]})
    np.testing.assert_allclose(evaluate_response("log10(y)", df), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(evaluate_response("y / 10", df), [0.1, 1.0, 10.0])
    out = evaluate_response("y", df)
    assert out.dtype == np.float64 and out.shape == (3,)


def test_categorical_response_is_type_error():
    df = pd.DataFrame({"g": ["a", "b"]})
    with pytest.raises(FormulaTypeError, match="numeric response") as info:
        evaluate_response("g", df)
    assert isinstance(info.value, TypeError) and isinstance(info.value, FormulaError)


def test_grouping_factor_interaction_levels_like_r():
    # R: levels(factor(b:a)) lists combinations present, first factor slowest.
    df = pd.DataFrame({"a": pd.Categorical(list("pqpq")), "b": pd.Categorical(list("srrs"))})
    codes, levels = grouping_factor(RandomTerm("1", ("b", "a"), "b:a", False), df)
    assert levels == ["r:p", "r:q", "s:p", "s:q"]
    assert [levels[c] for c in codes] == ["s:p", "r:q", "r:p", "s:q"]
    # category order kept, unused dropped: levels t, s, r with t unused -> s:p, s:q, r:p
    df2 = pd.DataFrame({"a": list("ppqq"), "b": pd.Categorical(list("srss"), categories=list("tsr"))})
    assert grouping_factor(RandomTerm("1", ("b", "a"), "b:a", False), df2)[1] == ["s:p", "s:q", "r:p"]


def test_grouping_factor_numbers_and_missing():
    df = pd.DataFrame({"g": [308.0, 1e5, np.nan, 308.0]})
    codes, levels = grouping_factor(RandomTerm("1", ("g",), "g", False), df)
    assert levels == ["308", "1e+05"] and codes.tolist() == [0, 1, -1, 0]


def test_large_frame_is_fast_enough_and_fortran():
    n = 200_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=n), "Days": rng.integers(0, 10, n),
                       "f": pd.Categorical(rng.choice(list("abc"), n))})
    X, nm = model_matrix("Days * f + I(Days^2)", df)
    assert X.shape == (n, 7) and X.flags.f_contiguous
    assert nm == ["(Intercept)", "Days", "fb", "fc", "I(Days^2)", "Days:fb", "Days:fc"]
    np.testing.assert_array_equal(X[:, 6], df.Days * (df.f == "c"))
