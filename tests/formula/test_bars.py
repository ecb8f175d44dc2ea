"""Random-effects terms: bars, lme4's ``||`` (expandDoubleVerts) and nested groups (expandSlash).

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import pytest

from lmm.formula import parse_formula


def terms(text: str) -> list[tuple[str, str, tuple[str, ...], bool]]:
    return [(t.expr, t.name, t.factors, t.double_bar) for t in parse_formula(text).random]


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
