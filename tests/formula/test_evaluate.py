"""Evaluation: R's arithmetic and the function library (poly, scale, relevel, ...).

Expected values marked "R" were produced once by R 4.2.2 / lme4 1.1-31 on the same
small frames; the tests do not need R.  Values not marked are hand-computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmm.formula import FormulaTypeError, model_matrix

# Tolerance for values R printed to 7-8 significant digits.
R_PRINT_ATOL = 5e-8


def test_arithmetic_on_factor_is_type_error(frame):
    with pytest.raises(FormulaTypeError) as info:
        model_matrix("I(a^2)", frame)
    assert isinstance(info.value, TypeError)


def test_values_poly_scale_like_r(frame):
    X, _ = model_matrix("0 + poly(x, 3) + scale(x) + scale(x, center=FALSE)", frame)
    r_poly3 = np.array(  # R: poly(x, 3)
        [
            [-0.05120737, -0.43358189, 0.02802358],
            [0.07169031, -0.39933598, -0.32486087],
            [0.37893450, 0.02626213, -0.49781976],
            [-0.66569575, 0.56084563, -0.25750359],
            [-0.29700272, -0.26894230, 0.64015588],
            [0.56328102, 0.51475241, 0.41200477],
        ]
    )
    r_scale = [-0.1145031, 0.1603044, 0.8473233, -1.4885409, -0.6641183, 1.2595346]  # R: scale(x)
    r_rms = [0.5746958, 0.7662610, 1.2451742, -0.3831305, 0.1915653, 1.5325221]  # R: scale(x, center=FALSE)
    np.testing.assert_allclose(X[:, :3], r_poly3, atol=R_PRINT_ATOL)
    np.testing.assert_allclose(X[:, 3], r_scale, atol=R_PRINT_ATOL)
    np.testing.assert_allclose(X[:, 4], r_rms, atol=R_PRINT_ATOL)


def test_poly_columns_are_orthonormal():
    x = np.linspace(0, 3, 50) ** 1.5
    X, _ = model_matrix("poly(x, 4)", pd.DataFrame({"x": x}))
    np.testing.assert_allclose(X.T @ X, np.eye(5) * [50, 1, 1, 1, 1], atol=1e-12)


def test_arithmetic_like_r():
    df = pd.DataFrame({"x": [1.5, 2, 3.25, -1, 0.5, 4]})
    X, nm = model_matrix("0 + I(x %% 2) + I(x %/% 2) + I(-x %% 2) + round(x) + as.integer(x) + pmin(x, 1)"
                         " + log(x + 2, 3)", df)
    assert nm[:3] == ["I(x%%2)", "I(x%/%2)", "I(-x%%2)"]
    expected = np.array(  # R
        [
            [1.50, 0, 0.50, 2, 1, 1.0, 1.1403140],
            [0.00, 1, 0.00, 2, 2, 1.0, 1.2618595],
            [1.25, 1, 0.75, 3, 3, 1.0, 1.5093842],
            [1.00, -1, 1.00, -1, -1, -1.0, 0.0],
            [0.50, 0, 1.50, 0, 0, 0.5, 0.8340438],
            [0.00, 2, 0.00, 4, 4, 1.0, 1.6309298],
        ]
    )
    np.testing.assert_allclose(X, expected, atol=R_PRINT_ATOL)


def test_relevel_changes_reference(frame):
    X, nm = model_matrix('relevel(s, "dog")', frame)
    assert nm == ['(Intercept)', 'relevel(s, "dog")ant', 'relevel(s, "dog")cat', 'relevel(s, "dog")Cat']


def test_log_of_negative_is_nan_without_warning():
    X, _ = model_matrix("log(x)", pd.DataFrame({"x": [-1.0, 1.0]}))
    assert np.isnan(X[0, 1]) and X[1, 1] == 0.0
