"""Shared by the tests of inference and results against lmerTest, pbkrtest, lme4 and broom.mixed:
the reference values (tests/reference/inference_reference.json), their tolerances and a cache of fits."""

from __future__ import annotations

import json
import pathlib

import pandas as pd
import pytest

import lmm

REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "inference_reference.json").read_text())

# Tolerances per quantity (relative unless named absolute). Satterthwaite quantities
# come from differenced derivatives in lmerTest and here: they agree to ~1e-6.
SATT_DF = 1e-5          # observed 4e-7
SATT_P = 1e-4           # observed 1e-5 (p ~ 1e-17 amplifies df differences)
VCOV_VARPAR = 1e-4      # observed 4e-6
KR_DF = 1e-6            # observed 1e-8
KR_SE = 1e-6            # observed 7e-8
VCOV_KR = 1e-5          # observed 3e-7
F_VALUE = 1e-6          # observed 1e-7
PROFILE_LME4 = 1e-3     # lme4's confint interpolates zeta with a spline; observed 2e-4
PROFILE_FINE = 1e-6     # lme4 with a finer profile grid converges to the exact roots; observed 4e-9
WALD = 1e-6
LRT = 1e-6
PREDICT = 1e-7          # observed 2e-9 (relative to the prediction)
CONDVAL_ABS = 1e-4      # observed 1.4e-6
CONDSD = 1e-5
COEF = 1e-5

_FITS: dict = {}


def fit(formula: str, dataset: str, REML: bool = True):
    key = (formula, dataset, REML)
    if key not in _FITS:
        _FITS[key] = lmm.lmer(formula, lmm.datasets.load(dataset), REML=REML)
    return _FITS[key]


def table(record: dict) -> pd.DataFrame:
    """A data frame stored by make_inference_reference.R's frame()."""
    return pd.DataFrame({k: v for k, v in record.items() if k != "rows"}, index=record["rows"])


def by_id(section: str) -> dict:
    return {r["id"]: r for r in REFERENCE[section]}


TESTS = by_id("tests")


def cases(section):
    return [pytest.param(r, id=r["id"]) for r in REFERENCE[section]]
