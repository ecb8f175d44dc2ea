"""The response expression.

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmm.formula import FormulaError, FormulaTypeError, evaluate_response


def test_evaluate_response():
    df = pd.DataFrame({"y": [1, 10, 100], "g": ["a", "b", "c"]})
    np.testing.assert_allclose(evaluate_response("log10(y)", df), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(evaluate_response("y / 10", df), [0.1, 1.0, 10.0])
    out = evaluate_response("y", df)
    assert out.dtype == np.float64 and out.shape == (3,)


def test_categorical_response_is_type_error():
    df = pd.DataFrame({"g": ["a", "b"]})
    with pytest.raises(FormulaTypeError, match="numeric response") as info:
        evaluate_response("g", df)
    assert isinstance(info.value, TypeError) and isinstance(info.value, FormulaError)
