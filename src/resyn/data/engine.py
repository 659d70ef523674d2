"""Run a picklable function over many argument tuples: inline, local processes or Dask.

A thin layer over :mod:`resyn.io.parallel`, the engine ``resyn complexity score`` uses too.
``engine="local"`` runs a process pool of ``workers`` processes (``workers=1``: inline in this
process); ``engine="dask"`` connects to ``scheduler`` (``tcp://host:8786``) or starts a
``LocalCluster`` of ``workers`` single-threaded processes. With Dask on several machines, every
worker must see the source folders and the output folder at the same paths (a shared file
system).

Every task is its own batch. A task whose worker process dies (decoder crash, OOM killer) is
retried alone in a fresh worker; if it kills that one too, ``on_death(task, reason)`` gives its
result (without ``on_death``, a :class:`BuildError`). Engine failures (Dask missing, scheduler
unreachable) are :class:`BuildError` naming the cause.

Results are yielded as they complete (any order); the caller journals them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from resyn.data.config import BuildError
from resyn.io.parallel import ENGINES, EngineError, apply_each, default_workers, run_batches

__all__ = ["ENGINES", "default_workers", "run_tasks"]


def _no_survivor(task: tuple[Any, ...], reason: str) -> Any:
    raise BuildError(f"{reason}; task {task!r}")


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    *,
    workers: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    on_death: Callable[[tuple[Any, ...], str], Any] | None = None,
) -> Iterator[Any]:
    """Yield ``fn(*task)`` for every task, as each completes (see the module docs)."""
    try:
        for _, results in run_batches(
            apply_each,
            [[task] for task in tasks],
            (fn,),
            on_death=on_death or _no_survivor,
            workers=workers,
            engine=engine,
            scheduler=scheduler,
        ):
            yield from results
    except EngineError as exc:
        raise BuildError(str(exc)) from None
