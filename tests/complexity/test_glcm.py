"""GLCM matrices and features against scikit-image (the reference definition)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.feature import graycomatrix, graycoprops

from resyn.complexity import glcm, glcm_features, quantize, to_gray8

METHODS = ("calchist", "bincount")


def _reference(gray, levels=256, distances=(1,), angles=(0, 45, 90, 135)):
    p = graycomatrix(
        quantize(gray, levels),
        distances,
        np.deg2rad(angles),
        levels=levels,
        symmetric=True,
        normed=True,
    )
    return p, {
        "ent": float(graycoprops(p, "entropy").mean() / np.log(2)),  # skimage: natural log
        "ene": float(graycoprops(p, "energy").mean()),
        "diss": float(graycoprops(p, "dissimilarity").mean()),
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("shape", "levels", "distances", "angles"),
    [
        ((37, 53), 256, (1,), (0, 45, 90, 135)),
        ((64, 48), 16, (1, 2, 3), (0, 30, 60, 90, 120, 150, 180, 225)),
        ((20, 31), 7, (5,), (0, 45)),
        ((2, 2), 256, (1,), (0, 45, 90, 135)),
        ((1, 9), 256, (1,), (0, 45, 90, 135)),  # vertical offsets have no pair: zero matrices
    ],
)
def test_matrices_and_features_match_skimage_on_random_images(
    rng, method, shape, levels, distances, angles
):
    gray = rng.integers(0, 256, shape, dtype=np.uint8)
    ref_p, ref_f = _reference(gray, levels, distances, angles)
    p = glcm(gray, levels, distances, angles, method=method)
    assert p.shape == ref_p.shape
    np.testing.assert_array_equal(p, ref_p)
    f = glcm_features(gray, levels, distances, angles, method=method)
    for key in ("ent", "ene", "diss"):
        assert f[key] == pytest.approx(ref_f[key], abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["camera", "coins", "astronaut", "coffee"])
def test_features_match_skimage_on_real_photos(method, name):
    gray = to_gray8(getattr(data, name)())
    _, ref = _reference(gray)
    f = glcm_features(gray, method=method)
    for key in ("ent", "ene", "diss"):
        assert abs(f[key] - ref[key]) < 1e-9, key


def test_known_values_on_a_tiny_image():
    # horizontal pairs of [[0, 255]] -> levels [[0, 1]]: C = [[0,1],[0,0]] -> symmetric P = [[0,.5],[.5,0]]
    f = glcm_features(np.array([[0, 255]], np.uint8), levels=2, angles=(0,))
    assert f == pytest.approx({"ent": 1.0, "ene": np.sqrt(0.5), "diss": 1.0})
    flat = glcm_features(np.full((5, 5), 9, np.uint8))
    assert flat == pytest.approx({"ent": 0.0, "ene": 1.0, "diss": 0.0})


def test_quantize_is_floor_of_scaled_level():
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for levels in (2, 8, 100, 255):
        expected = np.floor(g.astype(np.float64) * levels / 256).astype(np.uint8)
        np.testing.assert_array_equal(quantize(g, levels), expected)
    assert quantize(g, 256) is g


def test_bad_arguments_are_refused():
    g = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="2-D uint8"):
        glcm_features(g.astype(np.uint16))
    with pytest.raises(ValueError, match="2-D uint8"):
        glcm_features(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="levels"):
        glcm_features(g, levels=300)
    with pytest.raises(ValueError, match="distances"):
        glcm_features(g, distances=(0,))
    with pytest.raises(ValueError, match="unknown GLCM method"):
        glcm_features(g, method="magic")
