"""The complexity score of an image (docs/complexity.md) and its bits-per-pixel (BPP) proxy.

``complexity = ENT - ENE + DISS - center`` of the 8-bit BT.601 luma. How an image becomes luma:

- 16-bit samples are first scaled to 8 bits with ``round(v / 257)`` (as ``resyn.io.to_rgb8``);
- an alpha channel is dropped (transparent pixels count with whatever color they hold);
- gray stays as it is; RGB becomes ``floor((299 R + 587 G + 114 B + 500) / 1000)``, i.e.
  ``0.299 R + 0.587 G + 0.114 B`` rounded half up, computed exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from resyn.complexity.glcm import (
    DEFAULT_ANGLES,
    DEFAULT_DISTANCES,
    glcm_features,
    glcm_offsets,
)
from resyn.io.images import DEFAULT_MAX_PIXELS, read_image, split_alpha

ImageLike = np.ndarray | str | os.PathLike[str] | bytes

# PNG settings of ``bpp``: OpenCV/libpng, zlib level 6 (zlib's and Pillow's default), default
# filter heuristics. Level 9 was measured ~7x slower for ~4% fewer bytes on photos.
BPP_PNG_COMPRESSION = 6

_LUMA_MATRIX = np.array([[0.299, 0.587, 0.114, 0.0005]], np.float64)


@dataclass(frozen=True)
class ComplexityResult:
    """GLCM features of an image, ``raw = ent - ene + diss`` and ``score = raw - center``."""

    ent: float
    ene: float
    diss: float
    raw: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def to_gray8(image: np.ndarray) -> np.ndarray:
    """Any canonical ``resyn.io`` layout (gray, gray+alpha, RGB, RGBA; uint8/uint16) to
    ``(H, W) uint8`` luma, as the module docstring defines it."""
    color = to_color8(image)
    if color.ndim == 2:
        return color
    import cv2

    # One pass, uint8 out: OpenCV rounds 0.299 R + 0.587 G + 0.114 B + 0.0005 to nearest. With
    # n = 299 R + 587 G + 114 B that is round((n + 0.5) / 1000), never a tie and at least 5e-4
    # away from one, which equals floor((n + 500) / 1000); tests check all 2**24 RGB triples.
    return cv2.transform(color, _LUMA_MATRIX).reshape(color.shape[:2])


def to_color8(image: np.ndarray) -> np.ndarray:
    """Drop alpha, scale 16-bit to 8-bit (``round(v / 257)``); gray stays ``(H, W)``."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an image array, got {type(image).__name__}")
    color, _ = split_alpha(image)
    if color.ndim == 3 and color.shape[2] == 1:
        color = color[:, :, 0]
    if color.ndim not in (2, 3) or (color.ndim == 3 and color.shape[2] != 3):
        raise ValueError(f"unsupported image shape {image.shape} (need HxW, HxWx2/3/4)")
    if color.dtype == np.uint16:
        color = np.round(color.astype(np.float32) / np.float32(257.0)).astype(np.uint8)
    elif color.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 samples, got {color.dtype}")
    return np.ascontiguousarray(color)


def _as_array(image: ImageLike, max_pixels: int | None) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    return read_image(image, max_pixels=max_pixels)


def raw_features(
    image: ImageLike,
    *,
    distances: Sequence[int] = DEFAULT_DISTANCES,
    angles: Sequence[float] = DEFAULT_ANGLES,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, float]:
    """``{"ent", "ene", "diss", "raw"}`` of an image array or file (no centering)."""
    gray = to_gray8(_as_array(image, max_pixels))
    h, w = gray.shape
    need_h = 1 + max(abs(dr) for row in glcm_offsets(distances, angles) for dr, _ in row)
    need_w = 1 + max(abs(dc) for row in glcm_offsets(distances, angles) for _, dc in row)
    if h < need_h or w < need_w:
        raise ValueError(
            f"image is {w}x{h} pixels; GLCM complexity needs at least {need_w}x{need_h} "
            "(every offset must have a neighbouring pixel)"
        )
    f = glcm_features(gray, 256, distances, angles)
    f["raw"] = f["ent"] - f["ene"] + f["diss"]
    return f


def complexity(
    image: ImageLike,
    center: float | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ComplexityResult:
    """GLCM complexity of an image array (gray/RGB/alpha, uint8/uint16) or an image file.

    ``center=None`` uses the active center: the one saved by ``resyn complexity calibrate``
    (see ``resyn.complexity.center``) or else ``DEFAULT_CENTER``.
    """
    from resyn.complexity.center import active_center

    f = raw_features(image, max_pixels=max_pixels)
    c = active_center() if center is None else float(center)
    return ComplexityResult(f["ent"], f["ene"], f["diss"], f["raw"], f["raw"] - c)


def bpp(image: ImageLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> float:
    """Bits per pixel of the 8-bit image (alpha dropped, 16-bit scaled, gray kept 1-channel)
    PNG-encoded losslessly with OpenCV at ``BPP_PNG_COMPRESSION``: ``8 * bytes / (H * W)``."""
    from resyn.io.images import encode_png

    color = to_color8(_as_array(image, max_pixels))
    data = encode_png(color, compression=BPP_PNG_COMPRESSION)
    h, w = color.shape[:2]
    return 8.0 * len(data) / (h * w)
