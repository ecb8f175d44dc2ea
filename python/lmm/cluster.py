"""Independent fits on a ``dask.distributed`` cluster: the ``client=`` of the bootstrap, of
profiles and of many-responses fits.

Everything about dispatching lives here: the client is checked, what every task needs
(the model and the fit's numbers) is shipped to each worker once per call, the work goes
out in blocks (a few tasks per worker thread, not a task per fit), and the blocks' results
come back in their order, advancing the caller's progress bar as each block arrives. An
interrupt, or an exception in a task (raised again here, with its message), cancels what
is still running. Tasks return numbers only (arrays, frames), never models.

Dask and distributed are optional: they are imported when a client is given.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Generator, Iterable

from .inference.common import Progress

__all__ = ["as_client", "block_size", "map_blocks", "worker_threads"]

# Tasks per worker thread for a run split evenly: enough that a slow or lost worker delays
# the run by a fraction of its share, few enough that a task's fixed cost (a few ms of
# scheduling and transfer) stays small beside its fits.
TASKS_PER_THREAD = 4
# Blocks in flight per worker thread when the blocks come from an iterator: what waits in
# memory (here and on the workers) stays bounded.
IN_FLIGHT_PER_THREAD = 2 * TASKS_PER_THREAD

_INSTALL = 'pip install "lmm[dask]"'


def as_client(client: Any) -> Any:
    """``client`` checked: a running ``distributed.Client``.

    Raises:
        ImportError: distributed is not installed.
        TypeError: ``client`` is something else (a cluster, an address, an executor).
        ValueError: the client is closed.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(f"client= sends the fits to a dask.distributed cluster, which needs dask and "
                          f"distributed: {_INSTALL}") from None
    if not isinstance(client, Client):
        hint = " (start one with distributed.Client(cluster))" if type(client).__name__.endswith("Cluster") else ""
        raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}{hint}")
    if client.status != "running":
        raise ValueError(f"the client is not running (status {client.status!r}): start a new one")
    return client


def worker_threads(client: Any) -> int:
    """Threads of all the client's workers (at least 1: tasks wait for a worker to join)."""
    return max(sum(client.nthreads().values()), 1)


def block_size(client: Any, total: int, most: int | None = None) -> int:
    """Fits per task for ``total`` of them: about TASKS_PER_THREAD tasks per worker thread,
    at most ``most`` fits per task."""
    size = max(1, math.ceil(total / (TASKS_PER_THREAD * worker_threads(client))))
    return size if most is None else max(1, min(size, int(most)))


def map_blocks(client: Any, task: Callable[[Any, Any], Any], shared: Any, blocks: Iterable[tuple[Any, int, str]],
               bar: Progress) -> Generator[Any, None, None]:
    """``task(shared, block)`` for each block on the client's workers; the results in the
    blocks' order.

    ``shared`` goes to every worker once (scattered with ``broadcast``) and reaches each
    task as the same object, which tasks must not change (a worker's threads share it).
    ``blocks`` yields ``(block, steps, note)``: the argument of a task, the steps it
    advances ``bar`` by when its result arrives, and the note of that step (a line with
    ``verbose``). At most IN_FLIGHT_PER_THREAD blocks per worker thread are out at a
    time, so an iterator of blocks is read as the results come back. A task's exception
    is raised here; it, an interrupt or closing the iterator early cancels every task
    still out.

    Args:
        client: a distributed.Client (checked by :func:`as_client`).
        task: a function importable on the workers (a module's top-level function).
        shared: what every task needs, pickled once.
        blocks: ``(block, steps, note)`` per task.
        bar: the progress bar.

    Yields:
        ``task(shared, block)`` per block, in order.
    """
    from distributed import as_completed

    window = IN_FLIGHT_PER_THREAD * worker_threads(client)
    shared_future = client.scatter(shared, broadcast=True, hash=False)
    pending = iter(blocks)
    position: dict[str, int] = {}
    steps: list[tuple[int, str]] = []
    out: dict[int, Any] = {}  # results that arrived before those ahead of them
    futures: dict[int, Any] = {}
    done = 0  # results yielded
    running = as_completed(with_results=True)  # (results fetched as tasks finish, a task's error raised)

    def submit() -> bool:
        item = next(pending, None)
        if item is None:
            return False
        block, k, note = item
        i = len(steps)
        future = client.submit(task, shared_future, block, pure=False)
        position[future.key], futures[i] = i, future
        steps.append((k, note))
        running.add(future)
        return True

    try:
        while len(steps) < window and submit():
            pass
        for future, result in running:
            i = position.pop(future.key)
            out[i] = result
            del futures[i]
            bar.update(*steps[i])
            while done in out:
                yield out.pop(done)
                done += 1
                if len(steps) - done < window:
                    submit()
    finally:
        if futures:
            client.cancel(list(futures.values()))
        shared_future.release()
