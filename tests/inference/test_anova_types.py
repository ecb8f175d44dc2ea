"""lmerTest's anova tables of types I, II and III against lmerTest
(tests/reference/contrasts_reference.json, written by make_contrasts_reference.R): every fit,
every type, Satterthwaite and Kenward-Roger df and lme4's table; the contrast matrices
themselves; invariance of the tables under changes of units and of coding; bad arguments."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import lmm
from lmm import inference

REF = json.loads((pathlib.Path(__file__).parent.parent / "reference" / "contrasts_reference.json").read_text())
FITS = {f["id"]: f for f in REF["fits"]}

# Tolerances per quantity (relative unless named absolute); lmm and lme4 optimize to
# ~1e-9 in the criterion, and the Satterthwaite derivatives are numDeriv's on both sides.
SUM_SQ = 1e-6       # Sum Sq and Mean Sq; observed 1.1e-8
F_VALUE = 1e-6      # observed 1.8e-8
DEN_DF = 1e-5       # observed 5e-9
P_VALUE = 1e-5      # observed 2.3e-7
CONTRAST_ABS = 1e-9  # lmerTest's contrast matrices (rounded by zapsmall); observed 1.1e-15
INVARIANT = 1e-6    # a table against the same table after a change of units or coding

DDFS = {"Satterthwaite": "satterthwaite", "Kenward-Roger": "kenward_roger"}
# Fits whose X has aliased columns (lme4 and lmm drop them with a warning).
RANK_DEFICIENT = {"simulated_aliased_term", "empty_cell_AB_x", "empty_cell_AB_x_sum", "empty_cell_ABx"}
_CACHE: dict = {}


def _data(dataset: str) -> pd.DataFrame:
    """The data of make_contrasts_reference.R."""
    if dataset.startswith("simulated"):
        d = pd.DataFrame({k: v for k, v in REF["simulated"].items() if k != "rows"})
        if dataset == "simulated_empty_cell":
            d = d[~((d.A == "a3") & (d.B == "b2"))].reset_index(drop=True)
        return d
    d = lmm.datasets.load(dataset)
    if dataset == "sleepstudy":
        labels = np.array(["d0_2", "d3_5", "d6_8", "d9"])[(d.Days // 3).astype(int)]
        d = d.assign(band=pd.Categorical(labels, categories=["d0_2", "d3_5", "d6_8", "d9"], ordered=True))
    return d


def _fit(fid: str):
    fit = FITS[fid]
    if fid not in _CACHE:
        contrasts = fit["contrasts_argument"] if isinstance(fit["contrasts_argument"], dict) else None
        data = _data(fit["dataset"])
        if fid in RANK_DEFICIENT:
            with pytest.warns(UserWarning, match="rank deficient"):
                _CACHE[fid] = lmm.lmer(fit["formula"], data, contrasts=contrasts)
        else:
            _CACHE[fid] = lmm.lmer(fit["formula"], data, contrasts=contrasts)
    res = _CACHE[fid]
    assert list(res.fixef.index) == fit["X_columns"]
    return res


def _assert_table(got: pd.DataFrame, want: dict) -> None:
    assert list(got.index) == want["rows"]
    assert list(got.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    for col, rtol in (("Sum Sq", SUM_SQ), ("Mean Sq", SUM_SQ), ("NumDF", 0), ("DenDF", DEN_DF),
                      ("F value", F_VALUE), ("Pr(>F)", P_VALUE)):
        np.testing.assert_allclose(got[col].to_numpy(float), np.array(want[col], dtype=float), rtol=rtol,
                                   err_msg=col)


@pytest.mark.parametrize("ddf", list(DDFS))
@pytest.mark.parametrize("type", [1, 2, 3])
@pytest.mark.parametrize("fid", list(FITS))
def test_anova_matches_lmertest(fid, type, ddf):
    res = _fit(fid)
    _assert_table(res.anova(type=type, ddf=ddf), FITS[fid]["anova"][f"type{type}_{DDFS[ddf]}"])


@pytest.mark.parametrize("type", [1, 2, 3])
@pytest.mark.parametrize("fid", list(FITS))
def test_contrasts_match_lmertest(fid, type):
    fit = FITS[fid]
    got = inference.anova_contrasts(_fit(fid), type)
    want = fit["hypotheses"][f"type{type}"]
    assert list(got) == list(want)
    for term, rows in want.items():
        np.testing.assert_allclose(got[term], np.array(rows, dtype=float).reshape(-1, len(fit["X_columns"])),
                                   rtol=0, atol=CONTRAST_ABS, err_msg=term)


@pytest.mark.parametrize("fid", list(FITS))
def test_lme4_table_matches_anova_ddf_lme4(fid):
    res = _fit(fid)
    want = FITS[fid]["anova"]["lme4"]
    got = res.anova(ddf="lme4")
    assert list(got.index) == want["rows"]
    assert list(got.columns) == ["npar", "Sum Sq", "Mean Sq", "F value"]
    np.testing.assert_array_equal(got["npar"], want["npar"])
    for col in ("Sum Sq", "Mean Sq", "F value"):
        np.testing.assert_allclose(got[col], want[col], rtol=SUM_SQ, err_msg=col)
    # lmerTest's ddf = "lme4" ignores the type; None is lme4's table too
    pd.testing.assert_frame_equal(res.anova(type=1, ddf="lme4"), got)
    pd.testing.assert_frame_equal(res.anova(ddf=None), got)


def test_single_model_lmm_anova_and_type_spellings():
    res = _fit("simulated_AB_x")
    for type, spellings in ((1, ["I", "1", "i"]), (2, ["II", "2"]), (3, ["III", "3", np.int64(3)])):
        want = res.anova(type=type)
        pd.testing.assert_frame_equal(lmm.anova(res, type=type), want)
        for s in spellings:
            pd.testing.assert_frame_equal(res.anova(type=s), want)
    pd.testing.assert_frame_equal(res.anova(), res.anova(type=3))
    pd.testing.assert_frame_equal(lmm.anova(res, type=2, ddf="Kenward-Roger"), res.anova(type=2, ddf="Kenward-Roger"))


@pytest.mark.parametrize("bad", [0, 4, "IV", "type3", "", None, True, 2.5, [3]])
def test_bad_type_is_a_clear_error(bad):
    res = _fit("simulated_AB_x")
    with pytest.raises(ValueError, match="unknown anova type.*use 1, 2 or 3"):
        res.anova(type=bad)
    with pytest.raises(ValueError, match="unknown anova type"):
        lmm.anova(res, type=bad)
    with pytest.raises(ValueError, match="unknown anova type"):
        inference.anova_contrasts(res, bad)


def test_bad_ddf_and_kenward_roger_of_ml_fits_are_errors():
    res = _fit("simulated_AB_x")
    with pytest.raises(ValueError, match="unknown ddf"):
        res.anova(type=1, ddf="Satterwaite")
    ml = lmm.lmer("y ~ A * B + x + (1 | g)", _data("simulated"), REML=False)
    with pytest.raises(ValueError, match="only available for REML"):
        ml.anova(type=2, ddf="Kenward-Roger")


# --------------------------------------------------------------------------- invariance


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame, ss_factor: float = 1.0) -> None:
    assert list(a.index) == list(b.index)
    np.testing.assert_array_equal(a["NumDF"], b["NumDF"])
    for col in ("Sum Sq", "Mean Sq"):
        np.testing.assert_allclose(a[col] * ss_factor, b[col], rtol=INVARIANT, err_msg=col)
    for col in ("DenDF", "F value", "Pr(>F)"):
        np.testing.assert_allclose(a[col], b[col], rtol=INVARIANT, err_msg=col)


@pytest.mark.parametrize("formula, shift, raw_x", [
    ("y ~ A * B + x + (1 | g)", 50.0, True),           # x in no interaction: shifts leave every type
    ("y ~ A * x + B + (1 | g)", 0.0, True),            # A's tests are at x = 0: only rescaling
    ("y ~ A * poly(x, 2) + B + (1 | g)", 50.0, False),  # poly() is orthogonal whatever the units
    ("y ~ C(A, contr.sum) * scale(x) + B + (1 | g)", 50.0, False),
])
@pytest.mark.parametrize("type", [1, 2, 3])
def test_tables_do_not_depend_on_the_units_of_x_and_y(formula, shift, raw_x, type):
    d = _data("simulated")
    res = lmm.lmer(formula, d)
    for x_scale in (1e-4, 1e4):
        other = d.assign(x=(d.x + shift) * x_scale, y=d.y * 7.0 - 3e4)
        if raw_x:  # lme4's warning about the units of x, rightly
            with pytest.warns(UserWarning, match="very different scales"):
                moved = lmm.lmer(formula, other)
        else:
            moved = lmm.lmer(formula, other)
        for ddf in ("Satterthwaite", "Kenward-Roger"):
            _assert_same_table(res.anova(type=type, ddf=ddf), moved.anova(type=type, ddf=ddf), ss_factor=49.0)


def test_type3_tables_do_not_depend_on_the_coding():
    # lmerTest builds type III contrasts in treatment coding and maps them to the model's:
    # one hypothesis whatever the coding.
    tables = [_fit(fid).anova(type=3, ddf=ddf).rename(lambda s: s.replace("C(A, contr.helmert)", "A"))
              for ddf in DDFS for fid in ("simulated_AB_x", "simulated_AB_x_sum", "simulated_AB_x_helmert")]
    for a, b in ((tables[0], tables[1]), (tables[0], tables[2]), (tables[3], tables[4]), (tables[3], tables[5])):
        _assert_same_table(a, b)


def test_terms_without_columns_get_nan_rows_last():
    res = _fit("simulated_aliased_term")
    for type in (1, 2, 3):
        table = res.anova(type=type)
        assert list(table.index) == ["A", "x", "B", "I(2 * x)"]
        assert table.loc["I(2 * x)"].isna().all() and not table.iloc[:3].isna().any().any()
        assert inference.anova_contrasts(res, type)["I(2 * x)"].shape == (0, 5)


def test_type3_without_a_treatment_design_to_rebuild_is_refused():
    # poly(x, 2):scale(x) is the only term of either variable: their columns cannot be told
    # apart in the complete design, so lmerTest's treatment-coded design cannot be rebuilt.
    d = _data("simulated")
    res = lmm.lmer("y ~ C(A, contr.sum) * B + poly(x, 2):scale(x) + (1 | g)", d)
    with pytest.raises(NotImplementedError, match=r"could not rebuild.*poly\(x, 2\).*res\.test"):
        res.anova()
    assert list(res.anova(type=1).index) == ["C(A, contr.sum)", "B", "C(A, contr.sum):B", "poly(x, 2):scale(x)"]
    # in treatment coding there is nothing to rebuild
    assert res.anova(type=2).notna().all().all()
    assert lmm.lmer("y ~ A * B + poly(x, 2):scale(x) + (1 | g)", d).anova().notna().all().all()
