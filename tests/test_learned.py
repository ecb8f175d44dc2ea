"""design.learned: the numeric transforms learned from row chunks equal those learned in memory.

learn_over_chunks on any splitting of a data frame into chunks (unequal sizes, empty
chunks, chunks of one row) must give learned_on_all_rows on the whole frame: the same
keys, scale() and poly() to rounding of sums taken in another order, the knots of ns()
and bs() exactly; and the same errors and warnings.
"""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmm.design import learned
from lmm.design.evaluation import learned_on_all_rows
from lmm.design.learned import LearningRound, TransformLearner, learn_over_chunks
from lmm.formula import Columns, FormulaError, parse_formula
from lmm.formula.splines import SplineBasis

# Named tolerances: scale()'s centre and scale merged with Chan's update against numpy's
# pairwise sums; poly()'s coefficients by Stieltjes' recurrence against R's QR; the knots
# of a spline of a learned transform (ns(scale(x))), whose values differ by that rounding.
# Other knots are exact.
SCALE_TOL = 1e-12
POLY_TOL = 1e-10
NESTED_TOL = 1e-12


def _data(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Columns of many kinds: smooth (x, positive), with missing values (u), integers with
    ties and missing values (z), three distinct values (w), skewed (e) and with an outlier
    (t), negative and zero values (s), a group and a factor."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, n)
    u[rng.choice(n, n // 20, replace=False)] = np.nan
    z = rng.integers(0, 20, n).astype(float)
    z[rng.choice(n, n // 50, replace=False)] = np.nan
    t = rng.lognormal(0, 2, n)
    t[n // 2] = 1e12
    s = np.round(rng.normal(0, 1, n), 1)
    return pd.DataFrame({"y": rng.normal(size=n), "x": 10 + 3 * rng.standard_normal(n), "u": u, "z": z,
                         "w": rng.choice([1.0, 2.0, 3.0], n), "e": rng.lognormal(0, 1, n), "t": t, "s": s,
                         "g": rng.integers(0, 9, n), "f": rng.choice(["a", "b", "c"], n)})


def _split(data: pd.DataFrame, cuts) -> list[pd.DataFrame]:
    """The chunks between sorted cut points (repeated cuts give empty chunks)."""
    edges = [0] + sorted(int(c) for c in cuts) + [len(data)]
    return [data.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _splittings(data: pd.DataFrame) -> list[list[pd.DataFrame]]:
    n = len(data)
    rng = np.random.default_rng(5)
    return [
        [data],
        _split(data, [0, 1, 1, 2, n // 3, n - 1]),  # empty, one-row and unequal chunks
        _split(data, rng.choice(n, 11, replace=False)),
        _split(data, np.arange(1, n, max(1, n // 40))),
    ]


def _assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        if key[1] == "scale":
            c, s = w
            np.testing.assert_allclose(g[1], s, rtol=SCALE_TOL, err_msg=str(key))
            np.testing.assert_allclose(g[0], c, rtol=SCALE_TOL, atol=SCALE_TOL * max(abs(s), abs(c)), err_msg=str(key))
        elif key[1] == "poly":
            alpha, norm2 = w
            assert g[0].shape == alpha.shape and g[1].shape == norm2.shape
            spread = np.sqrt(norm2[2] / norm2[1])  # the SD of the values: alpha's scale
            np.testing.assert_allclose(g[0], alpha, rtol=POLY_TOL, atol=POLY_TOL * spread, err_msg=str(key))
            np.testing.assert_allclose(g[1], norm2, rtol=POLY_TOL, err_msg=str(key))
        elif _nested(key):
            assert isinstance(g, SplineBasis) and (g.kind, g.intercept, g.degree) == (w.kind, w.intercept, w.degree)
            assert len(g.knots) == len(w.knots)
            width = w.boundary[1] - w.boundary[0]
            np.testing.assert_allclose(g.knots + g.boundary, w.knots + w.boundary, rtol=NESTED_TOL,
                                       atol=NESTED_TOL * width, err_msg=str(key))
        else:
            assert isinstance(g, SplineBasis)
            assert g == w, key  # the knots exactly


def _nested(key: tuple[str, str]) -> bool:
    """Whether the argument of a recorded transform holds a learned transform."""
    return re.search(r"\b(scale|poly|ns|bs)\s*\(", key[0][key[0].index("(") + 1:]) is not None


# bs()'s warning about values beyond given boundary knots is about evaluating the basis:
# the evaluation of each chunk gives it, not the learning (which needs no rows then).
_EVALUATION_WARNING = "some 'x' values beyond boundary knots"


def _outcome(fn):
    """(value or the error's message, the warnings' messages but bs()'s about evaluation) of fn()."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn()
        except FormulaError as err:
            # (the sign of a zero minimum is numpy's reduction order's: -0 is 0 here)
            value = f"error: {err}".replace("(-0)", "(0)")
    return value, [str(w.message) for w in caught if not str(w.message).startswith(_EVALUATION_WARNING)]


def _compare(formula: str, data: pd.DataFrame, chunkings, contrasts=None) -> None:
    parsed = parse_formula(formula)
    want, want_warnings = _outcome(lambda: learned_on_all_rows(parsed, Columns(data), contrasts or {}))
    for chunks in chunkings:
        got, got_warnings = _outcome(lambda chunks=chunks: learn_over_chunks(parsed, contrasts or {},
                                                                            lambda: iter(chunks)))
        assert got_warnings == want_warnings, formula
        if isinstance(want, str):
            assert got == want, formula
        else:
            assert not isinstance(got, str), got
            _assert_same(got, want)


FORMULAS = [
    "y ~ scale(x)",
    "y ~ scale(u)",
    "y ~ scale(x, center = FALSE)",
    "y ~ scale(u, scale = FALSE)",
    "y ~ scale(x, center = 2.5)",
    "y ~ scale(u, center = FALSE, scale = 3)",
    "y ~ scale(log(x)) + scale(x)",
    "y ~ scale(scale(x))",
    "y ~ scale(y) + x",
    "scale(y) ~ scale(x)",
    "y ~ poly(x, 3)",
    "y ~ poly(x, 1)",
    "y ~ poly(x, degree = 2, raw = TRUE)",
    "y ~ poly(scale(x), degree = 2, raw = TRUE)",
    "y ~ poly(x, 2) * f",
    "y ~ poly(w, 2)",
    "y ~ poly(e, 4)",  # (of t, with its outlier, R's QR itself is wrong from degree 3 on)
    "y ~ x + (poly(x, 2) | g)",
    "y ~ scale(x) + (0 + scale(x) | g) + (1 | f)",
    "y ~ poly(scale(x), 2) + scale(poly(x, 1))",
    "y ~ ns(x, df = 4)",
    "y ~ ns(z, df = 5)",
    "y ~ ns(u, df = 6, intercept = TRUE)",
    "y ~ ns(s, df = 7)",
    "y ~ ns(x)",
    "y ~ ns(x, knots = c(9, 10))",
    "y ~ ns(x, knots = c(9, 10), Boundary.knots = c(0, 20))",
    "y ~ ns(x, df = 3, Boundary.knots = c(8, 12))",
    "y ~ bs(x, df = 5, degree = 3)",
    "y ~ bs(z, df = 6, degree = 2)",
    "y ~ bs(w, df = 4)",
    "y ~ bs(t, df = 8)",
    "y ~ bs(u, knots = 0.25)",
    "y ~ ns(log(x), df = 3) + scale(x) + poly(x, 2) + bs(x, df = 4)",
    "y ~ ns(scale(x), df = 3) + poly(ns(x, df = 2), 1)",
    "y ~ ns(x, df = 3):f + (ns(z, df = 2) | g)",
    "y ~ poly(x, 2) + x - poly(x, 2)",
    "y ~ x + f + (1 | g)",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_learned_from_chunks_equal_learned_on_all_rows(formula):
    data = _data()
    _compare(formula, data, _splittings(data))


@pytest.mark.parametrize("formula", ["y ~ ns(z, df = 5) + bs(w, df = 6) + ns(s, df = 9)",
                                     "y ~ bs(t, df = 9, degree = 2) + ns(x, df = 4)"])
@pytest.mark.parametrize("limit", [0, 3])
def test_knots_by_histogram_rounds_alone(formula, limit, monkeypatch):
    # With (almost) nothing collected, every knot is found by the histogram rounds alone,
    # ties and few distinct values included, in at most 4 rounds.
    monkeypatch.setattr(learned, "COLLECT_LIMIT", limit)
    data = _data()
    _compare(formula, data, _splittings(data)[1:3])
    learner = TransformLearner(parse_formula(formula), {})
    while not learner.done:
        step = learner.round()
        learner.advance(step.reduce([step.map(c) for c in _split(data, [100, 2000])]))
    assert learner.rounds <= 4


def test_knots_of_many_rows():
    # More rows than are collected at once: the first histogram round narrows, the next collects.
    rng = np.random.default_rng(3)
    n = 3 * learned.COLLECT_LIMIT
    data = pd.DataFrame({"y": np.zeros(n), "x": rng.standard_normal(n), "k": rng.integers(0, 1000, n).astype(float)})
    _compare("y ~ ns(x, df = 6) + bs(k, df = 7)", data, [_split(data, [1, n // 2, n // 2 + 7])])


def test_errors_and_warnings_as_in_memory():
    data = _data(500)
    data.loc[3, "t"] = np.inf
    cases = [
        "y ~ poly(u, 2)",                             # missing values in poly()
        "y ~ poly(w, 3)",                             # degree not below the number of unique points
        "y ~ poly(log(s), 2)",                        # NaN from log() of negative values
        "y ~ ns(t, df = 3)",                          # infinite values
        "y ~ bs(x, df = 5, Boundary.knots = c(100, 200))",  # no values within the boundary knots
        "y ~ bs(x, df = 2)",                          # 'df' too small (a warning)
        "y ~ ns(x, knots = c(0, 30))",                # knots outside the boundary knots
        "y ~ ns(w, knots = c(2, 2))",                 # degenerate constraints
    ]
    for formula in cases:
        _compare(formula, data, [_split(data, [7, 7, 250])])
    with pytest.raises(FormulaError, match="at least 1"):
        TransformLearner(parse_formula("y ~ poly(x, 0)"), {})


def test_nothing_to_learn_is_done_at_once():
    for formula in ["y ~ x + (x | g)", "y ~ poly(x, 3, raw = TRUE)", "y ~ scale(x, center = 1, scale = 2)",
                    "y ~ ns(x, knots = 1, Boundary.knots = c(0, 2))"]:
        learner = TransformLearner(parse_formula(formula), {})
        assert learner.done and learner.rounds == 0
        with pytest.raises(RuntimeError, match="no more rounds"):
            learner.round()
        assert learner.preset() == learned_on_all_rows(parse_formula(formula), Columns(_data(50)), {})


def _drive(formula: str, chunks, order) -> tuple[dict, list[LearningRound]]:
    """Learn, reducing each round's parts in the order ``order`` gives (a permutation)."""
    learner = TransformLearner(parse_formula(formula), {})
    rounds = []
    while not learner.done:
        step = learner.round()
        rounds.append(step)
        parts = [step.map(c) for c in chunks]
        perm = order(len(parts))
        # a tree: pairs first, then the pairs' totals
        pairs = [step.reduce([parts[i] for i in perm[k:k + 2]]) for k in range(0, len(perm), 2)]
        learner.advance(step.reduce(pairs[::-1]))
    return learner.preset(), rounds


def test_reduce_is_order_independent():
    data = _data(3000)
    chunks = _splittings(data)[2]
    formula = "y ~ scale(u) + poly(x, 3) + ns(z, df = 5) + bs(s, df = 6) + ns(scale(t), df = 3)"
    rng = np.random.default_rng(1)
    first, rounds = _drive(formula, chunks, lambda n: list(range(n)))
    for _ in range(3):
        again, _ = _drive(formula, chunks, lambda n: list(rng.permutation(n)))
        _assert_same(again, first)
    _assert_same(first, learned_on_all_rows(parse_formula(formula), Columns(data), {}))
    # Within a round: any order of the parts merges to the same statistic.
    step = rounds[0]
    parts = [step.map(c) for c in chunks]
    a = step.reduce(parts)
    b = step.reduce([step.reduce(parts[::2]), step.reduce(parts[1::2][::-1])])
    _assert_same_statistic(a, b)


def _assert_same_statistic(a, b) -> None:
    if isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=SCALE_TOL) if a.dtype.kind == "f" else np.testing.assert_array_equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_statistic(x, y)
    elif isinstance(a, float):
        np.testing.assert_allclose(a, b, rtol=SCALE_TOL, atol=1e-300)
    else:
        assert a == b


def test_round_pickles_and_maps_as_before():
    data = _data(1000)
    formula = "y ~ ns(scale(x), df = 4) + poly(x, 2) + (scale(u) | g)"
    learner = TransformLearner(parse_formula(formula), {"f": "contr.sum"})
    chunks = _split(data, [300, 301])
    while not learner.done:
        step = learner.round()
        shipped = pickle.loads(pickle.dumps(step))
        assert isinstance(shipped, LearningRound)
        parts = [shipped.map(c) for c in chunks]
        _assert_same_statistic(parts, [step.map(c) for c in chunks])
        # the statistics are plain objects that pickle too
        total = pickle.loads(pickle.dumps(shipped.reduce(parts)))
        learner.advance(total)
    _assert_same(learner.preset(), learned_on_all_rows(parse_formula(formula), Columns(data), {"f": "contr.sum"}))


def test_chunks_that_change_between_rounds_are_refused(monkeypatch):
    monkeypatch.setattr(learned, "COLLECT_LIMIT", 0)
    data = _data(500)
    calls = []

    def source():
        calls.append(1)
        return iter([data.iloc[: 500 - 100 * (len(calls) > 1)]])

    with pytest.raises(RuntimeError, match="same chunks"):
        learn_over_chunks(parse_formula("y ~ ns(x, df = 4)"), {}, source)


_VALUES = st.one_of(st.integers(-4, 4).map(float), st.floats(-1e6, 1e6, allow_nan=False, width=32),
                    st.just(np.nan), st.sampled_from([0.1, 1e-300, -0.0, 5e300]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_VALUES, min_size=1, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=6),
       df=st.integers(1, 7), limit=st.sampled_from([0, 2, 1 << 16]))
def test_knots_exact_on_any_values_and_splitting(values, cuts, df, limit):
    n = len(values)
    data = pd.DataFrame({"y": np.zeros(n), "x": np.array(values, dtype=np.float64)})
    old = learned.COLLECT_LIMIT
    learned.COLLECT_LIMIT = limit
    try:
        _compare(f"y ~ ns(x, df = {df}) + bs(x, df = {df + 3}) + scale(x)", data,
                 [_split(data, [min(c, n) for c in cuts])])
    finally:
        learned.COLLECT_LIMIT = old


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.one_of(st.integers(0, 300), st.integers(0, 1 << 30)), min_size=2, max_size=40),
       df=st.integers(2, 8), limit=st.sampled_from([0, 1, 2]))
def test_knots_exact_among_neighbouring_floats(offsets, df, limit):
    # Values a few units in the last place apart (1 + k ulp): the histogram rounds go down
    # to single keys in neighbouring buckets.
    x = 1.0 + np.array(offsets, dtype=np.float64) * 2.0 ** -52
    data = pd.DataFrame({"y": np.zeros(x.size), "x": x})
    old = learned.COLLECT_LIMIT
    learned.COLLECT_LIMIT = limit
    try:
        _compare(f"y ~ ns(x, df = {df})", data, [_split(data, [x.size // 3, x.size // 3 + 1])])
    finally:
        learned.COLLECT_LIMIT = old
