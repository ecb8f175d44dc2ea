"""LinearMixedModel.from_chunks: a model from row chunks equals the model of all rows.

A is a sum over rows, so the fit from chunks (levels, shift and column statistics over
all chunks, then each chunk's crossproducts summed in the core) must give the in-memory
fit of ``pd.concat(chunks)``: θ, β, σ, the criterion, the SEs and the conditional modes.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm.chunks import ChunkedLinearMixedModel
from lmm.formula import FormulaError

# Named tolerances: the criterion at a fixed θ to rounding of sums in another order;
# fitted quantities to the optimizer's agreement between two runs on equal criteria.
OBJECTIVE_TOL = 1e-10
FIT_TOL = 1e-8


def _split(data: pd.DataFrame, nchunks: int, seed: int = 0) -> list[pd.DataFrame]:
    """Chunks of unequal sizes (one of a single row), in the data's row order."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(2, len(data) - 1), size=nchunks - 2, replace=False))
    cuts = np.concatenate([[0, 1], cuts, [len(data)]])
    return [data.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _crossed(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Two crossed grouping factors (integer users, string items), a slope with an offset,
    a three-level fixed factor, prior weights."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 80, n)
    items = rng.integers(0, 30, n)
    x = 100.0 + rng.standard_normal(n)
    f = rng.choice(["lo", "mid", "hi"], n)
    w = rng.uniform(0.5, 2.0, n)
    bu = rng.standard_normal(80)
    su = 0.3 * rng.standard_normal(80)
    bi = 0.6 * rng.standard_normal(30)
    y = (2.0 + 0.4 * (x - 100.0) + np.where(f == "hi", 1.0, 0.0) + bu[users] + su[users] * (x - 100.0)
         + bi[items] + rng.standard_normal(n) / np.sqrt(w))
    return pd.DataFrame({"y": y, "x": x, "f": f, "user": users, "item": [f"i{k:02d}" for k in items], "w": w})


def _assert_same_fit(got, want, tol: float = FIT_TOL) -> None:
    np.testing.assert_allclose(got.objective, want.objective, rtol=tol)
    np.testing.assert_allclose(got.theta, want.theta, rtol=tol, atol=tol * np.max(np.abs(want.theta)))
    np.testing.assert_allclose(got.fixef.to_numpy(), want.fixef.to_numpy(), rtol=tol)
    assert list(got.fixef.index) == list(want.fixef.index)
    np.testing.assert_allclose(got.sigma, want.sigma, rtol=tol)
    se_got = np.sqrt(np.diag(got.vcov.to_numpy()))
    se_want = np.sqrt(np.diag(want.vcov.to_numpy()))
    np.testing.assert_allclose(se_got, se_want, rtol=tol)
    assert got.nobs == want.nobs
    for name, frame in want.ranef.items():
        g = got.ranef[name]
        assert list(g.index) == list(frame.index)
        np.testing.assert_allclose(g.to_numpy(), frame.to_numpy(), rtol=tol, atol=tol * np.abs(frame.to_numpy()).max())


def test_sleepstudy_in_seven_chunks():
    d = lmm.datasets.load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    chunks = _split(d, 7)
    m = lmm.LinearMixedModel.from_chunks(f, chunks)
    assert isinstance(m, ChunkedLinearMixedModel)
    full = lmm.LinearMixedModel(f, d)
    for theta in ([1.0, 0.0, 1.0], [0.5, -0.2, 0.3], [2.0, 0.1, 0.0]):
        for reml in (True, False):
            np.testing.assert_allclose(m.objective(theta, reml), full.objective(theta, reml), rtol=OBJECTIVE_TOL)
            np.testing.assert_allclose(m.gradient(theta, reml), full.gradient(theta, reml), rtol=1e-8, atol=1e-8)
    _assert_same_fit(m.fit(), full.fit())
    _assert_same_fit(m.fit(reml=False), full.fit(reml=False))


def test_crossed_weights_nan_rows_and_late_levels():
    d = _crossed()
    # Levels that first appear in a late chunk: a user, an item and a level of the fixed factor.
    d.loc[d.index[:2500], "f"] = d.loc[d.index[:2500], "f"].replace("mid", "lo")
    d.loc[d.user == 79, "user"] = 78
    d.loc[d.index[-3], "user"] = 79
    d.loc[d.item == "i29", "item"] = "i28"
    d.loc[d.index[-5], "item"] = "i29"
    # Missing values in several chunks, in different columns; a level present only in dropped rows.
    d.loc[d.index[[10, 700, 1500]], "x"] = np.nan
    d.loc[d.index[[20, 2100]], "y"] = np.nan
    d.loc[d.index[[30]], "f"] = None
    d.loc[d.index[40], "item"] = "only-dropped"
    d.loc[d.index[40], "w"] = np.nan
    formula = "y ~ x + f + (1 + x | user) + (1 | item)"
    chunks = _split(d, 7, seed=3)
    with pytest.warns(UserWarning, match="rows dropped because of missing values"):
        m = lmm.LinearMixedModel.from_chunks(formula, chunks, weights="w")
    with pytest.warns(UserWarning, match="rows dropped because of missing values"):
        full = lmm.LinearMixedModel(formula, pd.concat(chunks), weights="w")
    assert m.nobs == full.nobs == len(d) - 7
    assert [t.nlevels for t in m.terms] == [t.nlevels for t in full.terms]
    assert "only-dropped" not in m.terms[1].levels
    theta = full.theta_start
    np.testing.assert_allclose(m.objective(theta), full.objective(theta), rtol=OBJECTIVE_TOL)
    for reml in (True, False):
        _assert_same_fit(m.fit(reml=reml), full.fit(reml=reml))


def test_callable_chunks_offset_and_ml():
    d = _crossed(seed=5)
    d["o"] = 0.1 * np.arange(len(d)) / len(d)
    chunks = _split(d, 5, seed=1)
    formula = "y ~ x + (1 | user) + (1 | item)"
    m = lmm.LinearMixedModel.from_chunks(formula, lambda: iter(chunks), offset="o", REML=False)
    full = lmm.LinearMixedModel(formula, d, offset="o", REML=False)
    _assert_same_fit(m.fit(), full.fit())


def test_given_levels():
    d = lmm.datasets.load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    levels = sorted(d.Subject.unique())
    m = lmm.LinearMixedModel.from_chunks(f, _split(d, 4), levels={"Subject": levels})
    _assert_same_fit(m.fit(), lmm.lmer(f, d))
    with pytest.raises(ValueError, match="not among its levels"):
        lmm.LinearMixedModel.from_chunks(f, _split(d, 4), levels={"Subject": levels[:-1]})


def test_string_ids_of_every_storage():
    # Arrow-backed strings are looked up in Arrow, object strings through their labels:
    # one fit; a level outside the given ones is named in both.
    pytest.importorskip("pyarrow")
    d = _crossed(seed=8)
    f = "y ~ x + (1 | user) + (1 | item)"
    full = lmm.LinearMixedModel(f, d).fit()
    given = {"item": sorted(set(d["item"]) - {"i07"})}
    for dtype in (object, pd.StringDtype("pyarrow")):
        chunks = [c.astype({"item": dtype}) for c in _split(d, 4, seed=2)]
        _assert_same_fit(lmm.LinearMixedModel.from_chunks(f, chunks).fit(), full)
        with pytest.raises(ValueError, match=r"'item' has levels \['i07'\]"):
            lmm.LinearMixedModel.from_chunks(f, chunks, levels=given)


def test_rows_needed_and_predict_on_a_chunk():
    d = lmm.datasets.load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    chunks = _split(d, 3)
    res = lmm.LinearMixedModel.from_chunks(f, chunks).fit()
    full = lmm.lmer(f, d)
    for call in (res.fitted, res.residuals, lambda: res.model.with_response(d.Reaction), res.model.response_core):
        with pytest.raises(NotImplementedError, match="chunk"):
            call()
    # The alternative the errors name: the fitted values of a chunk's rows.
    np.testing.assert_allclose(res.predict(chunks[1]), full.fitted()[chunks[1].index], rtol=1e-8)


def test_refused_inputs():
    d = lmm.datasets.load("sleepstudy")
    with pytest.raises(TypeError, match="iterator"):
        lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (1 | Subject)", iter(_split(d, 3)))
    with pytest.raises(NotImplementedError, match="response"):
        lmm.LinearMixedModel.from_chunks("scale(Reaction) ~ Days + (1 | Subject)", _split(d, 3))
    with pytest.raises(NotImplementedError, match="offset"):
        lmm.LinearMixedModel.from_chunks("Reaction ~ Days + offset(scale(Days)) + (1 | Subject)", _split(d, 3))
    with pytest.raises(FormulaError, match="Days"):
        lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (1 | Subject)", [d, d.drop(columns="Days")])
    with pytest.raises(ValueError, match="nothere"):
        lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (1 | Subject)", [d], weights="nothere")
    with pytest.raises(ValueError, match="empty"):
        lmm.LinearMixedModel.from_chunks("Reaction ~ Days + (1 | Subject)", [])


def test_aliased_columns_dropped_and_scales_warned_as_in_memory():
    d = lmm.datasets.load("sleepstudy").assign(Days2=lambda f: 2 * f.Days, big=lambda f: 1e5 * f.Days + 1.0)
    for formula, match in [("Reaction ~ Days + Days2 + (1 | Subject)", "rank deficient so dropping 1 column"),
                           ("Reaction ~ big + (1 | Subject)", "very different scales")]:
        with pytest.warns(UserWarning, match=match) as got:
            m = lmm.LinearMixedModel.from_chunks(formula, _split(d, 3))
        with pytest.warns(UserWarning, match=match) as want:
            full = lmm.LinearMixedModel(formula, d)
        assert [str(w.message) for w in got] == [str(w.message) for w in want]
        assert m.design.dropped_columns == full.design.dropped_columns
        _assert_same_fit(m.fit(), full.fit())


def test_passes_over_the_chunks():
    """Two passes when X and z hold no factors (levels, statistics and shift together),
    three when they do (the factor levels come first)."""
    d = _crossed(seed=2)
    chunks = _split(d, 4)
    calls = []

    def source():
        calls.append(1)
        return iter(chunks)

    lmm.LinearMixedModel.from_chunks("y ~ x + (1 | user) + (1 | item)", source)
    assert len(calls) == 2
    calls.clear()
    lmm.LinearMixedModel.from_chunks("y ~ x + f + (1 | user) + (1 | item)", source)
    assert len(calls) == 3


def test_pickled_model_and_result():
    """A chunked model travels with its crossproducts (what Dask workers will send back)."""
    d = _crossed(seed=4)
    formula = "y ~ x + (1 + x | user) + (1 | item)"
    m = lmm.LinearMixedModel.from_chunks(formula, _split(d, 3), weights="w")
    theta = m.theta_start
    again = pickle.loads(pickle.dumps(m))
    assert again.objective(theta) == m.objective(theta)
    res = m.fit()
    res2 = pickle.loads(pickle.dumps(res))
    _assert_same_fit(res2, res, tol=1e-15)
    np.testing.assert_allclose(res2.model.gradient(res.theta), m.gradient(res.theta), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("formula", [
    "y ~ x + (1 | a:b)",                    # an interaction of two columns as the grouping factor
    "y ~ x + (1 | a/b)",                    # nested: b within a
    "y ~ x + b + (1 | user)",               # a pandas Categorical in the fixed effects (its category order)
    "y ~ x + flag + (1 | item)",            # a logical column
    "y ~ x + (0 + b | item)",               # a factor in a term's columns
    "y ~ x * f + (1 | user) + (1 | item)",  # factor × numeric interaction
    "y ~ factor(a) + (1 | user)",           # factor() of an integer column
    "log(y + 10) ~ x + (x | item)",         # an expression as the response
    "y ~ x + (1 | interaction(a, s))",
    "y ~ x + (1 + xc || user) + (1 | item)",  # a || term: its pieces merged into one diagonal term
    "y ~ x + (0 + b || item) + (1 | user)",  # a || term of a factor: a piece of several columns
])
def test_formulas(formula):
    d = _crossed(seed=9)
    d["a"] = d.user % 7
    b = np.where(d.user % 3 == 0, "p", np.where(d.user % 3 == 1, "q", "r"))
    d["b"] = pd.Categorical(b, categories=["r", "q", "p"])
    d["flag"] = d.x > 100.3
    d["s"] = d.item.str[:2]
    d["xc"] = d.x - 100.0
    chunks = _split(d, 6, seed=2)
    m = lmm.LinearMixedModel.from_chunks(formula, chunks)
    full = lmm.LinearMixedModel(formula, pd.concat(chunks))
    _assert_same_fit(m.fit(), full.fit())


def test_structured_term_with_an_offset_warns_as_in_memory():
    d = _crossed(seed=9)
    formula = "y ~ x + diag(1 + x | user)"
    with pytest.warns(UserWarning, match="large offsets"):
        m = lmm.LinearMixedModel.from_chunks(formula, _split(d, 4))
    with pytest.warns(UserWarning, match="large offsets"):
        full = lmm.LinearMixedModel(formula, d)
    _assert_same_fit(m.fit(), full.fit())


def test_parquet_out_of_core(tmp_path):
    """lmer on a parquet path reads it batch by batch and fits as the in-memory data."""
    pytest.importorskip("pyarrow")
    d = _crossed(seed=6)
    d.loc[d.index[[5, 1000]], "x"] = np.nan
    path = tmp_path / "crossed.parquet"
    d.to_parquet(path, row_group_size=700)
    formula = "y ~ x + f + (1 + x | user) + (1 | item)"
    from lmm.chunks import parquet_chunks

    assert len(list(parquet_chunks(path, batch_rows=700)())) >= 4
    with pytest.warns(UserWarning, match="2 of 3000 rows dropped"):
        got = lmm.lmer(formula, str(path), weights="w")
    with pytest.warns(UserWarning, match="2 of 3000 rows dropped"):
        want = lmm.lmer(formula, pd.read_parquet(path), weights="w")
    _assert_same_fit(got, want)
    with pytest.raises(ValueError, match="no columns"):
        parquet_chunks(path, ["y", "nothere"])


def test_empty_chunks_and_column_types_that_differ_between_chunks():
    """A chunk whose rows are all dropped, an empty chunk, and a chunk where the integer
    ids are floats (missing values made pandas widen them) fit as their concatenation."""
    d = _crossed(seed=9)
    chunks = _split(d, 5, seed=2)
    widened = chunks[2].copy()
    widened["user"] = widened["user"].astype(float)
    widened.loc[widened.index[:3], "user"] = np.nan
    dropped = chunks[3].assign(y=np.nan)
    chunks = [chunks[0], chunks[1], widened, dropped, chunks[4], d.iloc[:0]]
    formula = "y ~ x + f + (1 | user) + (1 | item)"
    with pytest.warns(UserWarning, match="rows dropped"):
        m = lmm.LinearMixedModel.from_chunks(formula, chunks)
    with pytest.warns(UserWarning, match="rows dropped"):
        full = lmm.LinearMixedModel(formula, pd.concat(chunks))
    assert m.nobs == full.nobs
    _assert_same_fit(m.fit(), full.fit())


def test_empty_cell_of_a_factor_interaction():
    """An interaction column that no row has (an empty cell) is dropped as in memory."""
    d = _crossed(seed=9)
    d["b"] = np.where(d.user % 3 == 0, "p", np.where(d.user % 3 == 1, "q", "r"))
    d = d[~((d.b == "p") & (d.f == "hi"))]
    formula = "y ~ x + f * b + (1 | item)"
    chunks = _split(d, 5)
    with pytest.warns(UserWarning, match="rank deficient") as got:
        m = lmm.LinearMixedModel.from_chunks(formula, chunks)
    with pytest.warns(UserWarning, match="rank deficient") as want:
        full = lmm.LinearMixedModel(formula, pd.concat(chunks))
    assert [str(w.message) for w in got] == [str(w.message) for w in want]
    _assert_same_fit(m.fit(), full.fit())


def test_contrasts_by_name():
    d = _crossed(seed=9)
    formula = "y ~ x + f + (1 | user)"
    m = lmm.LinearMixedModel.from_chunks(formula, _split(d, 4), contrasts={"f": "contr.sum"})
    full = lmm.LinearMixedModel(formula, d, contrasts={"f": "contr.sum"})
    assert m.design.xnames == full.design.xnames
    _assert_same_fit(m.fit(), full.fit())
    # A contrast matrix (levels in R's order: hi, lo, mid), as in memory.
    matrix = np.array([[1.0, 0.5], [-1.0, 0.5], [0.0, -1.0]])
    m = lmm.LinearMixedModel.from_chunks(formula, _split(d, 4), contrasts={"f": matrix})
    full = lmm.LinearMixedModel(formula, d, contrasts={"f": matrix})
    assert m.design.xnames == full.design.xnames
    _assert_same_fit(m.fit(), full.fit())


@pytest.mark.parametrize("formula", [
    "y ~ scale(x) + f + (1 | user)",
    "y ~ poly(x, 3) + (1 | user) + (1 | item)",
    "y ~ ns(x, df = 3) + (1 | item)",
    "y ~ bs(x, df = 4) + f + (1 | user)",
    "y ~ f + (scale(x) | user)",
])
def test_stateful_transforms_learned_on_all_rows(formula):
    """scale(), poly(), ns(), bs() learn their values over all chunks (lmm.design.learned),
    on every row where their argument is present, as in memory."""
    d = _crossed(seed=11)
    d.loc[d.index[[15, 1200]], "y"] = np.nan  # rows dropped after the transforms are learned
    chunks = _split(d, 6, seed=4)
    with pytest.warns(UserWarning, match="dropped"):
        m = lmm.LinearMixedModel.from_chunks(formula, chunks)
    with pytest.warns(UserWarning, match="dropped"):
        full = lmm.LinearMixedModel(formula, d)
    assert m.design.xnames == full.design.xnames
    _assert_same_fit(m.fit(), full.fit())
    new = d.iloc[:50].dropna()
    np.testing.assert_allclose(m.fit().predict(new), full.fit().predict(new), rtol=1e-7)
