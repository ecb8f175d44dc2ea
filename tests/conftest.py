"""Shared fixtures: the lme4 reference values, a cache of fitted models, the formula tests' frame."""

from __future__ import annotations

import json
import pathlib
from typing import Callable

import pandas as pd
import pytest

import lmm
from lmm.formula import FormulaError

REFERENCE = pathlib.Path(__file__).parent / "reference" / "lme4_reference.json"


def load_reference() -> dict:
    with REFERENCE.open() as fh:
        return json.load(fh)


_FITS: dict[str, tuple] = {}


def fitted(ref: dict):
    """(model, result) for a reference record, fitted once per test session."""
    key = ref["id"]
    if key not in _FITS:
        data = lmm.datasets.load(ref["dataset"])
        model = lmm.LinearMixedModel(ref["formula"], data, REML=ref["REML"])
        _FITS[key] = (model, model.fit())
    return _FITS[key]


@pytest.fixture(scope="session")
def reference() -> dict:
    return load_reference()


@pytest.fixture
def frame() -> pd.DataFrame:
    """The frame used for the R runs (factors as pandas Categoricals, s as strings)."""
    d = pd.DataFrame(
        {
            "x": [1.5, 2, 3.25, -1, 0.5, 4],
            "z": [2.0, 1, 0, 3, 5, 1],
            "n": [1, 2, 3, 1, 2, 1e5],
            "a": pd.Categorical(list("pqpqpq")),
            "b": pd.Categorical(list("rrsstt")),
            "c": pd.Categorical(list("mnnmmn")),
            "s": ["dog", "cat", "Cat", "dog", "ant", "cat"],
            "l": [True, False, True, True, False, False],
        }
    )
    d["o"] = pd.Categorical(["lo", "mid", "hi", "lo", "mid", "hi"], categories=["lo", "mid", "hi"], ordered=True)
    return d


@pytest.fixture
def caret_col() -> Callable[[FormulaError], int]:
    """Column of the first caret of an error message, relative to the quoted formula."""

    def col(err: FormulaError) -> int:
        lines = str(err).splitlines()
        return lines[-1].index("^") - 4

    return col
