"""The parser: malformed formulas raise FormulaError with a caret under the offending text.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import pytest

from lmm.formula import FormulaError, parse_formula
from lmm.formula.syntax import r_num


@pytest.mark.parametrize(
    "text, fragment, pos",
    [
        ("Reaction Days", "operator", 9),
        ("Reaction ~ Days + (Days | Subject", "never closed", 18),
        ("Reaction ~ Days + Days | Subject)", "no matching '('", 32),
        ("Reaction ~ Days + ( | Subject)", "nothing left of '|'", 20),
        ("Reaction ~ Days + (1 | )", "no grouping factor", 23),
        ("Reaction ~ Days * (1 | Subject)", "in parentheses", 21),
        ("Reaction ~ Days + x:(1 | Subject)", "in parentheses", 23),
        ("Reaction ~ foo(Days) + (1 | Subject)", "unknown function 'foo'", 11),
        ("Reaction ~ Days +", "nothing on its right", 17),
        ("Reaction ~ Days + (x || )", "no grouping factor", 24),
        ("y ~ x + 2", "0 or 1", 8),
        ("y ~ x - (1 | g)", "cannot be subtracted", 8),
        ("y ~ (0 | g)", "no columns", 5),
        ("y ~ x ~ z", "only once", 2),
        ("y ~ x + (1 | log(g))", "grouping factor", 13),
    ],
)
def test_syntax_errors_point_at_position(text, fragment, pos, caret_col):
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


def test_r_num_labels_whole_numbers_as_r():
    # R: as.character(c(100000, 120000, 1e14, 123456789012345, -3e6, 10, 0, -0, 1200, 1000,
    #    10000, 100, 2e5, 250000, 999999999999999, 5e10, -1e5, 1e15, 0.5)) in R 4.2.2
    values = [100000, 120000, 1e14, 123456789012345, -3e6, 10, 0, -0.0, 1200, 1000, 10000, 100, 2e5, 250000,
              999999999999999, 5e10, -1e5, 1e15, 0.5]
    assert [r_num(float(v)) for v in values] == [
        "1e+05", "120000", "1e+14", "123456789012345", "-3e+06", "10", "0", "0", "1200", "1000", "10000", "100",
        "2e+05", "250000", "999999999999999", "5e+10", "-1e+05", "1e+15", "0.5"]
