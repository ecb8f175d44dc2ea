"""BLAS threads: used only where they pay for themselves.

The dense kernels of the blocked factor (potrf, trtri, ... of its dense tail) run in the
OpenBLAS SciPy carries. With its default of one thread per core, a fit whose dense block
is small gains nothing from threads on an idle machine and loses much on a busy one: on
this project's 2-core machine with other work running, InstEval's fit (a 1,145-column
tail) took 4–5 s with 2 threads against 1.3–1.5 s with one, and the kb07-like maximal
model (265 columns) 12.6 s against 5.3 s. Fits with a tail below DENSE_THREADS_MIN
therefore run on one BLAS thread; larger ones keep the threads the user set.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # imported on first use: importing lmm does not load threadpoolctl
    from threadpoolctl import ThreadpoolController

__all__ = ["DENSE_THREADS_MIN", "blas_limit", "dense_blas"]

#: Columns of the factor's dense tail from which BLAS threads are left as the user set them.
DENSE_THREADS_MIN = 2000

# One controller, found once: entering a limit then costs ~10 µs (threadpool_limits,
# which inspects the loaded libraries each time, ~3 ms).
_CONTROLLER: Optional[ThreadpoolController] = None


def blas_limit(limit: int) -> contextlib.AbstractContextManager:
    """BLAS limited to ``limit`` threads inside the ``with`` block (threadpoolctl)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=limit, user_api="blas")


def dense_blas(tail_size: int) -> contextlib.AbstractContextManager:
    """One BLAS thread for a dense tail of ``tail_size`` columns below DENSE_THREADS_MIN,
    else BLAS as it is."""
    return blas_limit(1) if tail_size < DENSE_THREADS_MIN else contextlib.nullcontext()
