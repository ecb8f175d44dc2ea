"""Helpers shared by the formula engine and the design: block-wise passes over rows,
columns without storage, warnings that point at the user's code.

Passes over the data that need temporaries work a block of rows at a time, so that
the temporaries stay O(block), never O(n × p).
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Iterator, Optional

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "ones_column", "row_blocks", "same_values", "warn_user"]

# Elements per block: a block of b columns has about BLOCK_ELEMENTS / b rows.
BLOCK_ELEMENTS = 1 << 15


def row_blocks(n: int, width: int = 1) -> Iterator[slice]:
    """Consecutive row slices covering ``range(n)``, of about ``BLOCK_ELEMENTS / width`` rows.

    Args:
        n: number of rows.
        width: number of columns read per row (the block holds fewer rows when wider).

    Returns:
        An iterator of slices, each of at least 256 rows (but the last).

    Example:
        >>> [(s.start, s.stop) for s in row_blocks(600, width=1 << 10)]
        [(0, 256), (256, 512), (512, 600)]
    """
    step = max(256, BLOCK_ELEMENTS // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` (n or n × k) have equal shapes and values.

    Compared a block of rows at a time, so no n-sized mask is made.

    Args:
        a: first array, one- or two-dimensional.
        b: second array.

    Returns:
        True when the shapes and all values are equal (NaN never equals NaN).

    Example:
        >>> same_values(np.arange(3.0), np.array([0.0, 1.0, 2.0]))
        True
    """
    width = a.shape[1] if a.ndim == 2 else 1
    return a.shape == b.shape and all(np.array_equal(a[rows], b[rows]) for rows in row_blocks(a.shape[0], width))


def ones_column(n: int) -> np.ndarray:
    """An n × 1 read-only column of ones without storage (one value, broadcast).

    A lone intercept column (X of ``y ~ 1 + (1 | a) + (1 | b)``, z of ``(1 | g)``) takes
    n doubles otherwise; the core copies it only while it forms the crossproducts.
    """
    return np.broadcast_to(np.ones((1, 1)), (n, 1))


# The package's directory: frames of files under it are lmm's own.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str) -> None:
    """Warn with the location of the first caller outside the lmm package."""
    frame: Optional[FrameType] = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        frame = frame.f_back
        level += 1
    warnings.warn(message, UserWarning, stacklevel=level)
