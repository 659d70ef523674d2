"""``resyn study complexity``: correlations, bins and figures from real evaluations."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from resyn.cli.main import app

runner = CliRunner()


def _images(folder, n: int = 6) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    for i in range(n):
        # increasing texture: complexity up, bicubic PSNR down
        smooth = 128 + 50 * np.sin(xx / 7) * np.cos(yy / 9)
        img = smooth[:, :, None] + rng.normal(0, 4 + 12 * i, (40, 40, 3))
        Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")


def test_study_writes_tables_and_figures(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    _images(tmp_path / "imgs")
    w = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), w, info={"task": "sr-x2"})
    out = tmp_path / "study"
    res = runner.invoke(
        app,
        [
            "study",
            "complexity",
            "--data",
            f"Mix={tmp_path / 'imgs'}",
            "-m",
            "bicubic",
            "-m",
            f"Tiny={w}",
            "-t",
            "sr-x2",
            "-o",
            str(out),
            "--bins",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    for name in (
        "per_image.csv",
        "correlations.csv",
        "correlations.md",
        "psnr_vs_complexity.png",
        "psnr_by_bin.csv",
        "psnr_by_bin.md",
        "psnr_by_bin.png",
        "eval/summary.md",
    ):
        assert (out / name).is_file(), name
    with open(out / "correlations.csv") as fh:
        corr = {r["restorer"]: r for r in csv.DictReader(fh)}
    assert set(corr) == {"Bicubic", "Tiny"}
    # More texture, lower PSNR: strongly negative correlation with complexity for bicubic.
    assert float(corr["Bicubic"]["pearson_complexity"]) < -0.8
    assert int(corr["Bicubic"]["n"]) == 6
    with open(out / "psnr_by_bin.csv") as fh:
        bins = list(csv.DictReader(fh))
    assert len(bins) == 3 and sum(int(b["n"]) for b in bins) == 6
    with open(out / "per_image.csv") as fh:
        per = list(csv.DictReader(fh))
    assert len(per) == 6 and "psnr[Bicubic]" in per[0] and "psnr[Tiny]" in per[0]
    assert Image.open(out / "psnr_by_bin.png").size[0] > 300


def test_study_needs_three_images(tmp_path) -> None:
    _images(tmp_path / "imgs", n=2)
    res = runner.invoke(
        app, ["study", "complexity", "--data", str(tmp_path / "imgs"), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "at least 3" in res.output
