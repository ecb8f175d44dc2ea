"""Grouping factors: levels and codes as lme4's ``factor(a:b)``.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pandas as pd
from hypothesis import given

from lmm.formula import RandomTerm, grouping_factor
from lmm.formula.values import collate_key, r_sorted


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


@given(st.lists(st.text(alphabet="aAbBzZ0129", min_size=1, max_size=4), min_size=1, max_size=30))
def test_fast_ascii_order_is_the_collation_order(labels):
    # r_sorted's key for ASCII letters and digits orders as the general collate_key.
    assert r_sorted(labels) == sorted(set(labels), key=collate_key)


def test_string_levels_in_r_order():
    # R: levels(factor(c("b10", "B2", "a", "A", "b2", "10", "9"))) in R 4.2.2 (ICU-like order).
    df = pd.DataFrame({"g": ["b10", "B2", "a", "A", "b2", "10", "9"]})
    assert grouping_factor(RandomTerm("1", ("g",), "g", False), df)[1] == ["10", "9", "a", "A", "b10", "b2", "B2"]
