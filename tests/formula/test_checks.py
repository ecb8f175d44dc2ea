"""Checks before any data is read, and unknown columns against the data.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import pandas as pd
import pytest

from lmm.formula import FormulaError, FormulaNotImplementedError, check_columns, model_matrix, parse_formula


def test_unknown_function_suggests():
    with pytest.raises(FormulaError, match="did you mean log"):
        parse_formula("y ~ lgo(x) + (1 | g)")


@pytest.mark.parametrize("text", ["cbind(s, f) ~ x + (1 | g)", "y ~ log(offset(w)) + x + (1 | g)", "y ~ . + (1 | g)"])
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


def test_model_matrix_unknown_column(caret_col):
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(FormulaError, match="unknown column 'xx'.*'x'") as info:
        model_matrix("1 + xx", df)
    assert caret_col(info.value) == 4
