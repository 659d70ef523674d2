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


def test_study_from_an_eval_folder_runs_no_model(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    _images(tmp_path / "imgs")
    w = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), w, info={"task": "sr-x2"})
    ev = tmp_path / "ev"
    args = ["-m", "bicubic", "-m", f"Tiny={w}", "-t", "sr-x2"]
    res = runner.invoke(app, ["eval", "-d", f"Mix={tmp_path / 'imgs'}", *args, "-o", str(ev)])
    assert res.exit_code == 0, res.output
    direct = tmp_path / "direct"
    res = runner.invoke(
        app, ["study", "complexity", "-d", f"Mix={tmp_path / 'imgs'}", *args, "-o", str(direct)]
    )
    assert res.exit_code == 0, res.output
    w.unlink()  # the study must not need the model any more
    study = tmp_path / "study"
    res = runner.invoke(
        app, ["study", "complexity", "--from-eval", str(ev), "-t", "sr-x2", "-o", str(study)]
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    # equal up to the 6 decimals the eval's per-image CSVs keep
    a, b = pd.read_csv(study / "correlations.csv"), pd.read_csv(direct / "correlations.csv")
    assert list(a.columns) == list(b.columns) and list(a["restorer"]) == ["Bicubic", "Tiny"]
    numeric = a.columns.drop("restorer")
    assert np.allclose(a[numeric], b[numeric], atol=1e-5, equal_nan=True)
    md = (study / "correlations.md").read_text()
    assert "Bicubic" in md and "Tiny" in md and "[" in md  # intervals in brackets
    # the eval folder is for another task, or names another dataset: a clear error
    res = runner.invoke(
        app, ["study", "complexity", "--from-eval", str(ev), "-t", "sr-x4", "-o", str(study)]
    )
    assert res.exit_code == 2 and "sr-x2" in res.output
    res = runner.invoke(
        app,
        [
            "study",
            "complexity",
            "--from-eval",
            str(ev),
            "-d",
            "Other",
            "-t",
            "sr-x2",
            "-o",
            str(study),
        ],
    )
    assert res.exit_code == 2 and "no dataset 'Other'" in res.output
    res = runner.invoke(
        app, ["study", "complexity", "--from-eval", str(tmp_path), "-o", str(study)]
    )
    assert res.exit_code == 2 and "summary.csv" in res.output
