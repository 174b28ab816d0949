"""Several models at once: one spawned process per job, progress lines sent back.

The processes are spawned, not forked (a forked copy of a process that has started torch's
thread pool can deadlock), and get the already loaded data from the parent. Each runs with an
equal share of the parent's torch threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["run_in_processes", "threads_per_job"]

#: What a job runs: ``job(model, protocol, data, device, log) -> row``; a module-level function
#: (it is sent to the worker processes by reference).
Job = Callable[[str, Any, Any, torch.device, Callable[[str], None]], dict[str, Any]]

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


def _init_worker(data: Any, threads: int, lines: Any) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(data=data, lines=lines)


def _job(job: Job, model: str, protocol: Any, device: str) -> dict[str, Any]:
    return job(model, protocol, _WORKER["data"], torch.device(device), _WORKER["lines"].put)


def run_in_processes(
    job: Job,
    protocol: Any,
    data: Any,
    device: torch.device,
    log: Callable[[str], None],
    jobs: int,
) -> Iterator[dict[str, Any]]:
    """Run ``job`` for every model of ``protocol`` in ``jobs`` processes; yield the rows as
    they finish.

    Progress lines travel back through a SimpleQueue, whose ``put`` writes to the pipe before
    it returns, so a model's lines are all readable here by the time its row is.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    lines = context.SimpleQueue()

    def forward() -> None:
        while not lines.empty():
            log(lines.get())

    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(data, threads_per_job(jobs), lines),
    )
    try:
        pending: set[Future[dict[str, Any]]] = {
            pool.submit(_job, job, model, protocol, str(device)) for model in protocol.models
        }
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            forward()
            for future in done:
                yield future.result()  # a worker's exception is raised here
    finally:
        # On an error or Ctrl-C the models not yet started are dropped; running ones are
        # waited for (Ctrl-C reaches them too, so they stop at once).
        pool.shutdown(wait=True, cancel_futures=True)
        forward()
