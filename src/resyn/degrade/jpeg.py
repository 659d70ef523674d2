"""JPEG compression with OpenCV's encoder (libjpeg 4:2:0), the SwinIR / MambaIR convention.

Color images are encoded as OpenCV does for its BGR arrays (we flip RGB to BGR and back, so the
chroma planes are the right ones); gray images are encoded as single-channel JPEG and decoded
with ``cv2.IMREAD_GRAYSCALE``. The gray JPEG tasks first reduce a color image to its BT.601 Y
channel (``rgb_to_y_uint8``), as SwinIR's ``main_test_swinir.py`` (task ``jpeg_car``) does with
``bgr2ycbcr(img, only_y=True)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["jpeg", "rgb_to_gray_uint8", "rgb_to_y_uint8"]


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``img`` as JPEG at ``quality`` (1-100) with OpenCV and decode it again.

    Args:
        img: ``(H, W)``, ``(H, W, 1)`` gray or ``(H, W, 3)`` RGB ``uint8`` image.
        quality: ``cv2.IMWRITE_JPEG_QUALITY``, an integer in 1..100.

    Returns:
        ``uint8`` array of the same shape.
    """
    import cv2

    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        got = f"dtype {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"jpeg needs a uint8 numpy image, got {got}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    shape = img.shape
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or 0 in img.shape:
        raise ValueError(f"expected an HW, HWx1 or HWx3 image, got shape {shape}")
    color = img.ndim == 3
    src = np.ascontiguousarray(img[:, :, ::-1] if color else img)
    ok, buf = cv2.imencode(".jpg", src, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV failed to encode the JPEG")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if color:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out).reshape(shape)


def rgb_to_y_uint8(img: np.ndarray) -> np.ndarray:
    """BT.601 Y of a uint8 RGB image as uint8 in [16, 235]: ``round(16 + (65.481 R + 128.553 G +
    24.966 B) / 255)`` in float64, rounded half to even (SwinIR/BasicSR ``bgr2ycbcr`` on uint8)."""
    _check_rgb8(img)
    y = img.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0
    return np.round(y).astype(np.uint8)


def rgb_to_gray_uint8(img: np.ndarray) -> np.ndarray:
    """Full-range luma ``0.299 R + 0.587 G + 0.114 B`` as uint8 (OpenCV ``COLOR_RGB2GRAY``, what
    ``cv2.imread(path, IMREAD_GRAYSCALE)`` gives for color files in the gray denoising scripts)."""
    import cv2

    _check_rgb8(img)
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def _check_rgb8(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy RGB image")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
