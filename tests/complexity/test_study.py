"""Correlations, joins and the two figures (Fig. 2 and Fig. 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import pearsonr, spearmanr
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.complexity.study import (
    correlate,
    correlation,
    correlation_table,
    join_scores_psnr,
    plot_distributions,
)


def _scores(n: int, rng, with_bpp=True) -> pd.DataFrame:
    c = rng.normal(0, 6, n)
    df = pd.DataFrame(
        {
            "path": [f"set/sub/img_{i:03d}.png" for i in range(n)],
            "raw": c + 19.0,
            "complexity": c,
            "error": "",
        }
    )
    if with_bpp:
        df["bpp"] = 10 + 0.3 * c + rng.normal(0, 2.5, n)
    return df


def test_correlation_matches_scipy_and_handles_nan(rng):
    x, y = rng.normal(size=50), rng.normal(size=50)
    y = y - 0.8 * x
    c = correlation(x, y)
    assert c.n == 50
    assert c.pearson == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    assert c.spearman == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    x[3] = np.nan
    assert correlation(x, y).n == 49
    assert np.isnan(correlation(np.ones(5), np.arange(5.0)).pearson)


def test_join_on_stem_and_correlations_have_the_expected_sign(rng, tmp_path):
    scores = _scores(40, rng)
    scores.loc[5, "error"] = "corrupt"  # error rows never join
    psnr = pd.DataFrame(
        {
            "name": [f"img_{i:03d}.png" if i % 2 else f"img_{i:03d}" for i in range(40)],
            "psnr_y": 30 - 0.5 * scores["complexity"] + rng.normal(0, 0.5, 40),
        }
    )
    joined = join_scores_psnr(scores, psnr)
    assert len(joined) == 39 and "img_005" not in set(joined["name"])
    assert correlate(joined) == correlate(scores, psnr)
    scores.to_csv(tmp_path / "s.csv", index=False)
    psnr.to_csv(tmp_path / "p.csv", index=False)
    from_files = correlate(tmp_path / "s.csv", tmp_path / "p.csv")
    assert from_files["pearson_complexity"] == pytest.approx(
        correlate(joined)["pearson_complexity"]
    )
    table, _ = correlation_table(scores, {"bicubic": psnr, "half": psnr.iloc[:20]})
    row = table.set_index("restorer").loc["bicubic"]
    assert row["n"] == 39
    assert row["pearson_complexity"] < -0.9
    assert row["pearson_complexity"] < row["pearson_bpp"] < 0  # BPP is the noisier predictor
    assert table.set_index("restorer").loc["half", "n"] == 19


def test_duplicate_stems_are_left_out_with_a_warning(rng):
    scores = _scores(6, rng)
    scores.loc[1, "path"] = "other/img_000.png"
    psnr = pd.DataFrame({"name": [f"img_{i:03d}" for i in range(6)], "psnr_y": np.arange(6.0)})
    with pytest.warns(UserWarning, match="share a file stem"):
        joined = join_scores_psnr(scores, psnr)
    assert "img_000" not in set(joined["name"]) and len(joined) == 4


def test_plot_distributions_writes_a_png(tmp_path, rng):
    out = plot_distributions(
        {"easy": rng.normal(-5, 4, 300), "hard": rng.normal(3, 6, 100)}, tmp_path / "d.png"
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 800


def test_plot_and_correlate_commands(tmp_path, rng):
    a, b = tmp_path / "A.csv", tmp_path / "B.csv"
    _scores(200, rng).to_csv(a, index=False)
    s = _scores(60, rng, with_bpp=False)
    s.to_csv(b, index=False)
    r = CliRunner().invoke(
        app, ["complexity", "plot", str(a), str(b), "-o", str(tmp_path / "d.png"),
              "--labels", "DF2K,Urban"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "DF2K: n=200" in r.output and (tmp_path / "d.png").stat().st_size > 10_000

    # scores without bpp and image files that exist: bpp is computed from the files
    imgdir = tmp_path / "set" / "sub"
    imgdir.mkdir(parents=True)
    for i in range(60):
        level = int(np.clip(8 * (s.loc[i, "complexity"] + 20), 0, 255))
        img = (rng.random((16, 16)) * level).astype(np.uint8)
        Image.fromarray(img).save(imgdir / f"img_{i:03d}.png")
    names = [f"img_{i:03d}" for i in range(60)]
    p1, p2 = tmp_path / "swinir.csv", tmp_path / "bicubic.csv"
    pd.DataFrame({"name": names, "psnr_y": 33 - 0.4 * s["complexity"]}).to_csv(p1, index=False)
    pd.DataFrame({"name": names, "psnr_y": 30 - 0.3 * s["complexity"] + rng.normal(0, 1, 60)}
                 ).to_csv(p2, index=False)  # fmt: skip
    fig = tmp_path / "corr.png"
    r = CliRunner().invoke(
        app, ["complexity", "correlate", "--scores", str(b), "--psnr", str(p1),
              "--psnr", str(p2), "-o", str(fig)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "corr_correlation.csv")
    assert list(table["restorer"]) == ["swinir", "bicubic"]
    assert table.loc[0, "pearson_complexity"] == pytest.approx(-1.0, abs=1e-9)
    assert (table["n_bpp"] == 60).all() and table["pearson_bpp"].notna().all()
    assert (tmp_path / "corr_correlation.md").read_text().startswith("| restorer |")
    with Image.open(fig) as im:
        assert im.format == "PNG"


def test_correlate_reports_bad_psnr_tables(tmp_path, rng):
    b = tmp_path / "s.csv"
    _scores(10, rng).to_csv(b, index=False)
    bad = tmp_path / "p.csv"
    pd.DataFrame({"image": ["x"], "psnr": [30.0]}).to_csv(bad, index=False)
    r = CliRunner().invoke(
        app, ["complexity", "correlate", "--scores", str(b), "--psnr", str(bad), "-o",
              str(tmp_path / "f.png")],
    )  # fmt: skip
    assert r.exit_code == 2 and "missing column(s) name, psnr_y" in " ".join(r.output.split())


def _correlate_cli(*args: str):
    return CliRunner().invoke(app, ["complexity", "correlate", *args])


def test_correlate_never_overwrites_its_inputs(tmp_path, rng):
    """`-o s3.png` used to write its table to s3.csv, replacing the scores table s3.csv."""
    scores = tmp_path / "s3.csv"
    _scores(30, rng).to_csv(scores, index=False)
    psnr = tmp_path / "p.csv"
    names = [f"img_{i:03d}" for i in range(30)]
    pd.DataFrame({"name": names, "psnr_y": np.linspace(20, 30, 30)}).to_csv(psnr, index=False)
    before = {p: p.read_bytes() for p in (scores, psnr)}
    r = _correlate_cli("--scores", str(scores), "--psnr", str(psnr), "-o", str(tmp_path / "s3.png"))
    assert r.exit_code == 0, r.output
    assert {p: p.read_bytes() for p in (scores, psnr)} == before
    assert (tmp_path / "s3_correlation.csv").exists() and (tmp_path / "s3_correlation.md").exists()

    for extra in (["--table", str(scores)], ["--table", str(tmp_path / "sub" / ".." / "p.csv")]):
        fig = tmp_path / "refused.png"
        r = _correlate_cli("--scores", str(scores), "--psnr", str(psnr), "-o", str(fig), *extra)
        assert r.exit_code == 2, r.output
        assert "would be overwritten" in " ".join(r.output.split())
        assert not fig.exists()  # nothing written, not even the figure
    (tmp_path / "sub").mkdir()
    r = _correlate_cli(
        "--scores", str(scores), "--psnr", str(psnr), "-o", str(tmp_path / "f.png"),
        "--table", str(tmp_path / "sub" / "t.md"),
    )  # fmt: skip
    assert r.exit_code == 2 and ".csv" in r.output
    assert {p: p.read_bytes() for p in (scores, psnr)} == before


def test_join_matches_the_exact_file_name_before_the_stem(rng):
    """img_000.png and img_000.jpg are two scored files: a PSNR row named img_000.png is the
    PNG (the stem-only join dropped both as ambiguous); a bare stem still joins when unique."""
    scores = _scores(4, rng)
    scores.loc[1, "path"] = "set/sub/img_000.jpg"
    psnr = pd.DataFrame(
        {"name": ["img_000.png", "img_000.jpg", "img_002", "img_003.bmp"], "psnr_y": [1.0, 2, 3, 4]}
    )
    joined = join_scores_psnr(scores, psnr).set_index("path")
    assert joined["psnr"].to_dict() == {
        "set/sub/img_000.png": 1.0,
        "set/sub/img_000.jpg": 2.0,
        "set/sub/img_002.png": 3.0,
        "set/sub/img_003.png": 4.0,  # no file named img_003.bmp: the stem decides
    }
    with pytest.warns(UserWarning, match="match more than one scored file"):
        joined = join_scores_psnr(scores, pd.DataFrame({"name": ["img_000"], "psnr_y": [5.0]}))
    assert joined.empty


def test_bootstrap_intervals_bracket_the_estimate_and_order_the_predictors() -> None:
    from resyn.complexity.study import bootstrap_pearson

    rng = np.random.default_rng(3)
    n = 80
    complexity = rng.normal(size=n)
    psnr = 30 - 2 * complexity + rng.normal(0, 0.5, n)  # complexity predicts well
    bpp = complexity + rng.normal(0, 1.5, n)  # BPP is a noisy proxy of it
    joined = pd.DataFrame({"complexity": complexity, "bpp": bpp, "psnr": psnr})
    out = correlate(joined, bootstrap=500)
    assert out["pearson_complexity_lo"] <= out["pearson_complexity"] <= out["pearson_complexity_hi"]
    assert out["pearson_bpp_lo"] <= out["pearson_bpp"] <= out["pearson_bpp_hi"]
    assert out["pearson_complexity_hi"] < -0.9
    assert out["delta_abs_pearson_lo"] > 0  # complexity is the better predictor, clearly
    assert out == correlate(joined, bootstrap=500)  # seeded: the same numbers every run
    assert "pearson_complexity_lo" not in correlate(joined)
    # a NaN anywhere drops that image from the paired resamples; fewer than 3 gives NaN
    few = bootstrap_pearson(np.array([1.0, 2.0, np.nan]), np.ones(3), np.arange(3.0))
    assert all(np.isnan(v) for v in few.values())
