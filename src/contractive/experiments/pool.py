"""Several models at once: one spawned process per job, progress lines sent back.

The processes are spawned, not forked (a forked copy of a process that has started torch's
thread pool can deadlock), and get the already loaded data from the parent. Each runs with an
equal share of the parent's torch threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import torch

from ..validation import check_int

__all__ = ["WorkerPool", "default_jobs", "threads_per_job"]

# Set in each worker process by _init_worker: the data and where progress lines go.
_WORKER: dict[str, Any] = {}


def threads_per_job(jobs: int) -> int:
    """Torch threads of each of ``jobs`` worker processes: an equal share, at least one.

    Examples
    --------
    >>> threads_per_job(10**6)
    1
    """
    return max(1, torch.get_num_threads() // jobs)


def default_jobs(jobs: int | None, device: torch.device) -> int:
    """``jobs`` checked (an int >= 1), or by default one job per torch thread on the CPU and
    one on a GPU.

    Examples
    --------
    >>> default_jobs(3, torch.device("cpu")), default_jobs(None, torch.device("cuda"))
    (3, 1)
    """
    if jobs is not None:
        return check_int("jobs", jobs, low=1)
    return torch.get_num_threads() if device.type == "cpu" else 1


def _init_worker(data: Any, threads: int, lines: Any) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(data=data, lines=lines)


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    # Runs in a worker: the task gets the worker's data and a log that reaches the parent.
    return fn(*args, data=_WORKER["data"], log=_WORKER["lines"].put)


class WorkerPool:
    """``jobs`` spawned worker processes that share one dataset and send their log lines back.

    ``submit(fn, *args)`` runs ``fn(*args, data=DATA, log=LOG)`` in a worker (``fn`` must be a
    module-level function: it is sent by reference), and :meth:`wait` returns the tasks that
    finished while forwarding the workers' lines to ``log``. Leaving the ``with`` block drops
    the tasks not yet started and waits for the running ones (Ctrl-C reaches them too, so
    they stop at once).

    Progress lines travel back through a SimpleQueue, whose ``put`` writes to the pipe before
    it returns, so a task's lines are all readable here by the time its result is.

    Examples
    --------
    >>> with WorkerPool(data=[1, 2, 3], jobs=1, log=print) as pool:  # doctest: +SKIP
    ...     done = pool.wait({pool.submit(some_module_function, "arg")})
    """

    def __init__(self, data: Any, jobs: int, log: Callable[[str], None]) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        self._lines = context.SimpleQueue()
        self._log = log
        self._pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_init_worker,
            initargs=(data, threads_per_job(jobs), self._lines),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Start ``fn(*args, data=..., log=...)`` in a free worker (or queue it)."""
        return self._pool.submit(_call, fn, args)

    def wait(self, running: Iterable[Future[Any]]) -> set[Future[Any]]:
        """Block until at least one of ``running`` is done; return the done ones."""
        from concurrent.futures import FIRST_COMPLETED, wait

        done: set[Future[Any]] = set()
        while not done:
            done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
            self._forward()
        return done

    def _forward(self) -> None:
        while not self._lines.empty():
            self._log(self._lines.get())

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._forward()
