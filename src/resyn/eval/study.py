"""``resyn study complexity``: does GLCM complexity predict per-image PSNR better than BPP?

From the per-image evaluation rows of one dataset it writes (into ``OUT_DIR``):

- ``per_image.csv``: name, complexity, bpp and the PSNR of every model;
- ``correlations.csv`` / ``.md``: Pearson and Spearman rho of each model's PSNR with complexity
  and with BPP (``resyn.complexity.study.correlate``, the paper's Fig. 3 statistic);
- ``psnr_vs_complexity.png``: the Fig. 3 scatter plots (``resyn.complexity.study``);
- ``psnr_by_bin.csv`` / ``.md`` / ``.png``: mean PSNR of each model per complexity bin
  (equal-width bins over the observed complexity range) with the number of images per bin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from resyn.eval.report import summary_metric
from resyn.eval.runner import DatasetResult
from resyn.io import atomic_write_text
from resyn.io.atomic import atomic_path

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task


def joined_tables(results: list[DatasetResult], task: Task) -> dict[str, pd.DataFrame]:
    """Model label -> DataFrame(name, complexity, bpp, psnr) with the summary's PSNR column."""
    column, _ = summary_metric(task)
    out = {}
    for r in results:
        df = pd.DataFrame(r.rows, columns=["name", "complexity", "bpp", column])
        out[r.model] = df.rename(columns={column: "psnr"})
    return out


def bin_table(joined: dict[str, pd.DataFrame], bins: int) -> pd.DataFrame:
    """Mean PSNR per equal-width complexity bin (rows) and model (columns), plus counts."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, not {bins}")
    first = next(iter(joined.values()))
    values = first["complexity"].to_numpy(np.float64)
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi == lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for i in range(bins):
        left, right = edges[i], edges[i + 1]
        row: dict[str, Any] = {"bin": i + 1, "from": left, "to": right}
        for label, df in joined.items():
            c = df["complexity"].to_numpy(np.float64)
            mask = (c >= left) & ((c < right) if i < bins - 1 else (c <= right))
            row["n"] = int(mask.sum())
            row[label] = float(df["psnr"][mask].mean()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(df: pd.DataFrame, digits: int = 3) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for v in r:
            if isinstance(v, float):
                cells.append("-" if np.isnan(v) else f"{v:.{digits}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


BOOTSTRAP_RESAMPLES = 2000


def _with_interval(row: pd.Series, key: str) -> str:
    value, lo, hi = row.get(key), row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if value is None or not np.isfinite(value):
        return "-"
    if lo is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def correlation_markdown(corr: pd.DataFrame) -> str:
    """The correlations table with intervals in brackets (one row per restorer)."""
    lines = [
        "| restorer | n | Pearson complexity | Pearson BPP | delta abs(Pearson) "
        "| Spearman complexity | Spearman BPP |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in corr.iterrows():
        cells = [
            str(r["restorer"]),
            str(int(r["n"])),
            _with_interval(r, "pearson_complexity"),
            _with_interval(r, "pearson_bpp"),
            _with_interval(r, "delta_abs_pearson"),
            f"{r['spearman_complexity']:.3f}",
            f"{r['spearman_bpp']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_bins(table: pd.DataFrame, models: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centers = (table["from"] + table["to"]) / 2
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, label in enumerate(models):
        ok = table[label].notna()  # empty bins are skipped, the line joins the others
        ax.plot(centers[ok], table[label][ok], marker="o", color=f"C{k}", label=label)
    for x, n in zip(centers, table["n"], strict=True):
        ax.text(x, 0.02, f"n={n}", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.set_xlabel("GLCM complexity (bin center)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_study(
    results: list[DatasetResult],
    task: Task,
    out_dir: Path,
    *,
    bins: int = 5,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Path]:
    """Write the study's tables and figures; return their paths. Correlations carry percentile
    bootstrap 95% intervals from ``resamples`` resamples of the images (seed 0)."""
    from resyn.complexity.study import correlate, plot_correlation

    out_dir = Path(out_dir)
    joined = joined_tables(results, task)
    if not joined or all(df.empty for df in joined.values()):
        raise ValueError("no image was evaluated; nothing to correlate")
    written: dict[str, Path] = {}
    first = next(iter(joined.values()))
    wide = first[["name", "complexity", "bpp"]].copy()
    for label, df in joined.items():
        wide[f"psnr[{label}]"] = df["psnr"].to_numpy()
    written["per_image"] = atomic_write_text(out_dir / "per_image.csv", wide.to_csv(index=False))
    corr = pd.DataFrame(
        [{"restorer": k, **correlate(df, bootstrap=resamples)} for k, df in joined.items()]
    )
    written["correlations_csv"] = atomic_write_text(
        out_dir / "correlations.csv", corr.to_csv(index=False)
    )
    column, _ = summary_metric(task)
    header = (
        f"# PSNR vs complexity and BPP ({task.name}, {results[0].dataset}, "
        f"{column}, {len(first)} images)\n\nPearson / Spearman rho of per-image PSNR with GLCM "
        "complexity and with PNG bits per pixel (the paper's Fig. 3: complexity predicts PSNR "
        f"better when |rho| is larger). Brackets: 95% percentile bootstrap interval over "
        f"{resamples} resamples of the images; delta = |rho complexity| - |rho BPP| on the same "
        "resamples (> 0: complexity is the better predictor).\n\n"
    )
    written["correlations_md"] = atomic_write_text(
        out_dir / "correlations.md", header + correlation_markdown(corr)
    )
    written["scatter"] = plot_correlation(joined, corr, out_dir / "psnr_vs_complexity.png")
    table = bin_table(joined, bins)
    written["bins_csv"] = atomic_write_text(out_dir / "psnr_by_bin.csv", table.to_csv(index=False))
    written["bins_md"] = atomic_write_text(
        out_dir / "psnr_by_bin.md",
        f"# Mean {column} by complexity bin ({task.name}, {results[0].dataset})\n\n"
        + _markdown(table, 2),
    )
    written["bins_png"] = plot_bins(
        table,
        list(joined),
        out_dir / "psnr_by_bin.png",
        f"Mean PSNR by complexity bin ({task.name}, {results[0].dataset})",
    )
    return written
