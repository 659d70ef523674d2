"""Gaussian noise and JPEG follow the SwinIR / MambaIR test scripts exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from resyn.degrade import add_gaussian_noise, jpeg, rgb_to_gray_uint8, rgb_to_y_uint8


@pytest.fixture
def rgb(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:40, 0:48]
    base = np.stack([yy * 5, xx * 4, (yy + xx) * 3], axis=2) % 256
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_noise_mambair_convention_is_seeded_global_draw_over_rgb(rgb: np.ndarray) -> None:
    got = add_gaussian_noise(rgb, 25, seed=0)
    gt = rgb.astype(np.float32) / 255.0
    np.random.seed(0)  # noqa: NPY002  (what the test scripts do)
    lq = gt.copy()
    lq += np.random.normal(0, 25 / 255.0, lq.shape)  # noqa: NPY002
    assert got.dtype == np.float32 and got.shape == rgb.shape
    np.testing.assert_array_equal(got, lq)


def test_noise_swinir_convention_draws_over_bgr(rgb: np.ndarray) -> None:
    got = add_gaussian_noise(rgb, 15, seed=0, convention="swinir")
    bgr = rgb[:, :, ::-1].astype(np.float32) / 255.0
    np.random.seed(0)  # noqa: NPY002
    lq_bgr = bgr + np.random.normal(0, 15 / 255.0, bgr.shape)  # noqa: NPY002
    np.testing.assert_array_equal(got, lq_bgr[:, :, ::-1].astype(np.float32))
    assert not np.array_equal(got, add_gaussian_noise(rgb, 15, seed=0))


def test_noise_gray_statistics_and_seed(rng: np.random.Generator) -> None:
    gray = np.full((64, 64), 128, np.uint8)
    out = add_gaussian_noise(gray, 50, seed=3)
    assert out.shape == (64, 64, 1)
    noise = out[:, :, 0].astype(np.float64) - 128 / 255
    assert abs(noise.std() * 255 - 50) < 2.5
    assert abs(noise.mean() * 255) < 2.0
    np.testing.assert_array_equal(out, add_gaussian_noise(gray[:, :, None], 50, seed=3))
    assert not np.array_equal(out, add_gaussian_noise(gray, 50, seed=4))
    assert (add_gaussian_noise(np.zeros((8, 8), np.uint8), 50) < 0).any()  # not clipped


@pytest.mark.parametrize(
    ("img", "sigma", "match"),
    [
        (np.zeros((4, 4), np.float32), 15, "uint8"),
        (np.zeros((4, 4, 4), np.uint8), 15, "shape"),
        (np.zeros((4, 4), np.uint8), 0, "sigma"),
        (np.zeros((4, 4), np.uint8), 256, "sigma"),
        (np.zeros((4, 4), np.uint8), float("nan"), "sigma"),
    ],
)
def test_noise_bad_input(img: np.ndarray, sigma: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        add_gaussian_noise(img, sigma)


def test_jpeg_color_matches_opencv_bgr_pipeline(rgb: np.ndarray) -> None:
    got = jpeg(rgb, 20)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 20]
    )
    assert ok
    want = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    np.testing.assert_array_equal(got, want)
    # Encoding RGB as if it were BGR would subsample the wrong chroma planes.
    ok, buf2 = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert not np.array_equal(got, cv2.imdecode(buf2, cv2.IMREAD_COLOR))


def test_jpeg_quality_orders_error(rgb: np.ndarray) -> None:
    def mse(q: int) -> float:
        return float(np.mean((jpeg(rgb, q).astype(float) - rgb) ** 2))

    assert mse(10) > mse(40) > mse(95)


def test_jpeg_gray_keeps_layout(rgb: np.ndarray) -> None:
    y = rgb_to_y_uint8(rgb)
    out = jpeg(y, 10)
    assert out.shape == y.shape and out.dtype == np.uint8
    _ok, buf = cv2.imencode(".jpg", y, [cv2.IMWRITE_JPEG_QUALITY, 10])
    np.testing.assert_array_equal(out, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    assert jpeg(y[:, :, None], 10).shape == (*y.shape, 1)


@pytest.mark.parametrize("quality", [0, 101, 10.0, True])
def test_jpeg_bad_quality(rgb: np.ndarray, quality) -> None:
    with pytest.raises(ValueError, match="quality"):
        jpeg(rgb, quality)


def test_jpeg_bad_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        jpeg(np.zeros((8, 8), np.float32), 10)
    with pytest.raises(ValueError, match="shape"):
        jpeg(np.zeros((8, 8, 2), np.uint8), 10)


def test_y_and_gray_conversions() -> None:
    img = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [10, 200, 30]]], np.uint8)
    y = rgb_to_y_uint8(img)
    expect = np.round(
        16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255
    )
    np.testing.assert_array_equal(y, expect)
    assert y[0, 0] == 235 and y[0, 1] == 16
    g = rgb_to_gray_uint8(img)
    assert g[0, 0] == 255 and g[0, 1] == 0 and abs(int(g[0, 2]) - 76) <= 1
