"""Grouping factors: levels and codes as lme4's ``factor(a:b)`` and ``factor(interaction(a, b))``.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from lmm.formula import FormulaNotImplementedError, RandomTerm, grouping_codes, grouping_factor, parse_formula


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


def test_string_levels_in_r_order():
    # R: levels(factor(c("b10", "B2", "a", "A", "b2", "10", "9"))) in R 4.2.2 (ICU-like order).
    df = pd.DataFrame({"g": ["b10", "B2", "a", "A", "b2", "10", "9"]})
    assert grouping_factor(RandomTerm("1", ("g",), "g", False), df)[1] == ["10", "9", "a", "A", "b10", "b2", "B2"]


def _term(formula: str) -> RandomTerm:
    return parse_formula(formula).random[0]


def test_interaction_call_levels_like_r():
    # R: levels(factor(interaction(a, b))) vary the first factor fastest, join with "."
    # and keep only the combinations present (lme4 makes the factor so).
    d = pd.DataFrame({"a": list("xyzxyxy"), "b": list("pppqqqp")})
    codes, levels = grouping_factor(_term("y ~ (1 | interaction(a, b))"), d)
    assert levels == ["x.p", "y.p", "z.p", "x.q", "y.q"]
    assert [levels[c] for c in codes] == ["x.p", "y.p", "z.p", "x.q", "y.q", "x.q", "y.p"]
    assert grouping_factor(_term('y ~ (1 | interaction(a, b, sep = "_"))'), d)[1] == \
        ["x_p", "y_p", "z_p", "x_q", "y_q"]
    # lex.order = TRUE: the first factor slowest (R: p.x p.y p.z q.x q.y)
    assert grouping_factor(_term("y ~ (1 | interaction(b, a, lex.order = TRUE))"), d)[1] == \
        ["p.x", "p.y", "p.z", "q.x", "q.y"]
    # drop = TRUE: the same factor (lme4 drops unused combinations anyway)
    assert grouping_factor(_term("y ~ (1 | interaction(a, b, drop = TRUE))"), d)[1] == levels


def test_interaction_call_of_numbers_expressions_and_missing_values():
    # R: a <- c(10, 2, 2, NA, 10); b <- c("u", "v", "u", "u", "v")
    #    levels(factor(interaction(a, b))) "2.u" "10.u" "2.v" "10.v"; codes 2 3 1 NA 4
    #    levels(factor(interaction(a, b == "v"))) "2.FALSE" "10.FALSE" "2.TRUE" "10.TRUE"
    d = pd.DataFrame({"a": [10, 2, 2, np.nan, 10], "b": ["u", "v", "u", "u", "v"]})
    codes, levels = grouping_factor(_term("y ~ (1 | interaction(a, b))"), d)
    assert levels == ["2.u", "10.u", "2.v", "10.v"] and codes.tolist() == [1, 2, 0, -1, 3]
    assert grouping_factor(_term('y ~ (1 | interaction(a, b == "v"))'), d)[1] == \
        ["2.FALSE", "10.FALSE", "2.TRUE", "10.TRUE"]
    assert grouping_factor(_term("y ~ (1 | interaction(factor(b), a))"), d)[1] == ["u.2", "v.2", "u.10", "v.10"]


def test_interaction_call_by_name_as_prediction_rebuilds_it():
    d = pd.DataFrame({"a": list("xyzxy"), "b": list("ppqqp")})
    parsed = _term('y ~ (1 | interaction(b, a, sep = ":", lex.order = TRUE))')
    by_name = RandomTerm(parsed.expr, parsed.factors, parsed.name, parsed.double_bar)
    assert parsed.name == 'interaction(b, a, sep = ":", lex.order = TRUE)' and parsed.factors == ("b", "a")
    codes, levels = grouping_factor(by_name, d)
    assert (codes.tolist(), levels) == (grouping_factor(parsed, d)[0].tolist(), grouping_factor(parsed, d)[1])
    assert levels == ["p:x", "p:y", "q:x", "q:z"]


def test_interaction_call_labels_with_the_separator_are_refused():
    # R would merge "a.b" + "c" and "a" + "b.c" into one level "a.b.c"; lmm refuses.
    d = pd.DataFrame({"f": ["a.b", "a"], "g": ["c", "b.c"]})
    with pytest.raises(FormulaNotImplementedError, match="separator"):
        grouping_factor(_term("y ~ (1 | interaction(f, g))"), d)
    assert grouping_factor(_term('y ~ (1 | interaction(f, g, sep = "/"))'), d)[1] == ["a/b.c", "a.b/c"]
    # labels with the separator that stay distinct are R's (R: "2.5.u" "2.v")
    d2 = pd.DataFrame({"f": [2.5, 2.0], "g": ["u", "v"]})
    assert grouping_factor(_term("y ~ (1 | interaction(f, g))"), d2)[1] == ["2.5.u", "2.v"]


@pytest.mark.parametrize("dtype", ["str", "string[python]", object, pytest.param(
    "string[pyarrow]", marks=pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="no pyarrow"))])
def test_string_ids_of_every_dtype_give_one_factor(dtype):
    # R: levels(factor(c("s10", "s9", NA, "S9", "s_2", "s10", "s-1"))) in R 4.2.2 (C.UTF-8, ICU).
    values = ["s10", "s9", None, "S9", "s_2", "s10", "s-1"]
    df = pd.DataFrame({"g": pd.Series(values, dtype=dtype)})
    codes, levels = grouping_factor(RandomTerm("1", ("g",), "g", False), df)
    assert levels == ["s_2", "s-1", "s10", "s9", "S9"]
    assert codes.dtype == np.int32 and codes.tolist() == [2, 3, -1, 4, 0, 2, 1]


def test_categories_keep_their_order_without_unused_levels():
    df = pd.DataFrame({"g": pd.Categorical(["b", "c", "b", None], categories=["c", "x", "b", "a"]),
                       "n": pd.Categorical([30, 4, 30, 4], categories=[30, 7, 4])})
    codes, levels = grouping_factor(RandomTerm("1", ("g",), "g", False), df)
    assert levels == ["c", "b"] and codes.tolist() == [1, 0, 1, -1]
    codes, levels = grouping_factor(RandomTerm("1", ("n",), "n", False), df)
    assert levels == ["30", "4"] and codes.tolist() == [0, 1, 0, 1]


def test_whole_numbers_stored_as_doubles_are_labelled_as_r_prints_them():
    # Ids read from a file with a missing value are doubles: R labels 1e5 "1e+05", -0 "0".
    # R: levels(factor(c(120000, 1e5, NA, -3, 0, -0, 1e5))) "-3" "0" "1e+05" "120000"
    df = pd.DataFrame({"g": [120000.0, 1e5, np.nan, -3.0, 0.0, -0.0, 1e5]})
    codes, levels = grouping_codes(RandomTerm("1", ("g",), "g", False), df)
    assert levels.labels() == ["-3", "0", "1e+05", "120000"] and codes.tolist() == [3, 2, -1, 0, 1, 1, 2]
    # decimals keep their labels as made by the general path (two values can share one)
    codes, levels = grouping_codes(RandomTerm("1", ("g",), "g", False), pd.DataFrame({"g": [0.5, 2.0, 0.5]}))
    assert levels.labels() == ["0.5", "2"] and codes.tolist() == [0, 1, 0]
