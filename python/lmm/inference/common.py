"""Helpers shared by the inference modules: BLAS threads, progress bars, interval column names."""

from __future__ import annotations

import contextlib
import sys
import time

from .._threads import blas_limit

__all__ = ["Progress", "blas_single_thread", "percent_names"]


def blas_single_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while many tiny optimizations run (threadpoolctl).

    The optimizer's small BLAS calls wake OpenBLAS's thread pool at every iteration; on a
    busy machine the spinning threads make a bootstrap 20-30 times slower (measured on
    sleepstudy: 0.75 s vs 23 s for 500 refits on 2 CPUs under load).
    """
    return blas_limit(1)


def percent_names(level: float) -> tuple[str, str]:
    """Column names of an interval at ``level`` as R's: ``("2.5 %", "97.5 %")`` for 0.95."""
    a = (1 - level) / 2

    def fmt(x: float) -> str:
        s = f"{100 * x:.3g}"
        return f"{s} %"

    return fmt(a), fmt(1 - a)


class Progress:
    """Feedback on long work: a progress bar on a terminal, or a line per step (``verbose``).

    The bar is tqdm's when tqdm is installed, else a plain one, on stderr; it is silent when
    stderr is not a terminal (scripts, tests), unless ``enabled`` asks for it. With
    ``verbose`` each step prints a line on stdout instead, as ``fit(verbose=True)`` prints
    each evaluation, and no bar is drawn.

    Args:
        total: number of steps.
        enabled: show the bar (None: when stderr is a terminal).
        desc: its label.
        delay: seconds of work before the bar first shows (quick work shows none).
        verbose: print a line per step on stdout (and no bar).

    Example:
        >>> with Progress(3, enabled=False, desc="steps", verbose=True) as bar:
        ...     bar.update(1, "first")  # doctest: +ELLIPSIS
          steps: 1/3 first (... s)
    """

    def __init__(self, total: int, enabled: bool | None, desc: str = "bootstrap", delay: float = 0.0,
                 verbose: bool = False) -> None:
        if verbose:
            enabled = False
        elif enabled is None:
            enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.enabled, self.total, self.done, self.desc = enabled, total, 0, desc
        self.verbose, self.delay, self.shown = verbose, delay, False
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._draw()
            else:
                self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, delay=delay)

    def update(self, k: int, note: str = "") -> None:
        """Advance by ``k`` steps; ``note`` says what was done (printed with ``verbose``)."""
        self.done += k
        if self.verbose:
            print(f"  {self.desc}: {self.done}/{self.total}{' ' + note if note else ''} "
                  f"({time.perf_counter() - self.t0:.1f} s)", flush=True)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(k)
        else:
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.t0
        if elapsed < self.delay:
            return
        width = 30
        frac = self.done / self.total if self.total else 1.0
        fill = int(width * frac)
        sys.stderr.write(f"\r{self.desc} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                         f"{elapsed:.1f}s")
        sys.stderr.flush()
        self.shown = True

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.shown:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()
