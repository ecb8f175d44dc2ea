"""Grouping columns of Arrow strings coded from their buffers (lmm._core.code_strings)."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from lmm import _core as core
from lmm.formula.values import arrow_codes, string_factor

pa = pytest.importorskip("pyarrow")

TEXT = st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "A", "é", "日本", "a\x00b", " x"]),
                 st.text(max_size=4))


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT, max_size=40), st.booleans(), st.lists(st.integers(0, 40), max_size=3), st.integers(0, 3))
def test_codes_and_distinct_strings_match_pandas_factorize(values, large, cuts, head):
    kind = pa.large_string() if large else pa.string()
    bounds = sorted({min(c, len(values)) for c in cuts})
    pieces = [values[a:b] for a, b in zip([0, *bounds], [*bounds, len(values)])]
    # chunks, and a slice whose first string does not start its buffers (offset, bit offset)
    chunked = pa.chunked_array([pa.array(p, type=kind) for p in pieces], type=kind)
    sliced = pa.array(["zz"] * head + values, type=kind).slice(head)
    expected_codes, expected_uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    for strings in (chunked, sliced):
        codes, uniques = arrow_codes(strings)
        assert codes.dtype == np.int32
        assert codes.tolist() == expected_codes.tolist()
        assert uniques.to_pylist() == expected_uniques.tolist()


def test_a_pyarrow_column_gives_the_factor_of_its_objects():
    values = ["s10", "s2", None, "s10", "S2", "s2", "é", ""] * 3
    arrow = string_factor(pd.Series(values, dtype="string[pyarrow]"))
    objects = string_factor(pd.Series(values, dtype="string[python]"))
    assert arrow.levels == objects.levels
    assert arrow.codes.tolist() == objects.codes.tolist()


def test_types_other_than_strings_are_left_to_the_caller():
    assert arrow_codes(pa.array([1, 2])) is None
    assert arrow_codes(pa.array(["a", "b"]).dictionary_encode()) is None


def test_malformed_buffers_raise_instead_of_reading_past_them():
    data = np.frombuffer(b"abc", dtype=np.uint8)
    with pytest.raises(ValueError, match="past the data"):
        core.code_strings([(np.array([0, 2, 9], dtype=np.int64), data, None, 0, 2)])
    with pytest.raises(ValueError, match="must not decrease"):
        core.code_strings([(np.array([0, 2, 1], dtype=np.int32), data, None, 0, 2)])
    with pytest.raises(ValueError, match="length \\+ 1 offsets"):
        core.code_strings([(np.array([0, 1], dtype=np.int64), data, None, 0, 2)])
    with pytest.raises(ValueError, match="bitmap is shorter"):
        core.code_strings([(np.array([0, 1, 2], dtype=np.int64), data, np.zeros(0, dtype=np.uint8), 0, 2)])
    with pytest.raises(ValueError, match="int32 or int64"):
        core.code_strings([(np.array([0, 1, 2], dtype=np.float64), data, None, 0, 2)])
