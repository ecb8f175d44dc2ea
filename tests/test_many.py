"""Many fits on one design (lmm.many): equal to separate lmer fits, missing values per
response, candidate scans, streaming, refit, bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm

# Tolerances (relative) against separate lmm.lmer fits: the same optimizer from the same
# start on crossproducts equal to rounding, so the optima agree to rounding too.
RTOL_CRITERION = 1e-10
RTOL_THETA = 1e-8
RTOL_BETA = 1e-8
RTOL_SE = 1e-8

FORMULA = "~ Days + (Days | Subject)"


def _relative(a, b, floor: float = 1e-3) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), floor), initial=0.0))


def _separate(formula: str, data: pd.DataFrame, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmm.lmer(formula, data, **kwargs)


def _assert_same(res: lmm.ManyResult, j: int, single) -> None:
    assert res.error[j] == ""
    assert _relative(single.objective, res.criterion[j]) <= RTOL_CRITERION
    assert _relative(single.theta, res.theta[j]) <= RTOL_THETA
    assert _relative(single.fixef.to_numpy(), res.beta[j]) <= RTOL_BETA
    assert _relative(single.se.to_numpy(), res.se[j]) <= RTOL_SE
    assert _relative(single.sigma, res.sigma[j]) <= RTOL_BETA
    assert res.nobs[j] == single.nobs
    assert bool(res.converged[j]) == single.converged
    assert bool(res.singular[j]) == single.singular


@pytest.fixture(scope="module")
def responses() -> tuple[pd.DataFrame, list[str]]:
    """sleepstudy with 200 simulated responses: some with missing values, one singular
    (no subject variation), one with a large offset."""
    d = lmm.datasets.load("sleepstudy")
    rng = np.random.default_rng(20261203)
    m = 200
    subj = d["Subject"].astype("category").cat.codes.to_numpy()
    days = d["Days"].to_numpy(dtype=float)
    a = rng.normal(0, rng.uniform(5, 40, m), (18, m))
    b = rng.normal(0, rng.uniform(1, 10, m), (18, m))
    Y = 250 + 10 * days[:, None] + a[subj] + b[subj] * days[:, None] + rng.normal(0, rng.uniform(10, 40, m), (180, m))
    Y[:, 1] = 300 + rng.normal(0, 30, 180)  # singular: no subject effects
    Y[:, 2] = Y[:, 2] + 1e9  # a large offset
    for j in range(3, 30):  # missing values in some responses, a few sharing a pattern
        Y[rng.choice(180, 1 + j % 5, replace=False) if j % 7 else [0, 1, 2], j] = np.nan
    names = [f"gene{j}" for j in range(m)]
    return pd.concat([d, pd.DataFrame(Y, columns=names)], axis=1), names


@pytest.fixture(scope="module")
def many(responses) -> lmm.ManyResult:
    data, names = responses
    return lmm.lmer_many(FORMULA, data, responses=names, n_jobs=2)


def test_equal_to_separate_fits(responses, many):
    data, names = responses
    assert len(many) == len(names) and many.names == names
    for j, name in enumerate(names):
        _assert_same(many, j, _separate(f"{name} {FORMULA}", data))
    assert many.singular[1]
    assert many.nobs[3] < 180


def test_threads_do_not_change_results(responses, many):
    data, names = responses
    # (Blocks of responses are fixed by position, so the arithmetic is the same.)
    one = lmm.lmer_many(FORMULA, data, responses=names, n_jobs=1)
    for key in ("criterion", "theta", "beta", "se", "sigma"):
        np.testing.assert_array_equal(getattr(one, key), getattr(many, key))


def test_tables(many):
    coef = many.coefficients
    assert list(coef.columns) == ["response", "term", "estimate", "std_error", "statistic"]
    assert len(coef) == 2 * len(many)
    row = coef[(coef.response == "gene7") & (coef.term == "Days")].iloc[0]
    assert row.estimate == many.beta[7, 1] and row.std_error == many.se[7, 1]
    fits = many.fits
    assert fits.loc["gene7", "criterion"] == many.criterion[7]
    assert [c for c in fits.columns if c.startswith("theta_")] == [f"theta_{n}" for n in many.theta_names]
    frame = many.to_frame()
    assert len(frame) == len(coef) and "sigma" in frame.columns
    assert "ManyResult: 200 fits" in repr(many)


def test_model_fit_many_array_and_refit(responses):
    data, names = responses
    model = lmm.LinearMixedModel(f"Reaction {FORMULA}", data)
    Y = data[names[:10]].to_numpy()
    res = model.fit_many(Y)
    assert res.names == [f"y{j}" for j in range(10)]
    for j in range(10):
        _assert_same(res, j, _separate(f"{names[j]} {FORMULA}", data))
    # result(i) and LmmResult.refit(y): full results of one response
    single = res.result(0)
    assert _relative(single.objective, res.criterion[0]) <= RTOL_CRITERION
    refit = model.fit().refit(data[names[0]].to_numpy())
    assert _relative(refit.objective, res.criterion[0]) <= RTOL_CRITERION
    assert _relative(refit.fixef.to_numpy(), res.beta[0]) <= RTOL_BETA
    with pytest.raises(ValueError, match="missing or non-finite"):
        model.fit().refit(data[names[5]].to_numpy())
    with pytest.raises(ValueError, match="values; the model uses 180"):
        model.fit().refit(np.ones(10))


def test_missing_levels_and_fixed_factor(responses):
    # A response missing every row of one subject: that level is dropped, as lmer drops it;
    # one missing every row of a level of a fixed-effects factor: lmer drops the level (and
    # its column: NaN here); one leaving that factor a single level: lmer refuses it.
    data, _ = responses
    d = data.copy()
    d["phase"] = np.select([d["Days"] < 3, d["Days"] < 6], ["a", "b"], "c")
    y = d["gene40"].to_numpy().copy()
    y[d["Subject"].astype(str).to_numpy() == "308"] = np.nan
    z = d["gene41"].to_numpy().copy()
    z[d["phase"].to_numpy() == "c"] = np.nan
    v = d["gene43"].to_numpy().copy()
    v[d["phase"].to_numpy() != "a"] = np.nan
    d["miss_subject"], d["miss_phase"], d["one_phase"] = y, z, v
    res = lmm.lmer_many("~ phase + (1 | Subject)", d,
                        responses=["miss_subject", "miss_phase", "gene42", "one_phase"])
    _assert_same(res, 0, _separate("miss_subject ~ phase + (1 | Subject)", d))
    _assert_same(res, 2, _separate("gene42 ~ phase + (1 | Subject)", d))
    single = _separate("miss_phase ~ phase + (1 | Subject)", d)
    assert res.error[1] == "" and list(single.fixef.index) == ["(Intercept)", "phaseb"]
    assert np.isnan(res.beta[1, 2]) and _relative(single.fixef.to_numpy(), res.beta[1, :2]) <= RTOL_BETA
    assert _relative(single.objective, res.criterion[1]) <= RTOL_CRITERION
    with pytest.raises(ValueError, match="1 level"):
        _separate("one_phase ~ phase + (1 | Subject)", d)
    assert "1 level" in res.error[3] and np.isnan(res.criterion[3])


def test_failures_are_per_response(responses):
    data, names = responses
    d = data.copy()
    d["flat"] = 5.0
    d["linear"] = 3.0 + 2.0 * d["Days"]
    res = lmm.lmer_many(FORMULA, d, responses=["flat", names[0], "linear"])
    assert "constant" in res.error[0]
    assert "fitted exactly by the fixed effects" in res.error[2]
    assert res.error[1] == "" and np.isfinite(res.criterion[1])
    assert np.all(np.isnan(res.beta[[0, 2]])) and not res.converged[[0, 2]].any()


def test_crossed_weights_offset_ml():
    d = lmm.datasets.load("penicillin")
    rng = np.random.default_rng(5)
    Y = d["diameter"].to_numpy()[:, None] + rng.normal(0, 1, (len(d), 8))
    d = d.assign(w=rng.uniform(0.5, 2, len(d)), off=rng.normal(0, 1, len(d)))
    cols = {f"r{j}": Y[:, j] for j in range(8)}
    data = d.assign(**cols)
    res = lmm.lmer_many("~ 1 + (1 | plate) + (1 | sample)", data, Y=pd.DataFrame(cols), weights="w", offset="off",
                        REML=False)
    for j in range(8):
        _assert_same(res, j, _separate(f"r{j} ~ 1 + (1 | plate) + (1 | sample)", data, weights="w", offset="off",
                                       REML=False))
    assert not res.reml


def test_satterthwaite(responses):
    data, names = responses
    res = lmm.lmer_many(FORMULA, data, responses=names[:4], satterthwaite=True)
    for j in range(4):
        table = _separate(f"{names[j]} {FORMULA}", data).coef_table()
        np.testing.assert_allclose(res.df[j], table["df"].to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(res.p_value[j], table["Pr(>|t|)"].to_numpy(), rtol=1e-5)
    assert {"df", "p_value"} <= set(res.coefficients.columns)


def test_invariant_to_shift_and_scale(responses):
    data, names = responses
    Y = data[names[:20]].to_numpy()
    model = lmm.LinearMixedModel(f"Reaction {FORMULA}", data)
    base = model.fit_many(Y)
    moved = model.fit_many(-3.5 * Y + 1e4)
    np.testing.assert_allclose(moved.theta, base.theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(moved.sigma, 3.5 * base.sigma, rtol=1e-7)
    np.testing.assert_allclose(moved.se, 3.5 * base.se, rtol=1e-6)
    np.testing.assert_allclose(moved.beta[:, 1], -3.5 * base.beta[:, 1], rtol=1e-7)
    np.testing.assert_allclose(moved.statistic[:, 1], -base.statistic[:, 1], rtol=1e-6)


def test_scan_equal_to_separate_fits(responses):
    data, _ = responses
    rng = np.random.default_rng(9)
    G = pd.DataFrame(rng.normal(size=(180, 12)), columns=[f"snp{j}" for j in range(12)])
    G.iloc[[4, 50], 3] = np.nan
    G["snp11"] = 2.0
    res = lmm.lmer_many(f"Reaction {FORMULA}", data, vary=G)
    both = pd.concat([data, G], axis=1)
    assert res.fixef_names == ["(Intercept)", "Days", "(candidate)"]
    for j, name in enumerate(G.columns[:11]):
        _assert_same(res, j, _separate(f"Reaction ~ Days + {name} + (Days | Subject)", both))
    assert "constant" in res.error[11]
    cand = res.coefficients.query("term == '(candidate)'")
    assert list(cand.response) == list(G.columns)
    assert res.result("snp3").nobs == 178


def test_streaming(tmp_path, responses):
    data, names = responses
    model = lmm.LinearMixedModel(f"Reaction {FORMULA}", data)
    Y = data[names[:30]]
    whole = model.fit_many(Y)
    path = model.fit_many((Y.iloc[:, j:j + 7] for j in range(0, 30, 7)), output=tmp_path / "fits.csv", chunk_size=4)
    written = pd.read_csv(path)
    expected = whole.to_frame()
    assert list(written.response.unique()) == names[:30]
    np.testing.assert_allclose(written["estimate"], expected["estimate"], rtol=1e-12)
    np.testing.assert_allclose(written["criterion"], expected["criterion"], rtol=1e-12)
    # An iterable without output: the results kept, the responses not (result() says so).
    streamed = model.fit_many(Y.iloc[:, j:j + 10] for j in range(0, 30, 10))
    # (blocks of other sizes sum the responses' crossproducts in another order: rounding)
    np.testing.assert_allclose(streamed.criterion, whole.criterion, rtol=1e-14)
    with pytest.raises(NotImplementedError, match="iterator"):
        streamed.result(0)
    pq = pytest.importorskip("pyarrow.parquet")
    path = model.fit_many(Y, output=str(tmp_path / "fits.parquet"), chunk_size=8)
    table = pq.read_table(path).to_pandas()
    np.testing.assert_allclose(table["std_error"], expected["std_error"], rtol=1e-12)


def test_pickle(many):
    back = pickle.loads(pickle.dumps(many))
    np.testing.assert_array_equal(back.criterion, many.criterion)
    with pytest.raises(NotImplementedError, match="result"):
        back.result(0)


def test_bad_input(responses):
    data, names = responses
    with pytest.raises(TypeError, match="one of them"):
        lmm.lmer_many(FORMULA, data)
    with pytest.raises(ValueError, match="one-sided"):
        lmm.lmer_many(f"Reaction {FORMULA}", data, responses=names[:2])
    with pytest.raises(ValueError, match="unknown response columns"):
        lmm.lmer_many(FORMULA, data, responses=["nope"])
    with pytest.raises(TypeError, match="numeric"):
        lmm.lmer_many(FORMULA, data.assign(label="a"), responses=["label"])
    with pytest.raises(ValueError, match="rows"):
        lmm.lmer_many(FORMULA, data, Y=np.ones((10, 2)))
    with pytest.raises(ValueError, match="infinite"):
        lmm.lmer_many(FORMULA, data, Y=np.full((180, 1), np.inf))
    with pytest.raises(ValueError, match="n_jobs"):
        lmm.lmer_many(FORMULA, data, responses=names[:2], n_jobs=0)
    with pytest.raises(ValueError, match="parquet or .csv"):
        lmm.lmer_many(FORMULA, data, responses=names[:2], output="x.txt")
    with pytest.raises(ValueError, match="no '~'"):
        lmm.lmer_many("Days + (1 | Subject)", data, responses=names[:2])
    with pytest.raises(ValueError, match="names the response"):
        lmm.lmer_many(FORMULA, data, vary=np.ones((180, 1)))
    with pytest.raises(ValueError, match="2 names for 3"):
        lmm.LinearMixedModel(f"Reaction {FORMULA}", data).fit_many(np.ones((180, 3)), names=["a", "b"])


# A sleepstudy-like response (bench_many's sleep design, response 286) on which L-BFGS-B's
# memory kept proposing the same projected step far uphill and the line search cut it to
# nothing: the fit stopped 9.15 above the optimum, not converged. Fitted again from where
# it stalls, without memory, it converges.
STALLED = np.array([
    254.8197272, 283.8896843, 274.9632969, 295.2172646, 273.9534934, 295.8250321, 292.1497034, 302.6014313,
    331.1654206, 328.8836015, 231.7088384, 253.3709576, 262.2334821, 278.2070488, 283.9249992, 321.1993189,
    328.7002626, 300.6450366, 342.6978444, 325.2931215, 287.0669117, 269.2940766, 238.5994153, 255.735892,
    311.1266501, 253.1958668, 264.4591472, 244.0014578, 267.929349, 230.6659388, 281.8590126, 275.546864,
    262.296167, 292.7895882, 270.966955, 290.1735277, 303.268649, 335.5728281, 289.8063755, 324.3736872,
    219.0828384, 282.355827, 262.7677983, 266.6888588, 301.83263, 320.5135087, 301.1161051, 305.3371192,
    326.1606463, 343.0406881, 237.379321, 273.5232999, 302.7933991, 314.1780095, 319.500568, 328.7443591,
    347.6946032, 370.2183702, 392.7152535, 436.9395773, 231.5637234, 263.6117436, 270.0211464, 271.571345,
    286.5176919, 313.669146, 318.8024028, 325.9227464, 352.3609746, 344.169908, 250.9857851, 263.1341757,
    263.9627276, 301.4638611, 329.1600855, 325.0973535, 332.9184753, 404.8610388, 376.7988039, 405.7312105,
    212.2319739, 229.4862398, 254.1081363, 291.8918526, 343.4491898, 335.6061155, 368.2223704, 408.9208512,
    408.4185353, 426.8682288, 258.2078796, 303.6323335, 299.0670053, 303.8725806, 313.5752225, 373.7458004,
    340.2824023, 363.4704838, 372.1759973, 381.2790447, 299.6482624, 275.4038649, 276.9825432, 308.2619082,
    294.958508, 287.556913, 320.5038435, 288.0341203, 316.8208892, 274.3825205, 251.0366635, 259.7459778,
    261.9910613, 303.1530922, 316.3319823, 338.4706532, 350.6058286, 368.7794873, 403.3847395, 402.2983587,
    223.2723486, 304.2845364, 264.9599695, 277.1514803, 297.8325688, 298.5025998, 310.9164438, 349.5094986,
    369.9804581, 385.4732304, 269.3910363, 297.0625564, 276.9397227, 280.3192878, 319.0166768, 315.7628842,
    323.8812842, 327.9082172, 332.3289318, 350.5072347, 250.9723237, 245.5613502, 232.8468924, 294.622719,
    282.3651806, 278.0407881, 279.9992595, 306.4850094, 335.6758869, 325.8385871, 271.125524, 272.5888297,
    286.5307821, 276.9834877, 340.9924284, 323.3738433, 336.6499556, 351.9683706, 365.6036939, 379.3926844,
    271.0199833, 262.5344304, 273.2970226, 272.2399285, 292.3862191, 321.5502149, 296.8145745, 294.6946341,
    306.8615885, 321.45624, 214.7122331, 234.6708905, 303.2375148, 320.7732092, 323.4456737, 352.8204144,
    400.3175353, 387.4027041, 414.6866052, 419.7573982])


def test_a_stalled_run_starts_again_and_converges():
    d = lmm.datasets.load("sleepstudy")[["Days", "Subject"]].assign(y=STALLED)
    best = _separate("y ~ Days + (Days | Subject)", d, optimizer="COBYQA")
    for optimizer in ("core", "L-BFGS-B"):
        res = _separate("y ~ Days + (Days | Subject)", d, optimizer=optimizer)
        assert res.converged
        assert res.objective <= best.objective + 1e-8 * abs(best.objective)
