"""``resyn restore``, ``resyn export`` and ``resyn demo``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from resyn.cli._common import console, err_console, fail, inference_options, styled
from resyn.restore.weights import tasks_help

if TYPE_CHECKING:
    from resyn.restore import Restorer
    from resyn.restore.options import InferenceOptions

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
    from resyn.io.files import output_folder_problem

    if fmt not in OUTPUT_FORMATS:
        fail(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    options = inference_options(
        tile=tile,
        overlap=overlap,
        max_memory=_memory_budget(max_memory),
        device=device,
        precision=precision,
        ensemble=ensemble,
    )
    problem = output_folder_problem(output)
    if problem:
        fail(f"-o: {problem}")
    if task is None and weights is None:
        task = "sr-x4"
    files = _input_files(inputs, output)
    restorer = _load_restorer(task, weights, device)
    ext = "tif" if fmt == "tiff" else fmt
    targets = _targets(files, output, restorer.task.name, ext)
    _announce(restorer, len(files), options, fmt)
    outcome = _restore_files(restorer, targets, options, overwrite, max_pixels, ext)
    _report(outcome, output, len(files))


def _memory_budget(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        fail(str(exc))


def _input_files(inputs: list[str], output: Path) -> list[Path]:
    """The image files the inputs name, without earlier outputs found inside ``output``."""
    from resyn.io import find_images

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
    return files


def _load_restorer(task: str | None, weights: Path | None, device: str) -> Restorer:
    from resyn.restore import WeightsError, load_restorer

    try:
        return load_restorer(task, weights, device=device)
    except (WeightsError, ValueError) as exc:
        fail(str(exc))


def _targets(files: list[Path], output: Path, task_name: str, ext: str) -> dict[Path, Path]:
    """Input -> output file; two inputs that would write one output stop the command."""
    targets: dict[Path, Path] = {}
    for f in files:
        target = output / f"{f.stem}_{task_name}.{ext}"
        if target in targets.values():
            other = next(k for k, v in targets.items() if v == target)
            fail(f"{other} and {f} would both be written to {target}; restore them separately")
        targets[f] = target
    return targets


def _announce(restorer: Restorer, count: int, options: InferenceOptions, fmt: str) -> None:
    from resyn.precision import precision_line

    console.print(
        f"restoring {count} image(s) with {restorer.describe()} for {restorer.task.name} "
        f"on {options.device} ({precision_line(options.precision, options.device)})",
        highlight=False,
    )
    if fmt != "png":
        console.print(
            f"note: {fmt.upper()} outputs carry no resyn metadata (task, model, tiling); "
            "use --format png to record them",
            highlight=False,
        )


@dataclass
class _Outcome:
    """What a run of ``resyn restore`` did, file by file."""

    written: int = 0
    skipped: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def _restore_files(
    restorer: Restorer,
    targets: dict[Path, Path],
    options: InferenceOptions,
    overwrite: bool,
    max_pixels: int,
    ext: str,
) -> _Outcome:
    """Restore every input into its target with progress bars; a failing file is recorded
    and the others still run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from resyn.io import ImageReadError

    outcome = _Outcome()
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        bar_images = progress.add_task("images", total=len(targets))
        bar_tiles = progress.add_task("tiles", total=1)
        for f, target in targets.items():
            if target.exists() and not overwrite:
                outcome.skipped.append(target)
                progress.advance(bar_images)
                continue
            progress.update(bar_tiles, completed=0, total=1, description=f"tiles {f.name}")

            def on_tile(done: int, total: int) -> None:
                progress.update(bar_tiles, completed=done, total=total)

            try:
                _restore_file(restorer, f, target, options, max_pixels, ext, on_tile)
                outcome.written += 1
            except ImageReadError as exc:
                outcome.failures.append((f, exc.reason))
            except (ValueError, RuntimeError, MemoryError, OSError) as exc:
                outcome.failures.append((f, f"{type(exc).__name__}: {exc}"))
            progress.advance(bar_images)
    return outcome


def _restore_file(
    restorer: Restorer,
    source: Path,
    target: Path,
    options: InferenceOptions,
    max_pixels: int,
    ext: str,
    on_tile: Callable[[int, int], None],
) -> None:
    """Read, restore and write one image (PNG outputs carry the resyn metadata)."""
    import warnings

    import resyn
    from resyn.io import read_image, write_image
    from resyn.precision import describe_precision
    from resyn.restore import restore_array

    image = read_image(source, max_pixels=max_pixels)
    with warnings.catch_warnings():
        # bf16 fallbacks are counted in `info` and reported once per file below.
        warnings.simplefilter("ignore", RuntimeWarning)
        out, info = restore_array(restorer, image, options, progress=on_tile)
    if info.fp32_fallbacks:
        err_console.print(
            f"warning: {source}: {info.fp32_fallbacks} tile(s) were not finite in bf16 "
            "and were recomputed in fp32",
            highlight=False,
        )
    metadata = {
        "Software": f"resyn {resyn.__version__}",
        "resyn:task": restorer.task.name,
        "resyn:model": restorer.describe(),
        "resyn:tiling": info.describe(),
        "resyn:precision": describe_precision(options.precision, info.precision),
        "resyn:source": source.name,
    }
    write_image(target, out, metadata=metadata if ext == "png" else None)


def _report(outcome: _Outcome, output: Path, total: int) -> None:
    """The closing lines; exit code 1 when any file failed."""
    console.print(f"wrote {outcome.written} image(s) to {output}", highlight=False)
    skipped = outcome.skipped
    if skipped:
        console.print(
            f"skipped {len(skipped)} existing output(s) (use --overwrite to replace): "
            + ", ".join(p.name for p in skipped[:5])
            + (" ..." if len(skipped) > 5 else ""),
            highlight=False,
        )
    if outcome.failures:
        for f, reason in outcome.failures:
            err_console.print(styled("failed", "red", f" {f}: {reason}"), highlight=False)
        err_console.print(f"{len(outcome.failures)} of {total} image(s) failed", highlight=False)
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
