"""What the CLI prints: never wrapped outside a terminal, file names never read as rich markup.

Issue 15: messages went through rich at 80 columns in pipes and tests, so a test's outcome
depended on the length of its temporary path; and a file named ``d[/red].png`` crashed the
command that printed it (``MarkupError``) while ``[bold]x.png`` printed as ``x.png``.
"""

from __future__ import annotations

import io
import os
import pty

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from resyn.cli._common import CliConsole
from resyn.cli.main import app
from resyn.io import write_image

runner = CliRunner()


def _line_with(output: str, text: str) -> str:
    lines = [line for line in output.splitlines() if text in line]
    assert lines, f"no line contains {text!r} in:\n{output}"
    return lines[0]


def test_a_message_with_a_long_path_stays_on_one_line(tmp_path) -> None:
    deep = tmp_path / ("long-folder-name-" * 12) / "weights"
    deep.mkdir(parents=True)
    (deep / "a.safetensors").write_bytes(b"")
    src = tmp_path / "x.png"
    write_image(src, np.zeros((20, 20, 3), np.uint8))
    res = runner.invoke(app, ["restore", str(src), "-o", str(tmp_path / "o"), "-w", str(deep)])
    assert res.exit_code == 2, res.output
    line = _line_with(res.output, "error:")
    assert f"weights {deep} is a folder, not a weights file (it holds a.safetensors)" in line


def test_models_rows_are_not_wrapped_in_a_pipe() -> None:
    res = runner.invoke(app, ["models", "rwkvir-light", "--no-flops"])
    assert res.exit_code == 0, res.output
    from resyn.models import get_preset

    preset = get_preset("rwkvir-light")
    rows = [line for line in res.output.splitlines() if "rwkvir-light" in line]
    assert len(rows) == len(preset.scales), res.output
    assert all(preset.description in row for row in rows), res.output


def test_a_terminal_keeps_its_width_a_pipe_is_never_wrapped(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    master, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        assert CliConsole(file=tty).width == 80
    os.close(master)
    monkeypatch.setenv("FORCE_COLOR", "1")  # colors in a pipe, but still no wrapping
    assert CliConsole(file=io.StringIO()).width > 10_000


def test_file_names_are_printed_literally_by_restore(tmp_path, weights, rng) -> None:
    src = tmp_path / "in"
    (src / "d[").mkdir(parents=True)
    write_image(src / "d[" / "red].png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    (src / "[bold]x.png").write_bytes(b"not an image")
    (src / "e:smile:.png").write_bytes(b"not an image either")
    out = tmp_path / "o[" / "red]"
    res = runner.invoke(app, ["restore", str(src), "-o", str(out), "-w", str(weights)])
    assert res.exit_code == 1, f"{res.output}\n{res.exception!r}"
    assert (out / "red]_sr-x2.png").exists()
    assert f"wrote 1 image(s) to {out}" in res.output
    assert str(src / "[bold]x.png") in _line_with(res.output, "failed")
    assert "[red]" not in res.output
    assert str(src / "e:smile:.png") in res.output


def test_fail_prints_a_path_with_markup_literally(tmp_path) -> None:
    missing = tmp_path / "d[" / "red].png"
    res = runner.invoke(app, ["restore", str(missing), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, f"{res.output}\n{res.exception!r}"
    assert "MarkupError" not in res.output
    assert str(missing) in _line_with(res.output, "error:")


def test_complexity_calibrate_prints_a_path_with_markup_literally(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESYN_COMPLEXITY_CENTER_FILE", str(tmp_path / "no-center.json"))
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    write_image(good, rng.integers(0, 256, (64, 64), dtype=np.uint8))
    (tmp_path / "d[").mkdir()
    bad = tmp_path / "d[" / "red].png"
    bad.write_bytes(b"not an image")
    res = runner.invoke(
        app,
        ["complexity", "calibrate", str(good), str(bad), "-o", str(tmp_path / "c.json"), "-j", "1"],
    )
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    assert f"warning: skipped {bad}" in res.output


_FRAGMENTS = ["a", "[bold]", "[/red]", "[", "]", ":smile:", "\\", " ", "*", "?", "%s", "{0}", "é"]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=25, deadline=None)
@given(name=st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=6).map("".join))
def test_fuzz_any_file_name_is_an_error_line_never_a_traceback(fuzz_dir, name) -> None:
    """A missing input, and an image that is not one written to an output folder, all named
    ``name``: an ``error:`` or ``failed`` line with the name as it is, never a traceback."""
    missing = fuzz_dir / f"missing-{name}.png"
    res = runner.invoke(app, ["restore", str(missing), "-o", str(fuzz_dir / "out")])
    assert res.exit_code == 2 and res.output.startswith("error: "), res.output
    bad = fuzz_dir / f"{name}.png"
    bad.parent.mkdir(parents=True, exist_ok=True)  # "[/red]" names a file in folder "["
    bad.write_bytes(b"not an image")
    out = fuzz_dir / f"out-{name}"
    res = runner.invoke(app, ["restore", str(bad), "-o", str(out), "--task", "sr-x2"])
    assert res.exit_code == 1, f"{res.output}\n{res.exception!r}"
    assert f"failed {bad}: " in res.output and f"wrote 0 image(s) to {out}" in res.output
    assert "Traceback" not in res.output
