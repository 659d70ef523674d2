"""``resyn dataset build``: filter, balance and lay out a super-resolution training set.

Stages (each source separately, sources in the order given):

1. **list** every regular, non-hidden file under each source folder (sorted);
2. **analyse** each file in parallel (decode, hash, size, blur, flatness, complexity); every
   result is appended to the journal ``.resyn_state/analysis.jsonl`` as it arrives;
3. **decide** (pure, deterministic): unreadable -> duplicate -> too-small -> blurry -> flat ->
   balance, the first failing check is the reason;
4. **write** HR / LR / crops of the kept images in parallel (atomic files; existing ones skipped);
5. **prune** files in the output folders that the decision does not produce (leftover temporary
   files of a killed run, images dropped after the sources changed);
6. **finish**: ``meta_info.txt``, ``manifest.csv``, ``report.png`` and ``.resyn_state/complete.json``.

A killed run resumes from the journal and the files on disk; its manifest equals an
uninterrupted run's because the decision only depends on the analyses. A run that finds
``complete.json`` matching the current files and all outputs present does no work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resyn.data import layout
from resyn.data.config import (
    BuildError,
    BuildOptions,
    Source,
    check_output_folder,
    config_dict,
    prepare_output,
    resolve_center,
)
from resyn.data.engine import run_tasks
from resyn.data.manifest import ManifestRow, write_manifest
from resyn.data.select import decide
from resyn.io import atomic_write_text
from resyn.io.files import is_broken_link

JOURNAL = "analysis.jsonl"
COMPLETE = "complete.json"

#: progress(stage, done, total): called at the start (done=0) and after every item of a stage.
Progress = Callable[[str, int, int], None]


@dataclass
class BuildResult:
    rows: list[ManifestRow]
    analysed: int = 0  # files analysed in this run (the rest came from the journal)
    written: int = 0  # image files written in this run
    pruned: int = 0
    nothing_to_do: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def list_inputs(source: Source, hidden: list[str] | None = None) -> list[tuple[str, int, int]]:
    """``(relpath, size, mtime_ns)`` of every regular non-hidden file under the source folder,
    and of every broken symbolic link (size 0, the link's own mtime: its analysis reports it).
    The relative paths of the skipped hidden files and folders are appended to ``hidden``."""
    root = source.path
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if hidden is not None:
            hidden.extend((rel_dir / d).as_posix() for d in dirnames if d.startswith("."))
            hidden.extend((rel_dir / f).as_posix() for f in filenames if f.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            if full.is_file():
                st = full.stat()
                found.append((full.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
            elif is_broken_link(full):
                st = full.lstat()
                found.append((full.relative_to(root).as_posix(), 0, st.st_mtime_ns))
    return sorted(found)


def _read_journal(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Analyses recorded so far; a torn last line (killed mid-write) is ignored."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    if not path.exists():
        return records
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "source" in rec and "relpath" in rec:
                records[(rec["source"], rec["relpath"])] = rec
    return records


def _expected(out: Path, rows: list[ManifestRow], options: BuildOptions) -> set[Path]:
    expected: set[Path] = set()
    for row in rows:
        if row.kept:
            expected.update(
                layout.expected_outputs(
                    out,
                    row.name,
                    row.height,
                    row.width,
                    list(options.scales),
                    options.crop,
                    options.crop_step,
                    options.thresh_size,
                )
            )
    return expected


def _prune(out: Path, expected: set[Path]) -> int:
    removed = 0
    for sub in (layout.HR_DIR, layout.LR_DIR, layout.HR_SUB_DIR, layout.LR_SUB_DIR):
        folder = out / sub
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path not in expected:
                path.unlink()
                removed += 1
    # Temporary files of atomic writes that a killed run could not clean up.
    for folder in (out, out / layout.STATE_DIR):
        for path in folder.glob(".*.tmp"):
            path.unlink()
            removed += 1
    return removed


def _fingerprint(inputs: dict[str, list[tuple[str, int, int]]]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def build_dataset(
    sources: list[Source],
    out: str | os.PathLike[str],
    options: BuildOptions | None = None,
    *,
    workers: int | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build (or resume, or confirm) a dataset in ``out``. Raises :class:`BuildError` for bad
    sources, options or output folder before doing any work."""
    options = options or BuildOptions()
    options.validate()
    options = resolve_center(options)
    out_dir = Path(out)
    if not sources:
        raise BuildError("give at least one --source NAME=PATH[:real|:synthetic]")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise BuildError(f"source names must be unique, got {names}")
    for src in sources:
        if not src.path.is_dir():
            what = "is not a folder" if src.path.exists() else "does not exist"
            raise BuildError(f"source {src.name}: {src.path} {what}")
        o, p = out_dir.resolve(), src.path.resolve()
        if o == p or o in p.parents or p in o.parents:
            raise BuildError(
                f"source {src.name}: {src.path} and --out {out_dir} overlap; the output folder "
                "must be outside every source folder (and the other way round)"
            )
    hidden: dict[str, list[str]] = {src.name: [] for src in sources}
    inputs = {src.name: list_inputs(src, hidden[src.name]) for src in sources}
    check_output_folder(out_dir)  # nothing, not even the lock, goes into a stranger's folder
    out_dir.mkdir(parents=True, exist_ok=True)
    # The lock first: --overwrite deletes what a running build is writing. The lock file is
    # outside what --overwrite deletes, so the build holding it keeps it.
    with _exclusive(out_dir / layout.LOCK, out_dir):
        prepare_output(out_dir, config_dict(sources, options, out_dir), overwrite)
        state = out_dir / layout.STATE_DIR
        state.mkdir(exist_ok=True)
        for src in sources:
            if hidden[src.name]:
                n = len(hidden[src.name])
                log(
                    f"{src.name}: skipped {n} hidden file{'s' if n > 1 else ''} or folder"
                    f"{'s' if n > 1 else ''} (name starting with '.', e.g. "
                    f"{src.path / hidden[src.name][0]})"
                )
        return _build_locked(
            sources, out_dir, options, state, inputs, workers, engine, scheduler, progress, log
        )


@contextlib.contextmanager
def _exclusive(lock_path: Path, out_dir: Path) -> Iterator[None]:
    """One build per output folder at a time (an OS lock: released even by ``kill -9``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with lock_path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildError(f"another resyn dataset build is running in {out_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Pool:
    """Where the parallel stages run (``resyn.data.engine.run_tasks``)."""

    workers: int | None
    engine: str
    scheduler: str | None

    def run(self, fn: Callable[..., Any], tasks: list[Any], on_death: Callable[..., Any]) -> Any:
        return run_tasks(
            fn,
            tasks,
            workers=self.workers,
            engine=self.engine,
            scheduler=self.scheduler,
            on_death=on_death,
        )


def _build_locked(
    sources: list[Source],
    out_dir: Path,
    options: BuildOptions,
    state: Path,
    inputs: dict[str, list[tuple[str, int, int]]],
    workers: int | None,
    engine: str,
    scheduler: str | None,
    progress: Progress | None,
    log: Callable[[str], None],
) -> BuildResult:
    """The stages of the module docstring, in order, under the output folder's lock."""
    progress = progress or (lambda stage, done, total: None)
    pool = _Pool(workers, engine, scheduler)
    fingerprint = _fingerprint(inputs)
    complete_file = state / COMPLETE
    finished = _up_to_date(complete_file, fingerprint, out_dir, options, log)
    if finished is not None:
        return finished
    records, analysed = _analyse(sources, inputs, options, state / JOURNAL, pool, progress, log)
    rows = decide(sources, inputs, records, options)
    kept = [r for r in rows if r.kept]
    _log_decisions(sources, rows, log)
    expected = _expected(out_dir, rows, options)
    written = _write(kept, out_dir, options, pool, progress, log)
    pruned = _prune(out_dir, expected)
    counts = _finish(out_dir, rows, kept, options, len(expected), complete_file, fingerprint)
    return BuildResult(rows=rows, analysed=analysed, written=written, pruned=pruned, counts=counts)


def _up_to_date(
    complete_file: Path,
    fingerprint: str,
    out_dir: Path,
    options: BuildOptions,
    log: Callable[[str], None],
) -> BuildResult | None:
    """The result of the last run when it finished on these inputs and all its outputs are
    still there; else None (and a stale ``complete.json`` is removed)."""
    if not complete_file.exists():
        return None
    from resyn.data.manifest import read_manifest

    try:
        done = json.loads(complete_file.read_text(encoding="utf-8"))
        rows = read_manifest(out_dir / layout.MANIFEST)
    except (OSError, ValueError):
        done, rows = {}, []
    if (
        done.get("fingerprint") == fingerprint
        and (out_dir / layout.REPORT).exists()
        and all(p.exists() for p in _expected(out_dir, rows, options))
    ):
        log(f"{out_dir}: already complete and up to date; nothing to do")
        return BuildResult(rows=rows, nothing_to_do=True, counts=done.get("counts", {}))
    complete_file.unlink()
    return None


def _analyse(
    sources: list[Source],
    inputs: dict[str, list[tuple[str, int, int]]],
    options: BuildOptions,
    journal: Path,
    pool: _Pool,
    progress: Progress,
    log: Callable[[str], None],
) -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
    """Analyse what the journal does not hold (or holds for an older version of the file),
    appending each analysis to the journal as it arrives. Returns every file's analysis and
    the number analysed in this run."""
    from resyn.data.work import analysis_of_dead_worker, analyze_file

    records = _read_journal(journal)
    todo = []
    for src in sources:
        for rel, size, mtime in inputs[src.name]:
            rec = records.get((src.name, rel))
            if rec is None or rec.get("size") != size or rec.get("mtime_ns") != mtime:
                root = str(src.path.resolve())
                todo.append((src.name, root, rel, size, mtime, options.center, options.max_pixels))
    total = sum(len(v) for v in inputs.values())
    log(f"analysing {len(todo)} of {total} files ({total - len(todo)} from the journal)")
    progress("analyse", 0, len(todo))
    analyses = pool.run(analyze_file, todo, on_death=analysis_of_dead_worker)
    with journal.open("a", encoding="utf-8") as jf:
        for i, rec in enumerate(analyses, 1):
            jf.write(json.dumps(rec) + "\n")
            jf.flush()
            os.fsync(jf.fileno())
            records[(rec["source"], rec["relpath"])] = rec
            progress("analyse", i, len(todo))
    return records, len(todo)


def _log_decisions(
    sources: list[Source], rows: list[ManifestRow], log: Callable[[str], None]
) -> None:
    for src in sources:
        mine = [r for r in rows if r.source == src.name]
        pool = [r for r in mine if r.kept or r.reason_code == "balance"]
        above = sum(1 for r in pool if r.complexity > 0)
        n_kept = sum(1 for r in mine if r.kept)
        log(
            f"{src.name} ({src.kind}): {len(mine)} files, {len(pool)} passed the filters "
            f"({above} complexity > 0, {len(pool) - above} <= 0), kept {n_kept}"
        )


def _write(
    kept: list[ManifestRow],
    out_dir: Path,
    options: BuildOptions,
    pool: _Pool,
    progress: Progress,
    log: Callable[[str], None],
) -> int:
    """Write HR / LR / crops of the kept images that miss a file; the number of files written."""
    from resyn.data.work import write_outputs, writing_killed_worker

    scales = list(options.scales)
    layout_args = (options.crop, options.crop_step, options.thresh_size)
    jobs = []
    for row in kept:
        files = layout.expected_outputs(
            out_dir, row.name, row.height, row.width, scales, *layout_args
        )
        if not all(p.exists() for p in files):
            jobs.append(
                (
                    str(Path(row.path).resolve()),
                    row.hash,
                    str(out_dir.resolve()),
                    row.name,
                    scales,
                    *layout_args,
                    options.max_pixels,
                )
            )
    log(f"writing {len(jobs)} of {len(kept)} kept images ({len(kept) - len(jobs)} already done)")
    written = 0
    progress("write", 0, len(jobs))
    for i, n in enumerate(pool.run(write_outputs, jobs, on_death=writing_killed_worker), 1):
        written += n
        progress("write", i, len(jobs))
    return written


def _finish(
    out_dir: Path,
    rows: list[ManifestRow],
    kept: list[ManifestRow],
    options: BuildOptions,
    n_files: int,
    complete_file: Path,
    fingerprint: str,
) -> dict[str, int]:
    """``meta_info.txt``, ``manifest.csv``, ``report.png``, then ``complete.json`` last."""
    from resyn.data.report import save_report

    _write_meta_info(out_dir, kept, options)
    write_manifest(out_dir / layout.MANIFEST, rows)
    save_report(rows, out_dir / layout.REPORT)
    counts = {
        "inputs": len(rows),
        "kept": len(kept),
        "rejected": len(rows) - len(kept),
        "files": n_files,
    }
    atomic_write_text(
        complete_file, json.dumps({"fingerprint": fingerprint, "counts": counts}, indent=2) + "\n"
    )
    return counts


def _write_meta_info(out: Path, kept: list[ManifestRow], options: BuildOptions) -> None:
    """BasicSR meta_info: ``<file> (h,w,c)`` per line, sorted by file name."""
    scales = list(options.scales)
    lines, sub_lines = [], []
    for row in sorted(kept, key=lambda r: r.name):
        h, w = layout.cropped_size(row.height, row.width, scales)
        lines.append(f"{row.name}.png ({h},{w},3)")
        if options.crop:
            boxes = layout.crop_boxes(h, w, options.crop, options.crop_step, options.thresh_size)
            for k in range(1, len(boxes) + 1):
                c = options.crop
                sub_lines.append(f"{layout.sub_name(row.name, k)}.png ({c},{c},3)")
    atomic_write_text(out / layout.META_INFO, "".join(line + "\n" for line in lines))
    if options.crop:
        atomic_write_text(out / layout.META_INFO_SUB, "".join(x + "\n" for x in sub_lines))
