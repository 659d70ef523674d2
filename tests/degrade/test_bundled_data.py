"""The bundled data under data/ is complete, within budget, licensed and consistent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resyn.degrade import imresize
from resyn.io import read_image

DATA = Path(__file__).resolve().parents[2] / "data"
TEST = DATA / "test" / "ReSynDemo"

pytestmark = pytest.mark.skipif(not (DATA / "LICENSES.md").exists(), reason="no bundled data")


def _images() -> list[Path]:
    return sorted(p for p in DATA.rglob("*.png"))


def test_budget_and_size_limits() -> None:
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024
    from PIL import Image

    for p in _images():
        with Image.open(p) as im:
            assert max(im.size) <= 1024, p


def test_pools_are_populated() -> None:
    assert len(list((DATA / "train" / "real").glob("*.png"))) >= 10
    assert len(list((DATA / "train" / "synthetic").glob("*.png"))) >= 5
    assert 6 <= len(list((TEST / "HR").glob("*.png"))) <= 10
    assert len(list((DATA / "examples").glob("*.png"))) >= 2


def test_every_file_is_licensed() -> None:
    text = (DATA / "LICENSES.md").read_text()
    for p in _images():
        assert f"`{p.relative_to(DATA).as_posix()}`" in text, p


def test_test_set_is_held_out() -> None:
    text = (DATA / "LICENSES.md").read_text()
    train_sources = {
        line.split("|")[2] for line in text.splitlines() if line.startswith("| `train/")
    }
    for line in text.splitlines():
        if line.startswith("| `test/"):
            assert line.split("|")[2] not in train_sources, line


def test_lr_is_matlab_bicubic_of_hr() -> None:
    for hr_path in sorted((TEST / "HR").glob("*.png")):
        hr = read_image(hr_path)
        assert hr.shape[0] % 12 == 0 and hr.shape[1] % 12 == 0
        for s in (2, 3, 4):
            lr = read_image(TEST / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png")
            np.testing.assert_array_equal(lr, imresize(hr, 1 / s))
