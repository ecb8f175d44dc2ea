"""Block-wise passes over rows, shared by the formula engine and the design.

Passes over the data that need temporaries work a block of rows at a time, so that
the temporaries stay O(block), never O(n × p).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "row_blocks", "same_values"]

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
