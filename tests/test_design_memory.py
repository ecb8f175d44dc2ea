"""The design's memory: blockwise checks that keep their answers, and views instead of copies."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm.design import build_design
from lmm.design.fixed import RANK_TOL, center, centred_blocks, column_norms, full_rank_columns, r_factor
from lmm.formula import ModelFrameState, grouping_factor, model_matrix, parse_formula

# More rows than one block of the blockwise passes (and than the exact-fit sample), so
# that the QR is accumulated over many blocks.
N_LARGE = 120_000


def _design(formula: str, data: pd.DataFrame):
    return build_design(parse_formula(formula), data)


def _kept(X: np.ndarray) -> list[int]:
    """The design's rank test: on the R factor of X centred when column 0 is the intercept."""
    names = ["(Intercept)" if np.all(X[:, 0] == 1.0) else "x0"] + [f"x{j}" for j in range(1, X.shape[1])]
    x_center, _ = center(X, names)
    R = r_factor(centred_blocks(X, x_center, np.zeros(X.shape[0])), X.shape[1] + 1)[:, :-1]
    return full_rank_columns(R, column_norms(R, x_center, X.shape[0]))


def _gram_schmidt_rank(X: np.ndarray) -> list[int]:
    """The rank test on the full n × k matrix (reference): Gram–Schmidt on the columns,
    centred when column 0 is the intercept; a column is kept when its residual exceeds
    RANK_TOL times its centred norm and 1000 ε times its norm."""
    kept: list[int] = []
    n = X.shape[0]
    intercept = bool(np.all(X[:, 0] == 1.0))
    Q = np.zeros((n, 0))
    for j in range(X.shape[1]):
        x = X[:, j] - (X[:, j].mean() if intercept and j > 0 else 0.0)
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)
        rnorm = np.linalg.norm(r)
        if rnorm > RANK_TOL * np.linalg.norm(x) and rnorm > 1e3 * np.finfo(float).eps * np.linalg.norm(X[:, j]):
            kept.append(j)
            Q = np.column_stack([Q, r / rnorm])
    return kept


def _near(x: np.ndarray, other: np.ndarray, rel: float) -> np.ndarray:
    """x + a component orthogonal to x of rel times |x| (after scaling x by its max |x|)."""
    xs = x / np.abs(x).max()
    e = other - xs * (xs @ other) / (xs @ xs)
    return xs + rel * np.linalg.norm(xs) * e / np.linalg.norm(e)


@pytest.mark.parametrize("n", [500, N_LARGE])
def test_rank_test_on_near_aliased_columns_on_very_different_scales(n):
    rng = np.random.default_rng(7)
    x, u, v = rng.normal(size=(3, n))
    X = np.asfortranarray(np.column_stack([
        np.ones(n),
        1e6 * x,  # large units
        1e-6 * _near(x, u, 1e-9),  # aliased with x to 1e-9: dropped
        1e-3 * _near(x, u, 1e-5),  # 1e-5 away from x: kept
        np.zeros(n),  # all zero: dropped
        1e8 * (2.0 * x - 3.0),  # a combination of the intercept and x: dropped
        1e-8 * v,  # independent, tiny units: kept
    ]))
    kept = _kept(X)
    assert kept == [0, 1, 3, 6]
    assert kept == _gram_schmidt_rank(X)


def test_rank_test_agrees_with_gram_schmidt_on_random_aliasing():
    rng = np.random.default_rng(11)
    for _ in range(40):
        n, k = int(rng.choice([300, N_LARGE])), int(rng.integers(2, 8))
        X = rng.normal(size=(n, k))
        for j in range(1, k):
            if rng.random() < 0.5:  # near a combination of earlier columns, across the tolerance
                comb = X[:, :j] @ rng.normal(size=j)
                X[:, j] = _near(comb, rng.normal(size=n), 10.0 ** rng.uniform(-9, -5))
        X *= 10.0 ** rng.uniform(-6, 6, k)
        if rng.random() < 0.5:  # an intercept: the test runs on centred columns
            X[:, 0] = 1.0
            j = int(rng.integers(1, k))
            X[:, j] = _near(X[:, j] + 1e3 * rng.normal(), X[:, :j] @ rng.normal(size=j), 10.0 ** rng.uniform(-9, -5))
        X = np.asfortranarray(X)
        assert _kept(X) == _gram_schmidt_rank(X)


def test_rank_deficient_columns_dropped_on_many_rows():
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"x": rng.normal(size=N_LARGE), "g": rng.integers(0, 400, N_LARGE)})
    data["x2"] = 1e-4 * data["x"] + 5.0
    data["y"] = data["x"] + rng.normal(size=N_LARGE)
    with pytest.warns(UserWarning, match=r"rank deficient so dropping 1 column\(s\): \['x2'\]"):
        d = _design("y ~ x + x2 + (1 + x2 | g)", data)
    assert d.xnames == ["(Intercept)", "x"]
    t = d.terms[0]
    # (1 + x2) is not a run of the X kept: its own array, not a view of the X before the drop
    assert t.cnames == ["(Intercept)", "x2"] and t.z.base is None
    np.testing.assert_array_equal(t.z[:, 1], data["x2"].to_numpy())


def test_random_slopes_are_a_view_of_X(sleep):
    d = _design("Reaction ~ Days + (Days | Subject)", sleep)
    t = d.terms[0]
    assert t.z.base is d.X and np.shares_memory(t.z, d.X)
    assert t.z.flags.f_contiguous and not d.X.flags.writeable and not t.z.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        t.z[0, 1] = 1.0
    np.testing.assert_array_equal(t.z, model_matrix("1 + Days", sleep)[0])
    # the fixed state's Days is that column too (not a copy of the int column)
    days = d.fixed_state._variables[0].values
    assert np.shares_memory(days, d.X)


def test_double_bar_and_intercept_terms_share_columns():
    rng = np.random.default_rng(5)
    n = 400
    data = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 20, n), "h": rng.integers(0, 15, n)})
    data["y"] = data["x"] + rng.normal(size=n)
    d = _design("y ~ x + (x || g) + (1 | h)", data)
    assert [t.cnames for t in d.terms] == [["(Intercept)", "x"], ["(Intercept)"]]
    assert all(t.z.base is d.X for t in d.terms)
    # without a fixed intercept, random intercepts are columns of ones without storage
    d = _design("y ~ 0 + x + (1 | g) + (1 | h)", data)
    for t in d.terms:
        assert t.z.shape == (n, 1) and t.z.strides[0] == 0 and not t.z.flags.writeable
        np.testing.assert_array_equal(t.z, 1.0)
    # an intercept-only X is one too, and the random intercepts are X
    d = _design("y ~ 1 + (1 | g) + (1 | h)", data)
    assert d.X.shape == (n, 1) and d.X.strides[0] == 0 and not d.X.flags.writeable
    assert all(t.z is d.X for t in d.terms)
    np.testing.assert_array_equal(d.X, 1.0)
    # a slope of a variable that is not a fixed effect: its own column
    d = _design("y ~ 1 + (0 + x | g)", data)
    assert d.terms[0].z.base is None


def test_terms_that_only_share_names_are_not_views():
    # the same names, other values: model_matrix(like=...) must compare the values
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    other = pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0]})
    M, names = model_matrix("1 + x", df)
    z, _ = model_matrix("1 + x", other, like=(M, names))
    assert not np.shares_memory(z, M) and z[3, 1] == 5.0
    z, _ = model_matrix("x", df, like=(M, names))
    assert np.shares_memory(z, M)


def test_view_of_columns_keeps_complete_design(sleep):
    state = ModelFrameState()
    X, names = model_matrix("Days * Subject", sleep.assign(Subject=sleep["Subject"].astype(str)), state=state)
    before = state.complete_design()
    state.share_columns(X, names)
    assert np.shares_memory(state._variables[0].values, X)
    after = state.complete_design()
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]


@pytest.mark.parametrize("ids", [
    np.arange(40) - 17,  # compact, negative
    np.arange(40) * 10**9,  # sparse: sorted, not counted
    np.arange(40) + 2**60,  # beyond 2**53: float64 as R reads them (ids merge)
])
def test_integer_grouping_codes_as_from_floats(ids):
    rng = np.random.default_rng(2)
    values = rng.permutation(np.repeat(ids, 5))
    term = parse_formula("y ~ (1 | g)").random[0]
    codes, levels = grouping_factor(term, pd.DataFrame({"g": values}))
    fcodes, flevels = grouping_factor(term, pd.DataFrame({"g": values.astype(np.float64)}))
    np.testing.assert_array_equal(codes, fcodes)
    assert codes.dtype == np.int32
    if ids[-1] < 2**53:
        assert levels == [str(v) for v in np.sort(ids)]
    else:
        assert len(levels) < len(ids)  # merged as doubles
        assert levels == [str(int(float(v))) for v in np.unique(values.astype(np.float64))]


def test_exact_fit_still_raises_on_many_rows():
    rng = np.random.default_rng(9)
    n = N_LARGE
    g = rng.integers(0, n // 10, n)
    data = pd.DataFrame({"x": rng.normal(size=n), "g": g, "u": rng.normal(size=n)})
    data["y_fixed"] = 3.0 + 2.0 * data["x"]
    data["y_group"] = 0.01 * g + 2.0 * data["x"]
    data["y_slope"] = 0.01 * g + (g % 7) * data["x"] + data["u"]
    with pytest.raises(ValueError, match=r"fitted exactly by the fixed effects \['\(Intercept\)', 'x'\]"):
        _design("y_fixed ~ x + (1 | g)", data)
    with pytest.raises(ValueError, match=r"fitted exactly by the fixed effects and the random-effects term \(1 \| g\)"):
        _design("y_group ~ x + (1 | g)", data)
    with pytest.raises(ValueError, match=r"random-effects term \(1 \+ x \| g\)"):
        _design("y_slope ~ u + (1 + x | g)", data)
    noisy = data.assign(y_group=data["y_group"] + 1e-3 * rng.normal(size=n))
    _design("y_group ~ x + (1 | g)", noisy)


def _counted_exact_fit_rows(monkeypatch) -> list[int]:
    """The rows of each exact-fit check (``within_level_residual`` call) from now on."""
    import lmm.design.response as response

    calls: list[int] = []
    within = response.core.within_level_residual

    def counted(codes, z, nlevels, V):
        calls.append(codes.shape[0])
        return within(codes, z, nlevels, V)

    monkeypatch.setattr(response.core, "within_level_residual", counted)
    return calls


def test_exact_fit_sample_decides_when_x_is_the_terms_columns(monkeypatch):
    # X's columns that the term spans within levels (the intercept of y ~ 1 + (1 | g),
    # t of y ~ t + (1 + t | g)) are left out of the within-level fit: as an exactly zero
    # block they made the sample's residual NaN, so every design took the full pass.
    rng = np.random.default_rng(2)
    n = N_LARGE
    g = rng.integers(0, n // 3, n)
    data = pd.DataFrame({"g": g, "t": rng.integers(0, 10, n).astype(float), "a": rng.normal(size=n // 3)[g]})
    data["y"] = data["a"] + rng.normal(size=n)
    calls = _counted_exact_fit_rows(monkeypatch)
    for formula in ["y ~ 1 + (1 | g)", "y ~ t + (1 + t | g)", "y ~ t + (1 | g)"]:
        calls.clear()
        _design(formula, data)
        assert len(calls) == 1 and calls[0] < n
    with pytest.raises(ValueError, match=r"fitted exactly by the fixed effects and the random-effects term \(1 \| g\)"):
        _design("a ~ 1 + (1 | g)", data)
    with pytest.raises(ValueError, match=r"random-effects term \(1 \+ t \| g\)"):
        _design("a ~ t + (1 + t | g)", data.assign(a=data["a"] * (1 + data["t"])))


def test_exact_fit_sample_of_few_large_levels_keeps_a_share_of_their_rows(monkeypatch):
    # A factor of a few levels of many rows each (InstEval's departments): the levels
    # taken keep every k-th row, a sample of about _EXACT_FIT_SAMPLE rows, not all of
    # theirs; an exact fit is still found (exact on all rows, exact on any subset).
    import lmm.design.response as response

    rng = np.random.default_rng(4)
    n = N_LARGE
    g = rng.integers(0, 6, n)
    data = pd.DataFrame({"g": g, "x": rng.normal(size=n)})
    data["y"] = 0.5 * g + data["x"] + rng.normal(size=n)
    data["exact"] = 0.5 * g + data["x"]
    calls = _counted_exact_fit_rows(monkeypatch)
    _design("y ~ x + (1 | g)", data)
    assert len(calls) == 1 and calls[0] <= 2 * response._EXACT_FIT_SAMPLE
    calls.clear()
    with pytest.raises(ValueError, match=r"fitted exactly by the fixed effects and the random-effects term \(1 \| g\)"):
        _design("exact ~ x + (1 | g)", data)
    assert calls[0] <= 2 * response._EXACT_FIT_SAMPLE and calls[-1] == n


def test_response_coefficients_are_least_squares_on_centred_X():
    rng = np.random.default_rng(4)
    n = N_LARGE
    data = pd.DataFrame({"x": 1e4 + rng.normal(size=n), "z": rng.normal(size=n), "g": rng.integers(0, 300, n)})
    data["y"] = 1e6 + 3.0 * data["x"] - data["z"] + rng.normal(size=n)
    d = _design("y ~ x + z + (1 | g)", data)
    Xc = d.X - d.x_center
    expected = np.linalg.lstsq(Xc, d.y, rcond=None)[0]
    np.testing.assert_allclose(d.y_coef, expected, rtol=1e-12)


def test_build_peak_is_little_above_what_the_design_keeps():
    # The rank test, the least squares and the checks run block by block, and the
    # slope term's z is a view of X: building needs little beyond the design itself.
    rng = np.random.default_rng(1)
    n = 200_000
    data = pd.DataFrame({"t": rng.integers(0, 10, n).astype(float), "subj": np.repeat(np.arange(n // 10), 10)})
    data["y"] = 10.0 + 0.5 * data["t"] + rng.normal(size=n)
    parsed = parse_formula("y ~ 1 + t + (1 + t | subj)")
    build_design(parsed, data.iloc[:2000])
    gc.collect()
    tracemalloc.start()
    try:
        d = build_design(parsed, data)
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    arrays = d.y.nbytes + d.X.nbytes + d.terms[0].codes.nbytes
    # + the 20,000 ids as int64 (156 KiB): not their labels as strings (about 1.2 MiB)
    assert kept < arrays + 2**18
    assert peak < kept + 3 * 2**20
    assert d.terms[0]._levels is None


def _int_ids_data(ids: np.ndarray, reps: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.permutation(np.repeat(ids, reps))
    code = np.unique(g.astype(np.float64), return_inverse=True)[1]  # the level, as R reads the ids
    x = rng.normal(size=g.size)
    return pd.DataFrame({"x": x, "g": g, "y": x + 0.3 * (code % 5) + rng.normal(size=g.size)})


def test_fit_does_not_make_level_labels():
    # Neither the design (its checks included: with more than 10,000 rows the exact-fit
    # test first runs on a sample of the levels) nor the fit makes the labels; the first
    # read of levels (ranef here) makes them, once.
    ids = np.arange(3000) * 7 - 5000
    data = _int_ids_data(ids, reps=5)
    res = lmm.lmer("y ~ x + (1 | g) + (1 | g:h)", data.assign(h=data["g"] % 3))
    res.fitted()
    res.predict()
    assert all(t._levels is None for t in res.model.terms)
    assert [t.nlevels for t in res.model.terms] == [3000, 3000]
    ranef = res.ranef
    g = next(t for t in res.model.terms if t.name == "g")
    assert g._levels is not None and g.levels is g._levels
    assert list(ranef["g"].index) == [str(v) for v in ids]
    assert list(ranef["g:h"].index) == [f"{v}:{v % 3}" for v in ids]


@pytest.mark.parametrize("ids", [
    np.arange(40) * 3 + 1,  # gaps
    np.arange(40) - 17,  # negative
    np.arange(40) * 10**12 - 10**13,  # sparse: sorted, not counted
    np.arange(40) * 2**20 + 2**55,  # beyond 2**53, distinct as doubles
    np.arange(40) * 128 + 2**60,  # beyond 2**53: pairs of ids are one double, one level
])
def test_integer_levels_are_made_on_request_as_r_labels(ids):
    data = _int_ids_data(ids)
    res = lmm.lmer("y ~ x + (1 | g)", data)
    t = res.model.terms[0]
    assert t._levels is None
    # the labels R gives (factor() of the doubles), as the eager factor() of a model matrix makes them
    expected = [name[len("factor(g)"):] for name in model_matrix("0 + factor(g)", data)[1]]
    assert expected == [str(int(v)) for v in np.unique(ids.astype(np.float64))]
    assert t.nlevels == len(expected) and t._levels is None
    assert t.levels.equals(pd.Index(expected)) and t.levels.dtype == pd.Index(expected).dtype
    assert list(res.ranef["g"].index) == expected
    np.testing.assert_allclose(res.predict(data), res.fitted(), rtol=1e-12)


def test_nullable_integer_ids_with_missing_values():
    data = _int_ids_data(np.arange(30) * 5 - 40)
    data["g"] = pd.array(data["g"], dtype="Int64")
    data.loc[::11, "g"] = pd.NA
    with pytest.warns(UserWarning, match="missing"):
        res = lmm.lmer("y ~ x + (1 | g)", data)
    assert res.model.terms[0]._levels is None
    assert list(res.ranef["g"].index) == [str(v) for v in np.arange(30) * 5 - 40]


def test_interaction_and_other_levels_equal_eager_labels():
    rng = np.random.default_rng(3)
    n = 400
    a = rng.integers(0, 4, n)
    b = rng.integers(0, 6, n) * 10 - 20
    k = rng.integers(0, 5, n)
    data = pd.DataFrame({"a": a, "b": b, "s": np.array(["b", "a", "B", "10", "9"])[k],
                         "c": pd.Categorical(np.array(["z", "x", "y", "w"])[a], categories=["z", "y", "x", "w", "v"]),
                         "x": rng.normal(size=n)})
    data["y"] = data["x"] + 0.2 * a + 0.01 * b + rng.normal(size=n)

    def combos(first: list, second: list, keys) -> list[str]:
        # the combinations that occur, first factor slowest, as R's factor(a:b)
        present = set(keys)
        return [f"{u}:{v}" for i, u in enumerate(first) for j, v in enumerate(second) if (i, j) in present]

    blevels = [str(v) for v in sorted(set(b))]
    bcode = np.searchsorted(sorted(set(b)), b)
    slevels = ["10", "9", "a", "b", "B"]  # R's collation
    scode = np.array([slevels.index(v) for v in data["s"]])
    ccode = np.array([["z", "y", "x", "w"].index(v) for v in data["c"]])
    cases = {
        "y ~ x + (1 | a:b)": {"a:b": combos(["0", "1", "2", "3"], blevels, zip(a, bcode))},
        "y ~ x + (1 | a/b)": {"b:a": combos(blevels, ["0", "1", "2", "3"], zip(bcode, a)), "a": ["0", "1", "2", "3"]},
        "y ~ x + (1 | s:b)": {"s:b": combos(slevels, blevels, zip(scode, bcode))},
        "y ~ x + (1 | b:c)": {"b:c": combos(blevels, ["z", "y", "x", "w"], zip(bcode, ccode))},
        "y ~ x + (1 | s) + (1 | c)": {"s": slevels, "c": ["z", "y", "x", "w"]},
    }
    for formula, expected in cases.items():
        res = lmm.lmer(formula, data)
        assert all(t._levels is None for t in res.model.terms)
        for t in res.model.terms:
            assert t.nlevels == len(expected[t.name])
            assert list(t.levels) == expected[t.name], (formula, t.name)
            assert t.levels.equals(pd.Index(expected[t.name])) and t.levels.dtype == pd.Index(expected[t.name]).dtype
            assert list(res.ranef[t.name].index) == expected[t.name]
            assert list(res.coef()[t.name].index) == expected[t.name]
        np.testing.assert_allclose(res.predict(data), res.fitted(), rtol=1e-12)


def test_new_level_error_names_the_labels():
    data = _int_ids_data(np.arange(20) - 3)
    res = lmm.lmer("y ~ x + (1 | g)", data)
    with pytest.raises(ValueError, match=r"new level\(s\) \['1000'\]"):
        res.predict(data.iloc[:3].assign(g=1000))


def test_single_integer_level_error_shows_the_label():
    data = _int_ids_data(np.arange(20))
    with pytest.raises(ValueError, match=r"has a single level \('308'\)"):
        lmm.lmer("y ~ x + (1 | one)", data.assign(one=308))


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return lmm.datasets.load("sleepstudy")
