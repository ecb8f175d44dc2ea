"""Threads: used only where they pay for themselves.

The dense kernels of the blocked factor (potrf, trtri, lauum of its dense tail) call the
OpenBLAS SciPy carries. OpenBLAS's own threads do not pay at the sizes of a mixed model's
tail: on this project's 2-core machine its 2-thread potrf of order 1,145 took 2.3 times
as long as one thread, and with other work running its spinning threads made InstEval's
fit (a 1,145-column tail) take 4–5 s against 1.3–1.5 s on one thread. So BLAS runs on one
thread inside fits, and the core splits the products of tails of ``THREADED_ORDER``
columns and more over as many threads as the user gave BLAS (``OPENBLAS_NUM_THREADS``,
threadpoolctl; one per core by default), waiting on joins, not spinning. The blocks of a
model's crossproducts (``THREADED_ROWS`` rows and more, two terms or more) are formed on those
threads too.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Iterator, Optional

from . import _core as core

if TYPE_CHECKING:  # imported on first use: importing lmm does not load threadpoolctl
    from threadpoolctl import ThreadpoolController

__all__ = ["THREADED_ORDER", "THREADED_ROWS", "blas_limit", "dense_blas", "forming"]

#: Columns of the factor's dense tail from which the core's dense kernels use threads.
THREADED_ORDER: int = core.THREADED_ORDER
#: Rows from which the core forms a model's crossproducts on the user's BLAS threads.
THREADED_ROWS: int = core.THREADED_ROWS

# One controller, found once: entering a limit then costs ~10 µs (threadpool_limits,
# which inspects the loaded libraries each time, ~3 ms).
_CONTROLLER: Optional[ThreadpoolController] = None


def _controller() -> ThreadpoolController:
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def blas_limit(limit: int) -> contextlib.AbstractContextManager:
    """BLAS limited to ``limit`` threads inside the ``with`` block (threadpoolctl)."""
    return _controller().limit(limits=limit, user_api="blas")


def user_threads() -> int:
    """The threads BLAS is set to use now (the most of its libraries; 1 without one)."""
    blas = [lib.num_threads for lib in _controller().lib_controllers if lib.user_api == "blas"]
    return max(blas, default=1)


# The user's BLAS threads, as the outermost dense_blas of this thread found them.
_OUTER = threading.local()


@contextlib.contextmanager
def dense_blas(tail_size: int) -> Iterator[None]:
    """BLAS on one thread inside the ``with`` block, and the core's dense kernels on the
    user's BLAS threads for a dense tail of ``tail_size`` >= THREADED_ORDER columns.

    Nested blocks (an evaluation inside a summary's differences) take the user's threads
    from the outermost one: BLAS is limited to one thread by then."""
    outer: Optional[int] = getattr(_OUTER, "threads", None)
    nested = outer is not None
    user = outer if outer is not None else user_threads()
    threads = user if tail_size >= THREADED_ORDER else 1
    before = core.dense_threads()
    with contextlib.nullcontext() if nested else blas_limit(1):
        _OUTER.threads = user
        core.set_dense_threads(threads)
        try:
            yield
        finally:
            core.set_dense_threads(before)
            if not nested:
                del _OUTER.threads


def forming(rows: int) -> contextlib.AbstractContextManager:
    """The core's threads for forming the crossproducts of ``rows`` rows: the user's BLAS
    threads from ``THREADED_ROWS`` rows on (as :func:`dense_blas` gives a large tail)."""
    return dense_blas(THREADED_ORDER) if rows >= THREADED_ROWS else contextlib.nullcontext()
