"""Write the measured tables of docs/findings.md, the shipped model cards and the README from
the outputs of scripts/reproduce_findings.sh (nothing is computed here but tables and figures).

Generated text lives between markers, ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
everything outside them is prose written by people and left untouched. A model card without
the block gets it appended. Files are rewritten atomically.

    .venv/bin/python scripts/findings_report.py [--findings runs/findings] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "resyn" / "weights"
SR_SETS = ["Set5", "Set14", "CBSD68", "Urban100", "Manga109"]
DENOISE_SETS = ["CBSD68", "McMaster"]
#: Published PSNR-Y of SwinIR-light (Liang et al. 2021, Table 3; BSD100 where we use CBSD68).
SWINIR_LIGHT = {
    "sr-x2": {"Set5": 38.14, "Set14": 33.86, "Urban100": 32.76, "Manga109": 39.12},
    "sr-x4": {"Set5": 32.44, "Set14": 28.77, "Urban100": 26.47, "Manga109": 30.92},
}


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def replace_block(text: str, name: str, body: str, *, append: bool = False) -> str:
    start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    if append:
        return text.rstrip() + "\n\n" + block + "\n"
    raise SystemExit(f"error: no {start} ... {end} block to fill")


def summaries(findings: Path, task: str, sets: list[str]) -> pd.DataFrame:
    """The summary rows of every finished evaluation of ``task`` (missing sets are left out)."""
    frames = []
    for s in sets:
        path = findings / "eval" / task / s / "summary.csv"
        if path.is_file():
            frames.append(pd.read_csv(path, dtype={"model": str, "dataset": str}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def benchmark_table(df: pd.DataFrame, task: str) -> str:
    """Rows = models, columns = datasets; PSNR-Y / SSIM-Y for SR, PSNR / SSIM (RGB) otherwise."""
    sr = task.startswith("sr-")
    p, s = ("psnr_y", "ssim_y") if sr else ("psnr", "ssim")
    sets = list(dict.fromkeys(df["dataset"]))
    lines = [
        "| model | "
        + " | ".join(f"{d} ({int(df[df.dataset == d].n.iloc[0])})" for d in sets)
        + " |",
        "|---|" + "---|" * len(sets),
    ]
    for model in dict.fromkeys(df["model"]):
        cells = []
        for d in sets:
            row = df[(df.model == model) & (df.dataset == d)]
            cells.append(f"{row[p].iloc[0]:.2f} / {row[s].iloc[0]:.4f}" if len(row) else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    published = SWINIR_LIGHT.get(task)
    if published:
        cells = [f"{published[d]:.2f}" if d in published else "-" for d in sets]
        lines.append(
            "| SwinIR-light, published (500K GPU iterations) | " + " | ".join(cells) + " |"
        )
    metric = "PSNR-Y / SSIM-Y (Y of BT.601, crop border = scale)" if sr else "PSNR / SSIM (RGB)"
    return "\n".join(lines) + f"\n\n{metric}; (n): images in the set.\n"


def gains(df: pd.DataFrame, model: str, baseline: str, column: str) -> dict[str, float]:
    out = {}
    for d in dict.fromkeys(df["dataset"]):
        a = df[(df.model == model) & (df.dataset == d)][column]
        b = df[(df.model == baseline) & (df.dataset == d)][column]
        if len(a) and len(b):
            out[d] = float(a.iloc[0] - b.iloc[0])
    return out


def _ci(row: pd.Series, key: str) -> str:
    return f"{row[key]:.3f} [{row[key + '_lo']:.3f}, {row[key + '_hi']:.3f}]"


def finding1(findings: Path, figures: Path) -> str:
    lines = [
        "| task | set | restorer | n | Pearson complexity | Pearson BPP | |ρ_c| − |ρ_BPP| |",
        "|---|---|---|---|---|---|---|",
    ]
    shown = []
    for task in ("sr-x2", "sr-x4"):
        for s in ("Urban100", "Manga109"):
            folder = findings / "study" / task / s
            path = folder / "correlations.csv"
            if not path.is_file():
                continue
            for _, r in pd.read_csv(path).iterrows():
                lines.append(
                    f"| {task} | {s} | {r['restorer']} | {int(r['n'])} | "
                    f"{_ci(r, 'pearson_complexity')} | {_ci(r, 'pearson_bpp')} | "
                    f"{_ci(r, 'delta_abs_pearson')} |"
                )
            figures.mkdir(parents=True, exist_ok=True)
            name = f"finding1-{task}-{s}.png"
            shutil.copyfile(folder / "psnr_vs_complexity.png", figures / name)
            shown.append(f"![PSNR against complexity and BPP, {task}, {s}](figures/{name})")
    if not shown:
        return "(not measured yet: run scripts/reproduce_findings.sh)\n"
    return "\n".join(lines) + "\n\n" + "\n\n".join(shown) + "\n"


def paired_difference(
    a: pd.Series, b: pd.Series, *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over the same images with a percentile bootstrap 95% interval."""
    import numpy as np

    d = (a - b).to_numpy(np.float64)
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def _per_image(folder: Path, dataset: str, label: str) -> pd.DataFrame:
    return pd.read_csv(folder / "per_image" / dataset / f"{label}.csv", dtype={"name": str})


def finding2(findings: Path, figures: Path) -> str:
    parts = []
    for s in ("Urban100", "Manga109"):
        ev, st = findings / "eval" / "sr-x2-balance" / s, findings / "study" / "balance" / s
        if not (st / "psnr_by_bin.md").is_file():
            continue
        a, b = _per_image(ev, s, "balanced"), _per_image(ev, s, "skewed")
        merged = a.merge(b, on="name", suffixes=("_a", "_b"))
        mean, lo, hi = paired_difference(merged["psnr_y_a"], merged["psnr_y_b"])
        table = st.joinpath("psnr_by_bin.md").read_text(encoding="utf-8").split("\n", 2)[2]
        name = f"finding2-{s}.png"
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(st / "psnr_by_bin.png", figures / name)
        parts.append(
            f"**{s}** ({len(merged)} images): balanced - skewed = {mean:+.3f} dB PSNR-Y "
            f"[{lo:+.3f}, {hi:+.3f}] (paired bootstrap 95% interval).\n\n{table.strip()}\n\n"
            f"![PSNR-Y by complexity bin, {s}](figures/{name})"
        )
    return "\n\n".join(parts) + "\n" if parts else "(not measured yet)\n"


def finding3(findings: Path) -> str:
    df = summaries(findings, "sr-x2-equal-budget", SR_SETS)
    if df.empty:
        return "(not measured yet)\n"
    lines = [benchmark_table(df, "sr-x2").rstrip(), ""]
    lines += ["| model | training s/iteration | inference s/image (Urban100) |", "|---|---|---|"]
    runs = {"RWKV-IR": "rwkvir-light", "SwinIR": "swinir-light", "MambaIR": "mambair-light"}
    for label, model in runs.items():
        run = findings / "train" / f"{model}-balanced" / "run.json"
        per_it = "-"
        if run.is_file():
            final = json.loads(run.read_text()).get("final") or {}
            if final.get("step"):
                per_it = f"{final['wall_time'] / final['step']:.2f}"
        u = df[(df.model == label) & (df.dataset == "Urban100")]
        lines.append(
            f"| {label} | {per_it} | {u.seconds.iloc[0]:.1f} |"
            if len(u)
            else f"| {label} | {per_it} | - |"
        )
    return "\n".join(lines) + "\n"


def model_card_block(task: str, df: pd.DataFrame) -> str:
    return (
        "## On the field's benchmarks\n\n"
        "Measured by `scripts/reproduce_findings.sh` (`resyn eval`, fp32; test sets from "
        "`scripts/prepare_testsets.py`: Set5 with its MATLAB-made LR, the others' LR made from HR "
        "with MATLAB-bicubic `imresize`; CBSD68 is BSD100's 68-image subset). None of these images "
        "was used for training or to choose a checkpoint.\n\n" + benchmark_table(df, task)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=Path, default=ROOT / "runs" / "findings")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    doc = args.out / "findings.md"
    text = doc.read_text(encoding="utf-8")
    figures = args.out / "figures"
    text = replace_block(text, "finding1", finding1(args.findings, figures))
    text = replace_block(text, "finding2", finding2(args.findings, figures))
    text = replace_block(text, "finding3", finding3(args.findings))
    readme_rows = []
    for task, sets in (("sr-x2", SR_SETS), ("sr-x4", SR_SETS), ("denoise-25", DENOISE_SETS)):
        df = summaries(args.findings, task, sets)
        if df.empty:
            continue
        text = replace_block(text, f"bench-{task}", benchmark_table(df, task))
        card = WEIGHTS / f"{task}.md"
        weights = WEIGHTS / f"{task}.safetensors"
        measured = [args.findings / "eval" / task / d / "summary.csv" for d in df.dataset.unique()]
        if weights.is_file() and any(weights.stat().st_mtime > m.stat().st_mtime for m in measured):
            print(
                f"warning: {weights} is newer than its evaluations; not written into the card or "
                f"README. Re-measure: rm {args.findings}/.done/eval_{task}_* and re-run "
                "scripts/reproduce_findings.sh"
            )
            continue
        if card.is_file():
            body = card.read_text(encoding="utf-8")
            write_atomic(
                card, replace_block(body, "benchmarks", model_card_block(task, df), append=True)
            )
        sr = task.startswith("sr-")
        column = "psnr_y" if sr else "psnr"
        base = "Bicubic" if sr else next(m for m in df.model.unique() if m != task)
        model_gain = gains(df, task, base, column)
        cells = ", ".join(
            f"{d} {df[(df.model == task) & (df.dataset == d)][column].iloc[0]:.2f} "
            f"({model_gain[d]:+.2f})"
            for d in model_gain
        )
        readme_rows.append(f"- `{task}` ({'PSNR-Y' if sr else 'PSNR'}, gain over {base}): {cells}")
    write_atomic(doc, text)
    readme = ROOT / "README.md"
    if readme_rows:
        body = "\n".join(readme_rows) + "\n"
        write_atomic(readme, replace_block(readme.read_text(encoding="utf-8"), "benchmarks", body))
    print(f"wrote {doc}, model cards, README")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
