"""Additive white Gaussian noise with the SwinIR / MambaIR test-set convention.

Both test scripts make the noisy input on the fly from the clean uint8 image:

1. ``gt = uint8_image.astype(float32) / 255``;
2. ``np.random.seed(0)``; ``noise = np.random.normal(0, sigma / 255, gt.shape)`` (float64, the
   legacy global Mersenne-Twister generator, drawn in C order over ``(H, W[, C])``);
3. ``lq = gt + noise`` with no clipping and no quantisation; the network sees it as float32.

The two scripts differ only in the channel order the noise array is laid over: MambaIR (its
Restormer-derived ``Dataset_GaussianDenoising``) converts the image to RGB before drawing, SwinIR's
``main_test_swinir.py`` draws over OpenCV's BGR array. ``convention`` picks which one to
reproduce bit for bit; for gray images they coincide.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = ["add_gaussian_noise"]

NoiseConvention = Literal["mambair", "swinir"]


def add_gaussian_noise(
    img: np.ndarray, sigma: float, seed: int = 0, convention: NoiseConvention = "mambair"
) -> np.ndarray:
    """Add Gaussian noise of std ``sigma`` (0-255 scale) to a uint8 image.

    Args:
        img: ``(H, W)`` gray, ``(H, W, 1)`` gray or ``(H, W, 3)`` RGB ``uint8`` image.
        sigma: noise standard deviation on the 0-255 scale, ``0 < sigma <= 255``.
        seed: seed of ``np.random.RandomState`` (the stream ``np.random.seed(seed)`` gives).
            ``0`` reproduces the published test inputs.
        convention: ``"mambair"`` (noise drawn over the RGB array) or ``"swinir"`` (drawn over the
            BGR array, i.e. channel-reversed for an RGB image).

    Returns:
        ``(H, W, C)`` float32 on the [0, 1] scale, NOT clipped (values may leave [0, 1]).
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError(f"add_gaussian_noise needs a uint8 numpy image, got {_describe(img)}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected an HW, HWx1 or HWx3 image, got shape {img.shape}")
    sigma = float(sigma)
    if not math.isfinite(sigma) or not 0 < sigma <= 255:
        raise ValueError(f"sigma must be in (0, 255] on the 0-255 scale, got {sigma}")
    if convention not in ("mambair", "swinir"):
        raise ValueError(f"convention must be 'mambair' or 'swinir', got {convention!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    gt = img.astype(np.float32) / 255.0
    noise = np.random.RandomState(int(seed)).normal(0.0, sigma / 255.0, gt.shape)
    if convention == "swinir" and gt.shape[2] == 3:
        noise = noise[:, :, ::-1]  # SwinIR lays the draw over a BGR array
    return (gt + noise).astype(np.float32)


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"dtype {x.dtype}, shape {x.shape}"
    return type(x).__name__
