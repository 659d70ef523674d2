"""Degradations with the field's test conventions: MATLAB bicubic, Gaussian noise, JPEG."""

from resyn.degrade.resize import imresize, mod_crop

__all__ = ["imresize", "mod_crop"]
