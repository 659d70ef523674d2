"""``resyn restore``, ``resyn export`` and ``resyn demo``."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from resyn.cli._common import console, err_console, fail, styled
from resyn.restore.weights import tasks_help

OUTPUT_FORMATS = ("png", "tiff", "webp", "jpg")
MAX_EXPORT_SIZE = 4096  # side of the tracing input; the exported graph takes any size


def register(app: typer.Typer) -> None:
    app.command("restore")(restore)
    app.command("export")(export)
    app.command("demo")(demo)


def parse_size(text: str) -> int:
    """``"2GB"``, ``"512MB"``, ``"1.5G"``, ``"800000000"`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise ValueError(f"cannot read the memory size {text!r} (examples: 2GB, 512MB, 1.5G)")
    value, unit = float(m.group(1)), m.group(2)
    return int(value * 1024 ** " kmgt".index(unit or " "))


def restore(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    task: str = typer.Option(
        None,
        "--task",
        "-t",
        help=f"Task, {tasks_help()}; also gray forms (denoise-gray-25, jpeg-gray-q10). "
        "denoise / jpeg are blind (noise sigma 0-50, JPEG quality 10-90): a level's name uses "
        "the blind model when it has no weights of its own "
        "[default: the task recorded in --weights, else sr-x4]",
    ),
    weights: Path = typer.Option(
        None, "--weights", "-w", help="A weights file (default: the shipped weights for the task)."
    ),
    tile: int = typer.Option(
        None, "--tile", help="Tile side in input pixels; 0 = never tile [default: automatic]."
    ),
    overlap: int = typer.Option(32, "--overlap", help="Pixels shared by neighbouring tiles."),
    max_memory: str = typer.Option(
        "1.5GB", "--max-memory", help="Memory budget of one forward pass for automatic tiling."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto | fp32 | bf16 (bf16 autocast; auto = bf16 on a GPU that supports it or a CPU "
        "with AVX512-BF16 / AMX-BF16, else fp32; `resyn info` says which).",
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Average the model over the 8 flips and rotations of each tile (8x the time).",
    ),
    fmt: str = typer.Option("png", "--format", help="Output format: png | tiff | webp | jpg."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", help="Refuse inputs with more pixels than this."
    ),
) -> None:
    """Restore images (super-resolution, denoising, JPEG artifact removal) on CPU or GPU.

    Each INPUT image is written to OUTPUT/<stem>_<task>.<format>, keeping gray/color, alpha and
    16-bit depth; the tiling used is recorded in PNG text metadata (other formats carry none).
    Files found inside OUTPUT when expanding folders and globs are skipped.
    """
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    import resyn
    from resyn.io import ImageReadError, find_images, read_image, write_image
    from resyn.io.files import output_folder_problem
    from resyn.precision import PRECISIONS, describe_precision, precision_line
    from resyn.restore import WeightsError, load_restorer, restore_array

    if precision not in PRECISIONS:
        fail(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if fmt not in OUTPUT_FORMATS:
        fail(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    if tile is not None and tile != 0 and tile < 16:
        fail(f"--tile must be 0 (no tiling) or at least 16, not {tile}")
    if overlap < 0:
        fail("--overlap must be >= 0")
    try:
        budget = parse_size(max_memory)
    except ValueError as exc:
        fail(str(exc))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            fail(f"--device {device}: no CUDA device is available (use --device cpu)")
    problem = output_folder_problem(output)
    if problem:
        fail(f"-o: {problem}")
    if task is None and weights is None:
        task = "sr-x4"
    try:
        files = find_images(inputs)
    except FileNotFoundError as exc:
        fail(str(exc))
    files, inside = _outside_output(files, inputs, output)
    if inside:
        console.print(
            f"skipping {len(inside)} file(s) inside the output folder {output} (earlier "
            "outputs; name a file explicitly to restore it): "
            + ", ".join(p.name for p in inside[:5])
            + (" ..." if len(inside) > 5 else ""),
            highlight=False,
        )
    if not files:
        fail("no image files found in: " + " ".join(inputs))
    try:
        restorer = load_restorer(task, weights, device=device)
    except (WeightsError, ValueError) as exc:
        fail(str(exc))
    task_name = restorer.task.name
    ext = "tif" if fmt == "tiff" else fmt
    targets: dict[Path, Path] = {}
    for f in files:
        target = output / f"{f.stem}_{task_name}.{ext}"
        if target in targets.values():
            other = next(k for k, v in targets.items() if v == target)
            fail(f"{other} and {f} would both be written to {target}; restore them separately")
        targets[f] = target
    console.print(
        f"restoring {len(files)} image(s) with {restorer.describe()} for {task_name} "
        f"on {device} ({precision_line(precision, device)})",
        highlight=False,
    )
    if ext != "png":
        console.print(
            f"note: {fmt.upper()} outputs carry no resyn metadata (task, model, tiling); "
            "use --format png to record them",
            highlight=False,
        )
    failures: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    written = 0
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        bar_images = progress.add_task("images", total=len(files))
        bar_tiles = progress.add_task("tiles", total=1)
        for f, target in targets.items():
            if target.exists() and not overwrite:
                skipped.append(target)
                progress.advance(bar_images)
                continue
            progress.update(bar_tiles, completed=0, total=1, description=f"tiles {f.name}")

            def on_tile(done: int, total: int) -> None:
                progress.update(bar_tiles, completed=done, total=total)

            try:
                image = read_image(f, max_pixels=max_pixels)
                with warnings.catch_warnings():
                    # bf16 fallbacks are counted in `info` and reported once per file below.
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out, info = restore_array(
                        restorer,
                        image,
                        tile=tile,
                        overlap=overlap,
                        device=device,
                        precision=precision,
                        max_memory=budget,
                        progress=on_tile,
                        ensemble=ensemble,
                    )
                if info.fp32_fallbacks:
                    err_console.print(
                        f"warning: {f}: {info.fp32_fallbacks} tile(s) were not finite in bf16 "
                        "and were recomputed in fp32",
                        highlight=False,
                    )
                metadata = {
                    "Software": f"resyn {resyn.__version__}",
                    "resyn:task": task_name,
                    "resyn:model": restorer.describe(),
                    "resyn:tiling": info.describe(),
                    "resyn:precision": describe_precision(precision, info.precision),
                    "resyn:source": f.name,
                }
                write_image(target, out, metadata=metadata if ext == "png" else None)
                written += 1
            except ImageReadError as exc:
                failures.append((f, exc.reason))
            except (ValueError, RuntimeError, MemoryError, OSError) as exc:
                failures.append((f, f"{type(exc).__name__}: {exc}"))
            progress.advance(bar_images)
    console.print(f"wrote {written} image(s) to {output}", highlight=False)
    if skipped:
        console.print(
            f"skipped {len(skipped)} existing output(s) (use --overwrite to replace): "
            + ", ".join(p.name for p in skipped[:5])
            + (" ..." if len(skipped) > 5 else ""),
            highlight=False,
        )
    if failures:
        for f, reason in failures:
            err_console.print(styled("failed", "red", f" {f}: {reason}"), highlight=False)
        err_console.print(f"{len(failures)} of {len(files)} image(s) failed", highlight=False)
        raise typer.Exit(1)


def _outside_output(
    files: list[Path], inputs: list[str], output: Path
) -> tuple[list[Path], list[Path]]:
    """Split expanded inputs into (to restore, inside the output folder).

    With the output folder inside an input folder (``resyn restore photos/ -o photos/out``), a
    second run would otherwise restore its own outputs again (``a_sr-x2_sr-x2.png``). Files
    named explicitly on the command line are always kept.
    """
    from resyn.io.files import resolved

    root = resolved(output)
    explicit = {resolved(Path(a)) for a in inputs if Path(a).is_file()}
    keep: list[Path] = []
    inside: list[Path] = []
    for f in files:
        real = resolved(f)
        if real.is_relative_to(root) and real not in explicit:
            inside.append(f)
        else:
            keep.append(f)
    return keep, inside


def export(
    weights: Path = typer.Option(..., "--weights", "-w", help="A resyn weights file."),
    output: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
    size: int = typer.Option(64, "--size", help="Side of the example input used for tracing."),
    dynamic: bool = typer.Option(
        True, "--dynamic/--static", help="Dynamic height/width axes (checked at a second size)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Export a model to ONNX and check ONNX Runtime reproduces PyTorch within 1e-4."""
    if fmt != "onnx":
        fail(f"--format must be onnx, not {fmt!r}")
    if opset < 17:
        fail("--opset must be 17 or newer")
    if not 1 <= size <= MAX_EXPORT_SIZE:
        fail(f"--size must be between 1 and {MAX_EXPORT_SIZE} pixels, not {size}")
    _check_export_output(output, overwrite)
    from resyn.models import load_model
    from resyn.restore.export import ExportError, export_onnx

    try:
        model = load_model(weights)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    try:
        report = export_onnx(model, output, opset=opset, size=size, dynamic=dynamic)
    except ExportError as exc:
        fail(str(exc))
    console.print(report.describe(), highlight=False)


def _check_export_output(output: Path, overwrite: bool) -> None:
    """Refuse an ``-o`` that cannot become the exported file, before the model is loaded."""
    from resyn.io.files import output_folder_problem

    if output.is_dir():
        fail(f"-o: {output} is a folder; name the .onnx file to write")
    if output.exists() and not overwrite:
        fail(f"{output} exists (use --overwrite to replace it)")
    problem = output_folder_problem(output.parent)
    if problem:
        fail(f"-o: {problem}")


def demo(
    task: str = typer.Option(None, "--task", help="Task selected first in the app."),
    weights: list[Path] = typer.Option(
        None, "--weights", "-w", help="Extra weights files to offer (default: shipped weights)."
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(7860, "--port"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Upload size limit."),
    max_pixels: int = typer.Option(4_000_000, "--max-pixels", help="Upload pixel limit."),
) -> None:
    """A local web app (Gradio): upload an image, pick a task, compare, download."""
    try:
        from resyn.restore.demo import build_demo
    except ImportError as exc:
        fail(f"the demo needs Gradio: pip install 'resyn[demo]' ({exc})")
    try:
        app = build_demo(
            weights=list(weights or []),
            default_task=task,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_pixels=max_pixels,
        )
    except ValueError as exc:
        fail(str(exc))
    app.launch(server_name=host, server_port=port, max_file_size=int(max_upload_mb * 1024 * 1024))
