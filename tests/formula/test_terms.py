"""R's terms(): ``^`` is interaction power, ``%in%``, ``/``, ``-1``, ``0 +``, ``I()``.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmm.formula import model_matrix, parse_formula, parse_rhs


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


# R's terms() rules (term labels and intercept, hand-derived); the cases that are also in
# test_matrix.R_NAMES agree with the column names R gave there.
@pytest.mark.parametrize(
    "rhs, intercept, labels",
    [
        ("(a + b + c)^2", True, ["a", "b", "c", "a:b", "a:c", "b:c"]),
        ("(a + b)^3", True, ["a", "b", "a:b"]),
        ("x^2", True, ["x"]),
        ("I(x^2)", True, ["I(x^2)"]),
        ("x + I(x^2) + I(x**2)", True, ["x", "I(x^2)"]),
        ("a %in% b", True, ["a:b"]),
        ("a + b %in% a", True, ["a", "a:b"]),
        ("a/b", True, ["a", "a:b"]),
        ("(a + x)/c", True, ["a", "x", "a:x:c"]),
        ("a/b/c", True, ["a", "a:b", "a:b:c"]),
        ("x - 1", False, ["x"]),
        ("-1 + x", False, ["x"]),
        ("0 + x", False, ["x"]),
        ("x + 0", False, ["x"]),
        ("x - 1 + 1", True, ["x"]),
        ("a*b - a", True, ["b", "a:b"]),
        ("a*b*c - a:b:c", True, ["a", "b", "c", "a:b", "a:c", "b:c"]),
        ("b:a + a", True, ["a", "b:a"]),
        ("(a + b)^2 - a:b", True, ["a", "b"]),
    ],
)
def test_terms_follow_r(rhs, intercept, labels):
    t = parse_rhs(rhs)
    assert t.intercept is intercept
    assert [t.label(k) for k in t.terms] == labels


def test_double_bar_pieces_are_terms_of_the_formula():
    p = parse_formula("y ~ (x*z || g)")
    assert [t.expr for t in p.random] == ["1", "0 + x", "0 + z", "0 + x:z"]
    got = [(t.terms.intercept, [t.terms.label(k) for k in t.terms.terms]) for t in p.random]
    assert got == [(True, []), (False, ["x"]), (False, ["z"]), (False, ["x:z"])]
