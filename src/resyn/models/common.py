"""Pieces every restoration network here shares."""

from __future__ import annotations

import torch
from torch import nn

# The mean RGB of DIV2K's training images, subtracted from colour inputs (SwinIR, MambaIR and
# RWKV-IR all use it; gray and other channel counts use zero).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def register_mean(module: nn.Module, in_chans: int) -> None:
    """Adds the non-persistent ``mean`` buffer (1, in_chans, 1, 1) the forward passes subtract."""
    mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
    module.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
