"""Per-image measurements used to filter a pool: content hash, blur and flatness.

All measurements run on the 8-bit RGB image that would enter the dataset (``resyn.io.to_rgb8``),
converted to gray with the BT.601 weights (``cv2.COLOR_RGB2GRAY``), at native resolution.

- **Blur** (LSDIR style): the variance of the Laplacian (OpenCV 3x3 aperture,
  ``[[0,1,0],[1,-4,1],[0,1,0]]``) of the gray image on the 0-255 scale. Sharp photographs give
  hundreds to thousands; an image whose every edge is smeared gives a few units.
- **Flatness**: the share of pixels whose Sobel gradient magnitude (3x3 kernels, 0-255 scale) is
  below :data:`FLAT_GRADIENT` - large empty sky, blank backgrounds, solid-color renders.
- **Hash**: SHA-256 of the decoded RGB pixels and their shape, so the same picture stored as PNG
  and as BMP (or with different metadata) is one image; re-encoded lossy copies are not exact
  duplicates and are not caught.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

#: Sobel gradient magnitude (gray levels) below which a pixel counts as flat.
FLAT_GRADIENT = 10.0
#: Default blur threshold: variance of the Laplacian below this rejects the image.
DEFAULT_BLUR_THRESHOLD = 20.0
#: Default flatness threshold: a flat-pixel share above this rejects the image.
DEFAULT_FLAT_THRESHOLD = 0.85


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 gray (BT.601 luma); 2-D input is returned as is."""
    import cv2

    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def content_hash(rgb: np.ndarray) -> str:
    """SHA-256 hex digest of an array's shape, dtype and pixel bytes."""
    h = hashlib.sha256()
    h.update(f"{rgb.shape}|{rgb.dtype}".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a gray image (0-255 scale); low means blurry.

    The Laplacian of 8-bit samples is an integer in [-1020, 1020], exact in float32, so it is
    computed as one float32 image (4 bytes a pixel, no float64 copies); mean and variance are
    accumulated in double precision by ``cv2.meanStdDev``."""
    import cv2

    lap = cv2.Laplacian(_as_uint8(gray), cv2.CV_32F, ksize=1)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def flat_ratio(gray: np.ndarray, gradient: float = FLAT_GRADIENT) -> float:
    """Share of pixels with Sobel gradient magnitude below ``gradient`` (0-255 scale).

    The Sobel derivatives of 8-bit samples are integers (|g| <= 1020) and so is ``gx² + gy²``
    (< 2**24, exact in float32): ``magnitude < gradient`` is decided exactly as
    ``gx² + gy² < ceil(gradient²)``, on two float32 images instead of four float64 ones."""
    import cv2

    g = _as_uint8(gray)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    np.multiply(gx, gx, out=gx)
    np.multiply(gy, gy, out=gy)
    gx += gy
    limit = np.float32(math.ceil(float(gradient) ** 2)) if gradient > 0 else np.float32(0)
    return float(np.count_nonzero(gx < limit)) / gx.size


def _as_uint8(gray: np.ndarray) -> np.ndarray:
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 gray image, got {gray.dtype} {gray.shape}")
    return np.ascontiguousarray(gray)
