"""``resyn train``, ``resyn report`` and ``resyn standard list|show``."""

from __future__ import annotations

from pathlib import Path

import typer

from resyn.cli._common import console, fail

standard_app = typer.Typer(
    help="The unified training standard: list presets, show one as YAML.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("report")(report)
    app.add_typer(standard_app, name="standard")


@standard_app.command("list")
def standard_list() -> None:
    """List the training presets with task, iterations and total batch."""
    from rich.table import Table

    from resyn.train.standard import list_standard, load_config

    table = Table(title="resyn training standard (each also as NAME-smoke: budget 0.002)")
    for col in ("preset", "task", "iterations", "batch", "patch", "loss"):
        table.add_column(col, no_wrap=True)
    for name in list_standard():
        c = load_config(name)
        table.add_row(name, c.task, f"{c.iterations:,}", str(c.batch), str(c.patch), c.loss.type)
    console.print(table)


@standard_app.command("show")
def standard_show(
    name: str = typer.Argument(..., help="Preset name, e.g. light-sr-x2-50k."),
    set_: list[str] = typer.Option([], "--set", help="Override KEY=VALUE (dotted keys)."),
    budget: float = typer.Option(None, "--budget", help="Scale the schedule, e.g. 0.002."),
) -> None:
    """Print a preset as YAML: exactly the keys that `--set` takes."""
    from resyn.train.standard import ConfigError, dump_yaml, load_config

    try:
        config = load_config(name, set_, budget)
    except ConfigError as exc:
        fail(str(exc))
    print(dump_yaml(config), end="")


def _model_args(items: list[str]) -> dict:
    from resyn.train.standard import ConfigError, parse_overrides

    try:
        values = parse_overrides(items)
    except ConfigError as exc:
        fail(str(exc).replace("--set", "--model-arg"))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def train(
    preset: str = typer.Argument(..., help="Training preset (resyn standard list)."),
    model: str = typer.Option(..., "--model", help="Model preset (resyn models)."),
    train_dir: Path = typer.Option(
        ..., "--train", help="Training data: DIR/HR (and DIR/LR_bicubic/X{s} for SR)."
    ),
    val_dir: Path = typer.Option(..., "--val", help="Validation data, same layout."),
    out: Path = typer.Option(..., "--out", help="Run folder (created)."),
    set_: list[str] = typer.Option([], "--set", help="Override a preset key: KEY=VALUE."),
    model_arg: list[str] = typer.Option(
        [], "--model-arg", help="Override a model hyper-parameter: KEY=VALUE (e.g. embed_dim=24)."
    ),
    budget: float = typer.Option(
        None, "--budget", help="Fraction of the schedule (iterations, milestones, cadences)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN_DIR from last.ckpt."),
    reschedule: bool = typer.Option(
        False,
        "--reschedule",
        help="With --resume: accept a changed schedule (iterations, sched.*, val.every, "
        "checkpoint_every, log_every); recorded in run.json.",
    ),
    accelerator: str = typer.Option("auto", "--accelerator", help="cpu, gpu or auto."),
    devices: str = typer.Option("auto", "--devices", help="Devices per node (int or auto)."),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Nodes (torchrun / SLURM)."),
    workers: int = typer.Option(None, "--workers", help="DataLoader workers per device."),
    seed: int = typer.Option(None, "--seed", help="Seed (default: the preset's)."),
    max_device_batch: int = typer.Option(
        None, "--max-device-batch", help="Largest batch per device; the rest is accumulation."
    ),
    precision: str = typer.Option(
        None,
        "--precision",
        help="32-true, bf16-mixed or 16-mixed (GPU); aliases fp32, bf16, fp16. "
        "Default: bf16-mixed GPU, 32-true CPU.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    init: Path = typer.Option(
        None, "--init", help="Start from these weights (save_model safetensors; fine-tuning)."
    ),
    init_partial: bool = typer.Option(
        False,
        "--init-partial",
        help="With --init: load only the tensors whose name and shape match (e.g. x2 weights "
        "for an x3 model); the others keep their initialisation and are listed.",
    ),
    max_minutes: float = typer.Option(
        None,
        "--max-minutes",
        help="Stop this session after this many minutes of training, cleanly: validation, "
        "last.ckpt (--resume continues) and the final weights; recorded in run.json.",
    ),
) -> None:
    """Train a model on a preset of the unified standard (PyTorch Lightning)."""
    from resyn.train.data import DataError
    from resyn.train.module import NonFiniteLossError
    from resyn.train.run import RunError, TrainOptions, prepare, run_training
    from resyn.train.standard import ConfigError

    opts = TrainOptions(
        preset=preset,
        model=model,
        train=train_dir,
        val=val_dir,
        out=out,
        overrides=set_,
        model_args=_model_args(model_arg),
        budget=budget,
        resume=resume,
        reschedule=reschedule,
        accelerator=accelerator,
        devices=devices if devices == "auto" else _int(devices),
        num_nodes=num_nodes,
        workers=workers,
        seed=seed,
        max_device_batch=max_device_batch,
        precision=precision,
        progress=progress,
        init=init,
        init_partial=init_partial,
        max_minutes=max_minutes,
    )
    try:
        prep = prepare(opts)
    except (ConfigError, DataError, RunError, FileNotFoundError) as exc:
        fail(str(exc))
    if prep.restart:
        console.print(
            f"{out} holds a run that stopped before its first checkpoint: starting it again",
            highlight=False,
            soft_wrap=True,
        )
    start = prep.run["model"].get("init") or {}
    if start.get("partial"):
        console.print(
            f"--init-partial: loaded {start['loaded']} tensors of {start['path']}; skipped "
            f"{len(start['skipped'])}: " + "; ".join(start["skipped"]),
            highlight=False,
            soft_wrap=True,
        )
    b, base = prep.run["batch"], prep.run.get("baseline")
    console.print(
        f"{prep.config.name}: {prep.config.iterations} iterations, total batch {b['total']} = "
        f"{b['per_device']} per device x {b['world_size']} processes x {b['accumulate']} "
        "accumulation" + (f"; baseline PSNR {base['psnr']:.3f} dB" if base else ""),
        highlight=False,
        soft_wrap=True,
    )
    try:
        path = run_training(prep, echo=lambda m: console.print(m, highlight=False, soft_wrap=True))
    except (NonFiniteLossError, DataError) as exc:
        fail(str(exc))
    if path is not None:
        final = prep.run.get("final") or {}
        if final.get("stopped_by") == "max_minutes":
            console.print(
                f"stopped by --max-minutes {max_minutes:g} at iteration {final['step']} of "
                f"{prep.config.iterations} (--resume continues the run)",
                highlight=False,
                soft_wrap=True,
            )
        console.print(f"weights: {path}", highlight=False, soft_wrap=True)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"--devices must be an integer or auto, got {text!r}")


def report(
    runs: list[Path] = typer.Argument(..., help="Run folders written by resyn train."),
    output: Path = typer.Option(Path("report.md"), "-o", "--output", help="Markdown report."),
) -> None:
    """Convergence report: val PSNR vs iteration (PNG) and a table per run."""
    from resyn.train.report import ReportError, write_report

    try:
        md, png = write_report(runs, output)
    except ReportError as exc:
        fail(str(exc))
    console.print(f"report: {md}\nplot: {png}", highlight=False, soft_wrap=True)
