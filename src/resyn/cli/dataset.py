"""``resyn dataset build`` and ``resyn dataset stats``."""

from __future__ import annotations

from pathlib import Path

import typer

from resyn.cli._common import console, fail

dataset_app = typer.Typer(
    help="Build a ReSyn-style SR training set from pools of real and synthetic images.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")


def _parse_scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"--scales must be comma-separated integers like 2,3,4, got {text!r}")


@dataset_app.command("build")
def build(
    source: list[str] = typer.Option(
        ..., "--source", "-s", help="NAME=PATH[:real|:synthetic] (repeatable; kind: real)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (new, empty, or this build)."),
    min_size: int = typer.Option(800, help="Drop images with a side shorter than this."),
    blur_threshold: float | None = typer.Option(
        None, help="Drop images whose Laplacian variance is below this (default: 20)."
    ),
    flat_threshold: float | None = typer.Option(
        None, help="Drop images whose flat-pixel share is above this (default: 0.85)."
    ),
    per_source: int | None = typer.Option(
        None, help="Keep at most N per source (N/2 above and N/2 at/below complexity 0)."
    ),
    seed: int = typer.Option(0, help="Seed of the balancing order."),
    low_share: float = typer.Option(
        0.5,
        "--low-share",
        help="Share of kept images at/below the center: 0.5 balances (ReSyn); e.g. 0.85 "
        "skews to simple images at the same set size.",
    ),
    scales: str = typer.Option("2,3,4", help="LR scales, comma-separated."),
    center: float | None = typer.Option(
        None, help="Complexity center (default: the active one of resyn.complexity)."
    ),
    crop: int | None = typer.Option(None, help="Also cut HR sub-images of this size (BasicSR)."),
    step: int | None = typer.Option(None, help="Stride of the sub-images (default: --crop)."),
    thresh_size: int = typer.Option(0, help="Add an edge crop if the remainder exceeds this."),
    max_pixels: int = typer.Option(
        268_435_456,  # resyn.io.DEFAULT_MAX_PIXELS, as `resyn complexity score --max-pixels`
        "--max-pixels",
        help="Refuse larger images (decompression bombs): they are unreadable rows.",
    ),
    workers: int | None = typer.Option(None, help="Worker processes (default: usable CPU cores)."),
    engine: str = typer.Option("local", help="local (process pool) or dask."),
    scheduler: str | None = typer.Option(
        None, help="Dask scheduler address (tcp://host:8786); default: a LocalCluster."
    ),
    overwrite: bool = typer.Option(
        False, help="Replace a different dataset already built in --out."
    ),
) -> None:
    """Filter, balance and lay out a training set (HR, LR_bicubic/X*, manifest, report).

    Resumable: run the same command again after an interruption; after completion it does
    nothing.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from resyn.data import BuildError, BuildOptions, build_dataset, parse_source
    from resyn.data.filters import DEFAULT_BLUR_THRESHOLD, DEFAULT_FLAT_THRESHOLD

    if engine not in ("local", "dask"):
        fail(f"--engine must be local or dask, got {engine!r}")
    if scheduler and engine != "dask":
        fail("--scheduler needs --engine dask")
    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    try:
        sources = [parse_source(s) for s in source]
        options = BuildOptions(
            min_size=min_size,
            blur_threshold=DEFAULT_BLUR_THRESHOLD if blur_threshold is None else blur_threshold,
            flat_threshold=DEFAULT_FLAT_THRESHOLD if flat_threshold is None else flat_threshold,
            per_source=per_source,
            seed=seed,
            scales=_parse_scales(scales),
            crop=crop,
            step=step,
            thresh_size=thresh_size,
            center=center,
            max_pixels=max_pixels,
            low_share=low_share,
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = build_dataset(
                sources,
                out,
                options,
                workers=workers,
                engine=engine,
                scheduler=scheduler,
                overwrite=overwrite,
                progress=progress,
                log=lambda msg: bar.console.print(msg, highlight=False),
            )
    except BuildError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    if result.nothing_to_do:
        return
    c = result.counts
    console.print(
        f"{out}: kept {c['kept']} of {c['inputs']} inputs, {c['files']} image files "
        f"({result.written} written now, {result.pruned} stale files removed); "
        f"see {out / 'manifest.csv'} and {out / 'report.png'}",
        highlight=False,
    )


@dataset_app.command("stats")
def stats(
    folder: Path = typer.Argument(..., help="A folder built by resyn dataset build."),
) -> None:
    """Counts, resolutions and complexity balance of a built dataset (from its manifest)."""
    from rich.table import Table

    from resyn.data import compute_stats, read_manifest
    from resyn.data.manifest import REASONS
    from resyn.data.report import RESOLUTION_BINS

    manifest = folder / "manifest.csv"
    if not manifest.exists():
        fail(f"{folder} has no manifest.csv; is it a folder made by resyn dataset build?")
    try:
        rows = read_manifest(manifest)
    except ValueError as exc:
        fail(str(exc))
    st = compute_stats(rows)
    table = Table(title=f"{folder}: {st.kept} kept of {st.inputs} inputs")
    for col in ("source", "kind", "inputs", "kept", "score > 0", "score <= 0"):
        table.add_column(col, justify="left" if col in ("source", "kind") else "right")
    for s in st.sources:
        table.add_row(
            s.source, s.kind, str(s.inputs), str(s.kept), str(s.above), str(s.at_or_below)
        )
    console.print(table)
    rejected = Table(title="rejected, by reason")
    rejected.add_column("reason")
    for s in st.sources:
        rejected.add_column(s.source, justify="right")
    for code in REASONS:
        rejected.add_row(code, *(str(s.reasons.get(code, 0)) for s in st.sources))
    console.print(rejected)
    if st.kept_sizes:
        longs = sorted(max(w, h) for w, h in st.kept_sizes)
        shorts = sorted(min(w, h) for w, h in st.kept_sizes)
        classes = ", ".join(
            f"{label} {st.resolutions.get(label, 0)}" for _, _, label in RESOLUTION_BINS
        )
        console.print(
            f"resolution (long side): min {longs[0]}, median {longs[len(longs) // 2]}, "
            f"max {longs[-1]}; short side min {shorts[0]}; classes: {classes}",
            highlight=False,
        )
        above = sum(s.above for s in st.sources)
        comp = sorted(st.kept_complexity)
        console.print(
            f"complexity balance: {above} above 0, {st.kept - above} at or below 0; "
            f"score min {comp[0]:.3f}, median {comp[len(comp) // 2]:.3f}, max {comp[-1]:.3f}",
            highlight=False,
        )
    else:
        console.print("no kept images", highlight=False)
