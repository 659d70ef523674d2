"""The bundled data under data/ is complete, within budget, licensed and consistent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resyn.degrade import imresize
from resyn.io import read_image

DATA = Path(__file__).resolve().parents[2] / "data"
TEST = DATA / "test" / "ReSynDemo"
UNSEEN = DATA / "test" / "ReSynUnseen"  # used for nothing but reporting (no checkpoint choice)

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
    assert len(list((UNSEEN / "HR").glob("*.png"))) == 6
    assert len(list((DATA / "examples").glob("*.png"))) >= 2


def test_every_file_is_licensed() -> None:
    text = (DATA / "LICENSES.md").read_text()
    for p in _images():
        assert f"`{p.relative_to(DATA).as_posix()}`" in text, p


def _sources(text: str, prefix: str) -> set[str]:
    return {line.split("|")[2] for line in text.splitlines() if line.startswith(f"| `{prefix}")}


def test_test_sets_are_held_out() -> None:
    text = (DATA / "LICENSES.md").read_text()
    train = _sources(text, "train/")
    demo, unseen = _sources(text, "test/ReSynDemo/"), _sources(text, "test/ReSynUnseen/")
    assert demo and unseen
    assert not train & demo and not train & unseen
    assert not demo & unseen, "ReSynUnseen must not share a source photo with ReSynDemo"


@pytest.mark.parametrize("test_set", [TEST, UNSEEN], ids=lambda p: p.name)
def test_lr_is_matlab_bicubic_of_hr(test_set: Path) -> None:
    for hr_path in sorted((test_set / "HR").glob("*.png")):
        hr = read_image(hr_path)
        assert hr.shape[0] % 12 == 0 and hr.shape[1] % 12 == 0
        for s in (2, 3, 4):
            lr = read_image(test_set / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png")
            np.testing.assert_array_equal(lr, imresize(hr, 1 / s))
