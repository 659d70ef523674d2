"""Luma conversion, the complexity score and BPP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from skimage import data

from resyn.complexity import (
    BPP_PNG_COMPRESSION,
    DEFAULT_CENTER,
    ComplexityResult,
    bpp,
    complexity,
    glcm_features,
    to_gray8,
)
from resyn.io import encode_png, write_image


def _exact_luma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.int32)
    return ((299 * x[..., 0] + 587 * x[..., 1] + 114 * x[..., 2] + 500) // 1000).astype(np.uint8)


def test_luma_is_bt601_rounded_half_up(rng):
    rgb = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_gray8(rgb), _exact_luma(rgb))
    # exact ties (x.5) round up: (10, 0, 0) -> 2.99, (0, 0, 25) -> 2.85, (50, 0, 0) -> 14.95
    ties = np.array([[[10, 0, 0], [0, 0, 25], [50, 0, 0], [255, 255, 255]]], np.uint8)
    assert to_gray8(ties).tolist() == [[3, 3, 15, 255]]
    # float formula agrees wherever it is not a tie
    ref = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(to_gray8(rgb) - ref).max() <= 0.5 + 1e-9


def test_luma_is_exact_for_every_rgb_triple():
    g, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    gb = np.stack([g, b], axis=-1).astype(np.uint8)
    for r in range(0, 256, 32):  # 32 planes of 256x256 per call: all 2**24 triples in 8 calls
        reds = np.arange(r, r + 32, dtype=np.uint8)[:, None, None, None]
        rgb = np.concatenate(
            [np.broadcast_to(reds, (32, 256, 256, 1)), np.broadcast_to(gb, (32, 256, 256, 2))],
            axis=-1,
        ).reshape(32 * 256, 256, 3)
        np.testing.assert_array_equal(to_gray8(rgb), _exact_luma(rgb))


def test_layouts_reduce_to_the_same_luma(rng):
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (20, 30, 1), dtype=np.uint8)], axis=2)
    np.testing.assert_array_equal(to_gray8(rgba), to_gray8(rgb))
    gray = rgb[..., 0]
    np.testing.assert_array_equal(to_gray8(gray), gray)
    np.testing.assert_array_equal(to_gray8(np.stack([gray, gray], 2)), gray)
    rgb16 = rgb.astype(np.uint16) * 257  # 16-bit with the same content
    np.testing.assert_array_equal(to_gray8(rgb16), to_gray8(rgb))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_gray8(rgb.astype(np.float32))


def test_complexity_is_ent_minus_ene_plus_diss_minus_center():
    img = data.astronaut()
    f = glcm_features(to_gray8(img))
    r = complexity(img)
    raw = f["ent"] - f["ene"] + f["diss"]
    assert (r.ent, r.ene, r.diss) == (f["ent"], f["ene"], f["diss"])
    assert r.raw == pytest.approx(raw, abs=1e-12)
    assert r.score == pytest.approx(raw - DEFAULT_CENTER, abs=1e-12)
    assert complexity(img, center=5.0).score == pytest.approx(raw - 5.0, abs=1e-12)
    assert isinstance(r, ComplexityResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.score = 0.0  # type: ignore[misc]


def test_texture_scores_higher_than_a_smooth_image(rng):
    smooth = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    assert complexity(noise).score > complexity(smooth).score + 10


def test_path_and_array_agree(tmp_path):
    img = data.coffee()
    write_image(tmp_path / "c.png", img)
    assert complexity(tmp_path / "c.png") == complexity(img)
    assert complexity(str(tmp_path / "c.png")).raw == complexity(img).raw


def test_too_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match="1x1 pixels"):
        complexity(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2x2"):
        complexity(np.zeros((1, 40), np.uint8))
    assert np.isfinite(complexity(np.zeros((2, 2), np.uint8)).raw)


def test_bpp_definition_and_ordering(rng):
    img = data.astronaut()
    expected = 8 * len(encode_png(img, compression=BPP_PNG_COMPRESSION)) / (512 * 512)
    assert bpp(img) == pytest.approx(expected, rel=0, abs=0)
    assert bpp(np.full((64, 64, 3), 7, np.uint8)) < 0.5
    assert bpp(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) > 20  # ~24 for noise
    gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    assert 7.5 < bpp(gray) < 9.5  # one channel stays one channel
    rgba = np.concatenate([img, np.full((512, 512, 1), 3, np.uint8)], axis=2)
    assert bpp(rgba) == bpp(img)  # alpha dropped
    assert bpp(img.astype(np.uint16) * 257) == bpp(img)  # 16-bit scaled to 8
