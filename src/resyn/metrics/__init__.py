"""Image quality metrics with the BasicSR / MATLAB definitions (PSNR, SSIM, BT.601 Y)."""

from resyn.metrics.core import gaussian_window_1d, psnr, rgb_to_y, ssim

__all__ = ["gaussian_window_1d", "psnr", "rgb_to_y", "ssim"]
