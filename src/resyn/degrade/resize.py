"""MATLAB-compatible bicubic ``imresize`` and ``mod_crop``.

The definition follows MATLAB's ``imresize(img, scale, 'bicubic')`` (Image Processing Toolbox):

* cubic convolution kernel with ``a = -0.5`` (Keys), support ``[-2, 2]``;
* antialiasing when downscaling: the kernel is stretched by ``1/scale`` and its height scaled by
  ``scale`` (``h(x) = scale * cubic(scale * x)``, width ``4 / scale``);
* output length ``ceil(in_length * scale)``;
* output pixel ``x`` (1-based) maps to input coordinate ``u = x / scale + 0.5 * (1 - 1 / scale)``;
  taps ``floor(u - width / 2) + (0 .. ceil(width) + 1)``;
* weights normalised to sum to one per output pixel;
* out-of-range taps mirrored symmetrically (``[1..n, n..1]`` repeated);
* the two axes are resized one after the other, rows (height) first when both scales are equal;
* ``uint8`` images: MATLAB returns the class of its input from each 1-D pass, so the intermediate
  image is rounded (half away from zero) and saturated to ``uint8`` after the first pass as well
  as after the second. Float images are resized in float64 without rounding or clipping.

Each axis is applied as one sparse ``(out, in)`` matrix product (no loop over rows or pixels).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cubic", "imresize", "mod_crop", "output_length", "resize_matrix"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``), float64."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_length * scale)``.

    A relative tolerance of 1e-10 absorbs floating-point noise such as ``9 * (1/3)`` so that
    mod-cropped images give the exact integer size (``in_length / (1/scale)``).
    """
    value = in_length * scale
    return max(1, math.ceil(value - 1e-10 * max(1.0, value)))


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel tap indices (0-based, mirrored) and normalised weights, both (out, P)."""
    antialias = scale < 1.0
    width = 4.0 / scale if antialias else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based positions
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if antialias else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: position p (1-based) -> mirror table [1..n, n..1], periodic.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    return idx0, weights


def resize_matrix(in_length: int, scale: float, out_len: int | None = None):
    """The sparse ``(out_length, in_length)`` matrix that resizes one axis (scipy CSR, float64)."""
    from scipy import sparse

    out_len = output_length(in_length, scale) if out_len is None else out_len
    idx, weights = _contributions(in_length, out_len, scale)
    rows = np.repeat(np.arange(out_len), idx.shape[1])
    mat = sparse.coo_matrix(
        (weights.ravel(), (rows, idx.ravel())), shape=(out_len, in_length), dtype=np.float64
    )
    return mat.tocsr()  # duplicates (mirrored taps hitting one pixel) are summed


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """Saturate to [0, 255] and round half away from zero, as MATLAB's uint8 conversion."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def _check_image(img: np.ndarray, name: str = "img") -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3):
        raise ValueError(f"{name} must be HW or HWC (2 or 3 dims), got shape {img.shape}")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or floating point, got dtype {img.dtype}")
    if img.shape[0] == 0 or img.shape[1] == 0 or (img.ndim == 3 and img.shape[2] == 0):
        raise ValueError(f"{name} is empty (shape {img.shape})")
    return img


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize ``img`` by ``scale`` with MATLAB's antialiased bicubic ``imresize``.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` array, ``uint8`` or floating point (any range).
        scale: resize factor > 0; ``1/4`` downsamples by four, ``2`` upsamples by two.

    Returns:
        ``(ceil(H*scale), ceil(W*scale)[, C])``. ``uint8`` in gives ``uint8`` out (rounded and
        saturated after each axis, as MATLAB); float in gives the same float dtype, unclipped.

    Raises:
        ValueError: wrong rank or dtype, empty image, or a non-finite / non-positive scale.
    """
    _check_image(img)
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a positive number, got {scale!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")

    is_uint8 = img.dtype == np.uint8
    h, w = img.shape[:2]
    x = img.astype(np.float64).reshape(h, w, -1)
    c = x.shape[2]
    rows = resize_matrix(h, scale)
    cols = resize_matrix(w, scale)

    # Height first (MATLAB resizes the dimension with the smaller scale first; rows on ties).
    y = np.asarray(rows @ x.reshape(h, w * c)).reshape(rows.shape[0], w, c)
    if is_uint8:
        y = _round_uint8(y).astype(np.float64)
    oh = y.shape[0]
    y_t = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(w, oh * c)
    z = np.asarray(cols @ y_t).reshape(cols.shape[0], oh, c).transpose(1, 0, 2)
    out = _round_uint8(z) if is_uint8 else z.astype(img.dtype)
    if img.ndim == 2:
        out = out[:, :, 0]
    return np.ascontiguousarray(out)


def mod_crop(img: np.ndarray, s: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``s`` (BasicSR's mod_crop).

    Raises:
        ValueError: ``s`` not a positive integer, wrong rank, or the image is smaller than ``s``.
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        shape = getattr(img, "shape", None)
        raise ValueError(f"img must be an HW or HWC numpy array, got shape {shape}")
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise ValueError(f"mod_crop factor must be a positive integer, got {s!r}")
    h, w = img.shape[:2]
    hh, ww = h - h % s, w - w % s
    if hh == 0 or ww == 0:
        raise ValueError(f"image {h}x{w} is smaller than the crop multiple {s}")
    return img[:hh, :ww, ...]
