"""R's order of strings: the vectorized order of ASCII text is collate_key's order."""

from __future__ import annotations

import string

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from lmm.formula.collation import arrow_collation_order, collate_key, collation_order, r_sorted

# Every ASCII character but NUL: letters of both cases, digits, punctuation, the spaces
# (" ", tab, newline, the control-character spaces that share a primary weight) and
# the other control characters.
ASCII = "".join(chr(b) for b in range(1, 128))


def _by_key(labels: list[str]) -> list[str]:
    return sorted(labels, key=collate_key)


@settings(max_examples=300)
@given(st.lists(st.text(alphabet=ASCII, max_size=6), unique=True, max_size=40))
def test_ascii_order_is_collate_keys_order(labels):
    assert [labels[i] for i in collation_order(labels)] == _by_key(labels)


@given(st.lists(st.text(alphabet="aAbB \t\x1c_-.1", max_size=4), unique=True, max_size=40))
def test_ties_of_primary_weights_are_broken_by_case_then_code_point(labels):
    # Case pairs share a primary weight (tertiary decides), the control-character spaces
    # share one with the tab (their code points decide).
    assert [labels[i] for i in collation_order(labels)] == _by_key(labels)


@given(st.lists(st.text(alphabet="aé eÉ\u0301z1_\x00", max_size=4), unique=True, max_size=20))
def test_other_text_is_ordered_by_the_key(labels):
    # Not ASCII, or holding NUL: sorted string by string, by the key itself.
    assert [labels[i] for i in collation_order(labels)] == _by_key(labels)


@given(st.lists(st.text(alphabet="aAbBzZ0129", min_size=1, max_size=4), min_size=1, max_size=30)
       | st.lists(st.text(alphabet="abz019", min_size=1, max_size=4), min_size=1, max_size=30)
       | st.lists(st.text(alphabet="ABZ019", min_size=1, max_size=4), min_size=1, max_size=30))
def test_fast_ascii_order_is_the_collation_order(labels):
    # r_sorted's key for ASCII letters and digits orders as the general collate_key.
    assert r_sorted(labels) == sorted(set(labels), key=collate_key)


def test_many_ids_with_a_common_prefix_and_mixed_case():
    # Prefixes the vectorized key drops (a byte every id shares) and ids longer than
    # one 64-bit word of key.
    rng = np.random.default_rng(3)
    ids = [f"user_{i}" for i in rng.permutation(5000)]
    ids += [f"{c}{i:05d}-x" for i, c in zip(rng.permutation(3000), rng.choice(list("aAbB"), 3000))]
    ids += ["", " ", "user_", "USER_1", "user-1", "user 1"]
    assert [ids[i] for i in collation_order(ids)] == _by_key(ids)


def test_r_sorted_keeps_one_of_each_label():
    # R: sort(unique(c("b", "a_1", "B", "a1", "b", "10", "9"))) in R 4.2.2.
    assert r_sorted(["b", "a_1", "B", "a1", "b", "10", "9"]) == ["10", "9", "a_1", "a1", "b", "B"]
    # R: levels(factor(c("user_1", "user1", "user-1", "user 1", "USER_1", "user_", "", " ")))
    assert r_sorted(["user_1", "user1", "user-1", "user 1", "USER_1", "user_", "", " "]) == \
        ["", " ", "user 1", "user_", "user_1", "USER_1", "user-1", "user1"]
    assert r_sorted([]) == []
    assert r_sorted(list(string.digits)) == list(string.digits)


@settings(max_examples=100)
@given(st.lists(st.text(alphabet=ASCII + "é\x00", max_size=5), unique=True, max_size=30), st.booleans(),
       st.integers(0, 3))
def test_pyarrow_strings_are_ordered_from_their_buffers_as_lists_are(labels, large, cut):
    pa = pytest.importorskip("pyarrow")
    kind = pa.large_string() if large else pa.string()
    # a slice (offset into the buffers) of one array, and the same strings in two chunks
    array = pa.array(["x"] * cut + labels, type=kind).slice(cut)
    chunked = pa.chunked_array([labels[:len(labels) // 2], labels[len(labels) // 2:]], type=kind)
    expected = collation_order(labels).tolist()
    assert arrow_collation_order(array).tolist() == expected
    assert arrow_collation_order(chunked).tolist() == expected
