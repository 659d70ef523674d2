"""`resyn complexity score`: every file becomes a row, bad files included; resumable."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.complexity import DEFAULT_CENTER, complexity
from resyn.complexity.runner import run_scoring
from resyn.io import find_images


def _photo(h=48, w=64) -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100 : 100 + h, 150 : 150 + w])


def _make_set(root: Path) -> dict[str, str | None]:
    """Files of every awkward kind; value = expected error substring (None: scores)."""
    rgb = _photo()
    sub = root / "sub"
    sub.mkdir(parents=True)
    Image.fromarray(rgb).save(root / "good.png")
    Image.fromarray(rgb).save(sub / "good.jpg", quality=95)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "notes.png").write_text("this is not an image\n")
    (root / "empty.webp").write_bytes(b"")
    Image.fromarray(rgb[:1, :1]).save(root / "one.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(root / "gray16.png")
    Image.fromarray(rgb).quantize(16).save(root / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(rgb).save(root / "rotated.jpg", quality=95, exif=exif)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba).save(sub / "rgba.png")
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(root / "bomb.png")
    Image.fromarray(rgb).save(root / "good.bmp")
    Image.fromarray(rgb).save(root / "good.tiff")
    Image.fromarray(rgb).save(root / "good.webp", lossless=True)
    return {
        "good.png": None, "sub/good.jpg": None, "truncated.jpg": "truncated",
        "notes.png": "not an image", "empty.webp": "empty file", "one.png": "1x1",
        "gray16.png": None, "palette.png": None, "cmyk.jpg": None, "rotated.jpg": None,
        "sub/rgba.png": None, "bomb.png": "pixel limit", "good.bmp": None,
        "good.tiff": None, "good.webp": None,
    }  # fmt: skip


def _score(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["complexity", "score", *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_file_gets_a_score_or_a_named_error(tmp_path):
    expected = _make_set(tmp_path / "set")
    out = tmp_path / "scores.csv"
    output = _score([str(tmp_path / "set"), "-o", str(out), "-j", "2", "--max-pixels", "50000"])
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == [
        "path", "width", "height", "ent", "ene", "diss", "raw", "complexity", "error",
    ]  # fmt: skip
    rows = {
        Path(p).relative_to(tmp_path / "set").as_posix(): r
        for p, r in zip(df["path"], df.to_dict("records"), strict=True)
    }
    assert set(rows) == set(expected)
    for name, err in expected.items():
        row = rows[name]
        if err is None:
            assert row["error"] == "", (name, row["error"])
            assert row["raw"] != "" and np.isfinite(float(row["raw"]))
            assert float(row["complexity"]) == pytest.approx(float(row["raw"]) - DEFAULT_CENTER)
        else:
            assert err in row["error"], (name, row["error"])
            assert row["raw"] == ""
            assert name in output  # errors are reported on the console too
    # oriented size, and the exact same score as the library
    assert (int(rows["rotated.jpg"]["width"]), int(rows["rotated.jpg"]["height"])) == (48, 64)
    lib = complexity(tmp_path / "set" / "rotated.jpg")
    assert float(rows["rotated.jpg"]["raw"]) == pytest.approx(lib.raw, abs=1e-9)
    # lossless variants of one picture score identically; RGBA = RGB; 16-bit = its 8-bit
    for name in ("good.bmp", "good.tiff", "good.webp", "sub/rgba.png"):
        assert float(rows[name]["raw"]) == pytest.approx(float(rows["good.png"]["raw"]), abs=1e-9)
    gray8 = complexity(_photo()[..., 1])
    assert float(rows["gray16.png"]["raw"]) == pytest.approx(gray8.raw, abs=1e-9)


def test_rerun_scores_only_missing_rows_and_bpp_on_request(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(_photo(), 7 * i, axis=1)).save(folder / f"im{i}.png")
    out = tmp_path / "s.csv"
    _score([str(folder), "-o", str(out), "-j", "1"])
    first = pd.read_csv(out)
    assert "bpp" not in first.columns and len(first) == 3
    Image.fromarray(_photo()[::-1]).save(folder / "im3.png")
    seen: list[int] = []
    summary = run_scoring(
        find_images([folder]), out, center=DEFAULT_CENTER, workers=1, on_start=seen.append
    )
    assert seen == [1] and summary.scored == 1 and summary.reused == 3
    summary = run_scoring(find_images([folder]), out, center=DEFAULT_CENTER, with_bpp=True)
    assert summary.scored == 4  # bpp was missing everywhere
    df = pd.read_csv(out)
    assert df["bpp"].notna().all() and len(df) == 4
    pd.testing.assert_series_equal(df["raw"][:3], first["raw"], check_exact=False, rtol=1e-11)


def test_killed_run_keeps_checkpointed_rows(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.roll(_photo(), 5 * i, axis=0)).save(folder / f"im{i}.png")
    out = tmp_path / "s.csv"

    def interrupt_after_first(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scoring(
            find_images([folder]), out, center=0.0, workers=1, batch_size=1,
            checkpoint_seconds=0.0, on_progress=interrupt_after_first,
        )  # fmt: skip
    assert len(pd.read_csv(out)) == 1
    summary = run_scoring(find_images([folder]), out, center=0.0, workers=1)
    assert (summary.reused, summary.scored) == (1, 3)
    assert not list(tmp_path.glob(".s.csv.*"))  # no temporary files left behind


def test_parquet_output(tmp_path):
    pytest.importorskip("pyarrow")
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"")
    out = tmp_path / "s.parquet"
    _score([str(tmp_path / "*.*g"), "-o", str(out), "--bpp", "-j", "1"])
    df = pd.read_parquet(out)
    assert len(df) == 2 and set(df["error"]) == {"", "empty file (0 bytes)"}
    assert df["bpp"].notna().sum() == 1


def _fails(args: list[str]) -> str:
    r = CliRunner().invoke(app, ["complexity", "score", *args])
    assert r.exit_code == 2, r.output
    return " ".join(r.output.split())


def test_user_errors_are_clear(tmp_path):
    assert "no such file or folder" in _fails([str(tmp_path / "nope"), "-o", "x.csv"])
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    assert ".csv or .parquet" in _fails([str(tmp_path), "-o", "x.txt"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    msg = _fails([str(tmp_path / "a.png"), "-o", str(bad)])
    assert "not a scores table" in msg and "scoring" not in msg
    assert "engine" in _fails([str(tmp_path), "-o", "x.csv", "--engine", "spark"])


def _crash_on_marked_files(paths, with_bpp=False, max_pixels=None):
    import os

    from resyn.complexity.table import score_paths

    if any("crash" in p for p in paths):
        os._exit(3)  # what a segfaulting decoder or the OOM killer does to a worker
    return score_paths(paths, with_bpp, max_pixels)


def test_a_worker_that_dies_costs_one_error_row_not_the_run(tmp_path, monkeypatch):
    import resyn.complexity.runner as runner
    from resyn.io import parallel

    monkeypatch.setattr(parallel, "MP_START", "fork")  # children see the patched function
    monkeypatch.setattr(runner, "score_paths", _crash_on_marked_files)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a", "b", "crash", "c", "d"):
        Image.fromarray(_photo(16, 16)).save(folder / f"{name}.png")
    out = tmp_path / "s.csv"
    summary = run_scoring(find_images([folder]), out, center=0.0, workers=2, batch_size=2)
    df = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert len(df) == 5 and summary.error_rows == 1
    assert "worker died on this file" in df.loc[str(folder / "crash.png"), "error"]
    assert (df.drop(str(folder / "crash.png"))["error"] == "").all()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "tcp://127.0.0.1"])
def test_unreachable_or_bad_scheduler_is_one_clear_line(tmp_path, monkeypatch, address):
    pytest.importorskip("distributed")
    from resyn.io import parallel

    monkeypatch.setattr(parallel, "DEFAULT_CONNECT_TIMEOUT", 1.0)
    Image.fromarray(_photo(16, 16)).save(tmp_path / "a.png")
    args = [str(tmp_path), "-o", str(tmp_path / "s.csv"), "--engine", "dask"]
    msg = _fails([*args, "--scheduler", address])
    assert address in msg and "Traceback" not in msg
    assert "cannot reach the Dask scheduler" in msg or "invalid Dask scheduler address" in msg


def test_broken_links_get_rows_and_hidden_files_are_counted(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_photo(16, 16)).save(folder / "a.png")
    Image.fromarray(_photo(16, 16)).save(folder / "._a.png")  # macOS resource-fork leftovers
    Image.fromarray(_photo(16, 16)).save(folder / "sub" / ".hidden.jpg")
    (folder / "dead.png").symlink_to(tmp_path / "gone.png")
    loose = tmp_path / "loose.jpg"
    loose.symlink_to("nowhere.jpg")
    out = tmp_path / "s.csv"
    r = CliRunner().invoke(app, ["complexity", "score", str(folder), str(loose), "-o", str(out)])
    assert r.exit_code == 0, r.output  # a dangling link named on the command line is a row too
    text = " ".join(r.output.split())
    assert "skipped 2 hidden files" in text
    df = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert set(df.index) == {str(folder / "a.png"), str(folder / "dead.png"), str(loose)}
    for p in (folder / "dead.png", loose):
        assert df.loc[str(p), "error"].startswith("broken symbolic link"), df.loc[str(p)]
    assert df.loc[str(folder / "a.png"), "error"] == ""
