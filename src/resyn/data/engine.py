"""Run a picklable function over many argument tuples: inline, local processes or Dask.

``engine="local"`` uses a process pool (``spawn`` start method, safe whatever the parent has
imported) with ``workers`` processes; ``workers=1`` runs inline in this process. ``engine="dask"``
connects to ``scheduler`` (``tcp://host:8786``) or starts a ``LocalCluster`` of ``workers``
single-threaded processes. With Dask on several machines, every worker must see the source
folders and the output folder at the same paths (a shared file system).

Results are yielded as they complete (any order); the caller journals them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ENGINES = ("local", "dask")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    *,
    workers: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[Any]:
    """Yield ``fn(*task)`` for every task, as each completes."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not tasks:
        return
    n = workers or default_workers()
    if engine == "dask":
        yield from _run_dask(fn, tasks, n, scheduler)
    elif n <= 1 or len(tasks) == 1:
        for task in tasks:
            yield fn(*task)
    else:
        yield from _run_pool(fn, tasks, min(n, len(tasks)))


def _run_pool(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], n: int) -> Iterator[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(fn, *task) for task in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], n: int, scheduler: str | None
) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        futures = [client.submit(fn, *task, pure=False) for task in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
