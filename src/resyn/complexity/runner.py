"""The ``resyn complexity score`` job: many files, in parallel, resumable, never losing a file.

- Every input file ends up as a row; unreadable files get an ``error`` instead of numbers.
- An existing output is read first and only files without a row (or without ``bpp`` when it is
  asked for) are scored again; the output is rewritten atomically at the end and every
  ``checkpoint_seconds`` so that a killed run keeps its progress.
- Work goes out in small batches to local processes (``engine="local"``) or to a Dask cluster
  (``engine="dask"``: ``scheduler`` address, or a local cluster of ``workers`` processes).
  Workers only compute the raw features; the center is applied when writing, so a calibrated
  center on the machine that runs the command is what counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resyn.complexity.table import check_output_path, read_table, score_paths, write_table
from resyn.io.images import DEFAULT_MAX_PIXELS

ProgressFn = Callable[[int], None]

# Worker processes start clean (no inherited threads or state from the parent).
_MP_START = "spawn" if os.name == "nt" else "forkserver"


@dataclass
class ScoreSummary:
    output: Path
    total: int  # input files
    scored: int  # scored in this run
    reused: int  # rows taken from an existing output
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run
    seconds: float = 0.0
    error_rows: int = 0  # input files whose row in the output is an error (any run)


def _key(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _needs_scoring(row: dict[str, Any], with_bpp: bool, retry_errors: bool) -> bool:
    if row.get("error"):
        return retry_errors
    if with_bpp:
        value = row.get("bpp")
        return value is None or value != value  # missing or NaN
    return False


def run_scoring(
    files: list[Path],
    output: str | os.PathLike[str],
    *,
    center: float,
    with_bpp: bool = False,
    workers: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    retry_errors: bool = False,
    checkpoint_seconds: float = 30.0,
    batch_size: int = 4,
    connect_timeout: float = 20.0,
    on_start: Callable[[int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> ScoreSummary:
    """Score ``files`` into ``output`` (see module docs); returns what happened."""
    out = check_output_path(output)
    if engine not in ("local", "dask"):
        raise ValueError(f"unknown engine {engine!r} (local or dask)")
    workers = max(1, workers or _cpu_count())
    rows: dict[str, dict[str, Any]] = {}
    if out.exists():
        for rec in read_table(out).to_dict("records"):
            rows[_key(str(rec["path"]))] = rec
    todo = [
        str(f)
        for f in files
        if _key(str(f)) not in rows or _needs_scoring(rows[_key(str(f))], with_bpp, retry_errors)
    ]
    summary = ScoreSummary(out, len(files), 0, len(files) - len(todo))
    if on_start:
        on_start(len(todo))
    start = last_save = time.monotonic()
    dirty = False
    try:
        for batch in _execute(
            todo, with_bpp, max_pixels, workers, engine, scheduler, batch_size, connect_timeout
        ):
            for row in batch:
                rows[_key(row["path"])] = row
                if row["error"]:
                    summary.errors.append((row["path"], row["error"]))
            summary.scored += len(batch)
            dirty = True
            if on_progress:
                on_progress(len(batch))
            if time.monotonic() - last_save >= checkpoint_seconds:
                write_table(list(rows.values()), out, center)
                last_save, dirty = time.monotonic(), False
    finally:
        # also on Ctrl-C or an engine failure: keep whatever was scored
        if dirty or not out.exists() or summary.reused:
            write_table(list(rows.values()), out, center)
    summary.seconds = time.monotonic() - start
    summary.error_rows = sum(1 for f in files if rows.get(_key(str(f)), {}).get("error"))
    return summary


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _execute(
    todo: list[str],
    with_bpp: bool,
    max_pixels: int | None,
    workers: int,
    engine: str,
    scheduler: str | None,
    batch_size: int,
    connect_timeout: float,
) -> Iterator[list[dict[str, Any]]]:
    if not todo:
        return
    batches = _batches(todo, batch_size)
    if engine == "dask":
        yield from _run_dask(batches, with_bpp, max_pixels, workers, scheduler, connect_timeout)
    elif workers == 1 or len(todo) == 1:
        for b in batches:
            yield score_paths(b, with_bpp, max_pixels)
    else:
        yield from _run_local(batches, with_bpp, max_pixels, workers)


def _run_local(
    batches: list[list[str]], with_bpp: bool, max_pixels: int | None, workers: int
) -> Iterator[list[dict[str, Any]]]:
    """Process pool with a bounded number of batches in flight. If a worker process dies (a
    crashing decoder, the OOM killer), the batches in flight are retried one file per task in a
    fresh pool, and a file that kills a worker again gets an error row."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context(_MP_START)
    pending = list(reversed(batches))
    suspects: list[str] = []
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        inflight: dict[Any, list[str]] = {}
        broken = False
        try:
            while (pending or inflight) and not broken:
                while pending and len(inflight) < workers * 3:
                    b = pending.pop()
                    inflight[pool.submit(score_paths, b, with_bpp, max_pixels)] = b
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    b = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.extend(b)
                        continue
                    yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            for b in inflight.values():
                suspects.extend(b)
            for path in suspects:
                yield [_isolated(path, with_bpp, max_pixels, ctx)]
            suspects.clear()


def _isolated(path: str, with_bpp: bool, max_pixels: int | None, ctx: Any) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            return pool.submit(score_paths, [path], with_bpp, max_pixels).result()[0]
        except BrokenProcessPool:
            return _failed_row(
                path, "the worker process died on this file (decoder crash or out of memory)"
            )


def _failed_row(path: str, reason: str) -> dict[str, Any]:
    from resyn.complexity.table import COLUMNS

    row: dict[str, Any] = dict.fromkeys(COLUMNS, float("nan"))
    row.update(path=path, width=None, height=None, error=reason)
    return row


def _run_dask(
    batches: list[list[str]],
    with_bpp: bool,
    max_pixels: int | None,
    workers: int,
    scheduler: str | None,
    connect_timeout: float = 20.0,
) -> Iterator[list[dict[str, Any]]]:
    """Same work on a Dask cluster; the files must be readable at the same paths on the
    workers (a shared file system) and resyn installed there. Files of a failed task (a worker
    died) are retried one at a time at the end; one that fails on its own gets an error row."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError(
            "--engine dask needs dask.distributed: pip install 'dask[distributed]'"
        ) from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout}s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
        client = Client(cluster)
    # absolute paths: the workers' working folder is not ours
    origin: dict[Any, list[str]] = {}

    def submit(batch: list[str]) -> Any:
        fut = client.submit(
            score_paths, [os.path.abspath(p) for p in batch], with_bpp, max_pixels, pure=False
        )
        origin[fut] = batch
        return fut

    try:
        pending = list(reversed(batches))
        n_workers = len(client.scheduler_info().get("workers", {})) or workers
        queue = as_completed(
            [submit(pending.pop()) for _ in range(min(3 * n_workers, len(pending)))]
        )
        suspects: list[str] = []
        for fut in queue:
            batch = origin.pop(fut)
            try:
                result = fut.result()
            except ImportError as exc:
                raise ValueError(
                    f"the Dask workers cannot run resyn ({exc}); install resyn on every worker"
                ) from None
            except Exception:  # a worker died (KilledWorker), maybe because of another task
                suspects.extend(batch)
            else:
                yield [{**row, "path": p} for row, p in zip(result, batch, strict=True)]
            if pending:
                queue.add(submit(pending.pop()))
        # Files of failed tasks, one at a time (nothing else running that a crash could take
        # down with it): those that fail alone get an error row.
        for p in suspects:
            fut = submit([p])
            try:
                row = fut.result()[0]
            except Exception as exc:
                row = _failed_row(p, f"the Dask task failed: {type(exc).__name__}: {exc}")
            origin.pop(fut, None)
            yield [{**row, "path": p}]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
