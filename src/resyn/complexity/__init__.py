"""GLCM image complexity (docs/complexity.md), bits per pixel, and the tools of the complexity study.

- ``glcm_features(gray, levels, distances, angles)``: ENT / ENE / DISS of a uint8 gray image;
- ``complexity(image_or_path, center=None) -> ComplexityResult``; ``bpp(image_or_path)``;
- ``DEFAULT_CENTER`` and the calibration helpers in ``resyn.complexity.center``;
- ``resyn.complexity.study``: distributions and PSNR correlations (Fig. 2 and Fig. 3).
"""

from resyn.complexity.center import DEFAULT_CENTER, active_center, center_file
from resyn.complexity.glcm import glcm, glcm_features, quantize
from resyn.complexity.score import (
    BPP_PNG_COMPRESSION,
    ComplexityResult,
    bpp,
    complexity,
    raw_features,
    to_gray8,
)

__all__ = [
    "BPP_PNG_COMPRESSION",
    "DEFAULT_CENTER",
    "ComplexityResult",
    "active_center",
    "bpp",
    "center_file",
    "complexity",
    "glcm",
    "glcm_features",
    "quantize",
    "raw_features",
    "to_gray8",
]
