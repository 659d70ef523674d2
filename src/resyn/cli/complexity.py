"""``resyn complexity``: score, calibrate, plot and correlate GLCM image complexity."""

from __future__ import annotations

from pathlib import Path

import typer

from resyn.cli._common import console, err_console, fail

complexity_app = typer.Typer(
    help="GLCM image complexity: score image sets, calibrate the center, plot distributions "
    "(Fig. 2) and correlate with restoration PSNR (Fig. 3).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(complexity_app, name="complexity")


def _resolve_center(center: float | None, center_file: Path | None) -> tuple[float, str]:
    from resyn.complexity.center import active_center, center_source

    if center is not None:
        return float(center), "--center"
    try:
        return active_center(center_file), center_source(center_file)
    except ValueError as exc:
        fail(str(exc))


def _find(paths: list[str]) -> list[Path]:
    from resyn.io import scan_images

    try:
        scan = scan_images(paths)
    except FileNotFoundError as exc:
        fail(str(exc))
    if scan.hidden:
        n = len(scan.hidden)
        err_console.print(
            f"skipped {n} hidden file{'s' if n > 1 else ''} (name starting with '.', e.g. "
            f"{scan.hidden[0]}); name a file explicitly to include it",
            highlight=False,
            markup=False,
        )
    if not scan.files:
        fail(f"no image files found in {', '.join(paths)}")
    return scan.files


@complexity_app.command("score")
def score(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    output: Path = typer.Option(..., "-o", "--output", help="scores.csv or scores.parquet"),
    with_bpp: bool = typer.Option(False, "--bpp", help="Also compute bits per pixel (slow)."),
    workers: int = typer.Option(0, "--workers", "-j", help="Processes (0: one per CPU core)."),
    engine: str = typer.Option("local", "--engine", help="local (processes) or dask."),
    scheduler: str = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://HOST:PORT); default: local."
    ),
    max_pixels: int = typer.Option(
        268_435_456, "--max-pixels", help="Refuse larger images (decompression bombs)."
    ),
    center: float = typer.Option(None, "--center", help="Center to subtract (default: active)."),
    center_file: Path = typer.Option(None, "--center-file", help="Calibration file to use."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Re-score error rows."),
    checkpoint: float = typer.Option(30.0, "--checkpoint", help="Seconds between saves."),
) -> None:
    """Score images into a table (path, width, height, ent, ene, diss, raw, complexity, bpp,
    error); re-running with an existing output scores only what is missing."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from resyn.complexity.runner import run_scoring
    from resyn.complexity.table import check_output_path, read_table

    if engine not in ("local", "dask"):
        fail(f"--engine must be local or dask, not {engine!r}")
    if scheduler and engine != "dask":
        fail("--scheduler needs --engine dask")
    if max_pixels < 1:
        fail("--max-pixels must be positive")
    try:
        check_output_path(output)
        if output.exists():
            read_table(output)  # an unreadable existing output is refused before any work
    except ValueError as exc:
        fail(str(exc))
    c, source = _resolve_center(center, center_file)
    files = _find(paths)
    progress = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    task = progress.add_task("score", total=0, rate="")
    import time

    t0 = time.monotonic()

    def on_start(n: int) -> None:
        progress.update(task, total=n)

    def on_progress(n: int) -> None:
        done = progress.tasks[0].completed + n
        rate = done / max(time.monotonic() - t0, 1e-9)
        progress.update(task, advance=n, rate=f"{rate:.1f} img/s")

    try:
        with progress:
            summary = run_scoring(
                files,
                output,
                center=c,
                with_bpp=with_bpp,
                workers=workers or None,
                engine=engine,
                scheduler=scheduler,
                max_pixels=max_pixels,
                retry_errors=retry_errors,
                checkpoint_seconds=checkpoint,
                on_start=on_start,
                on_progress=on_progress,
            )
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: the rows scored so far are saved in {output}; run the same command "
            "again to continue",
            highlight=False,
        )
        raise typer.Exit(130) from None
    rate = summary.scored / summary.seconds if summary.seconds > 0 else 0.0
    console.print(
        f"{summary.total} files: scored {summary.scored} in {summary.seconds:.1f} s "
        f"({rate:.1f} img/s), {summary.reused} already in {summary.output}; "
        f"{summary.error_rows} with an error. center = {c:.4f} ({source})",
        highlight=False,
    )
    for path, reason in summary.errors[:20]:
        console.print(f"  error: {path}: {reason}", highlight=False, markup=False)
    if len(summary.errors) > 20:
        console.print(f"  ... and {len(summary.errors) - 20} more (see the error column)")


@complexity_app.command("calibrate")
def calibrate(
    paths: list[str] = typer.Argument(..., help="Reference images, folders or globs."),
    output: Path = typer.Option(
        None, "-o", "--output", help="Calibration file (default: the user config location)."
    ),
    workers: int = typer.Option(0, "--workers", "-j", help="Processes (0: one per CPU core)."),
) -> None:
    """Save the median raw complexity of reference images as the center (median -> 0)."""
    import tempfile

    from resyn.complexity.center import median_center, save_center
    from resyn.complexity.runner import run_scoring
    from resyn.complexity.table import read_table

    files = _find(paths)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.csv"
        with console.status(f"scoring {len(files)} reference images"):
            run_scoring(files, out, center=0.0, workers=workers or None)
        table = read_table(out)
    bad = table[table["error"] != ""]
    for _, r in bad.iterrows():
        err_console.print(f"warning: skipped {r['path']}: {r['error']}", highlight=False)
    try:
        value = median_center(table["raw"].to_numpy())
    except ValueError as exc:
        fail(str(exc))
    target = save_center(value, output, n_images=int(len(table) - len(bad)), inputs=list(paths))
    console.print(
        f"center = {value:.4f} (median raw of {len(table) - len(bad)} images) saved to {target}",
        highlight=False,
    )
    if output is not None:
        console.print(f"use it with --center-file {target} or RESYN_COMPLEXITY_CENTER_FILE")


@complexity_app.command("center")
def show_center(
    center_file: Path = typer.Option(None, "--center-file", help="Calibration file to read."),
) -> None:
    """Print the active center and where it comes from."""
    c, source = _resolve_center(None, center_file)
    console.print(f"{c:.4f}  {source}", highlight=False)


@complexity_app.command("plot")
def plot(
    tables: list[Path] = typer.Argument(..., help="Scores tables, one per dataset."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG figure."),
    labels: str = typer.Option(None, "--labels", help="Comma-separated dataset names."),
    center: float = typer.Option(
        None, "--center", help="Re-center from the raw column (default: the complexity column)."
    ),
    bins: int = typer.Option(40, "--bins", help="Histogram bins."),
) -> None:
    """Fig. 2: sorted complexity curves and histograms per dataset, zero line, share below 0."""
    from resyn.complexity.study import load_scores, plot_distributions

    names = [s.strip() for s in labels.split(",")] if labels else [t.stem for t in tables]
    if len(names) != len(tables):
        fail(f"--labels has {len(names)} names for {len(tables)} tables")
    if output.suffix.lower() != ".png":
        fail("the figure is written as PNG: use an output name ending in .png")
    data = {}
    for name, t in zip(names, tables, strict=True):
        try:
            df = load_scores(t)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        values = (df["raw"] - center) if center is not None else df["complexity"]
        data[name] = values.to_numpy(dtype=float)
    plot_distributions(data, output, bins=bins)
    for name, v in data.items():
        v = v[v == v]
        console.print(
            f"{name}: n={v.size}, median {float(_median(v)):.2f}, "
            f"{100 * float((v < 0).mean()) if v.size else 0:.1f}% below 0",
            highlight=False,
        )
    console.print(f"wrote {output}")


def _median(v):
    import numpy as np

    return np.median(v) if v.size else float("nan")


@complexity_app.command("correlate")
def correlate(
    scores: Path = typer.Option(..., "--scores", help="Scores table (from `score`)."),
    psnr: list[Path] = typer.Option(..., "--psnr", help="Per-image PSNR CSV (repeatable)."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG figure (Fig. 3)."),
    labels: str = typer.Option(None, "--labels", help="Comma-separated restorer names."),
    metric: str = typer.Option("psnr_y", "--metric", help="PSNR column to use."),
    table: Path = typer.Option(
        None,
        "--table",
        help="Table output (.csv; a .md beside it). Default: <figure>_correlation.csv next to -o.",
    ),
    compute_bpp: bool = typer.Option(
        True, "--compute-bpp/--no-compute-bpp", help="Compute BPP when the scores lack it."
    ),
) -> None:
    """Pearson/Spearman rho of PSNR with complexity and with BPP per restorer; Fig. 3."""
    import warnings

    from rich.table import Table

    from resyn.complexity.study import (
        correlation_table,
        load_psnr,
        load_scores,
        plot_correlation,
        to_markdown,
    )
    from resyn.io import atomic_write_text

    names = [s.strip() for s in labels.split(",")] if labels else [p.stem for p in psnr]
    if len(names) != len(psnr):
        fail(f"--labels has {len(names)} names for {len(psnr)} PSNR files")
    if len(set(names)) != len(names):
        fail(f"restorer names must be unique, got {', '.join(names)} (use --labels)")
    if output.suffix.lower() != ".png":
        fail("the figure is written as PNG: use an output name ending in .png")
    csv_path = table or output.with_name(f"{output.stem}_correlation.csv")
    if csv_path.suffix.lower() != ".csv":
        fail(f"--table {csv_path}: use a file name ending in .csv (a .md is written beside it)")
    _refuse_overwriting_inputs(
        {"-o": output, "--table": csv_path, "the Markdown table": csv_path.with_suffix(".md")},
        [scores, *psnr],
    )
    try:
        s = load_scores(scores)
        tables = {n: load_psnr(p, metric) for n, p in zip(names, psnr, strict=True)}
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, joined = correlation_table(
            s, tables, metric, compute_bpp=compute_bpp, base=scores.parent
        )
    for w in caught:
        err_console.print(f"warning: {w.message}", highlight=False)
    if (result["n"] == 0).all():
        fail(f"no image name in {scores} matches a name in the PSNR file(s)")
    plot_correlation(joined, result, output)
    view = Table(title=f"{metric} correlation (Pearson / Spearman)")
    for col in ("restorer", "n", "complexity P", "complexity S", "n bpp", "BPP P", "BPP S"):
        view.add_column(col)
    for _, r in result.iterrows():
        view.add_row(
            r["restorer"],
            str(r["n"]),
            f"{r['pearson_complexity']:.3f}",
            f"{r['spearman_complexity']:.3f}",
            str(r["n_bpp"]),
            f"{r['pearson_bpp']:.3f}",
            f"{r['spearman_bpp']:.3f}",
        )
    console.print(view)
    atomic_write_text(csv_path, result.to_csv(index=False, float_format="%.6f"))
    atomic_write_text(csv_path.with_suffix(".md"), to_markdown(result))
    console.print(f"wrote {output}, {csv_path} and {csv_path.with_suffix('.md')}")


def _refuse_overwriting_inputs(outputs: dict[str, Path], inputs: list[Path]) -> None:
    """Stop before writing anything if an output would replace an input (or another output)."""
    import os

    def key(p: Path) -> str:
        return os.path.normcase(os.path.realpath(p))

    given = {key(p): p for p in inputs}
    seen: dict[str, str] = {}
    for what, path in outputs.items():
        k = key(path)
        if k in given:
            fail(
                f"{what} {path} is the input {given[k]}: it would be overwritten; "
                "choose another output name"
            )
        if k in seen:
            fail(f"{what} {path} is also {seen[k]}; choose distinct output names")
        seen[k] = what
