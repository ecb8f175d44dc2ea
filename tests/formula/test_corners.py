"""Formula corners lme4 accepts: a bare bar at the top level and grouping factors given as
factor(g) (interaction(a, b): tests/formula/test_grouping.py and tests/test_splines_lme4.py).
(lme4 1.1.31: REMLcrit of Reaction ~ Days | Subject is 1769.8449038626.)"""

from __future__ import annotations

import pytest

import lmm
from lmm.formula import FormulaNotImplementedError, parse_formula

BARE_BAR_REML = 1769.8449038626   # lme4 1.1.31 and 2.1-0, REMLcrit(lmer(Reaction ~ Days | Subject))


def test_bare_bar_is_one_random_term_and_an_intercept():
    p = parse_formula("log(y) ~ x | g")
    assert p.fixed == "1" and [(t.expr, t.name) for t in p.random] == [("x", "g")]
    d = lmm.datasets.load("sleepstudy")
    res = lmm.lmer("Reaction ~ Days | Subject", d)
    assert list(res.fixef.index) == ["(Intercept)"]
    assert res.objective == pytest.approx(BARE_BAR_REML, rel=1e-9)


def test_factor_of_a_column_groups_as_the_column():
    d = lmm.datasets.load("sleepstudy")
    a = lmm.lmer("Reaction ~ Days + (1 | factor(Subject))", d)
    b = lmm.lmer("Reaction ~ Days + (1 | Subject)", d)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    assert list(a.ranef) == ["factor(Subject)"]


def test_interaction_inside_a_colon_or_slash_group_says_it_is_not_supported():
    for text in ("y ~ 1 + (1 | interaction(a, b):c)", "y ~ 1 + (1 | c/interaction(a, b))"):
        with pytest.raises(FormulaNotImplementedError, match=r"interaction\(a, b, c\)"):
            parse_formula(text)


def test_interaction_in_the_fixed_part_says_to_write_a_colon_b():
    with pytest.raises(FormulaNotImplementedError, match="a:b"):
        parse_formula("y ~ interaction(a, b) + (1 | g)")
