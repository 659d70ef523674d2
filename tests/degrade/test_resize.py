"""imresize against a slow per-pixel float64 transcription of MATLAB's definition, plus facts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resyn.degrade import imresize, mod_crop


def _kernel(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_weights(n_in: int, scale: float) -> list[list[tuple[int, float]]]:
    """For each output pixel: (0-based input index, weight) pairs, straight from the definition."""
    n_out = math.ceil(n_in * scale - 1e-9)
    width = 4.0 / scale if scale < 1 else 4.0
    table = []
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        pairs = []
        for k in range(math.ceil(width) + 2):
            p = left + k
            d = u - p
            wt = scale * _kernel(scale * d) if scale < 1 else _kernel(d)
            # symmetric boundary: reflect p (1-based) into 1..n_in
            q = p
            while q < 1 or q > n_in:
                q = 1 - q if q < 1 else 2 * n_in + 1 - q
            pairs.append((q - 1, wt))
        total = sum(wt for _, wt in pairs)
        table.append([(q, wt / total) for q, wt in pairs])
    return table


def _ref_pass(img: np.ndarray, scale: float, axis: int, as_uint8: bool) -> np.ndarray:
    src = np.moveaxis(img.astype(np.float64), axis, 0)
    table = _ref_weights(src.shape[0], scale)
    out = np.zeros((len(table), *src.shape[1:]))
    for o, pairs in enumerate(table):
        for j in np.ndindex(*src.shape[1:]):
            out[(o, *j)] = sum(wt * src[(q, *j)] for q, wt in pairs)
    out = np.moveaxis(out, 0, axis)
    if as_uint8:  # MATLAB returns uint8 from each pass: saturate, round half away from zero
        out = np.floor(np.clip(out, 0, 255) + 0.5)
    return out


def ref_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    as_uint8 = img.dtype == np.uint8
    out = _ref_pass(_ref_pass(img, scale, 0, as_uint8), scale, 1, as_uint8)
    return out.astype(np.uint8) if as_uint8 else out


def _smooth_image(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 90 * np.sin(yy / 3.1)[..., None] * np.cos(xx[..., None] / 2.3 + np.arange(c))
    return np.clip(base + rng.normal(0, 25, (h, w, c)), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.5])
def test_float_matches_reference(rng: np.random.Generator, scale: float) -> None:
    img = rng.random((13, 11, 2))
    got = imresize(img, scale)
    want = ref_imresize(img, scale)
    assert got.shape == want.shape
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3])
def test_uint8_matches_reference(rng: np.random.Generator, scale: float) -> None:
    img = _smooth_image(rng, 24, 19, 3)
    got = imresize(img, scale)
    want = ref_imresize(img, scale)
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1
    assert diff.mean() <= 0.01


def test_uint8_rounds_each_pass_like_matlab(rng: np.random.Generator) -> None:
    """Rounding the intermediate image changes some pixels compared to one final rounding."""
    img = _smooth_image(rng, 48, 40, 3)
    got = imresize(img, 1 / 3)
    float_then_round = np.floor(np.clip(imresize(img.astype(np.float64), 1 / 3), 0, 255) + 0.5)
    diff = np.abs(got.astype(int) - float_then_round.astype(int))
    assert diff.max() <= 1
    assert 0 < diff.mean() < 0.5


def test_gray_and_float32_dtypes(rng: np.random.Generator) -> None:
    gray = _smooth_image(rng, 16, 12, 1)[:, :, 0]
    out = imresize(gray, 1 / 4)
    assert out.shape == (4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, ref_imresize(gray[:, :, None], 1 / 4)[:, :, 0])
    f32 = rng.random((10, 8, 3)).astype(np.float32)
    out32 = imresize(f32, 2)
    assert out32.dtype == np.float32 and out32.shape == (20, 16, 3)


def test_output_size_is_ceil() -> None:
    assert imresize(np.zeros((10, 7), np.uint8), 1 / 3).shape == (4, 3)
    assert imresize(np.zeros((9, 12), np.uint8), 1 / 3).shape == (3, 4)  # no float ceil noise
    assert imresize(np.zeros((5, 3, 3), np.uint8), 3).shape == (15, 9, 3)


def test_constant_stays_constant() -> None:
    img = np.full((17, 23, 3), 77, np.uint8)
    for s in (1 / 2, 1 / 3, 1 / 4, 2, 3, 4):
        np.testing.assert_array_equal(imresize(img, s), 77)
    f = np.full((9, 9), 0.3)
    np.testing.assert_allclose(imresize(f, 0.37), 0.3, atol=1e-14)


def test_checker_halves_to_mid_gray_in_the_interior() -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    checker = ((yy + xx) % 2 * 255).astype(np.uint8)
    f = imresize(checker.astype(np.float64), 1 / 2)
    np.testing.assert_allclose(f[3:-3, 3:-3], 127.5, atol=1e-9)
    u8 = imresize(checker, 1 / 2)
    np.testing.assert_array_equal(u8[3:-3, 3:-3], 128)  # 127.5 rounds half up


def test_upscale_reproduces_linear_ramp_in_interior() -> None:
    ramp = np.tile(np.arange(12, dtype=np.float64), (12, 1))  # value = column index (0-based)
    up = imresize(ramp, 2)
    x = np.arange(1, 25)
    u = x / 2 + 0.5 * (1 - 1 / 2) - 1  # 0-based input coordinate of each output column
    np.testing.assert_allclose(up[5, 4:-4], u[4:-4], atol=1e-12)


def test_scale_one_is_identity(rng: np.random.Generator) -> None:
    img = _smooth_image(rng, 9, 7, 3)
    np.testing.assert_array_equal(imresize(img, 1), img)


@pytest.mark.parametrize(
    ("img", "scale", "match"),
    [
        (np.zeros((4, 4), np.uint16), 0.5, "dtype"),
        (np.zeros((4, 4), np.int32), 0.5, "dtype"),
        (np.zeros((4,), np.uint8), 0.5, "dims"),
        (np.zeros((2, 4, 4, 3), np.uint8), 0.5, "dims"),
        (np.zeros((0, 4), np.uint8), 0.5, "empty"),
        (np.zeros((4, 4), np.uint8), 0, "positive"),
        (np.zeros((4, 4), np.uint8), -2, "positive"),
        (np.zeros((4, 4), np.uint8), float("nan"), "positive"),
        (np.zeros((4, 4), np.uint8), "x", "positive"),
        ([[1, 2]], 0.5, "numpy"),
    ],
)
def test_bad_input(img, scale, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        imresize(img, scale)


def test_mod_crop() -> None:
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    out = mod_crop(img, 4)
    assert out.shape == (4, 8, 3)
    np.testing.assert_array_equal(out, img[:4, :8])
    assert mod_crop(img[:, :, 0], 5).shape == (5, 10)
    assert mod_crop(img, 1).shape == img.shape
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            mod_crop(img, bad)
    with pytest.raises(ValueError, match="smaller"):
        mod_crop(img, 8)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    scale=st.sampled_from([1 / 4, 1 / 3, 1 / 2, 0.8, 1.3, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_float_matches_reference_on_tiny_shapes(h: int, w: int, scale: float, seed: int) -> None:
    """Tiny images exercise the mirrored boundary wrapping several times."""
    img = np.random.default_rng(seed).random((h, w))
    np.testing.assert_allclose(imresize(img, scale), ref_imresize(img, scale), atol=1e-12)


def test_uint8_real_photo_crop_matches_reference() -> None:
    import skimage.data

    crop = skimage.data.coffee()[150:198, 300:345]  # a real photo region the other tests never use
    for scale in (1 / 2, 1 / 3, 1 / 4):
        got = imresize(crop, scale).astype(int)
        want = ref_imresize(crop, scale).astype(int)
        diff = np.abs(got - want)
        assert diff.max() <= 1 and diff.mean() <= 0.01
