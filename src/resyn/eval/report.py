"""Evaluation outputs: per-image CSVs, the paper-style summary (markdown + CSV), the protocol.

Layout of ``OUT_DIR``::

    per_image/<dataset>/<model>.csv   name, psnr, ssim, psnr_y, ssim_y, complexity, bpp, seconds
    summary.csv                       one row per (model, dataset): n, skipped, means
    summary.md                        rows = models, columns = datasets, "PSNR / SSIM" cells
    protocol.md                       metric definitions, crop border, inputs, tiling, versions
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resyn.eval.runner import COLUMNS, DatasetResult, crop_border, tiling_policy
from resyn.io import atomic_write_text
from resyn.restore.options import InferenceOptions

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", label).strip("_") or "model"


def summary_metric(task: Task) -> tuple[str, str]:
    """The (PSNR, SSIM) columns the summary table shows: Y for SR (docs/evaluation.md), all channels for
    denoising and JPEG (as SwinIR/MambaIR report color results on RGB)."""
    if task.kind == "sr" and not task.gray:
        return "psnr_y", "ssim_y"
    return "psnr", "ssim"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in columns})
    return buf.getvalue()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6f}"
    return value


def read_results(out_dir: Path, dataset: str | None = None) -> list[DatasetResult]:
    """The per-image rows of a ``resyn eval`` output folder, one ``DatasetResult`` per model
    (in ``summary.csv``'s order), for ``dataset`` or, when None, its only dataset.

    ``ValueError`` names the missing file or the ambiguous choice; nothing is recomputed."""
    import pandas as pd

    out_dir = Path(out_dir)
    summary = out_dir / "summary.csv"
    if not summary.is_file():
        raise ValueError(f"{summary} does not exist: is {out_dir} a `resyn eval` output folder?")
    table = pd.read_csv(summary, dtype={"model": str, "dataset": str})
    names = list(dict.fromkeys(table["dataset"]))
    if dataset is None:
        if len(names) != 1:
            raise ValueError(f"{out_dir} holds datasets {', '.join(names)}; name one")
        dataset = names[0]
    elif dataset not in names:
        raise ValueError(f"{out_dir} has no dataset {dataset!r} (it has {', '.join(names)})")
    results = []
    for label in dict.fromkeys(table.loc[table["dataset"] == dataset, "model"]):
        path = out_dir / "per_image" / safe_name(dataset) / f"{safe_name(label)}.csv"
        if not path.is_file():
            raise ValueError(f"{path} is missing (listed in {summary})")
        rows = pd.read_csv(path, dtype={"name": str})
        missing = [c for c in COLUMNS if c not in rows.columns]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)}")
        results.append(DatasetResult(dataset, label, rows=rows[list(COLUMNS)].to_dict("records")))
    return results


def write_results(
    out_dir: Path,
    results: list[DatasetResult],
    task: Task,
    options: InferenceOptions,
    *,
    models: list[Any],
    datasets: list[Any],
) -> dict[str, Path]:
    """Write every output file (atomically); return their paths by kind."""
    import datetime

    import resyn

    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for r in results:
        path = out_dir / "per_image" / safe_name(r.dataset) / f"{safe_name(r.model)}.csv"
        atomic_write_text(path, _csv(r.rows, COLUMNS))
    p_col, s_col = summary_metric(task)
    rows = []
    for r in results:
        rows.append(
            {
                "model": r.model,
                "dataset": r.dataset,
                "n": len(r.rows),
                "skipped": len(r.skipped),
                **{c: r.mean(c) for c in ("psnr", "ssim", "psnr_y", "ssim_y", "seconds")},
            }
        )
    summary_cols = (
        "model",
        "dataset",
        "n",
        "skipped",
        "psnr",
        "ssim",
        "psnr_y",
        "ssim_y",
        "seconds",
    )
    written["summary_csv"] = atomic_write_text(out_dir / "summary.csv", _csv(rows, summary_cols))

    model_labels = list(dict.fromkeys(r.model for r in results))
    dataset_names = list(dict.fromkeys(r.dataset for r in results))
    by_key = {(r.model, r.dataset): r for r in results}
    metric_name = "PSNR-Y / SSIM-Y" if p_col == "psnr_y" else "PSNR / SSIM"
    lines = [
        f"# Evaluation: {task.name}",
        "",
        f"{metric_name} (dB / -), crop border {crop_border(task)}; images evaluated per dataset "
        "in the second table. Protocol: protocol.md.",
        "",
        "| Model | " + " | ".join(dataset_names) + " |",
        "|---|" + "---|" * len(dataset_names),
    ]
    for label in model_labels:
        cells = []
        for ds in dataset_names:
            r = by_key[(label, ds)]
            p, s = r.mean(p_col), r.mean(s_col)
            cells.append("-" if math.isnan(p) else f"{p:.2f} / {s:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| Dataset | images | evaluated | skipped |", "|---|---|---|---|"]
    for ds in dataset_names:
        r = by_key[(model_labels[0], ds)]
        lines.append(
            f"| {ds} | {len(r.rows) + len(r.skipped)} | {len(r.rows)} | {len(r.skipped)} |"
        )
    skipped = {(ds, n): why for r in results for n, why in r.skipped.items() for ds in [r.dataset]}
    if skipped:
        lines += ["", "Skipped images:", ""]
        lines += [f"- {ds}/{n}: {why}" for (ds, n), why in sorted(skipped.items())]
    written["summary_md"] = atomic_write_text(out_dir / "summary.md", "\n".join(lines) + "\n")

    border = crop_border(task)
    proto = [
        f"# Evaluation protocol ({task.name})",
        "",
        f"- resyn {resyn.__version__}, {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"device {options.device}, precision {options.precision_policy()}.",
        "- Ground truth: the HR image as uint8"
        + (f", mod-cropped to a multiple of {task.scale}" if task.kind == "sr" else "")
        + (
            ", converted to gray (JPEG: BT.601 Y as SwinIR; denoising: OpenCV luma)"
            if task.gray
            else ", RGB (gray replicated, alpha dropped)"
        )
        + ".",
        "- Outputs: clipped to [0, 1], quantised with round(x * 255) to uint8 before any metric.",
        "- PSNR: 10 log10(255^2 / MSE), float64, MSE over all pixels and channels; "
        "SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, "
        "valid region, mean over channels (BasicSR/MATLAB definitions, resyn.metrics).",
        "- Y channel: 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1] (BT.601), "
        "unrounded, on the 0-255 scale.",
        f"- Crop border: {border} pixel(s) at each side before PSNR/SSIM"
        + (" (= scale, SR convention)." if task.kind == "sr" else "."),
        f"- Summary table shows {p_col} / {s_col}; per-image CSVs hold all four.",
        "- Complexity (resyn.complexity, GLCM, active center) and BPP (8 x PNG bytes / pixels) "
        "are measured on the ground truth.",
        f"- Padding and tiling: {tiling_policy(options)}.",
        "- Self-ensemble: "
        + (
            "x8 (each network averaged over the 8 flips and 90-degree rotations of its input, "
            "the '+' results of EDSR/RCAN; baselines run once)."
            if options.ensemble
            else "none (one forward pass per tile)."
        ),
        "- Seconds: wall time of the model (or baseline) on one image, excluding I/O and metrics.",
        "",
        "## Inputs",
        "",
    ]
    for ds in datasets:
        if ds.lr_dir is not None:
            source = f"LR files in {ds.lr_dir} (<stem>x{task.scale}.<ext> or <stem>.<ext>)"
        elif task.kind == "sr":
            source = (
                f"made from the mod-cropped HR with MATLAB-bicubic imresize(hr, 1/{task.scale})"
            )
        elif task.kind == "denoise":
            source = (
                f"HR + Gaussian noise sigma {task.sigma:g}/255, seed {options.seed} for every "
                "image (Task.degrade; not clipped, SwinIR/MambaIR convention)"
            )
        else:
            source = f"HR JPEG-encoded with OpenCV at quality {task.quality} (Task.degrade)"
        lines_ds = f"- {ds.name}: {len(ds.pairs)} image(s) in {ds.hr_dir}; input: {source}"
        proto.append(lines_ds)
    proto += ["", "## Models", ""]
    for m in models:
        proto.append(f"- {m.label}: `{m.spec}` ({m.describe()})")
    proto += ["", "## Tiling used", ""]
    for r in results:
        proto.append(f"- {r.model} on {r.dataset}: {'; '.join(sorted(r.tiling)) or '-'}")
    written["protocol"] = atomic_write_text(out_dir / "protocol.md", "\n".join(proto) + "\n")
    return written
