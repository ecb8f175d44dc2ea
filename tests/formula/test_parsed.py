"""parse_formula: response, fixed part and column references of a whole formula.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import pytest

from lmm.formula import ParsedFormula, RandomTerm, parse_formula, required_columns


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
