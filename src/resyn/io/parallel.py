"""Run per-file work in parallel without letting one file take the whole job down.

Shared by ``resyn complexity score`` and ``resyn dataset build``. Work is a list of *batches*
(lists of items, e.g. file paths); ``fn(batch, *args)`` returns one result per item, in order.
Batches run in this process (one worker), in a local process pool, or on a Dask cluster, and
``(batch, results)`` pairs are yielded as they complete (any order).

If a worker process dies (a decoder that segfaults, the OOM killer), the batches it may have
been running are retried one item per task in a fresh worker, so a healthy file is never lost
because it shared a pool or a batch with a bad one. An item that kills its worker on its own
becomes ``on_death(item, reason)``: an error result the caller records, or an exception the
caller raises. An ordinary exception raised by ``fn`` is not a death: it propagates.

With Dask, ``scheduler`` is the address of an existing cluster (its workers must have resyn
installed and see the files at the same paths); without one a ``LocalCluster`` of ``workers``
single-threaded processes is started. An unreachable scheduler or a bad address raises
:class:`EngineError` naming the address.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from resyn.errors import ResynError

ENGINES = ("local", "dask")
#: Seconds to wait for a Dask scheduler before giving up (both commands use it).
DEFAULT_CONNECT_TIMEOUT = 20.0
#: ``reason`` given to ``on_death`` for an item that killed a local worker process.
WORKER_DIED = "worker died on this file (its process exited: decoder crash or out of memory)"

# Worker processes start clean (no inherited threads or state from the parent).
MP_START = "spawn" if os.name == "nt" else "forkserver"

Batch = list[Any]
DeathFn = Callable[[Any, str], Any]


class EngineError(ResynError, ValueError):
    """The parallel engine cannot run (Dask missing or unreachable, workers without resyn)."""


def default_workers() -> int:
    """Usable CPU cores (the process's affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def apply_each(batch: Batch, fn: Callable[..., Any]) -> list[Any]:
    """``[fn(*task) for task in batch]``: run a function of one task tuple over a batch."""
    return [fn(*task) for task in batch]


def run_batches(
    fn: Callable[..., list[Any]],
    batches: Sequence[Batch],
    args: tuple[Any, ...] = (),
    *,
    on_death: DeathFn,
    workers: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    connect_timeout: float | None = None,
) -> Iterator[tuple[Batch, list[Any]]]:
    """Yield ``(batch, fn(batch, *args))`` for every batch, as each completes (module docs).
    ``connect_timeout``: seconds to wait for ``scheduler`` (default
    :data:`DEFAULT_CONNECT_TIMEOUT`)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    batches = [list(b) for b in batches if b]
    if not batches:
        return
    n = max(1, workers or default_workers())
    if engine == "dask":
        timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        yield from _run_dask(fn, batches, args, on_death, n, scheduler, timeout)
    elif n == 1 or sum(len(b) for b in batches) == 1:
        for b in batches:
            yield b, fn(b, *args)
    else:
        yield from _run_local(fn, batches, args, on_death, min(n, len(batches)))


def _run_local(
    fn: Callable[..., list[Any]],
    batches: list[Batch],
    args: tuple[Any, ...],
    on_death: DeathFn,
    workers: int,
) -> Iterator[tuple[Batch, list[Any]]]:
    """Process pool with a bounded number of batches in flight. When the pool breaks, the
    batches in flight are retried one item per task in a fresh single-worker pool."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context(MP_START)
    pending = list(reversed(batches))
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        inflight: dict[Any, Batch] = {}
        suspects: list[Any] = []
        broken = False
        try:
            while (pending or inflight) and not broken:
                while pending and len(inflight) < workers * 3:
                    b = pending.pop()
                    inflight[pool.submit(fn, b, *args)] = b
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    b = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.extend(b)
                        continue
                    yield b, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            for b in inflight.values():
                suspects.extend(b)
            for item in suspects:  # nothing else running that a crash could take down with it
                yield [item], [_isolated(fn, item, args, on_death, ctx)]


def _isolated(
    fn: Callable[..., list[Any]], item: Any, args: tuple[Any, ...], on_death: DeathFn, ctx: Any
) -> Any:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            return pool.submit(fn, [item], *args).result()[0]
        except BrokenProcessPool:
            pass
    return on_death(item, WORKER_DIED)


def connect_dask(scheduler: str | None, workers: int, connect_timeout: float) -> tuple[Any, Any]:
    """``(client, cluster)``: a client of ``scheduler``, or of a new ``LocalCluster`` (then
    ``cluster`` is not None and must be closed after the client)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise EngineError(
            "--engine dask needs dask.distributed: pip install 'dask[distributed]'"
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout=f"{connect_timeout}s"), None
        except OSError as exc:  # refused, timed out, unknown host
            raise EngineError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise EngineError(
                f"invalid Dask scheduler address {scheduler!r} ({exc}); expected tcp://HOST:PORT"
            ) from None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=40,
    )
    return Client(cluster), cluster


def _run_dask(
    fn: Callable[..., list[Any]],
    batches: list[Batch],
    args: tuple[Any, ...],
    on_death: DeathFn,
    workers: int,
    scheduler: str | None,
    connect_timeout: float,
) -> Iterator[tuple[Batch, list[Any]]]:
    """The same on Dask. A task whose worker died (``KilledWorker``, after Dask's own retries)
    may have been taken down by another one, so its items are retried one at a time at the end;
    an item that fails on its own becomes ``on_death``."""
    from distributed import KilledWorker, as_completed

    client, cluster = connect_dask(scheduler, workers, connect_timeout)
    origin: dict[Any, Batch] = {}

    def submit(batch: Batch) -> Any:
        fut = client.submit(fn, batch, *args, pure=False)
        origin[fut] = batch
        return fut

    def result_of(fut: Any) -> list[Any]:
        try:
            return fut.result()
        except ImportError as exc:
            raise EngineError(
                f"the Dask workers cannot run resyn ({exc}); install resyn on every worker"
            ) from None
        finally:
            origin.pop(fut, None)

    try:
        pending = list(reversed(batches))
        n_workers = len(client.scheduler_info().get("workers", {})) or workers
        queue = as_completed(
            [submit(pending.pop()) for _ in range(min(3 * n_workers, len(pending)))]
        )
        suspects: list[Any] = []
        for fut in queue:
            batch = origin[fut]
            try:
                result = result_of(fut)
            except KilledWorker:
                suspects.extend(batch)
            else:
                yield batch, result
            if pending:
                queue.add(submit(pending.pop()))
        for item in suspects:
            try:
                value = result_of(submit([item]))[0]
            except KilledWorker as exc:
                value = on_death(item, f"worker died on this file (Dask: {exc})")
            yield [item], [value]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
