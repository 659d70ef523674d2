"""The default center, calibration files and where they live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.complexity import DEFAULT_CENTER, complexity
from resyn.complexity.center import (
    DEFAULT_CENTER_REFERENCE,
    active_center,
    center_file,
    load_center,
    save_center,
)
from resyn.complexity.score import raw_features

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


def test_default_center_is_the_median_of_the_skimage_photographs():
    raws = [raw_features(SKIMAGE_DATA / n)["raw"] for n in DEFAULT_CENTER_REFERENCE]
    assert DEFAULT_CENTER == pytest.approx(float(np.median(raws)), abs=1e-4)


def test_center_file_location_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("RESYN_COMPLEXITY_CENTER_FILE", raising=False)
    monkeypatch.delenv("RESYN_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert center_file() == tmp_path / "xdg" / "resyn" / "complexity_center.json"
    monkeypatch.setenv("RESYN_HOME", str(tmp_path / "home"))
    assert center_file() == tmp_path / "home" / "complexity_center.json"
    monkeypatch.setenv("RESYN_COMPLEXITY_CENTER_FILE", str(tmp_path / "x.json"))
    assert center_file() == tmp_path / "x.json"


def test_saved_center_becomes_active_and_broken_files_are_named(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    assert active_center() == DEFAULT_CENTER
    path = save_center(3.25, n_images=2, inputs=["a"])
    assert path == center_file()
    assert json.loads(path.read_text())["center"] == 3.25
    assert active_center() == 3.25
    r = complexity(img)
    assert r.score == pytest.approx(r.raw - 3.25)
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))  # new mtime: the cache must not hide the change
    with pytest.raises(ValueError, match="not a valid complexity center file"):
        active_center()
    with pytest.raises(ValueError, match="not found"):
        load_center(tmp_path / "missing.json")


def test_calibrate_command_sets_the_median_to_zero(tmp_path):
    refs = [SKIMAGE_DATA / n for n in ("camera.png", "coins.png", "moon.png")]
    out = tmp_path / "center.json"
    result = CliRunner().invoke(
        app, ["complexity", "calibrate", *map(str, refs), "-o", str(out), "-j", "1"]
    )
    assert result.exit_code == 0, result.output
    expected = float(np.median([raw_features(p)["raw"] for p in refs]))
    assert load_center(out) == pytest.approx(expected, abs=1e-9)
    shown = CliRunner().invoke(app, ["complexity", "center", "--center-file", str(out)])
    assert f"{expected:.4f}" in shown.output
    scores = [complexity(p, center=load_center(out)).score for p in refs]
    assert sorted(scores)[1] == pytest.approx(0.0, abs=1e-9)
