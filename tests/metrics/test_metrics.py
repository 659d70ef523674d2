"""PSNR / SSIM / Y against slow, obvious transcriptions of the definitions and scikit-image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from resyn.metrics import gaussian_window_1d, psnr, rgb_to_y, ssim


def ref_y(img: np.ndarray) -> np.ndarray:
    out = np.zeros(img.shape[:2])
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            r, g, b = (float(v) / 255 for v in img[i, j])
            out[i, j] = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    return out


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    total, n = 0.0, 0
    for v, w in zip(a.ravel().tolist(), b.ravel().tolist(), strict=True):
        total += (float(v) - float(w)) ** 2
        n += 1
    return 10 * math.log10(255**2 / (total / n))


def ref_ssim_2d(x: np.ndarray, y: np.ndarray) -> float:
    """Per-pixel loop over the 11x11 window at every fully-inside position."""
    g = [math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)]
    s = sum(g)
    win = [[gi * gj / s / s for gj in g] for gi in g]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            mx = my = sxx = syy = sxy = 0.0
            for di in range(11):
                for dj in range(11):
                    w = win[di][dj]
                    p, q = float(x[i + di, j + dj]), float(y[i + di, j + dj])
                    mx += w * p
                    my += w * q
                    sxx += w * p * p
                    syy += w * q * q
                    sxy += w * p * q
            sxx, syy, sxy = sxx - mx * mx, syy - my * my, sxy - mx * my
            vals.append(
                ((2 * mx * my + c1) * (2 * sxy + c2))
                / ((mx * mx + my * my + c1) * (sxx + syy + c2))
            )
    return sum(vals) / len(vals)


@pytest.fixture
def pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:23, 0:26]
    a = np.stack([yy * 9, xx * 7, (yy * xx) % 255], axis=2).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).round().astype(np.uint8)
    return a, b


def test_rgb_to_y(pair) -> None:
    a, _ = pair
    np.testing.assert_allclose(rgb_to_y(a), ref_y(a), rtol=0, atol=1e-10)
    assert rgb_to_y(np.full((2, 2, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)
    gray = a[:, :, 0]
    np.testing.assert_array_equal(rgb_to_y(gray), gray.astype(np.float64))
    t = torch.from_numpy(a).permute(2, 0, 1).double() / 255
    np.testing.assert_allclose(rgb_to_y(t)[0].numpy() * 255, ref_y(a), atol=1e-10)


@pytest.mark.parametrize(("crop", "y"), [(0, False), (3, False), (0, True), (4, True)])
def test_psnr_matches_reference_and_skimage(pair, crop: int, y: bool) -> None:
    a, b = pair
    got = psnr(a, b, crop_border=crop, y_channel=y)
    ca = a[crop : a.shape[0] - crop, crop : a.shape[1] - crop]
    cb = b[crop : b.shape[0] - crop, crop : b.shape[1] - crop]
    ra, rb = (ref_y(ca), ref_y(cb)) if y else (ca, cb)
    assert got == pytest.approx(ref_psnr(ra, rb), abs=1e-6)
    assert got == pytest.approx(peak_signal_noise_ratio(ra, rb, data_range=255), abs=1e-6)


def test_psnr_identical_is_inf(pair) -> None:
    a, _ = pair
    assert psnr(a, a) == math.inf
    assert psnr(a, a.copy(), crop_border=2, y_channel=True) == math.inf


@pytest.mark.parametrize(("crop", "y"), [(0, False), (2, True)])
def test_ssim_matches_slow_reference(pair, crop: int, y: bool) -> None:
    a, b = pair
    got = ssim(a, b, crop_border=crop, y_channel=y)
    ca = a[crop : a.shape[0] - crop, crop : a.shape[1] - crop]
    cb = b[crop : b.shape[0] - crop, crop : b.shape[1] - crop]
    if y:
        want = ref_ssim_2d(ref_y(ca), ref_y(cb))
    else:
        want = np.mean([ref_ssim_2d(ca[..., c], cb[..., c]) for c in range(3)])
    assert got == pytest.approx(want, abs=1e-10)


def test_ssim_matches_skimage_and_opencv_filter(pair) -> None:
    a, b = pair
    sk = structural_similarity(
        a,
        b,
        data_range=255,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(a, b) == pytest.approx(sk, abs=1e-9)
    # BasicSR's formulation: cv2.filter2D with outer(g, g), then crop the 5-pixel border.
    g = cv2.getGaussianKernel(11, 1.5)
    np.testing.assert_allclose(gaussian_window_1d(), g[:, 0], atol=1e-15)
    win = g @ g.T
    x, y = a[..., 1].astype(np.float64), b[..., 1].astype(np.float64)

    def f(z: np.ndarray) -> np.ndarray:
        return cv2.filter2D(z, -1, win)[5:-5, 5:-5]

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    assert ssim(a[..., 1], b[..., 1]) == pytest.approx(m.mean(), abs=1e-9)


def test_ssim_identical_is_one(pair) -> None:
    a, _ = pair
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_tensor_inputs_match_uint8(pair) -> None:
    a, b = pair
    ta = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).float() / 255
    for y in (False, True):
        assert psnr(ta, tb, 2, y) == pytest.approx(psnr(a, b, 2, y), abs=1e-4)
        assert ssim(ta, tb, 2, y) == pytest.approx(ssim(a, b, 2, y), abs=1e-6)
    batch_a, batch_b = torch.stack([ta, ta]), torch.stack([tb, ta])
    assert psnr(batch_a, batch_b) == math.inf  # mean over the batch of per-image values
    assert ssim(batch_a, batch_b) == pytest.approx((ssim(a, b) + 1.0) / 2, abs=1e-6)
    gray_a, gray_b = ta[:1], tb[:1]
    assert psnr(gray_a, gray_b) == pytest.approx(psnr(a[..., :1], b[..., :1]), abs=1e-4)


@pytest.mark.parametrize(
    ("a", "b", "kw", "match"),
    [
        (np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32), {}, "uint8"),
        (np.zeros((16, 16), np.uint16), np.zeros((16, 16), np.uint16), {}, "uint8"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 15), np.uint8), {}, "differ"),
        (np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8), {}, "HWx3"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), {"crop_border": 8}, "crop"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), {"crop_border": -1}, "crop"),
        (np.zeros((16, 16), np.uint8), torch.zeros(1, 16, 16), {}, "both"),
        ([[1]], [[1]], {}, "numpy"),
    ],
)
def test_bad_input(a, b, kw, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psnr(a, b, **kw)
    with pytest.raises(ValueError, match=match):
        ssim(a, b, **kw)


def test_ssim_too_small() -> None:
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), crop_border=5)
