"""PSNR and SSIM with the BasicSR / MATLAB definitions used by SR and restoration papers.

* Inputs: ``uint8`` numpy images ``(H, W)`` / ``(H, W, 1)`` gray or ``(H, W, 3)`` RGB, or float
  torch tensors on the [0, 1] scale, ``(C, H, W)`` or ``(B, C, H, W)`` with ``C`` in {1, 3}.
  Tensors are multiplied by 255 (not quantised): pass uint8 images (``round(x * 255)``) to get
  the numbers papers report. Everything is computed in float64.
* ``crop_border``: that many pixels are dropped on every side before anything else.
* ``y_channel``: RGB is reduced to BT.601 Y on the 0-255 scale,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1] (MATLAB ``rgb2ycbcr``),
  kept unrounded; gray images are used as they are.
* PSNR: ``10 log10(255^2 / MSE)`` over all pixels and channels; identical images give ``inf``.
* SSIM: 11x11 Gaussian window (sigma 1.5, normalised), constants ``(0.01*255)^2`` and
  ``(0.03*255)^2``, local statistics over the valid region only (the window fully inside the
  image; BasicSR's ``cv2.filter2D(...)[5:-5, 5:-5]``), mean of the SSIM map; multi-channel images
  give the mean over channels.
* Batches ``(B, C, H, W)`` give the mean over the batch of the per-image values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["gaussian_window_1d", "psnr", "rgb_to_y", "ssim"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (``cv2.getGaussianKernel(size, sigma)``), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _is_tensor(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def rgb_to_y(img: Any) -> Any:
    """BT.601 luma ``16 + 65.481 R + 128.553 G + 24.966 B`` (R, G, B in [0, 1]), unrounded.

    * numpy ``uint8`` ``(H, W, 3)`` RGB -> float64 ``(H, W)`` on the 0-255 scale (16..235);
      gray ``(H, W)`` / ``(H, W, 1)`` -> float64 ``(H, W)`` unchanged.
    * torch float ``(..., 3, H, W)`` in [0, 1] -> float64 ``(..., 1, H, W)`` on the [0, 1] scale;
      ``(..., 1, H, W)`` is returned as float64 unchanged.
    """
    if _is_tensor(img):
        t = img.to(dtype=__import__("torch").float64)
        if t.ndim < 3 or t.shape[-3] not in (1, 3):
            raise ValueError(
                f"expected a (..., C, H, W) tensor with C in (1, 3), got {tuple(t.shape)}"
            )
        if t.shape[-3] == 1:
            return t
        w = t.new_tensor(_Y_WEIGHTS).view(3, 1, 1)
        return ((t * w).sum(dim=-3, keepdim=True) + 16.0) / 255.0
    arr = _check_array(img, "img")
    x = arr.astype(np.float64)
    if x.ndim == 3 and x.shape[2] == 3:
        return x @ _Y_WEIGHTS / 255.0 + 16.0
    return x[:, :, 0] if x.ndim == 3 else x


def _check_array(img: Any, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise ValueError(
            f"{name} must be a uint8 numpy array or a float torch tensor, got {type(img).__name__}"
        )
    if img.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 (quantise float outputs with round(x*255) "
            f"first), got dtype {img.dtype}"
        )
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise ValueError(f"{name} must be HW, HWx1 or HWx3, got shape {img.shape}")
    return img


def _prepare(
    a: Any, b: Any, crop_border: int, y_channel: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validate and convert to a list of float64 ``(H, W, C)`` pairs on the 0-255 scale."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)):
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if _is_tensor(a) != _is_tensor(b):
        raise ValueError("both images must be numpy arrays or both torch tensors")
    if _is_tensor(a):
        pairs = _tensor_pairs(a, b, y_channel)
    else:
        a, b = _check_array(a, "a"), _check_array(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
        if y_channel:
            pairs = [(rgb_to_y(a)[:, :, None], rgb_to_y(b)[:, :, None])]
        else:
            fa, fb = a.astype(np.float64), b.astype(np.float64)
            pairs = [(fa.reshape(*fa.shape[:2], -1), fb.reshape(*fb.shape[:2], -1))]
    out = []
    for x, y in pairs:
        h, w = x.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")
        if crop_border:
            x = x[crop_border:-crop_border, crop_border:-crop_border]
            y = y[crop_border:-crop_border, crop_border:-crop_border]
        out.append((x, y))
    return out


def _tensor_pairs(a: Any, b: Any, y_channel: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise ValueError("tensors must be floating point on the [0, 1] scale")
    if a.ndim == 3:
        a, b = a[None], b[None]
    if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[0] == 0:
        raise ValueError(
            f"tensors must be (C, H, W) or (B, C, H, W) with C in (1, 3), got {tuple(a.shape)}"
        )
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    xa = a.detach().cpu().double().numpy().transpose(0, 2, 3, 1) * 255.0
    xb = b.detach().cpu().double().numpy().transpose(0, 2, 3, 1) * 255.0
    return list(zip(xa, xb, strict=True))


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def psnr(a: Any, b: Any, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB (peak 255). ``inf`` for identical images."""
    vals = [_psnr(x, y) for x, y in _prepare(a, b, crop_border, y_channel)]
    return float(np.mean(vals))


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation with ``outer(g, g)`` over the valid region of a 2-D array."""
    from numpy.lib.stride_tricks import sliding_window_view

    k = g.size
    rows = sliding_window_view(x, k, axis=0) @ g  # (H-k+1, W)
    return sliding_window_view(rows, k, axis=1) @ g  # (H-k+1, W-k+1)


def _ssim_channel(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x * mu_x
    syy = _filter_valid(y * y, g) - mu_y * mu_y
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (sxx + syy + _C2)
    return float(np.mean(num / den))


def ssim(a: Any, b: Any, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity (Wang et al. 2004, as BasicSR/MATLAB ``ssim``), in [-1, 1]."""
    g = gaussian_window_1d(11, 1.5)
    vals = []
    for x, y in _prepare(a, b, crop_border, y_channel):
        if min(x.shape[:2]) < 11:
            raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {x.shape[:2]}")
        vals.append(np.mean([_ssim_channel(x[:, :, c], y[:, :, c], g) for c in range(x.shape[2])]))
    return float(np.mean(vals))
