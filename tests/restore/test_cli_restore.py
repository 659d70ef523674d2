"""``resyn restore`` end to end on tiny saved models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.io import read_image, write_image

runner = CliRunner()


def _photos(folder, rng):
    folder.mkdir()
    write_image(folder / "a.png", rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    write_image(folder / "b.jpg", rng.integers(0, 256, (18, 26, 3), dtype=np.uint8))
    write_image(folder / "g16.png", rng.integers(0, 65536, (20, 20), dtype=np.uint16))
    write_image(folder / "rgba.png", rng.integers(0, 256, (20, 20, 4), dtype=np.uint8))
    return folder


def test_restore_folder_keeps_layouts_and_records_tiling(tmp_path, weights, rng) -> None:
    src = _photos(tmp_path / "in", rng)
    out = tmp_path / "out"
    args = ["restore", str(src), "-o", str(out), "--weights", str(weights), "--tile", "16"]
    res = runner.invoke(app, [*args, "--overlap", "4"])
    assert res.exit_code == 0, res.output
    a = read_image(out / "a_sr-x2.png")
    assert a.shape == (48, 40, 3) and a.dtype == np.uint8
    assert read_image(out / "b_sr-x2.png").shape == (36, 52, 3)
    g = read_image(out / "g16_sr-x2.png")
    assert g.shape == (40, 40) and g.dtype == np.uint16
    assert read_image(out / "rgba_sr-x2.png").shape == (40, 40, 4)
    text = Image.open(out / "a_sr-x2.png").text
    assert text["resyn:task"] == "sr-x2"
    assert "tile=16 overlap=4" in text["resyn:tiling"]
    assert "x2.safetensors" in text["resyn:model"]
    assert "self-ensemble" not in text["resyn:tiling"]


def test_ensemble_flag_is_recorded(tmp_path, weights, rng) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    out = tmp_path / "out"
    args = ["restore", str(src), "-o", str(out), "--weights", str(weights), "--ensemble"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "x8 self-ensemble" in Image.open(out / "a_sr-x2.png").text["resyn:tiling"]


def test_existing_outputs_kept_unless_overwrite(tmp_path, weights, rng) -> None:
    src = tmp_path / "one.png"
    write_image(src, rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "one_sr-x2.png").write_bytes(b"keep me")
    res = runner.invoke(app, ["restore", str(src), "-o", str(out), "-w", str(weights)])
    assert res.exit_code == 0 and "--overwrite" in res.output
    assert (out / "one_sr-x2.png").read_bytes() == b"keep me"
    res = runner.invoke(
        app, ["restore", str(src), "-o", str(out), "-w", str(weights), "--overwrite"]
    )
    assert res.exit_code == 0
    assert read_image(out / "one_sr-x2.png").shape == (40, 40, 3)


def test_broken_file_reported_others_processed(tmp_path, weights, rng) -> None:
    src = _photos(tmp_path / "in", rng)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "tiny.png").write_bytes(b"")
    write_image(src / "small.png", np.zeros((2, 30, 3), np.uint8))
    out = tmp_path / "out"
    res = runner.invoke(app, ["restore", str(src), "-o", str(out), "-w", str(weights)])
    assert res.exit_code == 1
    assert "broken.png" in res.output and "tiny.png" in res.output and "too small" in res.output
    assert "3 of 7 image(s) failed" in res.output
    assert (out / "a_sr-x2.png").exists() and (out / "g16_sr-x2.png").exists()
    assert not (out / "broken_sr-x2.png").exists()


def test_pixel_limit(tmp_path, weights, rng) -> None:
    src = tmp_path / "big.png"
    write_image(src, np.zeros((40, 40, 3), np.uint8))
    res = runner.invoke(
        app,
        [
            "restore",
            str(src),
            "-o",
            str(tmp_path / "o"),
            "-w",
            str(weights),
            "--max-pixels",
            "1000",
        ],
    )
    assert res.exit_code == 1 and "pixel limit" in res.output


def test_clear_errors_before_work(tmp_path, weights, rng) -> None:
    src = tmp_path / "x.png"
    write_image(src, np.zeros((20, 20, 3), np.uint8))
    out = str(tmp_path / "o")
    res = runner.invoke(
        app, ["restore", str(src), "-o", out, "-w", str(weights), "--task", "sr-x4"]
    )
    assert res.exit_code == 2 and "x2 model but task sr-x4" in res.output
    res = runner.invoke(app, ["restore", str(src), "-o", out, "--task", "sr-fast"])
    assert res.exit_code == 2 and "unknown task" in res.output
    res = runner.invoke(app, ["restore", str(src), "-o", out, "--task", "sr-x3"])
    assert res.exit_code == 2 and "sr-x3.safetensors" in res.output and "--weights" in res.output
    res = runner.invoke(
        app, ["restore", str(tmp_path / "nope*.png"), "-o", out, "-w", str(weights)]
    )
    assert res.exit_code == 2 and "no file matches" in res.output
    res = runner.invoke(
        app, ["restore", str(src), "-o", out, "-w", str(weights), "--max-memory", "lots"]
    )
    assert res.exit_code == 2 and "memory size" in res.output
    assert not (tmp_path / "o").exists()


def test_same_stem_collision_refused(tmp_path, weights, rng) -> None:
    for sub in ("p", "q"):
        (tmp_path / sub).mkdir()
        write_image(tmp_path / sub / "same.png", np.zeros((20, 20, 3), np.uint8))
    res = runner.invoke(
        app,
        [
            "restore",
            str(tmp_path / "p"),
            str(tmp_path / "q"),
            "-o",
            str(tmp_path / "o"),
            "-w",
            str(weights),
        ],
    )
    assert res.exit_code == 2 and "both be written" in res.output


def test_parse_size() -> None:
    from resyn.cli.restore import parse_size

    assert parse_size("2GB") == 2 * 1024**3
    assert parse_size("512MB") == 512 * 1024**2
    assert parse_size("1.5G") == int(1.5 * 1024**3)
    assert parse_size("1000") == 1000


def test_restore_with_tiny_rwkvir(tmp_path, rng) -> None:
    pytest.importorskip("resyn.models.rwkvir", reason="rwkvir is not available")
    import torch

    from resyn.models import build_model, save_model

    torch.manual_seed(0)
    w = tmp_path / "rwkvir_x2.safetensors"
    save_model(
        build_model("rwkvir-light", scale=2, embed_dim=8, depths=(1,)), w, info={"task": "sr-x2"}
    )
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "c.png", rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    write_image(src / "g16.tif", rng.integers(0, 65536, (24, 20), dtype=np.uint16))
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["restore", str(src), "-o", str(out), "-w", str(w), "--tile", "16", "--overlap", "4"]
    )
    assert res.exit_code == 0, res.output
    assert read_image(out / "c_sr-x2.png").shape == (40, 56, 3)
    g = read_image(out / "g16_sr-x2.png")
    assert g.shape == (48, 40) and g.dtype == np.uint16
    assert "tiles=" in Image.open(out / "c_sr-x2.png").text["resyn:tiling"]


def test_outputs_inside_an_input_folder_are_not_restored_again(tmp_path, weights, rng) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    write_image(src / "a.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    out = src / "out"
    args = ["restore", str(src), "-o", str(out), "-w", str(weights)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "wrote 1 image(s)" in first.output, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "skipping 1 file(s) inside the output folder" in second.output
    assert "a_sr-x2.png" in second.output and "restoring 1 image(s)" in second.output
    assert sorted(p.name for p in out.iterdir()) == ["a_sr-x2.png"]  # no a_sr-x2_sr-x2.png
    # a glob reaching into the output folder is filtered the same way
    third = runner.invoke(
        app, ["restore", str(src / "**" / "*.png"), "-o", str(out), "-w", str(weights)]
    )
    assert third.exit_code == 0 and "skipping 1 file(s)" in third.output, third.output
    assert sorted(p.name for p in out.iterdir()) == ["a_sr-x2.png"]
    # a file named explicitly is restored even there
    explicit = runner.invoke(
        app, ["restore", str(out / "a_sr-x2.png"), "-o", str(out), "-w", str(weights)]
    )
    assert explicit.exit_code == 0 and (out / "a_sr-x2_sr-x2.png").exists(), explicit.output
    # only earlier outputs in the given folder: nothing left to do is an error, as for no files
    only = runner.invoke(app, ["restore", str(out), "-o", str(out), "-w", str(weights)])
    assert only.exit_code == 2 and "no image files found" in only.output


def test_weights_folder_is_named_as_a_folder(tmp_path, weights, rng) -> None:
    src = tmp_path / "x.png"
    write_image(src, np.zeros((20, 20, 3), np.uint8))
    res = runner.invoke(
        app, ["restore", str(src), "-o", str(tmp_path / "o"), "-w", str(weights.parent)]
    )
    assert res.exit_code == 2 and "is a folder, not a weights file" in res.output, res.output
    assert "x2.safetensors" in res.output and "not found" not in res.output


def test_formats_without_metadata_say_so(tmp_path, weights, rng) -> None:
    src = tmp_path / "x.png"
    write_image(src, rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    res = runner.invoke(
        app,
        ["restore", str(src), "-o", str(tmp_path / "o"), "-w", str(weights), "--format", "tiff"],
    )
    assert res.exit_code == 0 and (tmp_path / "o" / "x_sr-x2.tif").exists(), res.output
    assert "TIFF outputs carry no resyn metadata" in res.output
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "p"), "-w", str(weights)])
    assert "carry no resyn metadata" not in res.output


def test_bad_precision_is_refused_naming_the_choices(tmp_path, weights) -> None:
    src = tmp_path / "x.png"
    write_image(src, np.zeros((20, 20, 3), np.uint8))
    args = ["restore", str(src), "-o", str(tmp_path / "o"), "-w", str(weights)]
    res = runner.invoke(app, [*args, "--precision", "fp16"])
    assert res.exit_code == 2
    assert "error: --precision must be one of auto, fp32, bf16, not 'fp16'" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("flags", "recorded"),
    [({"avx2", "avx512_bf16"}, "auto -> bf16"), ({"avx2"}, "auto -> fp32")],
)
def test_metadata_records_requested_and_resolved_precision(
    tmp_path, weights, monkeypatch, flags, recorded
) -> None:
    from resyn import precision

    monkeypatch.setattr(precision, "read_cpu_flags", lambda: frozenset(flags))
    src = tmp_path / "x.png"
    write_image(src, np.full((20, 20, 3), 100, np.uint8))
    out = tmp_path / "o"
    args = ["restore", str(src), "-o", str(out), "-w", str(weights), "--overwrite"]
    res = runner.invoke(app, args)  # --precision auto is the default
    assert res.exit_code == 0, res.output
    assert recorded in res.output  # the first line says what auto resolved to, and why
    assert Image.open(out / "x_sr-x2.png").text["resyn:precision"] == recorded
    res = runner.invoke(app, [*args, "--precision", "bf16"])
    assert res.exit_code == 0, res.output
    assert Image.open(out / "x_sr-x2.png").text["resyn:precision"] == "bf16"
