"""Blind tasks: one model for a range of levels, each sample's level drawn from its seed."""

from __future__ import annotations

import numpy as np
import pytest

from resyn.degrade import BLIND_QUALITY, BLIND_SIGMA, add_gaussian_noise, jpeg, parse_task


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "kind", "gray"),
    [("denoise", "denoise", False), ("JPEG", "jpeg", False), ("denoise-gray", "denoise", True)],
)
def test_parse_blind(name: str, kind: str, gray: bool) -> None:
    task = parse_task(name)
    assert (task.kind, task.gray, task.blind, task.sigma, task.quality) == (
        kind,
        gray,
        True,
        None,
        None,
    )
    assert task.name == name.lower() and task.channels == (1 if gray else 3)
    assert not parse_task("denoise-25").blind


def test_levels_cover_the_ranges_uniformly() -> None:
    dn, jp = parse_task("denoise"), parse_task("jpeg")
    sigmas = np.array([dn.level(s) for s in range(4000)])
    qualities = np.array([jp.level(s) for s in range(4000)])
    assert BLIND_SIGMA[0] <= sigmas.min() < 1 and 49 < sigmas.max() <= BLIND_SIGMA[1]
    assert abs(sigmas.mean() - 25) < 1.0  # uniform: mean 25, sd 50/sqrt(12)/sqrt(4000)=0.23
    assert set(qualities.tolist()) == set(range(BLIND_QUALITY[0], BLIND_QUALITY[1] + 1))
    assert qualities.dtype.kind == "i"
    # fixed levels report their own level whatever the seed
    assert parse_task("denoise-15").level(7) == 15 and parse_task("jpeg-q30").level(7) == 30
    with pytest.raises(ValueError, match="seed"):
        dn.level(-1)
    with pytest.raises(ValueError, match="no noise or JPEG level"):
        parse_task("sr-x2").level(0)


def test_degrade_is_the_fixed_level_drawn_from_the_seed(hr: np.ndarray) -> None:
    dn, jp = parse_task("denoise"), parse_task("jpeg")
    for seed in (0, 1, 12345):
        sigma = dn.level(seed)
        want = add_gaussian_noise(hr, sigma, seed) if sigma > 0 else hr / np.float32(255)
        np.testing.assert_array_equal(dn.degrade(hr, seed), want)
        np.testing.assert_array_equal(dn.degrade(hr, seed), dn.degrade(hr, seed))
        q = jp.level(seed)
        np.testing.assert_array_equal(jp.degrade(hr, seed), jpeg(hr, q) / np.float32(255))
    # different seeds draw different levels
    assert len({round(dn.level(s), 6) for s in range(10)}) == 10


def test_serves() -> None:
    dn, jp = parse_task("denoise"), parse_task("jpeg")
    assert all(dn.serves(parse_task(f"denoise-{s}")) for s in (15, 25, 50))
    assert dn.serves(parse_task("denoise-gray-25"))  # color blind: gray replicated
    assert jp.serves(parse_task("jpeg-q10")) and jp.serves(parse_task("jpeg-gray-q40"))
    assert not dn.serves(parse_task("jpeg-q10")) and not jp.serves(parse_task("denoise-25"))
    assert not parse_task("denoise-gray").serves(parse_task("denoise-25"))
    assert not parse_task("denoise-25").serves(parse_task("denoise-50"))
    assert not parse_task("denoise-25").serves(dn)
