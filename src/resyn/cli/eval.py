"""``resyn eval`` and ``resyn study complexity``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from resyn.cli._common import console, err_console, fail, inference_options

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task
    from resyn.eval.data import BenchmarkSet
    from resyn.eval.models import EvalModel
    from resyn.restore.options import InferenceOptions

study_app = typer.Typer(
    help="Studies over evaluation results (complexity vs PSNR).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.add_typer(study_app, name="study")
    study_app.command("complexity")(study_complexity)


def _budget(max_memory: str) -> int:
    from resyn.cli.restore import parse_size

    try:
        return parse_size(max_memory)
    except ValueError as exc:
        fail(str(exc))


def _prepare(
    models: list[str], data: list[str], task: str, device: str
) -> tuple[Task, list[BenchmarkSet], list[EvalModel]]:
    """Parse and check everything before any work: task, datasets, models."""
    from resyn.degrade import parse_task
    from resyn.eval import EvalError, discover, load_eval_model, parse_data_arg

    try:
        parsed = parse_task(task)
    except ValueError as exc:
        fail(str(exc))
    if parsed.blind:
        example = "denoise-25" if parsed.kind == "denoise" else "jpeg-q10"
        fail(
            f"--task {parsed.name} is blind (a range of levels); evaluate at a fixed level, "
            f"e.g. --task {example} (a blind model serves every level of its kind)"
        )
    datasets, names = [], set()
    try:
        for item in data:
            name, folder = parse_data_arg(item)
            if name in names:
                fail(f"dataset name {name!r} is given twice; use NAME=DIR")
            names.add(name)
            datasets.append(discover(name, folder, parsed))
        loaded = [load_eval_model(spec, parsed, device=device) for spec in models]
    except EvalError as exc:
        fail(str(exc))
    labels = [m.label for m in loaded]
    if len(set(labels)) != len(labels):
        fail(f"two models have the same label ({', '.join(labels)}); name them with LABEL=SPEC")
    return parsed, datasets, loaded


def _run(
    task: Task,
    datasets: list[BenchmarkSet],
    models: list[EvalModel],
    options: InferenceOptions,
    save_images: Path | None,
) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from resyn.eval import evaluate_dataset
    from resyn.eval.report import safe_name

    results = []
    total = sum(len(d.pairs) for d in datasets)
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
    ) as progress:
        bar = progress.add_task("evaluating", total=total)
        for ds in datasets:
            progress.update(bar, description=f"evaluating {ds.name}")

            def on_output(model, name, out, ds=ds):
                if save_images is not None:
                    from resyn.io import write_image

                    target = save_images / safe_name(ds.name) / safe_name(model.label)
                    write_image(target / f"{Path(name).stem}.png", out)

            results += evaluate_dataset(
                models,
                ds,
                task,
                options,
                progress=lambda _name: progress.advance(bar),
                on_output=on_output if save_images is not None else None,
            )
    return results


def eval_command(
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="bicubic | weights.safetensors | swinir:PATH | mambair:PATH, optionally LABEL=SPEC. "
        "Repeat for several models.",
    ),
    data: list[str] = typer.Option(
        ..., "--data", "-d", help="NAME=DIR (or DIR) of a benchmark folder. Repeatable."
    ),
    task: str = typer.Option("sr-x4", "--task", "-t", help="sr-x2 | sr-x4 | denoise-25 | ..."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    tile: int = typer.Option(
        None, "--tile", help="Tile side; 0 = whole image [default: whole unless over budget]."
    ),
    overlap: int = typer.Option(32, "--overlap"),
    max_memory: str = typer.Option("1.5GB", "--max-memory", help="Memory budget per forward pass."),
    device: str = typer.Option("cpu", "--device"),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 | bf16 | auto (bf16 where the device multiplies bf16 natively, else fp32); "
        "fp32 by default so that numbers are reproducible.",
    ),
    seed: int = typer.Option(0, "--seed", help="Noise seed for denoising inputs (every image)."),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="x8 self-ensemble: average each network over 8 flips/rotations (the '+' results).",
    ),
    save_images: bool = typer.Option(False, "--save-images", help="Also write the outputs."),
) -> None:
    """Evaluate models on benchmark folders: per-image CSVs, a paper-style summary, the protocol."""
    from resyn.eval import write_results
    from resyn.precision import precision_line

    budget = _budget(max_memory)
    options = inference_options(
        tile=tile,
        overlap=overlap,
        max_memory=budget,
        device=device,
        precision=precision,
        seed=seed,
        ensemble=ensemble,
    )
    parsed, datasets, models = _prepare(model, data, task, device)
    console.print(f"precision: {precision_line(precision, device)}", highlight=False)
    for ds in datasets:
        console.print(f"{ds.name}: {len(ds.pairs)} image(s), input {ds.lq_source}", highlight=False)
    results = _run(parsed, datasets, models, options, output / "images" if save_images else None)
    written = write_results(output, results, parsed, options, models=models, datasets=datasets)
    console.print(written["summary_md"].read_text(), highlight=False, markup=False)
    skipped = sum(len(r.skipped) for r in results[:: max(len(models), 1)])
    if skipped:
        err_console.print(f"warning: {skipped} image(s) skipped (see summary.md)", highlight=False)
    console.print(
        f"wrote {output}/summary.md, summary.csv, protocol.md, per_image/", highlight=False
    )


def study_complexity(
    data: str = typer.Option(
        None,
        "--data",
        "-d",
        help="NAME=DIR (or DIR) of one image folder; with --from-eval, NAME picks its dataset.",
    ),
    model: list[str] = typer.Option(
        ["bicubic"], "--model", "-m", help="Model specs as for `resyn eval`. Repeatable."
    ),
    task: str = typer.Option("sr-x2", "--task", "-t"),
    output: Path = typer.Option(..., "-o", "--output"),
    bins: int = typer.Option(5, "--bins", help="Equal-width complexity bins."),
    tile: int = typer.Option(None, "--tile"),
    overlap: int = typer.Option(32, "--overlap"),
    max_memory: str = typer.Option("1.5GB", "--max-memory"),
    device: str = typer.Option("cpu", "--device"),
    from_eval: Path = typer.Option(
        None,
        "--from-eval",
        help="A `resyn eval` output folder: study its per-image rows (every model in it) "
        "instead of running models; --model and the tiling options are then not used.",
    ),
    resamples: int = typer.Option(
        2000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none)."
    ),
) -> None:
    """Per-image PSNR of each model against GLCM complexity and BPP (the paper's Fig. 3)."""
    from resyn.eval.study import write_study

    if bins < 1:
        fail("--bins must be >= 1")
    if resamples < 0:
        fail("--bootstrap must be >= 0")
    if from_eval is not None:
        parsed, results = _read_eval(from_eval, data, task)
    else:
        if data is None:
            fail("--data is required (or --from-eval with a `resyn eval` output folder)")
        results = _evaluate_for_study(model, data, task, output, tile, overlap, max_memory, device)
        parsed = _prepare_task(task)
    n = len(results[0].rows)
    if n < 3:
        fail(f"only {n} image(s) could be evaluated; correlations need at least 3")
    written = write_study(results, parsed, output, bins=bins, resamples=resamples)
    console.print(written["correlations_md"].read_text(), highlight=False, markup=False)
    console.print(
        f"wrote {', '.join(p.name for p in written.values())} to {output}", highlight=False
    )


def _prepare_task(task: str) -> Any:
    from resyn.degrade import parse_task

    try:
        return parse_task(task)
    except ValueError as exc:
        fail(str(exc))


def _evaluate_for_study(
    model: list[str],
    data: str,
    task: str,
    output: Path,
    tile: int | None,
    overlap: int,
    max_memory: str,
    device: str,
) -> list[Any]:
    """Run the models on the folder (fp32, seed 0) and keep the evaluation under OUT/eval."""
    from resyn.eval import write_results

    budget = _budget(max_memory)
    options = inference_options(tile=tile, overlap=overlap, max_memory=budget, device=device)
    parsed, datasets, models = _prepare(model, [data], task, device)
    results = _run(parsed, datasets, models, options, None)
    write_results(output / "eval", results, parsed, options, models=models, datasets=datasets)
    return results


def _read_eval(folder: Path, data: str | None, task: str) -> tuple[Any, list[Any]]:
    """The task and per-image results of a finished `resyn eval` run, checked against --task."""
    from resyn.eval import parse_data_arg
    from resyn.eval.report import read_results

    parsed = _prepare_task(task)
    summary = folder / "summary.md"
    if summary.is_file():
        first = summary.read_text(encoding="utf-8").splitlines()[:1]
        recorded = first[0].removeprefix("# Evaluation: ").strip() if first else ""
        if recorded and recorded != parsed.name:
            fail(f"--from-eval {folder} evaluated task {recorded}, not --task {parsed.name}")
    try:
        name = None if data is None else parse_data_arg(data)[0]
        results = read_results(folder, name)
    except ValueError as exc:  # EvalError is a ValueError
        fail(str(exc))
    if not results:
        fail(f"--from-eval {folder}: no model results")
    return parsed, results
