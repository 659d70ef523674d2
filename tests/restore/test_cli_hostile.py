"""``resyn restore`` and ``resyn export`` on hostile or careless input (issue 15): symbolic link
loops, an output that cannot be written, bad export options. Each is an ``error:`` line or a
``failed`` line, never a traceback, and a bad ``-o`` is refused before any work."""

from __future__ import annotations

import os

import numpy as np
import pytest
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.io import ImageReadError, read_image, write_image

runner = CliRunner()


@pytest.fixture
def photos(tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    os.symlink("loop.png", folder / "loop.png")  # a link to itself
    os.symlink("b2.png", folder / "b1.png")
    os.symlink("b1.png", folder / "b2.png")
    return folder


def test_a_symlink_loop_is_named_as_a_loop(photos) -> None:
    for name in ("loop.png", "b1.png"):
        with pytest.raises(ImageReadError, match="symbolic link loop"):
            read_image(photos / name)
    os.symlink("missing.png", photos / "dangling.png")
    with pytest.raises(ImageReadError, match=r"broken symbolic link \(its target missing.png"):
        read_image(photos / "dangling.png")


def test_restore_reports_a_symlink_loop_and_restores_the_rest(tmp_path, photos, weights) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["restore", str(photos), "-o", str(out), "-w", str(weights)])
    assert res.exit_code == 1, f"{res.output}\n{res.exception!r}"
    assert (out / "a_sr-x2.png").exists()
    assert f"failed {photos / 'loop.png'}: symbolic link loop" in res.output
    assert "3 of 4 image(s) failed" in res.output and "Traceback" not in res.output


def test_restore_with_an_output_folder_inside_a_loop(tmp_path, photos, weights) -> None:
    res = runner.invoke(
        app, ["restore", str(photos), "-o", str(photos / "out"), "-w", str(weights)]
    )
    assert res.exit_code == 1 and (photos / "out" / "a_sr-x2.png").exists(), res.output


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_an_unusable_output_is_refused_before_any_work(tmp_path, where) -> None:
    src = tmp_path / "x.png"
    write_image(src, np.zeros((20, 20, 3), np.uint8))
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    output = blocker if where == "file" else blocker / "out"
    # The weights do not exist: refusing -o first shows that nothing else was looked at.
    missing = tmp_path / "missing.safetensors"
    res = runner.invoke(app, ["restore", str(src), "-o", str(output), "-w", str(missing)])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: -o: {output}"), res.output
    assert f"{blocker} is a file, not a folder" in res.output


def test_complexity_names_a_symlink_loop(tmp_path, photos, monkeypatch) -> None:
    monkeypatch.setenv("RESYN_COMPLEXITY_CENTER_FILE", str(tmp_path / "no-center.json"))
    out = tmp_path / "scores.csv"
    res = runner.invoke(app, ["complexity", "score", str(photos), "-o", str(out), "-j", "1"])
    assert "symbolic link loop" in res.output, res.output
    assert "does not exist" not in res.output


@pytest.mark.parametrize(
    ("where", "args", "message"),
    [
        ("folder", ["--overwrite"], "is a folder; name the .onnx file to write"),
        ("under-a-file", [], "taken is a file, not a folder"),
        ("size", ["--size", "-3"], "--size must be between 1 and 4096 pixels, not -3"),
    ],
)
def test_export_refuses_bad_outputs_and_sizes(tmp_path, weights, where, args, message) -> None:
    (tmp_path / "taken").write_text("a file")
    output = {
        "folder": tmp_path,
        "under-a-file": tmp_path / "taken" / "m.onnx",
        "size": tmp_path / "m.onnx",
    }[where]
    res = runner.invoke(app, ["export", "-w", str(weights), "-o", str(output), *args])
    assert res.exit_code == 2, f"{res.output}\n{res.exception!r}"
    assert res.output.startswith("error: ") and message in res.output, res.output


def test_export_api_names_an_unwritable_place(tmp_path, make_tiny_conv) -> None:
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from resyn.restore.export import ExportError, export_onnx

    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ExportError, match=r"cannot write .*taken/m\.onnx"):
        export_onnx(make_tiny_conv(2), tmp_path / "taken" / "m.onnx", size=16, check=False)
    with pytest.raises(ExportError, match="positive number of pixels, not 0"):
        export_onnx(make_tiny_conv(2), tmp_path / "m.onnx", size=0)


def test_one_file_given_relative_and_absolute_is_one_input(tmp_path, photos, weights, monkeypatch):
    # Issue 15, item 11: the same file named twice was refused as two inputs with one output.
    monkeypatch.chdir(photos)
    out = tmp_path / "out"
    args = ["restore", "a.png", str(photos / "a.png"), "../in/a.png", "-o", str(out)]
    res = runner.invoke(app, [*args, "-w", str(weights)])
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    assert (out / "a_sr-x2.png").exists() and "would both be written" not in res.output
