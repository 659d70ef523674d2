"""``resyn report``: the convergence view of several training runs.

One PNG with validation PSNR against iteration for every run (dotted: each run's bicubic /
degraded-input baseline) and a Markdown table: final PSNR, gain over the baseline, iterations to
reach 95% / 99% of the final gain, wall time, hardware and total batch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resyn.errors import ResynError
from resyn.train.loop import read_metrics


class ReportError(ResynError, ValueError):
    """A run folder that cannot be reported on."""


@dataclass
class RunSummary:
    label: str
    steps: list[int]
    psnr: list[float]
    baseline: float
    final: float
    gain: float
    to95: int | None
    to99: int | None
    wall: float | None
    hardware: str
    batch: str
    preset: str
    model: str


def iterations_to_fraction(steps: list[int], psnr: list[float], baseline: float, frac: float):
    """First validated iteration whose gain over ``baseline`` reaches ``frac`` of the final gain
    (None when the final gain is not positive)."""
    gain = psnr[-1] - baseline
    if gain <= 0:
        return None
    return next(s for s, p in zip(steps, psnr, strict=True) if p - baseline >= frac * gain)


def summarize(run_dir: str | os.PathLike[str]) -> RunSummary:
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise ReportError(f"{run_dir} is not a training run (no run.json)")
    run: dict[str, Any] = json.loads(run_file.read_text())
    rows = [r for r in read_metrics(run_dir / "metrics.csv") if r.get("val_psnr") is not None]
    if not rows:
        raise ReportError(f"{run_dir} has no validation results yet (metrics.csv)")
    steps = [int(r["step"]) for r in rows]
    psnr = [float(r["val_psnr"]) for r in rows]
    baseline = float(run["baseline"]["psnr"])
    all_rows = read_metrics(run_dir / "metrics.csv")
    wall = run.get("final", {}).get("wall_time") or all_rows[-1].get("wall_time")
    hw = run["hardware"]
    hardware = f"{hw['world_size']}x {hw['device']} ({hw['accelerator']}, {hw['precision']})"
    b = run["batch"]
    batch = f"{b['total']} ({b['per_device']}/device x {b['world_size']} x {b['accumulate']} acc.)"
    return RunSummary(
        label=run_dir.name,
        steps=steps,
        psnr=psnr,
        baseline=baseline,
        final=psnr[-1],
        gain=psnr[-1] - baseline,
        to95=iterations_to_fraction(steps, psnr, baseline, 0.95),
        to99=iterations_to_fraction(steps, psnr, baseline, 0.99),
        wall=wall,
        hardware=hardware,
        batch=batch,
        preset=run["preset"],
        model=run["model"]["name"],
    )


def figure(summaries: list[RunSummary]) -> Any:
    """The convergence figure (matplotlib ``Figure``): per run, its validation PSNR curve (with
    markers, labelled ``"<run> (<model>)"`` in the legend) and a dotted horizontal line at its
    baseline (labelled ``"_baseline <run>"``: not in the legend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.add_subplot()
    for i, s in enumerate(summaries):
        color = f"C{i % 10}"
        style = ("-", "--", "-.", (0, (5, 1)))[i % 4]  # dotted is for the baselines
        marker = "osv^D*xP+h"[i % 10]
        ax.plot(
            s.steps,
            s.psnr,
            ls=style,
            marker=marker,
            ms=4,
            color=color,
            mfc="none",
            label=f"{s.label} ({s.model})",
        )
        ax.axhline(s.baseline, color=color, ls=":", lw=1, label=f"_baseline {s.label}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title("Convergence (dotted: bicubic / input baseline)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot(summaries: list[RunSummary], path: Path) -> Path:
    """Write :func:`figure` as a PNG (atomically)."""
    import io

    from resyn.io import atomic_write_bytes

    buf = io.BytesIO()
    figure(summaries).savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def write_report(runs: list[Path], output: Path) -> tuple[Path, Path]:
    """Write ``output`` (Markdown) and ``output`` with ``.png`` (the curves)."""
    from resyn.io import atomic_write_text

    if not runs:
        raise ReportError("give at least one run folder")
    output = Path(output)
    if not output.name or output.suffix.lower() == ".png":
        # The plot is output with the suffix .png: it would be overwritten by the Markdown.
        raise ReportError(
            f"-o {output}: give the Markdown report's path (e.g. report.md); the plot is "
            "written beside it with the suffix .png"
        )
    summaries = [summarize(r) for r in runs]
    png = plot(summaries, output.with_suffix(".png"))
    lines = [
        "# Training report",
        "",
        f"![validation PSNR against iteration]({png.name})",
        "",
        "| run | preset | model | final PSNR (dB) | baseline | gain | iters to 95% gain "
        "| iters to 99% gain | wall time (s) | hardware | total batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.label} | {s.preset} | {s.model} | {s.final:.3f} | {s.baseline:.3f} "
            f"| {s.gain:+.3f} | {_fmt(s.to95)} | {_fmt(s.to99)} | {_fmt(s.wall, '.1f')} "
            f"| {s.hardware} | {s.batch} |"
        )
    lines += [
        "",
        "Baseline: bicubic upscaling of the LR (SR) or the degraded input itself (denoising, "
        "JPEG), on the same validation images and metric as the run.",
        "",
    ]
    atomic_write_text(output, "\n".join(lines))
    return output, png
