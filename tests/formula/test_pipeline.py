"""The stages hand each other term objects: one parse per fit, state kept for new data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm.formula import FormulaError, ModelFrameState, RandomTerm, model_matrix, parse_formula, parsed, syntax


@pytest.fixture
def parser_calls(monkeypatch) -> list[str]:
    """The texts given to the parser while the test runs (starting with no cached parse)."""
    parsed._parse_formula.cache_clear()
    calls: list[str] = []
    original = syntax.Parser.parse

    def counting(self):
        calls.append(self.text)
        return original(self)

    monkeypatch.setattr(syntax.Parser, "parse", counting)
    return calls


def _data(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), n // 12)
    x = rng.uniform(0, 10, n)
    u = rng.normal(size=12)
    y = 1 + 0.5 * x - 0.03 * x**2 + u[g] + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "f": rng.choice(["a", "b", "c"], n)})


def test_parser_runs_once_per_lmer_call(parser_calls):
    res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    assert parser_calls == ["Reaction ~ Days + (Days | Subject)"]
    parser_calls.clear()
    res.predict(lmm.datasets.load("sleepstudy").head(10))
    assert parser_calls == []  # prediction on new data reuses the recorded terms
    lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy").head(100))
    assert parser_calls == []  # a formula parsed before is not parsed again


def test_parser_runs_once_with_expansions_and_transforms(parser_calls):
    lmm.lmer("log(y + 10) ~ scale(x) + f + (poly(x, 2) || g) + (1 | g/f)", _data())
    assert len(parser_calls) == 1


@pytest.mark.parametrize("formula", [
    "y ~ scale(x) + (1 | g)",
    "y ~ poly(x, 2) + (1 | g)",
    "y ~ f * scale(x, center = FALSE) + (poly(x, 2) | g)",
    "y ~ relevel(factor(f), ref = \"b\") + poly(x, 2, raw = TRUE) + (0 + poly(x, 2) || g)",
])
def test_transform_state_survives_to_prediction(formula):
    data = _data()
    res = lmm.lmer(formula, data)
    np.testing.assert_allclose(res.predict(data), res.predict(), rtol=1e-12, atol=1e-12)
    # new data with other means and spreads: the fitting data's centre, scale and
    # polynomial coefficients are used, not those of the rows predicted
    rows = data.index[data["x"] > 5]
    np.testing.assert_allclose(res.predict(data.loc[rows]), res.predict()[data.index.get_indexer(rows)],
                               rtol=1e-10, atol=1e-10)


def test_transform_state_is_keyed_by_expression_not_position():
    train = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "f": ["a", "b", "a", "b"]})
    state = ModelFrameState()
    X, _ = model_matrix("f +scale( x )+ poly(x,2)", train, state=state)
    assert ("scale(x)", "scale") in state.transforms.keys()
    assert ("poly(x, 2)", "poly") in state.transforms.keys()
    assert ("f", "factor") in state.transforms.keys()
    # the same right-hand side written differently evaluates new data with the recorded state
    Xnew, _ = model_matrix("f + scale(x) + poly(x, 2)", train.iloc[[3, 0]], state=state)
    np.testing.assert_allclose(Xnew, X[[3, 0]], atol=1e-14)
    with pytest.raises(ValueError, match="recorded for"):
        model_matrix("f + scale(x)", train, state=state)


def test_terms_objects_come_from_the_formula():
    p = parse_formula("y ~ x + (1 + x || g) + (x | h)")
    assert str(p.fixed_terms) == p.fixed == "x"
    assert [str(t.terms) for t in p.random] == ["1", "0 + x", "x"] == [t.expr for t in p.random]
    assert all(t.terms.text == p.text for t in p.random)
    assert str(p.response_expr) == p.response == "y"
    # a term built by hand parses its expr when its model matrix is needed
    hand = RandomTerm("0 + x", ("g",), "g", True)
    assert hand == p.random[1] and hand.terms.variables == ["x"] and not hand.terms.intercept


def test_malformed_formula_points_a_caret_at_the_offending_text(caret_col):
    text = "Reaction ~ Days + (Days | Subject) + (1 | )"
    with pytest.raises(lmm.FormulaError) as info:
        lmm.lmer(text, lmm.datasets.load("sleepstudy"))
    err = info.value
    assert err.formula == text and caret_col(err) == err.pos == text.index(")", 40)
    assert "no grouping factor" in err.reason


def test_error_in_a_term_model_matrix_points_into_the_whole_formula(caret_col):
    data = _data().assign(u="one")
    text = "y ~ x + (x + u || g)"
    with pytest.raises(FormulaError, match="2 or more levels") as info:
        lmm.lmer(text, data)
    assert info.value.formula == text and caret_col(info.value) == text.index("u ||")


@pytest.mark.parametrize("drop", ["missing response", "log of a negative value"])
def test_transforms_learn_from_every_row_as_r_model_frame(drop):
    # R's model frame evaluates scale() and poly() on every row before na.omit drops the
    # incomplete ones: their centre and coefficients come from all rows of x.
    data = _data()
    data["u"] = np.arange(120) % 7 + 0.5
    data["v"] = 1.0 + np.arange(120) % 5
    if drop == "missing response":
        data.loc[data.index[:30], "y"] = np.nan
    else:
        data.loc[data.index[:30], "v"] = -1.0
    with pytest.warns(UserWarning, match="30 of 120 rows"):
        res = lmm.lmer("y ~ scale(x) + poly(u, 2) + log(v) + (1 | g)", data)
    state = res.model.design.fixed_state.transforms
    centre, scale = state.recorded(syntax.parse("scale(x)"), "scale")
    x = data["x"].to_numpy()
    assert centre == pytest.approx(x.mean(), rel=1e-14)
    assert scale == pytest.approx(x.std(ddof=1), rel=1e-14)
    alpha, _ = state.recorded(syntax.parse("poly(u, 2)"), "poly")
    assert alpha[0] == pytest.approx(data["u"].mean(), rel=1e-14)
