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
from typing import Any, Literal

from resyn.complexity.table import check_output_path, read_table, score_paths, write_table
from resyn.io.images import DEFAULT_MAX_PIXELS

ProgressFn = Callable[[int], None]


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
    engine: Literal["local", "dask"] = "local",
    scheduler: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    retry_errors: bool = False,
    checkpoint_seconds: float = 30.0,
    batch_size: int = 4,
    connect_timeout: float | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> ScoreSummary:
    """Score ``files`` into ``output`` (see module docs); returns what happened."""
    out = check_output_path(output)
    if engine not in ("local", "dask"):
        raise ValueError(f"unknown engine {engine!r} (local or dask)")
    from resyn.io.parallel import default_workers

    workers = max(1, workers or default_workers())
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
    connect_timeout: float | None,
) -> Iterator[list[dict[str, Any]]]:
    """Batches of rows, as they complete (``resyn.io.parallel``: a file that kills its worker
    process costs an error row, not the run). Workers get absolute paths (a Dask worker's
    working folder is not ours); the rows carry the paths as given."""
    from resyn.io import parallel

    given = {os.path.abspath(p): p for p in todo}
    for batch, rows in parallel.run_batches(
        score_paths,
        _batches(list(given), batch_size),
        (with_bpp, max_pixels),
        on_death=_failed_row,
        workers=workers,
        engine=engine,
        scheduler=scheduler,
        connect_timeout=connect_timeout,
    ):
        yield [{**row, "path": given[p]} for row, p in zip(rows, batch, strict=True)]


def _failed_row(path: str, reason: str) -> dict[str, Any]:
    from resyn.complexity.table import COLUMNS

    row: dict[str, Any] = dict.fromkeys(COLUMNS, float("nan"))
    row.update(path=path, width=None, height=None, error=reason)
    return row
