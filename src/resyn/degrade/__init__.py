"""Degradations with the field's test conventions: MATLAB bicubic, Gaussian noise, JPEG."""

from resyn.degrade.jpeg import jpeg, rgb_to_gray_uint8, rgb_to_y_uint8
from resyn.degrade.noise import add_gaussian_noise
from resyn.degrade.resize import imresize, mod_crop
from resyn.degrade.tasks import BLIND_QUALITY, BLIND_SIGMA, TASK_FORMS, Task, parse_task

__all__ = [
    "BLIND_QUALITY",
    "BLIND_SIGMA",
    "TASK_FORMS",
    "Task",
    "add_gaussian_noise",
    "imresize",
    "jpeg",
    "mod_crop",
    "parse_task",
    "rgb_to_gray_uint8",
    "rgb_to_y_uint8",
]
