"""Shared fixtures: the lme4 reference values and a cache of fitted models."""

from __future__ import annotations

import json
import pathlib

import pytest

import lmm

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
